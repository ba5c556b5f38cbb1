//! Stage 2: [`Embedding`] → nearest archetypes. Read-only at query time.
//!
//! Two implementations of [`VectorSearch`]: [`UsearchIndex`] (HNSW, what serves) and
//! [`ExactIndex`] (brute force, the oracle tests measure recall against). A
//! [`bundle::LoadedIndex`] joins a search structure with the key → archetype table that
//! turns hits into [`Neighbour`]s.

pub mod bundle;
pub mod exact;
pub mod recall;
pub mod usearch_index;

use crate::types::Embedding;

pub use bundle::{BundleManifest, IndexKey, LoadedIndex};
pub use exact::ExactIndex;
pub use usearch_index::{HnswParams, Quantization, UsearchIndex};

/// One search hit: the archetype's key and its cosine similarity to the query.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Hit {
    pub key: u64,
    pub similarity: f32,
}

#[derive(Debug, thiserror::Error)]
pub enum IndexError {
    /// Runtime error: usearch reported a failure.
    #[error("usearch: {0}")]
    Usearch(String),
    /// Bug or user error: vectors of the wrong dimension.
    #[error("vector has {actual} dimensions, the index holds {expected}")]
    Dimensions { expected: usize, actual: usize },
    /// User error: a bundle on disk cannot be used (named file, reason, what to do).
    #[error("index bundle {path}: {message}")]
    Bundle { path: String, message: String },
    /// Runtime error: reading or writing a bundle failed.
    #[error("index bundle {path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
}

/// Nearest-neighbour search over unit vectors by cosine similarity.
pub trait VectorSearch: Send + Sync {
    /// Up to `k` hits, most similar first.
    fn search(&self, query: &Embedding, k: usize) -> Result<Vec<Hit>, IndexError>;
    fn len(&self) -> usize;
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
