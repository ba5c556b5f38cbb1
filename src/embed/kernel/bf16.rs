//! The bf16 matrix product: weights stored as bf16 once at load and multiplied by one of two
//! products ([`Bf16Product`]), whichever this CPU runs faster: AVX-512 BF16's `vdpbf16ps`
//! (activations rounded to bf16 per call, two bf16 multiply-adds per f32 lane, accumulated in
//! f32), or the weights widened to f32 in registers against unrounded activations (`widen`).
//! Bias and GELU are applied in f32, and layer norm, softmax and attention never leave f32
//! (README, "Measured": minimum cosine 0.99994 and 0.99997 against sentence-transformers).
//!
//! Half the bytes of the f32 weights (21 MB: they stay in L3) and twice the multiply-adds per
//! instruction. Written with AVX-512 BF16 intrinsics, so the module allows unsafe code for
//! itself. Packed only where the CPU has `avx512bf16`: [`Panels16::from_torch`] returns `None`
//! elsewhere, so holding a [`Panels16`] proves the kernel may run.
//!
//! Layouts: a weight `W (k, n)` is `⌈n / NR⌉` panels of `⌈k / 2⌉` pairs of rows; pair `q` of
//! a panel is `NR` lanes of `(W[2q][j], W[2q+1][j])`, so one `vdpbf16ps` against the broadcast
//! pair `(x[r][2q], x[r][2q+1])` adds two terms to 16 columns. The left operand is `x` rounded
//! to bf16, row-major in such pairs, its rows padded to a multiple of `MR16`.

#![expect(
    unsafe_code,
    reason = "AVX-512 BF16 intrinsics (vector loads and bit casts) after run-time detection"
)]

use std::sync::OnceLock;
use std::time::{Duration, Instant};

use super::layout::{GemmScratch, NR};
use super::math::{finish_row, Act};
use super::parallel::split;
use super::widen::{self, WideBlock, MR_WIDE};

/// Rows of the left operand per micro-kernel call: 8 × 2 accumulators, 2 weight vectors and
/// 8 broadcasts fit the 32 vector registers (12 rows spilled accumulators to the stack).
const MR16: usize = 8;

/// Whether this CPU multiplies bf16 (AVX-512F and AVX-512 BF16).
pub fn supported() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        is_x86_feature_detected!("avx512f") && is_x86_feature_detected!("avx512bf16")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// `v` rounded to the nearest bf16 (ties to even); NaN stays NaN.
#[inline(always)]
pub fn to_bf16(v: f32) -> u16 {
    let bits = v.to_bits();
    let rounded = bits.wrapping_add(0x7FFF + ((bits >> 16) & 1));
    if v.is_nan() {
        0x7FC0
    } else {
        (rounded >> 16) as u16
    }
}

/// A bf16 weight `(k, n)` in pair-interleaved panels (see the module docs).
#[derive(Debug, Clone)]
pub struct Panels16 {
    k: usize,
    n: usize,
    pairs: usize,
    data: Vec<u16>,
    product: Bf16Product,
}

/// Which instructions multiply the bf16 weights. Both are faithful (README, "Measured");
/// which is faster depends on the CPU, so [`Bf16Product::fastest`] times both once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bf16Product {
    /// `vdpbf16ps`: activations rounded to bf16, two multiply-adds per f32 lane and
    /// instruction (full rate on AMD Zen 4 and 5).
    Dot,
    /// Weights widened to f32 in registers, f32 FMAs, activations not rounded (the `widen`
    /// module): faster where `vdpbf16ps` multiplies at half the rate of f32 FMAs (the Intel
    /// Xeon, Emerald Rapids, measured for the README).
    Widen,
}

impl std::str::FromStr for Bf16Product {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "dot" => Ok(Self::Dot),
            "widen" => Ok(Self::Widen),
            other => Err(format!(
                "unknown bf16 product `{other}` (expected dot or widen)"
            )),
        }
    }
}

impl Bf16Product {
    pub fn name(self) -> &'static str {
        match self {
            Self::Dot => "dot",
            Self::Widen => "widen",
        }
    }

    /// The faster product on this CPU, measured once per process on a 12-row product of
    /// the model's shape (a few milliseconds), single-threaded so that the pool's wake-ups
    /// do not blur it.
    pub fn fastest() -> Self {
        static CHOSEN: OnceLock<Bf16Product> = OnceLock::new();
        *CHOSEN.get_or_init(Self::measure)
    }

    fn measure() -> Self {
        let (m, k, n) = (12, 384, 384);
        let weight: Vec<f32> = (0..k * n)
            .map(|i| ((i * 7919) % 997) as f32 / 997.0 - 0.5)
            .collect();
        let Some(w) = Panels16::from_torch(&weight, k, n) else {
            return Self::Dot;
        };
        let x: Vec<f32> = (0..m * k)
            .map(|i| ((i * 31) % 101) as f32 / 101.0 - 0.5)
            .collect();
        let bias = vec![0.0; n];
        let mut y = vec![0.0; m * n];
        let mut scratch = GemmScratch::default();
        let mut best = |kernel: Self| {
            let mut fastest = Duration::MAX;
            for _ in 0..7 {
                let start = Instant::now();
                for _ in 0..8 {
                    product(
                        kernel,
                        &w,
                        &x,
                        m,
                        &bias,
                        Act::None,
                        &mut y,
                        &mut scratch,
                        false,
                    );
                }
                fastest = fastest.min(start.elapsed());
            }
            fastest
        };
        // Alternate, so a burst of noise from elsewhere hits both.
        let (mut dot, mut wide) = (Duration::MAX, Duration::MAX);
        for _ in 0..2 {
            dot = dot.min(best(Self::Dot));
            wide = wide.min(best(Self::Widen));
        }
        tracing::debug!(
            dot_ns = dot.as_nanos() / 8,
            widen_ns = wide.as_nanos() / 8,
            "bf16 products timed"
        );
        if wide < dot {
            Self::Widen
        } else {
            Self::Dot
        }
    }
}

impl Panels16 {
    /// Packs a PyTorch-layout `(out, in)` weight (`W[kk][j] = weight[j·inputs + kk]`), or
    /// `None` where the CPU has no bf16 products.
    pub fn from_torch(weight: &[f32], inputs: usize, outputs: usize) -> Option<Self> {
        if !supported() {
            return None;
        }
        let pairs = inputs.div_ceil(2);
        let panel_len = pairs * 2 * NR;
        let mut data = vec![0u16; outputs.div_ceil(NR) * panel_len];
        for (j, row) in weight.chunks_exact(inputs).take(outputs).enumerate() {
            let panel = &mut data[(j / NR) * panel_len..][..panel_len];
            let lane = (j % NR) * 2;
            for (kk, &v) in row.iter().enumerate() {
                panel[(kk / 2) * 2 * NR + lane + kk % 2] = to_bf16(v);
            }
        }
        Some(Self {
            k: inputs,
            n: outputs,
            pairs,
            data,
            product: Bf16Product::Dot,
        })
    }

    /// Multiplied from now on by `product` (packing leaves [`Bf16Product::Dot`]).
    pub fn multiply_by(&mut self, product: Bf16Product) {
        self.product = product;
    }

    pub fn product(&self) -> Bf16Product {
        self.product
    }
}

/// `y (m, n) = act(x (m, k) · W + b)`, contiguous row-major; `bias` holds `⌈n / NR⌉ · NR`.
/// Multiplied by the weight's [`Panels16::product`].
pub fn gemm(
    w: &Panels16,
    x: &[f32],
    m: usize,
    bias: &[f32],
    act: Act,
    y: &mut [f32],
    scratch: &mut GemmScratch,
) {
    product(w.product, w, x, m, bias, act, y, scratch, true);
}

/// [`gemm`] by the given product; `parallel` lets big products use rayon's threads.
#[expect(
    clippy::too_many_arguments,
    reason = "BLAS-style kernels take operands, strides and shapes"
)]
pub fn product(
    kernel: Bf16Product,
    w: &Panels16,
    x: &[f32],
    m: usize,
    bias: &[f32],
    act: Act,
    y: &mut [f32],
    scratch: &mut GemmScratch,
    parallel: bool,
) {
    let (k, n, pairs) = (w.k, w.n, w.pairs);
    if m == 0 || n == 0 {
        return;
    }
    let panel_len = pairs * 2 * NR;
    let panel = |p: usize| &w.data[p * panel_len..][..panel_len];
    let GemmScratch { a, a16, out } = scratch;
    match kernel {
        Bf16Product::Dot => {
            // SAFETY: a `Panels16` exists only where `supported()` found avx512f and avx512bf16.
            unsafe { pack_left(x, m, k, pairs, a16) };
            let a = &a16[..];
            let product =
                |r0: usize, rows: usize, p: usize, y: &mut [f32], ldy: usize, cols: usize| {
                    let block = Block {
                        a: &a[r0 * pairs..],
                        pairs,
                        panel: panel(p),
                        bias: &bias[p * NR..][..NR],
                        act,
                    };
                    // SAFETY: as above, the CPU has avx512f and avx512bf16.
                    unsafe { block.product(rows, y, ldy, cols) };
                };
            split(m, n, k, MR16, y, n, out, parallel, &product);
        }
        Bf16Product::Widen => {
            widen::pack_left(x, m, k, pairs, a);
            let a = &a[..];
            let product =
                |r0: usize, rows: usize, p: usize, y: &mut [f32], ldy: usize, cols: usize| {
                    let block = WideBlock {
                        a: &a[r0 * 2 * pairs..],
                        pairs,
                        panel: panel(p),
                        bias: &bias[p * NR..][..NR],
                        act,
                    };
                    // SAFETY: as above, the CPU has avx512f.
                    unsafe { block.product(rows, y, ldy, cols) };
                };
            split(m, n, k, MR_WIDE, y, n, out, parallel, &product);
        }
    }
}

/// `x (m, k)` rounded to bf16 pairs, row-major, `m` padded with zero rows to a multiple of
/// `MR16` and `k` with a zero column to an even count.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bf16")]
fn pack_left(x: &[f32], m: usize, k: usize, pairs: usize, a: &mut Vec<u32>) {
    let need = m.div_ceil(MR16) * MR16 * pairs;
    a.clear();
    a.resize(need, 0);
    for (dst, src) in a.chunks_exact_mut(pairs).zip(x.chunks_exact(k)) {
        let (whole, rest) = src.as_chunks::<2>();
        for (d, s) in dst.iter_mut().zip(whole) {
            *d = u32::from(to_bf16(s[0])) | (u32::from(to_bf16(s[1])) << 16);
        }
        if let (Some(&v), Some(last)) = (rest.first(), dst.last_mut()) {
            *last = u32::from(to_bf16(v));
        }
    }
}

#[cfg(not(target_arch = "x86_64"))]
fn pack_left(_x: &[f32], _m: usize, _k: usize, _pairs: usize, _a: &mut Vec<u32>) {
    unreachable!("Panels16 is never built without avx512bf16")
}

/// 32 bf16 lanes in a vector of integers, as the bf16 instructions take them.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
fn bh(v: std::arch::x86_64::__m512i) -> std::arch::x86_64::__m512bh {
    // SAFETY: both are 512-bit vectors of plain bits; every bit pattern is a valid value.
    unsafe { std::mem::transmute::<std::arch::x86_64::__m512i, std::arch::x86_64::__m512bh>(v) }
}

/// One weight panel against blocks of `MR16` rows of the left operand.
struct Block<'a> {
    /// The left operand from the block's first row on (rows of `pairs` values).
    a: &'a [u32],
    pairs: usize,
    panel: &'a [u16],
    bias: &'a [f32],
    act: Act,
}

impl Block<'_> {
    /// Rows `0 .. rows` of the block's product into `y` (stride `ldy`, `cols` columns).
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f,avx512bf16")]
    fn product(&self, rows: usize, y: &mut [f32], ldy: usize, cols: usize) {
        use std::arch::x86_64::{
            __m512, _mm512_dpbf16_ps, _mm512_loadu_si512, _mm512_set1_epi32, _mm512_setzero_ps,
            _mm512_storeu_ps,
        };
        let pairs = self.pairs;
        let bias: [f32; NR] = std::array::from_fn(|j| self.bias[j]);
        let panel = &self.panel.as_chunks::<{ 2 * NR }>().0[..pairs];
        let mut r0 = 0;
        while r0 < rows {
            let block = &self.a[r0 * pairs..][..MR16 * pairs];
            let a_rows: [*const u32; MR16] = std::array::from_fn(|r| block[r * pairs..].as_ptr());
            let mut acc: [[__m512; 2]; MR16] = [[_mm512_setzero_ps(); 2]; MR16];
            for (q, b) in panel.iter().enumerate() {
                // SAFETY: `b` is 64 u16 = two 512-bit vectors; unaligned loads.
                let (b0, b1) = unsafe {
                    (
                        bh(_mm512_loadu_si512(b.as_ptr().cast())),
                        bh(_mm512_loadu_si512(b.as_ptr().add(NR).cast())),
                    )
                };
                for r in 0..MR16 {
                    // SAFETY: row `r` of `block` has `pairs` values and `q < pairs` (the
                    // panel has `pairs` entries); unchecked so the loop keeps to registers.
                    let pair = unsafe { *a_rows[r].add(q) };
                    let av = bh(_mm512_set1_epi32(pair as i32));
                    acc[r][0] = _mm512_dpbf16_ps(acc[r][0], av, b0);
                    acc[r][1] = _mm512_dpbf16_ps(acc[r][1], av, b1);
                }
            }
            for (r, acc_r) in acc.iter().enumerate().take((rows - r0).min(MR16)) {
                let mut row = [0.0f32; NR];
                // SAFETY: `row` holds 32 f32 = two 512-bit vectors.
                unsafe {
                    _mm512_storeu_ps(row.as_mut_ptr(), acc_r[0]);
                    _mm512_storeu_ps(row.as_mut_ptr().add(NR / 2), acc_r[1]);
                }
                finish_row(row, &bias, self.act, &mut y[(r0 + r) * ldy..][..cols]);
            }
            r0 += MR16;
        }
    }

    #[cfg(not(target_arch = "x86_64"))]
    fn product(&self, _rows: usize, _y: &mut [f32], _ldy: usize, _cols: usize) {
        unreachable!("Panels16 is never built without avx512bf16")
    }
}
