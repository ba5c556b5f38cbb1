//! A BERT encoder forward pass laid out for inference on CPU.
//!
//! Numerically the same model as Hugging Face's `BertModel` (post-LayerNorm, erf GELU,
//! absolute positions), computed on plain f32 buffers with the kernels of [`super::kernel`]
//! and with the weights prepared once at load instead of on every call:
//! - every linear weight is packed once into column panels ([`PackedLinear`]), bias and GELU
//!   fused into the product; candle-nn's `Linear` multiplies by a transposed *view*, which
//!   makes the gemm crate re-pack the whole weight matrix on every call (PERF-NOTES.md);
//! - query, key and value are fused into one `(hidden, 3·hidden)` product, with the attention
//!   scale 1/√d folded into the query weights;
//! - a batch is flattened to `(tokens, hidden)` so each linear layer is a single product;
//! - attention runs one fused task per (text, head): scores, key mask, softmax, weighted sum;
//! - every buffer is reused between calls (no fresh page faults per request).
//!
//! Reference: transformers' modeling_bert.py (BertEmbeddings, BertSelfAttention, BertLayer).

use std::cell::Cell;
use std::sync::Mutex;

use candle_core::{DType, Tensor, D};
use candle_nn::VarBuilder;
use rayon::prelude::*;

use super::kernel::{self, Act, GemmScratch, Isa, PackedLinear, Panels, Precision};

/// The subset of a BERT `config.json` this encoder needs.
#[derive(Debug, Clone, serde::Deserialize)]
pub struct BertConfig {
    pub vocab_size: usize,
    pub hidden_size: usize,
    pub num_hidden_layers: usize,
    pub num_attention_heads: usize,
    pub intermediate_size: usize,
    pub max_position_embeddings: usize,
    pub type_vocab_size: usize,
    pub layer_norm_eps: f64,
    #[serde(default = "default_act")]
    pub hidden_act: String,
    #[serde(default)]
    pub position_embedding_type: Option<String>,
}

fn default_act() -> String {
    "gelu".to_owned()
}

impl BertConfig {
    /// Refuses configurations this forward pass would compute wrongly.
    pub fn check(&self) -> Result<(), String> {
        if self.hidden_act != "gelu" {
            return Err(format!(
                "hidden_act `{}` is not supported (expected gelu)",
                self.hidden_act
            ));
        }
        if self
            .position_embedding_type
            .as_deref()
            .is_some_and(|t| t != "absolute")
        {
            return Err("only absolute position embeddings are supported".to_owned());
        }
        if self.num_attention_heads == 0
            || !self.hidden_size.is_multiple_of(self.num_attention_heads)
        {
            return Err(format!(
                "hidden_size {} is not divisible by num_attention_heads {}",
                self.hidden_size, self.num_attention_heads
            ));
        }
        Ok(())
    }
}

/// A PyTorch `(out, in)` linear, packed once for [`PackedLinear`].
fn load_linear(
    vb: &VarBuilder,
    inputs: usize,
    outputs: usize,
    precision: Precision,
) -> candle_core::Result<PackedLinear> {
    load_fused(std::slice::from_ref(vb), inputs, outputs, 1.0, precision)
}

/// Several PyTorch linears side by side as one wider product (fused Q, K, V); the first part
/// is multiplied by `first_scale` (the attention scale folded into the query).
fn load_fused(
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
fn host_vec(t: &Tensor) -> candle_core::Result<Vec<f32>> {
    t.to_dtype(DType::F32)?.flatten_all()?.to_vec1::<f32>()
}

struct Norm {
    gamma: Vec<f32>,
    beta: Vec<f32>,
    eps: f32,
}

impl Norm {
    fn load(vb: &VarBuilder, size: usize, eps: f64) -> candle_core::Result<Self> {
        Ok(Self {
            gamma: host_vec(&vb.get(size, "weight")?)?,
            beta: host_vec(&vb.get(size, "bias")?)?,
            eps: eps as f32,
        })
    }

    /// `x = LayerNorm(x + residual)` row by row.
    fn apply(&self, isa: Isa, x: &mut [f32], residual: Option<&[f32]>) {
        kernel::layer_norm_rows(isa, x, residual, &self.gamma, &self.beta, self.eps);
    }
}

struct Layer {
    qkv: PackedLinear,
    attention_out: PackedLinear,
    attention_norm: Norm,
    intermediate: PackedLinear,
    output: PackedLinear,
    output_norm: Norm,
}

/// Buffers of one forward pass, kept between calls so that no request page-faults fresh
/// memory.
#[derive(Default)]
struct Workspace {
    x: Vec<f32>,
    qkv: Vec<f32>,
    context: Vec<f32>,
    heads: Vec<f32>,
    projected: Vec<f32>,
    inner: Vec<f32>,
    key_bias: Vec<f32>,
    gemm: GemmScratch,
}

/// Per-thread buffers of one attention head.
#[derive(Default)]
struct HeadScratch {
    keys: Panels,
    values: Panels,
    scores: Vec<f32>,
    gemm: GemmScratch,
}

thread_local! {
    static HEAD_SCRATCH: Cell<HeadScratch> = Cell::new(HeadScratch::default());
}

fn grow(buffer: &mut Vec<f32>, len: usize) -> &mut [f32] {
    if buffer.len() < len {
        buffer.resize(len, 0.0);
    }
    &mut buffer[..len]
}

/// The encoder: embeddings and transformer layers, no pooler (sentence-transformers mean-pools
/// the last hidden state instead). Computes on the CPU whatever device the weights came from.
pub struct BertEncoder {
    isa: Isa,
    precision: Precision,
    word_embeddings: Vec<f32>,
    vocab: usize,
    position_embeddings: Vec<f32>,
    max_positions: usize,
    /// Row 0 of the token-type table: a single segment is all type 0.
    token_type_row: Vec<f32>,
    embedding_norm: Norm,
    layers: Vec<Layer>,
    heads: usize,
    head_dim: usize,
    hidden: usize,
    intermediate: usize,
    workspaces: Mutex<Vec<Workspace>>,
}

impl BertEncoder {
    /// Loads the weights; the linear layers are stored in `precision` where the CPU runs it
    /// (else f32).
    pub fn load(
        vb: VarBuilder,
        config: &BertConfig,
        precision: Precision,
    ) -> candle_core::Result<Self> {
        let precision = precision.or_supported();
        // Some checkpoints prefix every name with `bert.`; this model's do not.
        let vb = if vb.contains_tensor("bert.embeddings.word_embeddings.weight") {
            vb.pp("bert")
        } else {
            vb
        };
        let h = config.hidden_size;
        let head_dim = h / config.num_attention_heads;
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
        // 1/√d folded into the query weights: exact for d = 64 (a power of two).
        let scale = 1.0 / (head_dim as f32).sqrt();
        let layers = (0..config.num_hidden_layers)
            .map(|i| {
                let l = vb.pp(format!("encoder.layer.{i}"));
                let att = l.pp("attention");
                let s = att.pp("self");
                Ok(Layer {
                    qkv: load_fused(
                        &[s.pp("query"), s.pp("key"), s.pp("value")],
                        h,
                        h,
                        scale,
                        precision,
                    )?,
                    attention_out: load_linear(&att.pp("output.dense"), h, h, precision)?,
                    attention_norm: Norm::load(
                        &att.pp("output.LayerNorm"),
                        h,
                        config.layer_norm_eps,
                    )?,
                    intermediate: load_linear(
                        &l.pp("intermediate.dense"),
                        h,
                        config.intermediate_size,
                        precision,
                    )?,
                    output: load_linear(
                        &l.pp("output.dense"),
                        config.intermediate_size,
                        h,
                        precision,
                    )?,
                    output_norm: Norm::load(&l.pp("output.LayerNorm"), h, config.layer_norm_eps)?,
                })
            })
            .collect::<candle_core::Result<Vec<_>>>()?;
        Ok(Self {
            isa: Isa::detect(),
            precision,
            word_embeddings: host_vec(&word)?,
            vocab: config.vocab_size,
            position_embeddings: host_vec(&positions)?,
            max_positions: config.max_position_embeddings,
            token_type_row: host_vec(&types.get(0)?)?,
            embedding_norm: Norm::load(&emb.pp("LayerNorm"), h, config.layer_norm_eps)?,
            layers,
            heads: config.num_attention_heads,
            head_dim,
            hidden: h,
            intermediate: config.intermediate_size,
            workspaces: Mutex::new(Vec::new()),
        })
    }

    /// Last hidden state `(batch, len, hidden)` for token ids `(batch, len)`.
    /// `mask` is `(batch, len)` with 1 for real tokens and 0 for padding; `None` means no padding.
    pub fn forward(&self, ids: &Tensor, mask: Option<&Tensor>) -> candle_core::Result<Tensor> {
        let (batch, len) = ids.dims2()?;
        let device = ids.device().clone();
        let ids = ids.to_dtype(DType::U32)?.flatten_all()?.to_vec1::<u32>()?;
        let mask = match mask {
            Some(mask) => Some(mask.to_dtype(DType::F32)?.flatten_all()?.to_vec1::<f32>()?),
            None => None,
        };
        let mut ws = self
            .workspaces
            .lock()
            .ok()
            .and_then(|mut pool| pool.pop())
            .unwrap_or_default();
        // Run the whole pass on rayon's pool: its products fork and join there, instead of
        // each one waking the pool from the caller's thread.
        let result =
            rayon::scope(|_| self.forward_host(&ids, mask.as_deref(), batch, len, &mut ws));
        if let Ok(mut pool) = self.workspaces.lock() {
            pool.push(ws);
        }
        Tensor::from_vec(result?, (batch, len, self.hidden), &device)
    }

    /// The forward pass on host buffers: returns `(batch · len, hidden)` row-major.
    fn forward_host(
        &self,
        ids: &[u32],
        mask: Option<&[f32]>,
        batch: usize,
        len: usize,
        ws: &mut Workspace,
    ) -> candle_core::Result<Vec<f32>> {
        let (isa, h) = (self.isa, self.hidden);
        let tokens = batch * len;
        if len > self.max_positions {
            candle_core::bail!(
                "sequence of {len} tokens exceeds {} positions",
                self.max_positions
            );
        }
        let x = grow(&mut ws.x, tokens * h);
        for (t, (&id, row)) in ids.iter().zip(x.chunks_exact_mut(h)).enumerate() {
            let id = id as usize;
            if id >= self.vocab {
                candle_core::bail!("token id {id} is outside the vocabulary of {}", self.vocab);
            }
            let word = &self.word_embeddings[id * h..][..h];
            let position = &self.position_embeddings[(t % len) * h..][..h];
            for (((v, w), p), ty) in row
                .iter_mut()
                .zip(word)
                .zip(position)
                .zip(&self.token_type_row)
            {
                *v = w + p + ty;
            }
        }
        self.embedding_norm.apply(isa, x, None);
        // Additive attention bias per key: 0 for real tokens, -∞ for padding (exactly zero
        // weight after the softmax).
        let key_bias = mask.map(|mask| {
            let bias = grow(&mut ws.key_bias, tokens);
            for (b, &m) in bias.iter_mut().zip(mask) {
                *b = if m > 0.0 { 0.0 } else { f32::NEG_INFINITY };
            }
            &*bias
        });
        for layer in &self.layers {
            let x = &mut ws.x[..tokens * h];
            let qkv = grow(&mut ws.qkv, tokens * 3 * h);
            layer
                .qkv
                .forward(isa, x, tokens, Act::None, qkv, &mut ws.gemm);
            let context = grow(&mut ws.context, tokens * h);
            self.attention(qkv, batch, len, key_bias, &mut ws.heads, context);
            let projected = grow(&mut ws.projected, tokens * h);
            layer
                .attention_out
                .forward(isa, context, tokens, Act::None, projected, &mut ws.gemm);
            layer.attention_norm.apply(isa, x, Some(projected));
            let inner = grow(&mut ws.inner, tokens * self.intermediate);
            layer
                .intermediate
                .forward(isa, x, tokens, Act::Gelu, inner, &mut ws.gemm);
            layer
                .output
                .forward(isa, inner, tokens, Act::None, projected, &mut ws.gemm);
            layer.output_norm.apply(isa, x, Some(projected));
        }
        Ok(ws.x[..tokens * h].to_vec())
    }

    /// Multi-head self-attention of `qkv (batch · len, 3 · hidden)` into `context
    /// (batch · len, hidden)`, one task per (text, head), each fused: scores, mask, softmax,
    /// weighted sum, with per-thread buffers.
    fn attention(
        &self,
        qkv: &[f32],
        batch: usize,
        len: usize,
        key_bias: Option<&[f32]>,
        heads_buffer: &mut Vec<f32>,
        context: &mut [f32],
    ) {
        let (isa, h, d, heads) = (self.isa, self.hidden, self.head_dim, self.heads);
        let ld = 3 * h;
        let per_head = grow(heads_buffer, batch * heads * len * d);
        per_head
            .par_chunks_mut(len * d)
            .enumerate()
            .for_each(|(task, out)| {
                let (b, head) = (task / heads, task % heads);
                let rows = &qkv[b * len * ld..(b + 1) * len * ld];
                let mut s = HEAD_SCRATCH.with(Cell::take);
                s.keys.pack_transposed(&rows[h + head * d..], ld, d, len);
                s.values.pack_rows(&rows[2 * h + head * d..], ld, len, d);
                let scores = grow(&mut s.scores, len * len);
                kernel::gemm(
                    isa,
                    &rows[head * d..],
                    ld,
                    len,
                    &s.keys,
                    None,
                    Act::None,
                    scores,
                    len,
                    &mut s.gemm,
                    false,
                );
                kernel::softmax_rows(
                    isa,
                    scores,
                    len,
                    key_bias.map(|kb| &kb[b * len..(b + 1) * len]),
                );
                kernel::gemm(
                    isa,
                    scores,
                    len,
                    len,
                    &s.values,
                    None,
                    Act::None,
                    out,
                    d,
                    &mut s.gemm,
                    false,
                );
                HEAD_SCRATCH.with(|cell| cell.set(s));
            });
        for (task, src) in per_head.chunks_exact(len * d).enumerate() {
            let (b, head) = (task / heads, task % heads);
            for (i, row) in src.chunks_exact(d).enumerate() {
                context[(b * len + i) * h + head * d..][..d].copy_from_slice(row);
            }
        }
    }

    /// What the linear layers multiply in.
    pub fn precision(&self) -> Precision {
        self.precision
    }

    pub fn hidden_size(&self) -> usize {
        self.hidden
    }
}

/// Mean of the hidden states over real tokens: `(batch, len, hidden)`, mask `(batch, len)`.
pub fn masked_mean(hidden: &Tensor, mask: &Tensor) -> candle_core::Result<Tensor> {
    let mask = mask.to_dtype(DType::F32)?.unsqueeze(2)?;
    let summed = hidden.broadcast_mul(&mask)?.sum(1)?;
    summed.broadcast_div(&mask.sum(1)?)
}

/// Mean over every position (a single text has no padding).
pub fn plain_mean(hidden: &Tensor) -> candle_core::Result<Tensor> {
    hidden.mean(D::Minus2)
}
