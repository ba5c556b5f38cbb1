//! Row-wise kernels of the encoder: softmax of attention scores (key mask added) and the
//! fused residual + layer norm, compiled once per [`Isa`] and picked at run time.

#![expect(
    unsafe_code,
    reason = "calls #[target_feature] functions after run-time CPU feature detection"
)]

use super::isa::{Isa, BASELINE_FMA};
use super::math::{exp, lane_max, lane_sum, LANES};

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
