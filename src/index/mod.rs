//! Stage 2: [`Embedding`] → nearest archetypes. Read-only at query time.
//!
//! Two implementations of [`VectorSearch`]: [`UsearchIndex`] (what serves: usearch's HNSW
//! graph, or its exhaustive search over the same vectors for small indexes) and
//! [`ExactIndex`] (brute force in f32, the oracle tests measure recall against). An
//! [`ArchetypeIndex`] joins the HNSW structure with the key → archetype table that turns hits
//! into `Neighbour`s. Imports only `types`: the bundle that pairs an index with its scoring
//! model is assembled in `pipeline::bundle`.

pub mod archetype_index;
pub mod exact;
pub mod recall;
pub mod usearch_index;

use crate::types::Embedding;

pub use archetype_index::{ArchetypeIndex, IndexEntry, IndexKey};
pub use exact::ExactIndex;
pub use usearch_index::{HnswParams, Metric, Quantization, UsearchIndex};

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
    /// Bug: the exact index's vectors do not fill a matrix of their dimensions.
    #[error("exact index: {0}")]
    Matrix(String),
    /// User error: an index file and its key table disagree.
    #[error("index key table: {0}")]
    KeyTable(String),
    /// Bug or user error: vectors of the wrong dimension.
    #[error("vector has {actual} dimensions, the index holds {expected}")]
    Dimensions { expected: usize, actual: usize },
    /// User error: a JSONL file of vectors (what `router embed` writes) has a bad line.
    #[error("{path}: line {line}: {message}")]
    VectorFile {
        path: String,
        line: usize,
        message: String,
    },
    /// Runtime error: reading or writing an index file failed.
    #[error("index file {path}: {source}")]
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
