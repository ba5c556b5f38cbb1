//! The scalar functions the kernels inline and LLVM vectorises: multiply-add, erf-GELU (the
//! activation [`Act`] fuses into a product), `exp`, and lane-wise sum and max of a row.
//!
//! `FMA` selects `mul_add` (a fused instruction where the compiled copy has one) or a plain
//! multiply and add.

/// Activation fused into a product's epilogue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Act {
    None,
    /// `x · Φ(x)` with the exact (erf) normal CDF, as PyTorch's default `gelu`.
    Gelu,
}

#[inline(always)]
pub(super) fn madd<const FMA: bool>(a: f32, b: f32, c: f32) -> f32 {
    if FMA {
        a.mul_add(b, c)
    } else {
        a * b + c
    }
}

/// `erf(x)` as a rational function in `x` (the approximation Eigen and XLA vectorise):
/// about 1e-7 absolute error, no branches, no table.
#[inline(always)]
pub(super) fn erf<const FMA: bool>(x: f32) -> f32 {
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

/// The epilogue the bf16 micro-kernels share: `row` (one row of a panel's accumulators)
/// plus the bias, through `act`, its first `out.len()` columns written to `out`.
#[inline(always)]
pub(super) fn finish_row<const N: usize>(
    mut row: [f32; N],
    bias: &[f32; N],
    act: Act,
    out: &mut [f32],
) {
    for (v, b) in row.iter_mut().zip(bias) {
        *v += b;
    }
    if act == Act::Gelu {
        for v in &mut row {
            *v = gelu::<true>(*v);
        }
    }
    let cols = out.len();
    out.copy_from_slice(&row[..cols]);
}

/// `eˣ` via `2ⁿ · e^r` with a degree-6 polynomial (Cephes' `expf`, about 1 ulp); exactly 0
/// below the smallest normal result.
#[inline(always)]
pub(super) fn exp<const FMA: bool>(x: f32) -> f32 {
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

/// Accumulators of the lane-wise reductions: one AVX-512 register of f32.
pub(super) const LANES: usize = 16;

#[inline(always)]
pub(super) fn lane_sum(values: &[f32]) -> f32 {
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
pub(super) fn lane_max(values: &[f32]) -> f32 {
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
