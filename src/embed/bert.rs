//! `BertEmbedder`: sentence-transformers' all-MiniLM-L6-v2 pipeline in candle.
//!
//! tokenize (no padding for one text, truncate to `max_seq_length` = 256 like
//! sentence-transformers, not the 128 that the shipped tokenizer.json says) → BERT forward →
//! mean pooling over real tokens only (the attention mask) → L2 normalisation.
//! `token_type_ids` are all zeros for a single segment.

use std::time::Instant;

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use tokenizers::Tokenizer;

use super::device_encoder::DeviceEncoder;
use super::encoder::{masked_mean, plain_mean, BertConfig, BertEncoder};
use super::kernel::Precision;
use super::model_files::{ModelFiles, CONFIG_FILE, TOKENIZER_FILE, WEIGHTS_FILE};
use super::window::Window;
use super::{EmbedError, Embedded, Embedder};
use crate::types::{elapsed_micros, Embedding, ModelFingerprint};

/// Bytes of a long prompt that are tokenized first. 256 tokens of ordinary text fit in well
/// under this, so a 1 MB prompt costs well under a millisecond of tokenizing, not hundreds of
/// ms (tokenizing costs about 0.25 ms per KiB here: 16 KiB took 4 ms of the 10 ms budget).
/// Longer prompts get an extrapolated token count.
const TOKENIZE_WINDOW_BYTES: usize = 4 * 1024;

/// Bytes of a long prompt's end tokenized first for the window's tail (a few dozen tokens).
const TAIL_WINDOW_BYTES: usize = 1024;

/// Tokens a window must hold beyond the model's maximum before the rest of the prompt is
/// ignored: the window's last word may be cut, and must stay out of the model's tokens.
const WINDOW_MARGIN_TOKENS: usize = 16;

/// How far back from the window's end to look for whitespace to cut at.
const WINDOW_CUT_SEARCH_BYTES: usize = 256;

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
    pub window: Window,
}

impl Default for EmbedOptions {
    /// The fastest faithful precision of this CPU and the default routing window.
    fn default() -> Self {
        Self {
            precision: Precision::best(),
            window: Window::DEFAULT,
        }
    }
}

enum Forward {
    Packed(BertEncoder),
    Tensor(DeviceEncoder),
}

impl Forward {
    fn run(&self, ids: &Tensor, mask: Option<&Tensor>) -> candle_core::Result<Tensor> {
        match self {
            Self::Packed(encoder) => encoder.forward(ids, mask),
            Self::Tensor(encoder) => encoder.forward(ids, mask),
        }
    }
}

pub struct BertEmbedder {
    model: Forward,
    tokenizer: Tokenizer,
    device: Device,
    max_seq_length: usize,
    window: Window,
    dims: usize,
    cls_id: u32,
    sep_id: u32,
    fingerprint: ModelFingerprint,
}

/// Token ids of one text, already truncated to the model's window.
struct Tokenized {
    ids: Vec<u32>,
    prompt_tokens: usize,
    truncated: bool,
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
        let config_path = files.path(CONFIG_FILE);
        let config_err = |message: String| EmbedError::Config {
            path: config_path.display().to_string(),
            message,
        };
        let config_text =
            std::fs::read_to_string(&config_path).map_err(|e| config_err(e.to_string()))?;
        let config: BertConfig =
            serde_json::from_str(&config_text).map_err(|e| config_err(e.to_string()))?;
        config.check().map_err(config_err)?;

        let mut tokenizer = Tokenizer::from_file(files.path(TOKENIZER_FILE))
            .map_err(|e| EmbedError::Tokenizer(e.to_string()))?;
        // The shipped tokenizer.json pads to 128 and truncates at 128; sentence-transformers
        // does neither. Truncation is done here, after counting the whole prompt's tokens.
        tokenizer.with_padding(None);
        tokenizer
            .with_truncation(None)
            .map_err(|e| EmbedError::Tokenizer(e.to_string()))?;
        let special = |token: &str| {
            tokenizer
                .token_to_id(token)
                .ok_or_else(|| EmbedError::Tokenizer(format!("tokenizer has no {token} token")))
        };
        let cls_id = special("[CLS]")?;
        let sep_id = special("[SEP]")?;

        let weights = std::fs::read(files.path(WEIGHTS_FILE)).map_err(|source| {
            super::model_files::ModelFilesError::Io {
                path: files.path(WEIGHTS_FILE),
                source,
            }
        })?;
        let vb = VarBuilder::from_buffered_safetensors(weights, DType::F32, &device)?;
        let model = match backend {
            Backend::Packed => Forward::Packed(BertEncoder::load(vb, &config, options.precision)?),
            Backend::Tensor => Forward::Tensor(DeviceEncoder::load(vb, &config)?),
        };
        let max_seq_length = files
            .manifest
            .max_seq_length
            .min(config.max_position_embeddings);
        let fingerprint = ModelFingerprint {
            window: options.window.tag(max_seq_length),
            ..files.manifest.fingerprint()
        };
        Ok(Self {
            model,
            tokenizer,
            device,
            max_seq_length,
            window: options.window,
            dims: config.hidden_size,
            cls_id,
            sep_id,
            fingerprint,
        })
    }

    pub fn device(&self) -> &Device {
        &self.device
    }

    pub fn max_seq_length(&self) -> usize {
        self.max_seq_length
    }

    pub fn window(&self) -> Window {
        self.window
    }

    /// What the CPU forward pass multiplies in (`None` on the candle-ops path).
    pub fn precision(&self) -> Option<Precision> {
        match &self.model {
            Forward::Packed(encoder) => Some(encoder.precision()),
            Forward::Tensor(_) => None,
        }
    }

    /// Token ids with [CLS]/[SEP]; a prompt longer than the routing window keeps its first and
    /// last word pieces ([`Window`]; the default full window truncates like
    /// sentence-transformers). Huge prompts are tokenized in bounded windows of bytes.
    /// The token ids the model sees for `text` (special tokens and routing window applied)
    /// and the whole prompt's token count: the tokenize stage alone, for benchmarks.
    pub fn token_ids(&self, text: &str) -> Result<(Vec<u32>, usize), EmbedError> {
        let t = self.tokenize(text)?;
        Ok((t.ids, t.prompt_tokens))
    }

    fn tokenize(&self, text: &str) -> Result<Tokenized, EmbedError> {
        if text.trim().is_empty() {
            return Err(EmbedError::EmptyText);
        }
        let max_pieces = self.window.max_pieces(self.max_seq_length);
        let mut window_bytes = TOKENIZE_WINDOW_BYTES;
        loop {
            let window = window_prefix(text, window_bytes);
            let pieces = self.encode(window)?;
            if window.len() == text.len() {
                return Ok(self.assemble(&pieces, &[], pieces.len()));
            }
            // The window overflows the model with a margin (its last word may be cut): the
            // rest of the prompt only changes the count, which is extrapolated, and the tail.
            if pieces.len() >= max_pieces.max(self.max_seq_length) + WINDOW_MARGIN_TOKENS {
                let scale = text.len() as f64 / window.len() as f64;
                let count = (pieces.len() as f64 * scale).ceil() as usize;
                let tail = self.tail_of(text)?;
                return Ok(self.assemble(&pieces, &tail, count));
            }
            // Few tokens per byte (long unbroken runs): a wider window, never the whole text
            // at once.
            window_bytes = window_bytes.saturating_mul(4);
        }
    }

    /// The last word pieces of a prompt too long to tokenize whole (at least the window's
    /// tail, cut-word margin excluded).
    fn tail_of(&self, text: &str) -> Result<Vec<u32>, EmbedError> {
        let want = self.window.tail_pieces(self.max_seq_length);
        if want == 0 {
            return Ok(Vec::new());
        }
        let mut window_bytes = TAIL_WINDOW_BYTES;
        loop {
            let window = window_suffix(text, window_bytes);
            let mut pieces = self.encode(window)?;
            if window.len() == text.len() || pieces.len() >= want + WINDOW_MARGIN_TOKENS {
                pieces.drain(..pieces.len() - want.min(pieces.len()));
                return Ok(pieces);
            }
            window_bytes = window_bytes.saturating_mul(4);
        }
    }

    /// Word pieces of `text`, no special tokens.
    fn encode(&self, text: &str) -> Result<Vec<u32>, EmbedError> {
        let encoding = self
            .tokenizer
            .encode_fast(text, false)
            .map_err(|e| EmbedError::Tokenizer(e.to_string()))?;
        Ok(encoding.get_ids().to_vec())
    }

    /// `[CLS] head [SEP]` from a prompt of `count` word pieces whose first are `pieces`; the
    /// window's tail comes from the end of `pieces`, or from `tail` (the prompt's last pieces)
    /// when `pieces` is only a prefix.
    fn assemble(&self, pieces: &[u32], tail: &[u32], count: usize) -> Tokenized {
        let (head_range, tail_range) = self.window.select(count, self.max_seq_length);
        let tail = if tail.is_empty() {
            &pieces[tail_range.start.min(pieces.len())..]
        } else {
            &tail[tail.len() - tail_range.len().min(tail.len())..]
        };
        let head = &pieces[..head_range.end.min(pieces.len())];
        let mut ids = Vec::with_capacity(head.len() + tail.len() + 2);
        ids.push(self.cls_id);
        ids.extend_from_slice(head);
        ids.extend_from_slice(tail);
        ids.push(self.sep_id);
        Tokenized {
            truncated: ids.len() < count + 2,
            ids,
            prompt_tokens: count + 2,
        }
    }

    /// Forward pass and mean pooling over real tokens; returns one row per text. Texts of
    /// unequal length are padded to the longest and masked.
    fn forward_pooled(&self, batch: &[&[u32]]) -> Result<Vec<Vec<f32>>, EmbedError> {
        let longest = batch.iter().map(|ids| ids.len()).max().unwrap_or(0);
        let shape = (batch.len(), longest);
        if batch.iter().all(|ids| ids.len() == longest) {
            // No padding (always so for a single text): no mask, plain mean.
            let input = Tensor::from_vec(batch.concat(), shape, &self.device)?;
            let hidden = self.model.run(&input, None)?;
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
        let hidden = self.model.run(&input, Some(&mask))?;
        // Mean over real tokens only: padded positions would pull every vector toward padding.
        Ok(masked_mean(&hidden, &mask)?.to_vec2::<f32>()?)
    }
}

impl Embedder for BertEmbedder {
    fn embed(&self, text: &str) -> Result<Embedded, EmbedError> {
        let start = Instant::now();
        let tokenized = self.tokenize(text)?;
        let tokenize_us = elapsed_micros(start);
        let start = Instant::now();
        let mut rows = self.forward_pooled(&[&tokenized.ids])?;
        let vector = rows.pop().unwrap_or_default();
        Ok(Embedded {
            embedding: Embedding::normalized(vector),
            tokens: tokenized.ids.len(),
            prompt_tokens: tokenized.prompt_tokens,
            truncated: tokenized.truncated,
            tokenize_us,
            forward_us: elapsed_micros(start),
        })
    }

    fn embed_batch(&self, texts: &[&str]) -> Result<Vec<Embedded>, EmbedError> {
        let start = Instant::now();
        let tokenized = texts
            .iter()
            .map(|t| self.tokenize(t))
            .collect::<Result<Vec<_>, _>>()?;
        let tokenize_us = elapsed_micros(start) / texts.len().max(1) as u64;
        let start = Instant::now();
        // Group by length so padding stays small, in groups bounded by MAX_BATCH_TOKENS.
        let mut order: Vec<usize> = (0..tokenized.len()).collect();
        order.sort_by_key(|&i| tokenized[i].ids.len());
        let mut rows: Vec<Vec<f32>> = vec![Vec::new(); tokenized.len()];
        let mut group: Vec<usize> = Vec::new();
        for (n, &i) in order.iter().enumerate() {
            group.push(i);
            let next_len = order.get(n + 1).map(|&j| tokenized[j].ids.len());
            let full = next_len.is_none_or(|len| (group.len() + 1) * len > MAX_BATCH_TOKENS);
            if full {
                let ids: Vec<&[u32]> = group.iter().map(|&g| tokenized[g].ids.as_slice()).collect();
                for (&g, row) in group.iter().zip(self.forward_pooled(&ids)?) {
                    rows[g] = row;
                }
                group.clear();
            }
        }
        let forward_us = elapsed_micros(start) / texts.len().max(1) as u64;
        Ok(rows
            .into_iter()
            .zip(tokenized)
            .map(|(vector, t)| Embedded {
                embedding: Embedding::normalized(vector),
                tokens: t.ids.len(),
                prompt_tokens: t.prompt_tokens,
                truncated: t.truncated,
                tokenize_us,
                forward_us,
            })
            .collect())
    }

    fn dims(&self) -> usize {
        self.dims
    }

    fn fingerprint(&self) -> &ModelFingerprint {
        &self.fingerprint
    }
}

/// The first `max_bytes` of `text`, cut at whitespace so no word is split (a split word would
/// tokenize differently), or the whole text when it is short or has no whitespace to cut at.
fn window_prefix(text: &str, max_bytes: usize) -> &str {
    if text.len() <= max_bytes {
        return text;
    }
    let boundary_at_or_before = |mut i: usize| {
        while !text.is_char_boundary(i) {
            i -= 1;
        }
        i
    };
    let end = boundary_at_or_before(max_bytes);
    // Prefer whitespace near the end of the window; without any, cut mid-word (the caller's
    // token margin keeps a split word out of what the model sees).
    let search_from = boundary_at_or_before(end.saturating_sub(WINDOW_CUT_SEARCH_BYTES));
    match text[search_from..end].rfind(char::is_whitespace) {
        Some(i) if search_from + i > 0 => &text[..search_from + i],
        _ => &text[..end],
    }
}

/// The last `max_bytes` of `text`, started after whitespace so no word is split, or the whole
/// text when it is short or has no whitespace to start at.
fn window_suffix(text: &str, max_bytes: usize) -> &str {
    if text.len() <= max_bytes {
        return text;
    }
    let boundary_at_or_after = |mut i: usize| {
        while !text.is_char_boundary(i) {
            i += 1;
        }
        i
    };
    let start = boundary_at_or_after(text.len() - max_bytes);
    let search_to = boundary_at_or_after((start + WINDOW_CUT_SEARCH_BYTES).min(text.len()));
    match text[start..search_to].find(char::is_whitespace) {
        Some(i) => &text[start + i..],
        None => &text[start..],
    }
}

#[cfg(test)]
mod tests {
    use super::{window_prefix, window_suffix};

    #[test]
    fn suffix_starts_at_whitespace_and_char_boundary() {
        assert_eq!(window_suffix("short", 10), "short");
        assert_eq!(window_suffix("aaa bbb ccc", 9), " bbb ccc");
        assert_eq!(window_suffix("ééééé ééééé", 12), " ééééé");
        assert_eq!(window_suffix("nowhitespaceatall", 5), "atall");
    }

    #[test]
    fn window_cuts_at_whitespace_and_char_boundary() {
        assert_eq!(window_prefix("short", 10), "short");
        assert_eq!(window_prefix("aaa bbb ccc", 9), "aaa bbb");
        assert_eq!(window_prefix("ééééé ééééé", 12), "ééééé");
        assert_eq!(window_prefix("nowhitespaceatall", 5), "nowhi");
        let long_word = format!("x {}", "y".repeat(1000));
        assert_eq!(
            window_prefix(&long_word, 600).len(),
            600,
            "a lone early space is not a cut point"
        );
    }
}
