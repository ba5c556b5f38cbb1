//! The bf16 matrix product: weights stored as bf16 once at load, activations rounded to bf16
//! per call, products by AVX-512 BF16's `vdpbf16ps` (two bf16 multiply-adds per f32 lane)
//! accumulated in f32. Bias and GELU are applied in f32, and layer norm, softmax and attention
//! never leave f32 (README, "Measured": minimum cosine 0.99994 against sentence-transformers).
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

use super::layout::{GemmScratch, NR};
use super::math::{gelu, Act};
use super::parallel::split;

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
        })
    }
}

/// `y (m, n) = act(x (m, k) · W + b)`, contiguous row-major; `bias` holds `⌈n / NR⌉ · NR`.
pub fn gemm(
    w: &Panels16,
    x: &[f32],
    m: usize,
    bias: &[f32],
    act: Act,
    y: &mut [f32],
    scratch: &mut GemmScratch,
) {
    let (k, n, pairs) = (w.k, w.n, w.pairs);
    if m == 0 || n == 0 {
        return;
    }
    let GemmScratch { a16, out, .. } = scratch;
    // SAFETY: a `Panels16` exists only where `supported()` found avx512f and avx512bf16.
    unsafe { pack_left(x, m, k, pairs, a16) };
    let a = &a16[..];
    let panel_len = pairs * 2 * NR;
    let product = |r0: usize, rows: usize, p: usize, y: &mut [f32], ldy: usize, cols: usize| {
        let block = Block {
            a: &a[r0 * pairs..],
            pairs,
            panel: &w.data[p * panel_len..][..panel_len],
            bias: &bias[p * NR..][..NR],
            act,
        };
        // SAFETY: as above, the CPU has avx512f and avx512bf16.
        unsafe { block.product(rows, y, ldy, cols) };
    };
    split(m, n, k, MR16, y, n, out, true, &product);
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
                for (v, b) in row.iter_mut().zip(&bias) {
                    *v += b;
                }
                if self.act == Act::Gelu {
                    for v in &mut row {
                        *v = gelu::<true>(*v);
                    }
                }
                y[(r0 + r) * ldy..][..cols].copy_from_slice(&row[..cols]);
            }
            r0 += MR16;
        }
    }

    #[cfg(not(target_arch = "x86_64"))]
    fn product(&self, _rows: usize, _y: &mut [f32], _ldy: usize, _cols: usize) {
        unreachable!("Panels16 is never built without avx512bf16")
    }
}
