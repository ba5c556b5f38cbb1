//! Vectors embedded before, by text hash: the seam between the indexer, which would otherwise
//! run the model on every text it lacks, and a store that remembers what was embedded.

use std::collections::HashMap;

use crate::types::{Embedding, ModelFingerprint};

/// A cache of sentence vectors keyed by model and text sha256. Best effort: a lookup that
/// fails finds nothing and a write that fails is dropped (the implementation logs why), so a
/// rebuild never fails because of it.
pub trait VectorCache: Send + Sync {
    /// The vectors known for any of `text_sha256`, made by `model`.
    fn recall(&self, model: &ModelFingerprint, text_sha256: &[&str]) -> HashMap<String, Embedding>;

    /// Keeps freshly embedded vectors for later rebuilds, here or on other replicas.
    fn remember(&self, model: &ModelFingerprint, vectors: &[(&str, &Embedding)]);
}
