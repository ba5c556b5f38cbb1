//! The BERT forward pass in candle tensor ops, for GPUs (`cuda`/`metal` features).
//!
//! The CPU path ([`super::encoder::BertEncoder`]) runs on host buffers with packed kernels;
//! on a GPU, candle's own kernels are the fast path, so this version keeps every tensor on
//! the device. Same numerics: weights transposed once into contiguous `(in, out)` tensors,
//! fused Q/K/V, a batch flattened to `(tokens, hidden)`. It also runs on the CPU, which is how
//! the tests check it against the packed path and sentence-transformers.
//!
//! Reference: transformers' modeling_bert.py (BertEmbeddings, BertSelfAttention, BertLayer).

use candle_core::{DType, Module, Tensor};
use candle_nn::VarBuilder;

use super::config::BertConfig;

struct Dense {
    weight_t: Tensor,
    bias: Tensor,
}

impl Dense {
    /// Loads a PyTorch-layout `(out, in)` weight and transposes it once.
    fn load(vb: &VarBuilder, inputs: usize, outputs: usize) -> candle_core::Result<Self> {
        let weight = vb.get((outputs, inputs), "weight")?;
        let bias = vb.get(outputs, "bias")?;
        Ok(Self {
            weight_t: weight.t()?.contiguous()?,
            bias,
        })
    }

    /// Several PyTorch linears side by side, as one wider product (fused Q, K, V).
    fn load_fused(
        parts: &[VarBuilder],
        inputs: usize,
        outputs: usize,
    ) -> candle_core::Result<Self> {
        let weights = parts
            .iter()
            .map(|vb| vb.get((outputs, inputs), "weight"))
            .collect::<candle_core::Result<Vec<_>>>()?;
        let biases = parts
            .iter()
            .map(|vb| vb.get(outputs, "bias"))
            .collect::<candle_core::Result<Vec<_>>>()?;
        Ok(Self {
            weight_t: Tensor::cat(&weights, 0)?.t()?.contiguous()?,
            bias: Tensor::cat(&biases, 0)?,
        })
    }

    fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        x.matmul(&self.weight_t)?.broadcast_add(&self.bias)
    }
}

struct Norm {
    gamma: Tensor,
    beta: Tensor,
    eps: f32,
}

impl Norm {
    fn load(vb: &VarBuilder, size: usize, eps: f64) -> candle_core::Result<Self> {
        Ok(Self {
            gamma: vb.get(size, "weight")?,
            beta: vb.get(size, "bias")?,
            eps: eps as f32,
        })
    }

    fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        candle_nn::ops::layer_norm(x, &self.gamma, &self.beta, self.eps)
    }
}

struct Layer {
    qkv: Dense,
    attention_out: Dense,
    attention_norm: Norm,
    intermediate: Dense,
    output: Dense,
    output_norm: Norm,
}

/// The encoder: embeddings and transformer layers, no pooler (sentence-transformers mean-pools
/// the last hidden state instead).
pub struct DeviceEncoder {
    word_embeddings: candle_nn::Embedding,
    position_embeddings: Tensor,
    /// Row 0 of the token-type table: a single segment is all type 0.
    token_type_row: Tensor,
    embedding_norm: Norm,
    layers: Vec<Layer>,
    heads: usize,
    head_dim: usize,
    hidden: usize,
}

impl DeviceEncoder {
    pub fn load(vb: VarBuilder, config: &BertConfig) -> candle_core::Result<Self> {
        // Some checkpoints prefix every name with `bert.`; this model's do not.
        let vb = if vb.contains_tensor("bert.embeddings.word_embeddings.weight") {
            vb.pp("bert")
        } else {
            vb
        };
        let h = config.hidden_size;
        let emb = vb.pp("embeddings");
        let word = emb
            .pp("word_embeddings")
            .get((config.vocab_size, h), "weight")?;
        let positions = emb
            .pp("position_embeddings")
            .get((config.max_position_embeddings, h), "weight")?;
        let types = emb
            .pp("token_type_embeddings")
            .get((config.type_vocab_size, h), "weight")?;
        let layers = (0..config.num_hidden_layers)
            .map(|i| {
                let l = vb.pp(format!("encoder.layer.{i}"));
                let att = l.pp("attention");
                let s = att.pp("self");
                Ok(Layer {
                    qkv: Dense::load_fused(&[s.pp("query"), s.pp("key"), s.pp("value")], h, h)?,
                    attention_out: Dense::load(&att.pp("output.dense"), h, h)?,
                    attention_norm: Norm::load(
                        &att.pp("output.LayerNorm"),
                        h,
                        config.layer_norm_eps,
                    )?,
                    intermediate: Dense::load(
                        &l.pp("intermediate.dense"),
                        h,
                        config.intermediate_size,
                    )?,
                    output: Dense::load(&l.pp("output.dense"), config.intermediate_size, h)?,
                    output_norm: Norm::load(&l.pp("output.LayerNorm"), h, config.layer_norm_eps)?,
                })
            })
            .collect::<candle_core::Result<Vec<_>>>()?;
        Ok(Self {
            word_embeddings: candle_nn::Embedding::new(word, h),
            position_embeddings: positions,
            token_type_row: types.get(0)?,
            embedding_norm: Norm::load(&emb.pp("LayerNorm"), h, config.layer_norm_eps)?,
            layers,
            heads: config.num_attention_heads,
            head_dim: h / config.num_attention_heads,
            hidden: h,
        })
    }

    /// Last hidden state `(batch, len, hidden)` for token ids `(batch, len)`.
    /// `mask` is `(batch, len)` with 1 for real tokens and 0 for padding; `None` means no padding.
    pub fn forward(&self, ids: &Tensor, mask: Option<&Tensor>) -> candle_core::Result<Tensor> {
        let (batch, len) = ids.dims2()?;
        let tokens = batch * len;
        let positions = self.position_embeddings.narrow(0, 0, len)?;
        let x = self
            .word_embeddings
            .forward(ids)?
            .broadcast_add(&positions)?
            .broadcast_add(&self.token_type_row)?;
        let mut x = self
            .embedding_norm
            .forward(&x)?
            .reshape((tokens, self.hidden))?;
        // Additive attention bias: 0 for real keys, a large negative number for padding, so
        // softmax gives padding zero weight.
        let bias = match mask {
            Some(mask) => {
                Some(((mask.to_dtype(DType::F32)? - 1.0)? * 1e9)?.reshape((batch, 1, 1, len))?)
            }
            None => None,
        };
        let scale = 1.0 / (self.head_dim as f64).sqrt();
        for layer in &self.layers {
            x = self.layer_forward(layer, &x, batch, len, bias.as_ref(), scale)?;
        }
        x.reshape((batch, len, self.hidden))
    }

    fn layer_forward(
        &self,
        layer: &Layer,
        x: &Tensor,
        batch: usize,
        len: usize,
        bias: Option<&Tensor>,
        scale: f64,
    ) -> candle_core::Result<Tensor> {
        let (heads, d) = (self.heads, self.head_dim);
        // (tokens, 3·hidden) → three (batch, heads, len, head_dim)
        let qkv = layer
            .qkv
            .forward(x)?
            .reshape((batch, len, 3, heads, d))?
            .permute((2, 0, 3, 1, 4))?;
        let q = (qkv.get(0)?.contiguous()? * scale)?;
        let k = qkv.get(1)?.contiguous()?;
        let v = qkv.get(2)?.contiguous()?;
        let mut scores = q.matmul(&k.t()?)?;
        if let Some(bias) = bias {
            scores = scores.broadcast_add(bias)?;
        }
        let probs = candle_nn::ops::softmax_last_dim(&scores)?;
        let context = probs
            .matmul(&v)?
            .transpose(1, 2)?
            .reshape((batch * len, self.hidden))?;
        let attended = layer
            .attention_norm
            .forward(&(layer.attention_out.forward(&context)? + x)?)?;
        let inner = layer.intermediate.forward(&attended)?.gelu_erf()?;
        layer
            .output_norm
            .forward(&(layer.output.forward(&inner)? + &attended)?)
    }

    pub fn hidden_size(&self) -> usize {
        self.hidden
    }
}
