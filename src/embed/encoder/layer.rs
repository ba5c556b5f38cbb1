//! One transformer layer (post-LayerNorm BERT): fused QKV product, attention, output
//! projection + residual + norm, GELU feed-forward + residual + norm.

use candle_nn::VarBuilder;

use super::attention::{Attention, Batch};
use super::weights::{host_vec, load_fused, load_linear};
use super::workspace::{grow, LayerScratch};
use crate::embed::config::BertConfig;
use crate::embed::kernel::{self, Act, Bf16Product, Isa, PackedLinear, Precision};

/// A layer norm's parameters.
pub(super) struct Norm {
    gamma: Vec<f32>,
    beta: Vec<f32>,
    eps: f32,
}

impl Norm {
    pub fn load(vb: &VarBuilder, size: usize, eps: f64) -> candle_core::Result<Self> {
        Ok(Self {
            gamma: host_vec(&vb.get(size, "weight")?)?,
            beta: host_vec(&vb.get(size, "bias")?)?,
            eps: eps as f32,
        })
    }

    /// `x = LayerNorm(x + residual)` row by row.
    pub fn apply(&self, isa: Isa, x: &mut [f32], residual: Option<&[f32]>) {
        kernel::layer_norm_rows(isa, x, residual, &self.gamma, &self.beta, self.eps);
    }
}

pub(super) struct Layer {
    qkv: PackedLinear,
    attention_out: PackedLinear,
    attention_norm: Norm,
    intermediate: PackedLinear,
    output: PackedLinear,
    output_norm: Norm,
}

impl Layer {
    /// Layer `vb` (`encoder.layer.{i}`); `query_scale` is folded into the query weights.
    pub fn load(
        vb: &VarBuilder,
        config: &BertConfig,
        query_scale: f32,
        precision: Precision,
    ) -> candle_core::Result<Self> {
        let (h, eps) = (config.hidden_size, config.layer_norm_eps);
        let att = vb.pp("attention");
        let s = att.pp("self");
        Ok(Self {
            qkv: load_fused(
                &[s.pp("query"), s.pp("key"), s.pp("value")],
                h,
                h,
                query_scale,
                precision,
            )?,
            attention_out: load_linear(&att.pp("output.dense"), h, h, precision)?,
            attention_norm: Norm::load(&att.pp("output.LayerNorm"), h, eps)?,
            intermediate: load_linear(
                &vb.pp("intermediate.dense"),
                h,
                config.intermediate_size,
                precision,
            )?,
            output: load_linear(
                &vb.pp("output.dense"),
                config.intermediate_size,
                h,
                precision,
            )?,
            output_norm: Norm::load(&vb.pp("output.LayerNorm"), h, eps)?,
        })
    }

    /// The four linear layers' bf16 weights multiplied by `product` from now on.
    pub fn multiply_bf16_by(&mut self, product: Bf16Product) {
        for linear in [
            &mut self.qkv,
            &mut self.attention_out,
            &mut self.intermediate,
            &mut self.output,
        ] {
            linear.multiply_bf16_by(product);
        }
    }

    /// The product of the bf16 weights, `None` for f32 ones.
    pub fn bf16_product(&self) -> Option<Bf16Product> {
        self.qkv.bf16_product()
    }

    /// `x (tokens, hidden)` through the layer, in place.
    pub fn forward(
        &self,
        isa: Isa,
        attention: &Attention,
        texts: &Batch,
        x: &mut [f32],
        s: &mut LayerScratch,
    ) {
        let tokens = texts.tokens();
        let h = self.qkv.inputs();
        let qkv = grow(&mut s.qkv, tokens * 3 * h);
        self.qkv
            .forward(isa, x, tokens, Act::None, qkv, &mut s.gemm);
        let context = grow(&mut s.context, tokens * h);
        attention.forward(qkv, texts, &mut s.heads, context);
        let projected = grow(&mut s.projected, tokens * h);
        self.attention_out
            .forward(isa, context, tokens, Act::None, projected, &mut s.gemm);
        self.attention_norm.apply(isa, x, Some(projected));
        let inner = grow(&mut s.inner, tokens * self.intermediate.outputs());
        self.intermediate
            .forward(isa, x, tokens, Act::Gelu, inner, &mut s.gemm);
        self.output
            .forward(isa, inner, tokens, Act::None, projected, &mut s.gemm);
        self.output_norm.apply(isa, x, Some(projected));
    }
}
