//! The f32 matrix product `y = act(x · W + b)` against weights packed into panels: a register
//! micro-kernel of `MR × NR` accumulators, compiled once per [`Isa`] and picked at run time.

#![expect(
    unsafe_code,
    reason = "calls #[target_feature] functions after run-time CPU feature detection"
)]
#![expect(
    clippy::too_many_arguments,
    reason = "BLAS-style kernels take operands, strides and shapes"
)]

use super::isa::{Isa, BASELINE_FMA};
use super::layout::{pack_left, GemmScratch, Panels, MR, NR};
use super::math::{gelu, madd, Act};
use super::parallel::split;

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
    let (k, n) = (w.k(), w.n());
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
            w.panel(p),
            bias.map(|b| &b[p * NR..][..NR]),
            act,
            y,
            ldy,
            cols,
        );
    };
    split(m, n, k, MR, y, ldy, &mut scratch.out, parallel, &product);
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
