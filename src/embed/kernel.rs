//! CPU kernels for the encoder: a matrix product against weights packed once into column
//! panels (bias and erf-GELU fused), a row softmax with a vectorisable `exp`, and a fused
//! residual + layer norm.
//!
//! Everything is plain safe Rust written so that LLVM vectorises it (fixed-size arrays,
//! `as_chunks`, lane-wise accumulators). Each entry point is compiled several times: once with
//! AVX-512 enabled, once with AVX2 + FMA, and once for the baseline target; [`Isa::detect`]
//! picks at run time, so the binary still runs on any x86-64 (and elsewhere, generically).
//! No `target-cpu=native` is needed.
//!
//! Layouts: a weight `W` of shape `(k, n)` (`y = x · W`) is stored as `⌈n / NR⌉` panels, each
//! `k × NR` contiguous (row `kk` of a panel = `W[kk][p·NR .. p·NR + NR]`, zero-padded), so the
//! micro-kernel streams one panel from start to end. The left operand is re-packed per call
//! into blocks of `MR` rows interleaved along `k` (`a[kk·MR + r]`), which is `m·k` copies
//! against `m·k·n` multiply-adds.

// The only unsafe code of the crate: calling the `#[target_feature]` copies of the kernels,
// which is sound once `Isa::detect` has checked that the CPU has those features.
#![expect(
    unsafe_code,
    reason = "calls #[target_feature] functions after run-time CPU feature detection"
)]
#![expect(
    clippy::too_many_arguments,
    reason = "BLAS-style kernels take operands, strides and shapes"
)]

use rayon::prelude::*;

/// Columns per weight panel: two AVX-512 registers of f32.
pub const NR: usize = 32;
/// Rows of the left operand per micro-kernel call (12 × 2 accumulators + 2 + 1 ≤ 32 zmm).
const MR: usize = 12;
/// Products smaller than this many multiply-adds stay on the calling thread.
const PARALLEL_MIN_MACS: usize = 1 << 17;
/// From this many rows a parallel product splits the rows, below it the panels.
const ROW_SPLIT_MIN_ROWS: usize = 4 * MR;

/// Which compiled copy of the kernels runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Isa {
    /// x86-64 with AVX-512F (and AVX2, FMA).
    Avx512,
    /// x86-64 with AVX2 and FMA.
    Avx2,
    /// Baseline target features only.
    Generic,
}

impl Isa {
    /// The best copy this CPU can run.
    pub fn detect() -> Self {
        #[cfg(target_arch = "x86_64")]
        {
            let avx2 = is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma");
            if avx2 && is_x86_feature_detected!("avx512f") {
                return Isa::Avx512;
            }
            if avx2 {
                return Isa::Avx2;
            }
        }
        Isa::Generic
    }
}

/// Activation fused into a product's epilogue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Act {
    None,
    /// `x · Φ(x)` with the exact (erf) normal CDF, as PyTorch's default `gelu`.
    Gelu,
}

/// A `(k, n)` right-hand operand packed into `NR`-column panels.
#[derive(Debug, Default, Clone)]
pub struct Panels {
    k: usize,
    n: usize,
    data: Vec<f32>,
}

impl Panels {
    pub fn k(&self) -> usize {
        self.k
    }

    pub fn n(&self) -> usize {
        self.n
    }

    fn reset(&mut self, k: usize, n: usize) {
        self.k = k;
        self.n = n;
        let need = n.div_ceil(NR) * k * NR;
        // Old values are all overwritten except the padding columns of the last panel.
        self.data.resize(need, 0.0);
        self.data.truncate(need);
        let cols = n % NR;
        if cols != 0 {
            for row in self.data[need - k * NR..].chunks_exact_mut(NR) {
                row[cols..].fill(0.0);
            }
        }
    }

    /// Packs `W[kk][j] = src[kk·ld + j]` for `kk < k`, `j < n` (a row-major `(k, n)` matrix).
    pub fn pack_rows(&mut self, src: &[f32], ld: usize, k: usize, n: usize) {
        self.reset(k, n);
        if k == 0 {
            return;
        }
        for (p, panel) in self.data.chunks_exact_mut(k * NR).enumerate() {
            let c0 = p * NR;
            let cols = NR.min(n - c0);
            for (kk, dst) in panel.chunks_exact_mut(NR).enumerate() {
                dst[..cols].copy_from_slice(&src[kk * ld + c0..][..cols]);
            }
        }
    }

    /// Packs the transpose of a row-major `(n, k)` matrix: `W[kk][j] = src[j·ld + kk]`
    /// (a PyTorch `(out, in)` linear weight, or the keys of an attention head).
    pub fn pack_transposed(&mut self, src: &[f32], ld: usize, k: usize, n: usize) {
        self.reset(k, n);
        if k == 0 {
            return;
        }
        for (p, panel) in self.data.chunks_exact_mut(k * NR).enumerate() {
            let c0 = p * NR;
            for c in 0..NR.min(n - c0) {
                let row = &src[(c0 + c) * ld..][..k];
                for (kk, &v) in row.iter().enumerate() {
                    panel[kk * NR + c] = v;
                }
            }
        }
    }
}

/// How a linear layer's weights are stored and multiplied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Precision {
    /// f32 weights and activations, f32 products: bit-for-bit the reference numerics.
    F32,
    /// bf16 weights and activations multiplied with AVX-512 BF16, accumulated in f32
    /// ([`super::bf16`]); only where the CPU has it.
    Bf16,
}

impl Precision {
    /// The fastest precision this CPU runs faithfully: bf16 where AVX-512 BF16 exists.
    pub fn best() -> Self {
        if super::bf16::supported() {
            Self::Bf16
        } else {
            Self::F32
        }
    }

    /// `self`, or f32 where the CPU cannot run it.
    pub fn or_supported(self) -> Self {
        match self {
            Self::Bf16 if !super::bf16::supported() => Self::F32,
            Self::Bf16 | Self::F32 => self,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::F32 => "f32",
            Self::Bf16 => "bf16",
        }
    }
}

impl std::str::FromStr for Precision {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "f32" => Ok(Self::F32),
            "bf16" => Ok(Self::Bf16),
            other => Err(format!(
                "unknown precision `{other}` (expected f32 or bf16)"
            )),
        }
    }
}

#[derive(Debug, Clone)]
enum Weights {
    F32(Panels),
    Bf16(super::bf16::Panels16),
}

/// A linear layer `y = x · W + b`, `W` packed once at load.
#[derive(Debug, Clone)]
pub struct PackedLinear {
    weight: Weights,
    inputs: usize,
    outputs: usize,
    /// `n` biases, zero-padded to a whole number of panels.
    bias: Vec<f32>,
}

impl PackedLinear {
    /// From a PyTorch-layout weight `(out, in)` (row-major) and its bias `(out)`, stored in
    /// `precision` (f32 where the CPU has no bf16 products).
    pub fn from_torch(
        weight: &[f32],
        bias: &[f32],
        inputs: usize,
        outputs: usize,
        precision: Precision,
    ) -> Self {
        assert_eq!(weight.len(), inputs * outputs, "weight shape");
        assert_eq!(bias.len(), outputs, "bias shape");
        let bf16 = match precision {
            Precision::Bf16 => super::bf16::Panels16::from_torch(weight, inputs, outputs),
            Precision::F32 => None,
        };
        let weight = match bf16 {
            Some(panels) => Weights::Bf16(panels),
            None => {
                let mut panels = Panels::default();
                panels.pack_transposed(weight, inputs, inputs, outputs);
                Weights::F32(panels)
            }
        };
        let mut padded = bias.to_vec();
        padded.resize(outputs.div_ceil(NR) * NR, 0.0);
        Self {
            weight,
            inputs,
            outputs,
            bias: padded,
        }
    }

    pub fn inputs(&self) -> usize {
        self.inputs
    }

    pub fn outputs(&self) -> usize {
        self.outputs
    }

    pub fn precision(&self) -> Precision {
        match self.weight {
            Weights::F32(_) => Precision::F32,
            Weights::Bf16(_) => Precision::Bf16,
        }
    }

    /// `y (m, n) = act(x (m, k) · W + b)`, both row-major and contiguous. Splits the work
    /// across rayon's threads when the product is big enough.
    pub fn forward(
        &self,
        isa: Isa,
        x: &[f32],
        m: usize,
        act: Act,
        y: &mut [f32],
        scratch: &mut GemmScratch,
    ) {
        let (k, n) = (self.inputs, self.outputs);
        match &self.weight {
            Weights::F32(panels) => gemm(
                isa,
                &x[..m * k],
                k,
                m,
                panels,
                Some(&self.bias),
                act,
                &mut y[..m * n],
                n,
                scratch,
                true,
            ),
            Weights::Bf16(panels) => super::bf16::gemm(
                panels,
                &x[..m * k],
                m,
                &self.bias,
                act,
                &mut y[..m * n],
                scratch,
            ),
        }
    }
}

/// Reusable buffers of [`gemm`]: the packed left operand and the panel-major result.
#[derive(Debug, Default)]
pub struct GemmScratch {
    a: Vec<f32>,
    /// The left operand as bf16 pairs (the bf16 products).
    pub(super) a16: Vec<u32>,
    pub(super) out: Vec<f32>,
}

/// `y[r·ldy + j] = act(Σ_kk x[r·ldx + kk] · W[kk][j] + bias[j])` for `r < m`, `j < w.n`.
/// `bias`, when given, holds at least `⌈n / NR⌉ · NR` values.
pub fn gemm(
    isa: Isa,
    x: &[f32],
    ldx: usize,
    m: usize,
    w: &Panels,
    bias: Option<&[f32]>,
    act: Act,
    y: &mut [f32],
    ldy: usize,
    scratch: &mut GemmScratch,
    parallel: bool,
) {
    let (k, n) = (w.k, w.n);
    if m == 0 || n == 0 {
        return;
    }
    pack_left(x, ldx, m, k, &mut scratch.a);
    let a = &scratch.a[..];
    let product = |r0: usize, rows: usize, p: usize, y: &mut [f32], ldy: usize, cols: usize| {
        panel_product(
            isa,
            &a[r0 * k..],
            rows,
            k,
            &w.data[p * k * NR..][..k * NR],
            bias.map(|b| &b[p * NR..][..NR]),
            act,
            y,
            ldy,
            cols,
        );
    };
    split(m, n, k, MR, y, ldy, &mut scratch.out, parallel, &product);
}

/// Shares the `(m, n)` product among rayon's threads. `product(r0, rows, p, y, ldy, cols)`
/// computes rows `r0 .. r0 + rows` (`r0` a multiple of the kernel's block of `mr` rows) of
/// panel `p` into `y`, whose first element is that block's top-left corner.
pub(super) fn split<F>(
    m: usize,
    n: usize,
    k: usize,
    mr: usize,
    y: &mut [f32],
    ldy: usize,
    out: &mut Vec<f32>,
    parallel: bool,
    product: &F,
) where
    F: Fn(usize, usize, usize, &mut [f32], usize, usize) + Sync,
{
    let panels = n.div_ceil(NR);
    let threads = rayon::current_num_threads();
    if !(parallel && threads > 1 && m * k * n >= PARALLEL_MIN_MACS) {
        for p in 0..panels {
            let c0 = p * NR;
            product(0, m, p, &mut y[c0..], ldy, NR.min(n - c0));
        }
    } else if m >= ROW_SPLIT_MIN_ROWS {
        // Many rows: each thread takes a band of whole row blocks and all the panels, and
        // writes its rows of `y` directly (the weights are shared in L3).
        let band = m.div_ceil(mr).div_ceil(threads) * mr;
        y.par_chunks_mut(band * ldy)
            .enumerate()
            .for_each(|(t, y_band)| {
                let r0 = t * band;
                let rows = band.min(m - r0);
                for p in 0..panels {
                    let c0 = p * NR;
                    product(r0, rows, p, &mut y_band[c0..], ldy, NR.min(n - c0));
                }
            });
    } else {
        // Few rows: the weights dominate, so split the panels; each thread writes whole
        // panels of a panel-major buffer, copied into `y` afterwards.
        let need = panels * m * NR;
        if out.len() < need {
            out.resize(need, 0.0);
        }
        let out = &mut out[..need];
        out.par_chunks_mut(m * NR)
            .enumerate()
            .with_min_len(panels.div_ceil(threads))
            .for_each(|(p, out_p)| product(0, m, p, out_p, NR, NR));
        for (p, out_p) in out.chunks_exact(m * NR).enumerate() {
            let c0 = p * NR;
            let cols = NR.min(n - c0);
            for (r, src) in out_p.chunks_exact(NR).enumerate() {
                y[r * ldy + c0..][..cols].copy_from_slice(&src[..cols]);
            }
        }
    }
}

/// Packs `x (m, k)` into blocks of `MR` rows (the last one zero-padded), each interleaved
/// along `k`: `a[b·MR·k + kk·MR + r]`. (Smaller blocks for the remainder were tried: LLVM
/// spilled their accumulators to the stack, which cost far more than the padding rows.)
fn pack_left(x: &[f32], ldx: usize, m: usize, k: usize, a: &mut Vec<f32>) {
    let need = m.div_ceil(MR) * MR * k;
    if a.len() < need {
        a.resize(need, 0.0);
    }
    let (mut r0, mut off) = (0, 0);
    while r0 < m {
        let rows = (m - r0).min(MR);
        let block = &mut a[off..off + MR * k];
        for (kk, dst) in block.chunks_exact_mut(MR).enumerate() {
            for (r, d) in dst.iter_mut().enumerate() {
                *d = if r < rows {
                    x[(r0 + r) * ldx + kk]
                } else {
                    0.0
                };
            }
        }
        r0 += rows;
        off += MR * k;
    }
}

/// One panel of the product for every row block.
fn panel_product(
    isa: Isa,
    a: &[f32],
    m: usize,
    k: usize,
    panel: &[f32],
    bias: Option<&[f32]>,
    act: Act,
    y: &mut [f32],
    ldy: usize,
    cols: usize,
) {
    match isa {
        #[cfg(target_arch = "x86_64")]
        Isa::Avx512 => {
            // SAFETY: `Isa::Avx512` is only produced by `Isa::detect` after checking that the
            // CPU supports avx512f, avx2 and fma.
            unsafe { panel_product_avx512(a, m, k, panel, bias, act, y, ldy, cols) }
        }
        #[cfg(target_arch = "x86_64")]
        Isa::Avx2 => {
            // SAFETY: `Isa::Avx2` is only produced by `Isa::detect` after checking that the
            // CPU supports avx2 and fma.
            unsafe { panel_product_avx2(a, m, k, panel, bias, act, y, ldy, cols) }
        }
        #[cfg(not(target_arch = "x86_64"))]
        Isa::Avx512 | Isa::Avx2 => {
            panel_product_body::<BASELINE_FMA>(a, m, k, panel, bias, act, y, ldy, cols)
        }
        Isa::Generic => panel_product_body::<BASELINE_FMA>(a, m, k, panel, bias, act, y, ldy, cols),
    }
}

/// Whether the baseline target has a fused multiply-add instruction (`mul_add` is a slow
/// library call otherwise).
const BASELINE_FMA: bool = cfg!(any(target_arch = "aarch64", target_feature = "fma"));

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx2,fma")]
fn panel_product_avx512(
    a: &[f32],
    m: usize,
    k: usize,
    panel: &[f32],
    bias: Option<&[f32]>,
    act: Act,
    y: &mut [f32],
    ldy: usize,
    cols: usize,
) {
    panel_product_body::<true>(a, m, k, panel, bias, act, y, ldy, cols);
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn panel_product_avx2(
    a: &[f32],
    m: usize,
    k: usize,
    panel: &[f32],
    bias: Option<&[f32]>,
    act: Act,
    y: &mut [f32],
    ldy: usize,
    cols: usize,
) {
    panel_product_body::<true>(a, m, k, panel, bias, act, y, ldy, cols);
}

#[inline(always)]
fn panel_product_body<const FMA: bool>(
    a: &[f32],
    m: usize,
    k: usize,
    panel: &[f32],
    bias: Option<&[f32]>,
    act: Act,
    y: &mut [f32],
    ldy: usize,
    cols: usize,
) {
    let b = &panel.as_chunks::<NR>().0[..k];
    let mut bias_row = [0.0f32; NR];
    if let Some(bias) = bias {
        bias_row.copy_from_slice(&bias[..NR]);
    }
    let (mut r0, mut off) = (0, 0);
    while r0 < m {
        let rows = (m - r0).min(MR);
        let block = &a[off..off + MR * k];
        block_product::<MR, FMA>(
            block,
            b,
            &bias_row,
            act,
            rows,
            &mut y[r0 * ldy..],
            ldy,
            cols,
        );
        r0 += rows;
        off += MR * k;
    }
}

/// The micro-kernel: `R` rows × `NR` columns accumulated in registers over all of `k`.
#[inline(always)]
fn block_product<const R: usize, const FMA: bool>(
    a: &[f32],
    b: &[[f32; NR]],
    bias: &[f32; NR],
    act: Act,
    rows: usize,
    y: &mut [f32],
    ldy: usize,
    cols: usize,
) {
    let mut acc = [[0.0f32; NR]; R];
    for (av, bv) in a.as_chunks::<R>().0.iter().zip(b) {
        for r in 0..R {
            let ar = av[r];
            for j in 0..NR {
                acc[r][j] = madd::<FMA>(ar, bv[j], acc[r][j]);
            }
        }
    }
    for r in 0..R {
        if r < rows {
            let mut row = acc[r];
            for j in 0..NR {
                row[j] += bias[j];
            }
            if act == Act::Gelu {
                for v in &mut row {
                    *v = gelu::<FMA>(*v);
                }
            }
            y[r * ldy..][..cols].copy_from_slice(&row[..cols]);
        }
    }
}

#[inline(always)]
fn madd<const FMA: bool>(a: f32, b: f32, c: f32) -> f32 {
    if FMA {
        a.mul_add(b, c)
    } else {
        a * b + c
    }
}

/// `erf(x)` as a rational function in `x` (the approximation Eigen and XLA vectorise):
/// about 1e-7 absolute error, no branches, no table.
#[inline(always)]
fn erf<const FMA: bool>(x: f32) -> f32 {
    let x = x.clamp(-4.0, 4.0);
    let x2 = x * x;
    let mut p = madd::<FMA>(x2, -2.726_142_3e-10, 2.770_681_4e-8);
    p = madd::<FMA>(x2, p, -2.101_024e-6);
    p = madd::<FMA>(x2, p, -5.692_506_4e-5);
    p = madd::<FMA>(x2, p, -7.349_906_3e-4);
    p = madd::<FMA>(x2, p, -2.954_6e-3);
    p = madd::<FMA>(x2, p, -1.609_603_3e-2);
    let mut q = madd::<FMA>(x2, -1.456_607_2e-5, -2.133_740_6e-4);
    q = madd::<FMA>(x2, q, -1.682_827e-3);
    q = madd::<FMA>(x2, q, -7.373_329e-3);
    q = madd::<FMA>(x2, q, -1.426_474e-2);
    x * p / q
}

#[inline(always)]
pub(super) fn gelu<const FMA: bool>(x: f32) -> f32 {
    0.5 * x * (1.0 + erf::<FMA>(x * std::f32::consts::FRAC_1_SQRT_2))
}

/// `eˣ` via `2ⁿ · e^r` with a degree-6 polynomial (Cephes' `expf`, about 1 ulp); exactly 0
/// below the smallest normal result.
#[inline(always)]
fn exp<const FMA: bool>(x: f32) -> f32 {
    const LOG2E: f32 = std::f32::consts::LOG2_E;
    const LN2_HI: f32 = 0.693_359_4;
    const LN2_LO: f32 = -2.121_944_4e-4;
    let xc = x.clamp(-87.3, 88.7);
    let n = madd::<FMA>(xc, LOG2E, 0.5).floor();
    let r = madd::<FMA>(n, -LN2_LO, madd::<FMA>(n, -LN2_HI, xc));
    let mut p = 1.987_569_1e-4;
    p = madd::<FMA>(p, r, 1.398_2e-3);
    p = madd::<FMA>(p, r, 8.333_452e-3);
    p = madd::<FMA>(p, r, 4.166_579_6e-2);
    p = madd::<FMA>(p, r, 1.666_666_5e-1);
    p = madd::<FMA>(p, r, 0.5);
    let e = madd::<FMA>(p, r * r, r) + 1.0;
    // 2ⁿ from the bits of n + 127 + 2²³ (n + 127 lands in the low mantissa bits): unlike
    // `n as i32`, whose saturating conversion LLVM does one lane at a time, this vectorises.
    let scale = f32::from_bits((n + (127.0 + 8_388_608.0)).to_bits() << 23);
    if x < -87.3 {
        0.0
    } else {
        e * scale
    }
}

const LANES: usize = 16;

#[inline(always)]
fn lane_sum(values: &[f32]) -> f32 {
    let (chunks, rest) = values.as_chunks::<LANES>();
    let mut acc = [0.0f32; LANES];
    for c in chunks {
        for i in 0..LANES {
            acc[i] += c[i];
        }
    }
    acc.iter().sum::<f32>() + rest.iter().sum::<f32>()
}

#[inline(always)]
fn lane_max(values: &[f32]) -> f32 {
    let (chunks, rest) = values.as_chunks::<LANES>();
    let mut acc = [f32::NEG_INFINITY; LANES];
    for c in chunks {
        for i in 0..LANES {
            acc[i] = acc[i].max(c[i]);
        }
    }
    acc.iter()
        .chain(rest)
        .fold(f32::NEG_INFINITY, |m, &v| m.max(v))
}

/// Softmax of every `cols`-wide row of `scores` in place, after adding `key_bias` (one value
/// per column; `f32::NEG_INFINITY` or a large negative number masks a key out).
pub fn softmax_rows(isa: Isa, scores: &mut [f32], cols: usize, key_bias: Option<&[f32]>) {
    match isa {
        #[cfg(target_arch = "x86_64")]
        Isa::Avx512 => {
            // SAFETY: produced by `Isa::detect` only where avx512f, avx2 and fma exist.
            unsafe { softmax_rows_avx512(scores, cols, key_bias) }
        }
        #[cfg(target_arch = "x86_64")]
        Isa::Avx2 => {
            // SAFETY: produced by `Isa::detect` only where avx2 and fma exist.
            unsafe { softmax_rows_avx2(scores, cols, key_bias) }
        }
        #[cfg(not(target_arch = "x86_64"))]
        Isa::Avx512 | Isa::Avx2 => softmax_rows_body::<BASELINE_FMA>(scores, cols, key_bias),
        Isa::Generic => softmax_rows_body::<BASELINE_FMA>(scores, cols, key_bias),
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx2,fma")]
fn softmax_rows_avx512(scores: &mut [f32], cols: usize, key_bias: Option<&[f32]>) {
    softmax_rows_body::<true>(scores, cols, key_bias);
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn softmax_rows_avx2(scores: &mut [f32], cols: usize, key_bias: Option<&[f32]>) {
    softmax_rows_body::<true>(scores, cols, key_bias);
}

#[inline(always)]
fn softmax_rows_body<const FMA: bool>(scores: &mut [f32], cols: usize, key_bias: Option<&[f32]>) {
    if cols == 0 {
        return;
    }
    for row in scores.chunks_exact_mut(cols) {
        if let Some(bias) = key_bias {
            for (v, b) in row.iter_mut().zip(bias) {
                *v += b;
            }
        }
        let max = lane_max(row);
        for v in row.iter_mut() {
            *v = exp::<FMA>(*v - max);
        }
        let inv = 1.0 / lane_sum(row);
        for v in row.iter_mut() {
            *v *= inv;
        }
    }
}

/// `x = LayerNorm(x + residual) · gamma + beta` for every `gamma.len()`-wide row.
pub fn layer_norm_rows(
    isa: Isa,
    x: &mut [f32],
    residual: Option<&[f32]>,
    gamma: &[f32],
    beta: &[f32],
    eps: f32,
) {
    match isa {
        #[cfg(target_arch = "x86_64")]
        Isa::Avx512 => {
            // SAFETY: produced by `Isa::detect` only where avx512f, avx2 and fma exist.
            unsafe { layer_norm_rows_avx512(x, residual, gamma, beta, eps) }
        }
        #[cfg(target_arch = "x86_64")]
        Isa::Avx2 => {
            // SAFETY: produced by `Isa::detect` only where avx2 and fma exist.
            unsafe { layer_norm_rows_avx2(x, residual, gamma, beta, eps) }
        }
        #[cfg(not(target_arch = "x86_64"))]
        Isa::Avx512 | Isa::Avx2 => layer_norm_rows_body(x, residual, gamma, beta, eps),
        Isa::Generic => layer_norm_rows_body(x, residual, gamma, beta, eps),
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx2,fma")]
fn layer_norm_rows_avx512(
    x: &mut [f32],
    residual: Option<&[f32]>,
    gamma: &[f32],
    beta: &[f32],
    eps: f32,
) {
    layer_norm_rows_body(x, residual, gamma, beta, eps);
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn layer_norm_rows_avx2(
    x: &mut [f32],
    residual: Option<&[f32]>,
    gamma: &[f32],
    beta: &[f32],
    eps: f32,
) {
    layer_norm_rows_body(x, residual, gamma, beta, eps);
}

#[inline(always)]
fn layer_norm_rows_body(
    x: &mut [f32],
    residual: Option<&[f32]>,
    gamma: &[f32],
    beta: &[f32],
    eps: f32,
) {
    let cols = gamma.len();
    if cols == 0 {
        return;
    }
    let inv_n = 1.0 / cols as f32;
    for (i, row) in x.chunks_exact_mut(cols).enumerate() {
        if let Some(res) = residual {
            for (v, r) in row.iter_mut().zip(&res[i * cols..(i + 1) * cols]) {
                *v += r;
            }
        }
        let mean = lane_sum(row) * inv_n;
        for v in row.iter_mut() {
            *v -= mean;
        }
        let (chunks, rest) = row.as_chunks::<LANES>();
        let mut acc = [0.0f32; LANES];
        for c in chunks {
            for l in 0..LANES {
                acc[l] += c[l] * c[l];
            }
        }
        let var = (acc.iter().sum::<f32>() + rest.iter().map(|v| v * v).sum::<f32>()) * inv_n;
        let inv_std = 1.0 / (var + eps).sqrt();
        for ((v, g), b) in row.iter_mut().zip(gamma).zip(beta) {
            *v = *v * inv_std * g + b;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Deterministic values in [-1, 1).
    fn values(len: usize, seed: u64) -> Vec<f32> {
        let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
        (0..len)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                ((state >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
            })
            .collect()
    }

    /// erf by its Taylor series in f64 (converges fine for |x| ≤ 4; beyond, erf is ±1 to
    /// within 2e-8).
    fn erf_reference(x: f64) -> f64 {
        if x.abs() > 4.0 {
            return x.signum();
        }
        let (mut term, mut sum) = (x, x);
        for n in 1..200 {
            term *= -x * x / n as f64;
            sum += term / (2 * n + 1) as f64;
        }
        sum * 2.0 / std::f64::consts::PI.sqrt()
    }

    fn naive(
        x: &[f32],
        w: &[f32],
        bias: &[f32],
        m: usize,
        k: usize,
        n: usize,
        act: Act,
    ) -> Vec<f32> {
        let mut y = vec![0.0f32; m * n];
        for r in 0..m {
            for j in 0..n {
                let mut s = bias[j] as f64;
                for kk in 0..k {
                    s += x[r * k + kk] as f64 * w[j * k + kk] as f64;
                }
                y[r * n + j] = match act {
                    Act::None => s as f32,
                    Act::Gelu => {
                        (0.5 * s * (1.0 + erf_reference(s / std::f64::consts::SQRT_2))) as f32
                    }
                };
            }
        }
        y
    }

    #[test]
    fn packed_product_equals_naive_product() {
        let shapes = [
            (1, 1, 1),
            (1, 384, 384),
            (3, 5, 7),
            (11, 384, 1152),
            (12, 64, 33),
            (13, 100, 65),
            (25, 1536, 40),
            (37, 17, 96),
            (250, 64, 250),
        ];
        let mut isas = vec![Isa::detect(), Isa::Generic];
        #[cfg(target_arch = "x86_64")]
        if is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") {
            isas.push(Isa::Avx2);
        }
        for isa in isas {
            for (seed, &(m, k, n)) in shapes.iter().enumerate() {
                let x = values(m * k, seed as u64 + 1);
                let w = values(n * k, seed as u64 + 100);
                let bias = values(n, seed as u64 + 200);
                let linear = PackedLinear::from_torch(&w, &bias, k, n, Precision::F32);
                for act in [Act::None, Act::Gelu] {
                    let want = naive(&x, &w, &bias, m, k, n, act);
                    let mut got = vec![f32::NAN; m * n];
                    let mut scratch = GemmScratch::default();
                    linear.forward(isa, &x, m, act, &mut got, &mut scratch);
                    let tolerance = 1e-5 * (k as f32).sqrt();
                    for (i, (g, e)) in got.iter().zip(&want).enumerate() {
                        assert!(
                            (g - e).abs() <= tolerance,
                            "{isa:?} m={m} k={k} n={n} {act:?} at {i}: {g} vs {e}"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn strided_operands_and_row_packing() {
        // x with a row stride wider than k, W packed from rows, y written with a stride.
        let (m, k, n, ldx, ldy) = (14, 20, 35, 27, 40);
        let x = values(m * ldx, 7);
        let w = values(k * n, 8);
        let mut panels = Panels::default();
        panels.pack_rows(&w, n, k, n);
        let mut y = vec![0.0f32; m * ldy];
        gemm(
            Isa::detect(),
            &x,
            ldx,
            m,
            &panels,
            None,
            Act::None,
            &mut y,
            ldy,
            &mut GemmScratch::default(),
            false,
        );
        for r in 0..m {
            for j in 0..n {
                let want: f32 = (0..k).map(|kk| x[r * ldx + kk] * w[kk * n + j]).sum();
                assert!((y[r * ldy + j] - want).abs() < 1e-4, "({r}, {j})");
            }
        }
    }

    #[test]
    fn erf_and_exp_are_accurate() {
        for i in -6000..=6000 {
            let x = i as f32 / 1000.0;
            let want = erf_reference(x as f64);
            for e in [erf::<true>(x), erf::<false>(x)] {
                assert!(
                    (e as f64 - want).abs() < 5e-7,
                    "erf({x}) = {e}, want {want}"
                );
            }
        }
        for i in -8700..=8800 {
            let x = i as f32 / 100.0;
            let want = (x as f64).exp();
            for got in [exp::<true>(x) as f64, exp::<false>(x) as f64] {
                assert!(
                    ((got - want) / want).abs() < 5e-7,
                    "exp({x}) = {got}, want {want}"
                );
            }
        }
        assert_eq!(exp::<true>(-1e9), 0.0);
        assert_eq!(exp::<true>(f32::NEG_INFINITY), 0.0);
    }

    #[test]
    fn softmax_and_layer_norm_match_scalar_versions() {
        let cols = 37;
        let mut s = values(3 * cols, 3);
        let bias: Vec<f32> = (0..cols)
            .map(|j| if j % 5 == 4 { -1e9 } else { 0.0 })
            .collect();
        let orig = s.clone();
        softmax_rows(Isa::detect(), &mut s, cols, Some(&bias));
        for (row, o) in s.chunks(cols).zip(orig.chunks(cols)) {
            let max = o
                .iter()
                .zip(&bias)
                .map(|(v, b)| v + b)
                .fold(f32::MIN, f32::max);
            let e: Vec<f64> = o
                .iter()
                .zip(&bias)
                .map(|(v, b)| ((v + b - max) as f64).exp())
                .collect();
            let sum: f64 = e.iter().sum();
            for (got, want) in row.iter().zip(&e) {
                assert!((*got as f64 - want / sum).abs() < 1e-6);
            }
        }
        let (rows, width) = (4, 50);
        let mut x = values(rows * width, 4);
        let res = values(rows * width, 5);
        let gamma = values(width, 6);
        let beta = values(width, 7);
        let orig = x.clone();
        layer_norm_rows(Isa::detect(), &mut x, Some(&res), &gamma, &beta, 1e-12);
        for r in 0..rows {
            let v: Vec<f64> = (0..width)
                .map(|j| (orig[r * width + j] + res[r * width + j]) as f64)
                .collect();
            let mean = v.iter().sum::<f64>() / width as f64;
            let var = v.iter().map(|a| (a - mean) * (a - mean)).sum::<f64>() / width as f64;
            for j in 0..width {
                let want = (v[j] - mean) / (var + 1e-12).sqrt() * gamma[j] as f64 + beta[j] as f64;
                assert!((x[r * width + j] as f64 - want).abs() < 1e-5);
            }
        }
    }
}
