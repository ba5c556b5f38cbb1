//! A BERT encoder forward pass laid out for inference on CPU.
//!
//! Numerically the same model as Hugging Face's `BertModel` (post-LayerNorm, erf GELU,
//! absolute positions), computed on plain host buffers with the kernels of [`super::kernel`]
//! (linear layers in f32, or in bf16 where the CPU has it and it was asked for) and with the
//! weights prepared once at load instead of on every call:
//! - every linear weight is packed once into column panels ([`super::kernel::PackedLinear`]),
//!   bias and GELU fused into the product; candle-nn's `Linear` multiplies by a transposed
//!   *view* of the weight instead, so every call re-packs the whole weight matrix inside the
//!   matmul;
//! - query, key and value are fused into one `(hidden, 3·hidden)` product, with the attention
//!   scale 1/√d folded into the query weights;
//! - a batch is laid end to end as `(tokens, hidden)` without padding, so each linear layer
//!   is a single product over real tokens only;
//! - attention runs one fused task per (text, head) over that text's tokens: scores,
//!   softmax, weighted sum;
//! - every buffer is reused between calls (no fresh page faults per request).
//!
//! Submodules: `weights` reads the checkpoint into host buffers, `layer` is one transformer
//! layer, `attention` its self-attention, `workspace` the reused buffers.
//!
//! Reference: transformers' modeling_bert.py (BertEmbeddings, BertSelfAttention, BertLayer).

mod attention;
mod layer;
mod weights;
mod workspace;

use std::sync::Mutex;

use candle_nn::VarBuilder;

use self::attention::{Attention, Batch};
use self::layer::{Layer, Norm};
use self::weights::host_vec;
use self::workspace::{grow, Workspace};
use super::config::BertConfig;
use super::kernel::{Bf16Product, Isa, Precision};

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
    attention: Attention,
    hidden: usize,
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
                Layer::load(
                    &vb.pp(format!("encoder.layer.{i}")),
                    config,
                    scale,
                    precision,
                )
            })
            .collect::<candle_core::Result<Vec<_>>>()?;
        let isa = Isa::detect();
        Ok(Self {
            isa,
            precision,
            word_embeddings: host_vec(&word)?,
            vocab: config.vocab_size,
            position_embeddings: host_vec(&positions)?,
            max_positions: config.max_position_embeddings,
            token_type_row: host_vec(&types.get(0)?)?,
            embedding_norm: Norm::load(&emb.pp("LayerNorm"), h, config.layer_norm_eps)?,
            layers,
            attention: Attention {
                isa,
                heads: config.num_attention_heads,
                head_dim,
            },
            hidden: h,
            workspaces: Mutex::new(Vec::new()),
        })
    }

    /// The mean of the last hidden state over each text's tokens (not normalised), one row
    /// per text. The texts go through one pass end to end, without padding: the linear
    /// layers see only real tokens, and each text attends only to its own.
    pub fn pooled(&self, texts: &[&[u32]]) -> candle_core::Result<Vec<Vec<f32>>> {
        let (hidden, starts) = self.run(texts)?;
        let h = self.hidden;
        Ok(starts
            .windows(2)
            .map(|rows| {
                let mut sum = vec![0.0f32; h];
                for row in hidden[rows[0] * h..rows[1] * h].chunks_exact(h) {
                    for (s, v) in sum.iter_mut().zip(row) {
                        *s += v;
                    }
                }
                let count = (rows[1] - rows[0]).max(1) as f32;
                sum.iter_mut().for_each(|s| *s /= count);
                sum
            })
            .collect())
    }

    /// The pass over `texts` laid end to end: `(tokens, hidden)` and each text's first row
    /// (plus the total at the end).
    fn run(&self, texts: &[&[u32]]) -> candle_core::Result<(Vec<f32>, Vec<usize>)> {
        let mut starts = Vec::with_capacity(texts.len() + 1);
        starts.push(0);
        for ids in texts {
            if ids.len() > self.max_positions {
                candle_core::bail!(
                    "sequence of {} tokens exceeds {} positions",
                    ids.len(),
                    self.max_positions
                );
            }
            starts.push(starts.last().copied().unwrap_or(0) + ids.len());
        }
        let ids = texts.concat();
        let mut ws = self
            .workspaces
            .lock()
            .ok()
            .and_then(|mut pool| pool.pop())
            .unwrap_or_default();
        // Run the whole pass on rayon's pool: its products fork and join there, instead of
        // each one waking the pool from the caller's thread.
        let result = rayon::scope(|_| self.forward_host(&ids, &starts, &mut ws));
        if let Ok(mut pool) = self.workspaces.lock() {
            pool.push(ws);
        }
        Ok((result?, starts))
    }

    /// The forward pass on host buffers: returns `(tokens, hidden)` row-major.
    fn forward_host(
        &self,
        ids: &[u32],
        starts: &[usize],
        ws: &mut Workspace,
    ) -> candle_core::Result<Vec<f32>> {
        let texts = Batch { starts };
        let x = grow(&mut ws.x, texts.tokens() * self.hidden);
        self.embed_tokens(ids, &texts, x)?;
        for layer in &self.layers {
            layer.forward(self.isa, &self.attention, &texts, x, &mut ws.layer);
        }
        Ok(x.to_vec())
    }

    /// `x (tokens, hidden)` = LayerNorm(word + position + token type), positions counted from
    /// each text's first token; refuses ids outside the vocabulary.
    fn embed_tokens(&self, ids: &[u32], texts: &Batch, x: &mut [f32]) -> candle_core::Result<()> {
        let h = self.hidden;
        for b in 0..texts.texts() {
            let (first, len) = texts.span(b);
            let rows = x[first * h..(first + len) * h].chunks_exact_mut(h);
            for (position, (&id, row)) in ids[first..first + len].iter().zip(rows).enumerate() {
                let id = id as usize;
                if id >= self.vocab {
                    candle_core::bail!("token id {id} is outside the vocabulary of {}", self.vocab);
                }
                let word = &self.word_embeddings[id * h..][..h];
                let position = &self.position_embeddings[position * h..][..h];
                for (((v, w), p), ty) in row
                    .iter_mut()
                    .zip(word)
                    .zip(position)
                    .zip(&self.token_type_row)
                {
                    *v = w + p + ty;
                }
            }
        }
        self.embedding_norm.apply(self.isa, x, None);
        Ok(())
    }

    /// bf16 weights multiplied by `product` from now on instead of the faster one of this CPU.
    pub fn multiply_bf16_by(&mut self, product: Bf16Product) {
        for layer in &mut self.layers {
            layer.multiply_bf16_by(product);
        }
    }

    /// Which product multiplies the bf16 weights, `None` in f32.
    pub fn bf16_product(&self) -> Option<Bf16Product> {
        self.layers.first().and_then(Layer::bf16_product)
    }

    /// What the linear layers multiply in.
    pub fn precision(&self) -> Precision {
        self.precision
    }

    pub fn hidden_size(&self) -> usize {
        self.hidden
    }
}
