//! `BertEmbedder`: sentence-transformers' all-MiniLM-L6-v2 pipeline, weights loaded with candle.
//!
//! tokenize (no padding for one text; a long prompt is cut to the routing [`Window`]: by
//! default 64 tokens from its start and end, while [`Window::FULL`] truncates to
//! `max_seq_length` = 256 like sentence-transformers, not the 128 that the shipped
//! tokenizer.json says) → BERT forward (the packed CPU kernels, or candle tensor ops on a GPU)
//! → mean pooling over real tokens only (the attention mask) → L2 normalisation.
//! `token_type_ids` are all zeros for a single segment.

use std::time::Instant;

use candle_core::{DType, Device, Tensor, D};
use candle_nn::VarBuilder;

use super::config::BertConfig;
use super::device_encoder::DeviceEncoder;
use super::encoder::BertEncoder;
use super::kernel::{Bf16Product, Precision};
use super::model_files::{ModelFiles, ModelFilesError, CONFIG_FILE, TOKENIZER_FILE, WEIGHTS_FILE};
use super::tokenize::{PromptTokenizer, Tokenized};
use super::window::Window;
use super::{EmbedError, Embedded, Embedder};
use crate::types::{elapsed_micros, Embedding, ModelFingerprint};

/// Most padded tokens in one forward pass of a batch: bounds the attention scores' memory
/// (batch × heads × len² floats) so long texts go through in smaller groups.
const MAX_BATCH_TOKENS: usize = 4096;

/// Which forward pass runs the model.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// Packed AVX-512/AVX2 kernels on host buffers: the CPU path.
    Packed,
    /// candle tensor ops on the model's device: the GPU path (also runs on the CPU).
    Tensor,
}

impl Backend {
    /// The fast path for a device.
    pub fn for_device(device: &Device) -> Self {
        match device {
            Device::Cpu => Self::Packed,
            Device::Cuda(_) | Device::Metal(_) => Self::Tensor,
        }
    }
}

/// How the CPU forward pass computes and what it sees of a long prompt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EmbedOptions {
    /// What the linear layers multiply in (f32 where the CPU has no bf16 products).
    pub precision: Precision,
    /// Which instructions multiply bf16 weights; `None`: the faster on this CPU, measured
    /// at load ([`Bf16Product::fastest`]).
    pub bf16_product: Option<Bf16Product>,
    pub window: Window,
}

impl Default for EmbedOptions {
    /// The fastest faithful precision of this CPU and the default routing window.
    fn default() -> Self {
        Self {
            precision: Precision::best(),
            bf16_product: None,
            window: Window::DEFAULT,
        }
    }
}

enum Forward {
    Packed(BertEncoder),
    Tensor(DeviceEncoder),
}

pub struct BertEmbedder {
    model: Forward,
    tokenizer: PromptTokenizer,
    device: Device,
    dims: usize,
    fingerprint: ModelFingerprint,
}

impl BertEmbedder {
    /// Loads verified model files onto `device`, with the fast forward pass for it.
    pub fn load(files: &ModelFiles, device: Device) -> Result<Self, EmbedError> {
        let backend = Backend::for_device(&device);
        Self::load_with(files, device, backend)
    }

    /// Loads with an explicit forward pass (tests compare the two on the CPU).
    pub fn load_with(
        files: &ModelFiles,
        device: Device,
        backend: Backend,
    ) -> Result<Self, EmbedError> {
        Self::load_with_options(files, device, backend, EmbedOptions::default())
    }

    /// Loads with explicit options; the window is recorded in the fingerprint.
    pub fn load_with_options(
        files: &ModelFiles,
        device: Device,
        backend: Backend,
        options: EmbedOptions,
    ) -> Result<Self, EmbedError> {
        let config = BertConfig::read(&files.path(CONFIG_FILE))?;
        let max_seq_length = files
            .manifest
            .max_seq_length
            .min(config.max_position_embeddings);
        let tokenizer =
            PromptTokenizer::load(&files.path(TOKENIZER_FILE), options.window, max_seq_length)?;
        let weights =
            std::fs::read(files.path(WEIGHTS_FILE)).map_err(|source| ModelFilesError::Io {
                path: files.path(WEIGHTS_FILE),
                source,
            })?;
        let vb = VarBuilder::from_buffered_safetensors(weights, DType::F32, &device)?;
        let model = match backend {
            Backend::Packed => {
                let mut encoder = BertEncoder::load(vb, &config, options.precision)?;
                if let Some(product) = options.bf16_product {
                    encoder.multiply_bf16_by(product);
                }
                Forward::Packed(encoder)
            }
            Backend::Tensor => Forward::Tensor(DeviceEncoder::load(vb, &config)?),
        };
        let fingerprint = ModelFingerprint {
            window: options.window.tag(max_seq_length),
            ..files.manifest.fingerprint()
        };
        Ok(Self {
            model,
            tokenizer,
            device,
            dims: config.hidden_size,
            fingerprint,
        })
    }

    pub fn device(&self) -> &Device {
        &self.device
    }

    pub fn max_seq_length(&self) -> usize {
        self.tokenizer.max_seq_length()
    }

    pub fn window(&self) -> Window {
        self.tokenizer.window()
    }

    /// What the CPU forward pass multiplies in (`None` on the candle-ops path).
    /// Which product multiplies the bf16 weights; `None` in f32 or off the CPU.
    pub fn bf16_product(&self) -> Option<Bf16Product> {
        match &self.model {
            Forward::Packed(encoder) => encoder.bf16_product(),
            Forward::Tensor(_) => None,
        }
    }

    pub fn precision(&self) -> Option<Precision> {
        match &self.model {
            Forward::Packed(encoder) => Some(encoder.precision()),
            Forward::Tensor(_) => None,
        }
    }

    /// The token ids the model sees for `text` (special tokens and routing window applied)
    /// and the whole prompt's token count: the tokenize stage alone, for benchmarks.
    pub fn token_ids(&self, text: &str) -> Result<(Vec<u32>, usize), EmbedError> {
        let t = self.tokenizer.tokenize(text)?;
        Ok((t.ids, t.prompt_tokens))
    }

    /// Forward pass and mean pooling over real tokens; returns one row per text. The CPU
    /// pass lays the texts end to end; on a device, texts of unequal length are padded to
    /// the longest and masked.
    fn forward_pooled(&self, batch: &[&[u32]]) -> Result<Vec<Vec<f32>>, EmbedError> {
        let encoder = match &self.model {
            Forward::Packed(encoder) => return Ok(encoder.pooled(batch)?),
            Forward::Tensor(encoder) => encoder,
        };
        let longest = batch.iter().map(|ids| ids.len()).max().unwrap_or(0);
        let shape = (batch.len(), longest);
        if batch.iter().all(|ids| ids.len() == longest) {
            // No padding (always so for a single text): no mask, plain mean.
            let input = Tensor::from_vec(batch.concat(), shape, &self.device)?;
            let hidden = encoder.forward(&input, None)?;
            return Ok(plain_mean(&hidden)?.to_vec2::<f32>()?);
        }
        let mut input = Vec::with_capacity(batch.len() * longest);
        let mut mask = Vec::with_capacity(batch.len() * longest);
        for ids in batch {
            input.extend_from_slice(ids);
            input.extend(std::iter::repeat_n(0u32, longest - ids.len()));
            mask.extend(std::iter::repeat_n(1u32, ids.len()));
            mask.extend(std::iter::repeat_n(0u32, longest - ids.len()));
        }
        let input = Tensor::from_vec(input, shape, &self.device)?;
        let mask = Tensor::from_vec(mask, shape, &self.device)?;
        let hidden = encoder.forward(&input, Some(&mask))?;
        // Mean over real tokens only: padded positions would pull every vector toward padding.
        Ok(masked_mean(&hidden, &mask)?.to_vec2::<f32>()?)
    }
}

impl Embedder for BertEmbedder {
    fn embed(&self, text: &str) -> Result<Embedded, EmbedError> {
        let start = Instant::now();
        let tokenized = self.tokenizer.tokenize(text)?;
        let tokenize_us = elapsed_micros(start);
        let start = Instant::now();
        let mut rows = self.forward_pooled(&[&tokenized.ids])?;
        let vector = rows.pop().unwrap_or_default();
        Ok(embedded(
            vector,
            &tokenized,
            tokenize_us,
            elapsed_micros(start),
        ))
    }

    fn embed_batch(&self, texts: &[&str]) -> Result<Vec<Embedded>, EmbedError> {
        let start = Instant::now();
        let tokenized = texts
            .iter()
            .map(|t| self.tokenizer.tokenize(t))
            .collect::<Result<Vec<_>, _>>()?;
        let tokenize_us = elapsed_micros(start) / texts.len().max(1) as u64;
        let start = Instant::now();
        let lens: Vec<usize> = tokenized.iter().map(|t| t.ids.len()).collect();
        let mut rows: Vec<Vec<f32>> = vec![Vec::new(); tokenized.len()];
        for group in length_groups(&lens) {
            let ids: Vec<&[u32]> = group.iter().map(|&g| tokenized[g].ids.as_slice()).collect();
            for (&g, row) in group.iter().zip(self.forward_pooled(&ids)?) {
                rows[g] = row;
            }
        }
        let forward_us = elapsed_micros(start) / texts.len().max(1) as u64;
        Ok(rows
            .into_iter()
            .zip(&tokenized)
            .map(|(vector, t)| embedded(vector, t, tokenize_us, forward_us))
            .collect())
    }

    fn pads_batches(&self) -> bool {
        matches!(self.model, Forward::Tensor(_))
    }

    fn pass_cost(&self, text: &str) -> usize {
        self.tokenizer.pass_cost(text)
    }

    fn dims(&self) -> usize {
        self.dims
    }

    fn fingerprint(&self) -> &ModelFingerprint {
        &self.fingerprint
    }
}

/// A pooled vector normalised, with what its text's tokenizing reported.
fn embedded(vector: Vec<f32>, t: &Tokenized, tokenize_us: u64, forward_us: u64) -> Embedded {
    Embedded {
        embedding: Embedding::normalized(vector),
        tokens: t.ids.len(),
        prompt_tokens: t.prompt_tokens,
        truncated: t.truncated,
        tokenize_us,
        forward_us,
    }
}

/// Indices of texts of `lens` tokens grouped for batched forward passes: by length, shortest
/// first, so padding stays small; a group grows while padding every text to the next one's
/// length keeps it within [`MAX_BATCH_TOKENS`] (a longer text goes alone).
fn length_groups(lens: &[usize]) -> Vec<Vec<usize>> {
    let mut order: Vec<usize> = (0..lens.len()).collect();
    order.sort_by_key(|&i| lens[i]);
    let mut groups = Vec::new();
    let mut group = Vec::new();
    for (n, &i) in order.iter().enumerate() {
        group.push(i);
        let next_len = order.get(n + 1).map(|&j| lens[j]);
        if next_len.is_none_or(|len| (group.len() + 1) * len > MAX_BATCH_TOKENS) {
            groups.push(std::mem::take(&mut group));
        }
    }
    groups
}

/// Mean of the hidden states over real tokens: `(batch, len, hidden)`, mask `(batch, len)`.
fn masked_mean(hidden: &Tensor, mask: &Tensor) -> candle_core::Result<Tensor> {
    let mask = mask.to_dtype(DType::F32)?.unsqueeze(2)?;
    let summed = hidden.broadcast_mul(&mask)?.sum(1)?;
    summed.broadcast_div(&mask.sum(1)?)
}

/// Mean over every position (a single text has no padding).
fn plain_mean(hidden: &Tensor) -> candle_core::Result<Tensor> {
    hidden.mean(D::Minus2)
}

#[cfg(test)]
mod tests {
    use super::{length_groups, MAX_BATCH_TOKENS};

    #[test]
    fn batches_are_grouped_by_length_within_the_token_budget() {
        assert!(length_groups(&[]).is_empty());
        assert_eq!(length_groups(&[5, 3, 9, 3]), vec![vec![1, 3, 0, 2]]);
        // 40 texts of 200 tokens: padded groups stay within the budget.
        let lens = vec![200; 40];
        let groups = length_groups(&lens);
        assert!(groups.iter().all(|g| g.len() * 200 <= MAX_BATCH_TOKENS));
        assert_eq!(groups.iter().map(Vec::len).sum::<usize>(), 40);
        // A text longer than the budget still gets a pass of its own.
        assert_eq!(
            length_groups(&[10, MAX_BATCH_TOKENS + 1]),
            vec![vec![0], vec![1]]
        );
    }
}
