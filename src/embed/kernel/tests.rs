//! Tests of the kernels: products, `erf`/`exp`, softmax and layer norm against naive f64
//! references; bf16 rounding, and both bf16 products against the f32 product of bf16-rounded
//! operands.

use super::bf16::{product, supported, to_bf16, Bf16Product, Panels16};
use super::math::{erf, exp};
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

fn naive(x: &[f32], w: &[f32], bias: &[f32], m: usize, k: usize, n: usize, act: Act) -> Vec<f32> {
    let mut y = vec![0.0f32; m * n];
    for r in 0..m {
        for j in 0..n {
            let mut s = bias[j] as f64;
            for kk in 0..k {
                s += x[r * k + kk] as f64 * w[j * k + kk] as f64;
            }
            y[r * n + j] = match act {
                Act::None => s as f32,
                Act::Gelu => (0.5 * s * (1.0 + erf_reference(s / std::f64::consts::SQRT_2))) as f32,
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

fn from_bf16(v: u16) -> f32 {
    f32::from_bits(u32::from(v) << 16)
}

#[test]
fn rounding_to_bf16_is_to_nearest_even() {
    assert_eq!(to_bf16(1.0), 0x3F80);
    assert_eq!(to_bf16(-2.0), 0xC000);
    // 1 + 2⁻⁸ is halfway between 1 and 1 + 2⁻⁷: ties go to the even mantissa (1.0).
    assert_eq!(to_bf16(1.0 + 1.0 / 256.0), 0x3F80);
    assert_eq!(to_bf16(1.0 + 3.0 / 256.0), 0x3F82);
    assert!(from_bf16(to_bf16(f32::NAN)).is_nan());
    for v in values(1000, 9) {
        assert!((from_bf16(to_bf16(v)) - v).abs() <= v.abs() / 256.0);
    }
}

/// Both bf16 products against the f32 product of the bf16-rounded weights: `Dot` rounds the
/// activations to bf16 too, `Widen` keeps them in f32; otherwise only the order of the f32
/// additions differs.
#[test]
fn bf16_products_equal_products_of_rounded_operands() {
    if !supported() {
        eprintln!("SKIPPED: this CPU has no AVX-512 BF16");
        return;
    }
    let round = |v: &[f32]| v.iter().map(|&x| from_bf16(to_bf16(x))).collect::<Vec<_>>();
    for (seed, &(m, k, n)) in [(1, 384, 384), (3, 5, 7), (13, 100, 65), (50, 1536, 40)]
        .iter()
        .enumerate()
    {
        let x = values(m * k, seed as u64 + 1);
        let w = values(n * k, seed as u64 + 100);
        let bias = values(n, seed as u64 + 200);
        let mut padded_bias = bias.clone();
        padded_bias.resize(n.div_ceil(NR) * NR, 0.0);
        let panels = Panels16::from_torch(&w, k, n).expect("the CPU has bf16 products");
        let exact = PackedLinear::from_torch(&round(&w), &bias, k, n, Precision::F32);
        for (kernel, left) in [
            (Bf16Product::Dot, round(&x)),
            (Bf16Product::Widen, x.clone()),
        ] {
            for act in [Act::None, Act::Gelu] {
                let mut got = vec![f32::NAN; m * n];
                let mut want = vec![f32::NAN; m * n];
                let mut scratch = GemmScratch::default();
                let parallel = m > 10;
                product(
                    kernel,
                    &panels,
                    &x,
                    m,
                    &padded_bias,
                    act,
                    &mut got,
                    &mut scratch,
                    parallel,
                );
                exact.forward(Isa::detect(), &left, m, act, &mut want, &mut scratch);
                for (i, (g, e)) in got.iter().zip(&want).enumerate() {
                    assert!(
                        (g - e).abs() <= 1e-5 * (k as f32).sqrt(),
                        "{kernel:?} m={m} k={k} n={n} {act:?} at {i}: {g} vs {e}"
                    );
                }
            }
        }
    }
}

#[test]
fn linear_layers_in_bf16_use_the_products_of_this_cpu() {
    if !supported() {
        eprintln!("SKIPPED: this CPU has no AVX-512 BF16");
        return;
    }
    let (m, k, n) = (12, 384, 96);
    let (x, w, bias) = (values(m * k, 7), values(n * k, 8), values(n, 9));
    let layer = PackedLinear::from_torch(&w, &bias, k, n, Precision::Bf16);
    assert_eq!(layer.precision(), Precision::Bf16);
    let mut padded_bias = bias.clone();
    padded_bias.resize(n.div_ceil(NR) * NR, 0.0);
    let panels = Panels16::from_torch(&w, k, n).expect("the CPU has bf16 products");
    let (mut got, mut want) = (vec![0.0; m * n], vec![0.0; m * n]);
    let mut scratch = GemmScratch::default();
    layer.forward(Isa::detect(), &x, m, Act::None, &mut got, &mut scratch);
    let chosen = Bf16Product::fastest();
    product(
        chosen,
        &panels,
        &x,
        m,
        &padded_bias,
        Act::None,
        &mut want,
        &mut scratch,
        false,
    );
    assert_eq!(got, want, "the layer multiplies by {chosen:?}");
}
