//! Stage 1: text → [`Embedding`]. Synchronous and compute-bound; knows nothing of indexes or
//! the HTTP service.
//!
//! The [`Embedder`] trait has one implementation, [`bert::BertEmbedder`]: BERT reproducing
//! sentence-transformers, on the project's own CPU kernels ([`kernel`]) or with candle tensor
//! ops on a GPU ([`device_encoder`]). Tests that need embeddings load the real model.
//!
//! Modules, from the pipeline down: [`bert`] (tokenize → forward → pool → normalise; the
//! tokenizing itself in `tokenize`, what of a long prompt is seen in [`window`]), the two
//! forward passes [`encoder`] (CPU, on the [`kernel`]s) and [`device_encoder`] (GPU), sharing
//! [`config`]; beside them [`model_files`] (finding and verifying the weights) and
//! [`device`] (which device runs them) and [`threads`] (the CPU threads that run them,
//! optionally at a lower priority than the service's own).

pub mod bert;
pub mod config;
pub mod device;
pub mod device_encoder;
pub mod encoder;
pub mod kernel;
pub mod model_files;
pub mod threads;
mod tokenize;
pub mod window;

/// The bf16 products live with the other kernels; `embed::bf16` stays their public path.
pub use kernel::bf16;

use crate::types::Embedding;

pub use crate::types::ModelFingerprint;

/// One embedded text, with what the later stages and the decision need to know about it.
#[derive(Debug, Clone)]
pub struct Embedded {
    pub embedding: Embedding,
    /// Tokens the model saw, [CLS] and [SEP] included (≤ the model's max sequence length).
    pub tokens: usize,
    /// Tokens of the whole prompt before truncation ([CLS]/[SEP] included). Exact unless the
    /// prompt was longer than the tokenizer window, then extrapolated from the window.
    pub prompt_tokens: usize,
    /// Whether the model saw only a prefix of the prompt.
    pub truncated: bool,
    pub tokenize_us: u64,
    pub forward_us: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum EmbedError {
    /// User error: nothing to embed.
    #[error("the text to embed is empty")]
    EmptyText,
    /// Runtime error: the tokenizer failed (malformed tokenizer.json or an internal error).
    #[error("tokenizer: {0}")]
    Tokenizer(String),
    /// Runtime error (or bug): the forward pass failed.
    #[error("model forward pass: {0}")]
    Model(#[from] candle_core::Error),
    /// User or runtime error: model files could not be resolved or verified.
    #[error(transparent)]
    Files(#[from] model_files::ModelFilesError),
    /// User error: the model config is not a BERT config this embedder supports.
    #[error("model config {path}: {message}")]
    Config { path: String, message: String },
}

/// Turns text into unit-length sentence embeddings. Implementations are thread-safe.
pub trait Embedder: Send + Sync {
    /// Embeds one text without padding (the fast path for a single request).
    fn embed(&self, text: &str) -> Result<Embedded, EmbedError>;

    /// Embeds many texts; results are in input order and equal `embed` of each text
    /// (to float rounding).
    fn embed_batch(&self, texts: &[&str]) -> Result<Vec<Embedded>, EmbedError>;

    /// Whether a batch's texts are padded to its longest (so callers gain by grouping texts
    /// of similar length), rather than laid end to end.
    fn pads_batches(&self) -> bool {
        true
    }

    /// What `text` costs a forward pass, in bytes of ordinary text (the unit in which batches
    /// bound their tokens): its length, or less when the model sees only a window of it (a
    /// 3 KB prompt costs the pass of a 64-token one, plus tokenizing a few KiB of it).
    fn pass_cost(&self, text: &str) -> usize;

    /// Number of dimensions of every embedding.
    fn dims(&self) -> usize;

    /// Which weights produced the vectors; indexes record it and refuse other models.
    fn fingerprint(&self) -> &ModelFingerprint;
}
