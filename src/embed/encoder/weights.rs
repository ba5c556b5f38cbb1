//! Reading the checkpoint's tensors into host buffers: f32 vectors, and linear layers packed
//! once for the kernels (Q, K and V fused into one product).

use candle_core::{DType, Tensor};
use candle_nn::VarBuilder;

use crate::embed::kernel::{PackedLinear, Precision};

/// A PyTorch `(out, in)` linear, packed once for [`PackedLinear`].
pub(super) fn load_linear(
    vb: &VarBuilder,
    inputs: usize,
    outputs: usize,
    precision: Precision,
) -> candle_core::Result<PackedLinear> {
    load_fused(std::slice::from_ref(vb), inputs, outputs, 1.0, precision)
}

/// Several PyTorch linears side by side as one wider product (fused Q, K, V); the first part
/// is multiplied by `first_scale` (the attention scale folded into the query).
pub(super) fn load_fused(
    parts: &[VarBuilder],
    inputs: usize,
    outputs: usize,
    first_scale: f32,
    precision: Precision,
) -> candle_core::Result<PackedLinear> {
    let mut weight = Vec::with_capacity(parts.len() * outputs * inputs);
    let mut bias = Vec::with_capacity(parts.len() * outputs);
    for (i, vb) in parts.iter().enumerate() {
        let scale = if i == 0 { first_scale } else { 1.0 };
        let w = host_vec(&vb.get((outputs, inputs), "weight")?)?;
        let b = host_vec(&vb.get(outputs, "bias")?)?;
        weight.extend(w.iter().map(|v| v * scale));
        bias.extend(b.iter().map(|v| v * scale));
    }
    Ok(PackedLinear::from_torch(
        &weight,
        &bias,
        inputs,
        parts.len() * outputs,
        precision,
    ))
}

/// A tensor's values as f32 on the host, row-major.
pub(super) fn host_vec(t: &Tensor) -> candle_core::Result<Vec<f32>> {
    t.to_dtype(DType::F32)?.flatten_all()?.to_vec1::<f32>()
}
