//! Vocabulary that crosses stages. Nothing here knows about candle, usearch or axum.

use std::fmt;
use std::sync::Arc;
use std::time::Instant;

use serde::{Deserialize, Serialize};

/// A task bucket name (`code`, `summarization`, ...). Buckets are declared by the policy;
/// an example or a decision naming a bucket the policy lacks is rejected where it enters.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct BucketId(Arc<str>);

impl BucketId {
    pub fn new(name: &str) -> Self {
        Self(Arc::from(name))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for BucketId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The stable id of one labeled archetype example.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ArchetypeId(Arc<str>);

impl ArchetypeId {
    pub fn new(id: &str) -> Self {
        Self(Arc::from(id))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ArchetypeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A sentence embedding of unit L2 length, so that cosine similarity is a dot product.
///
/// The only ways to build one normalise the vector, which is why stages can rely on it.
#[derive(Debug, Clone, PartialEq)]
pub struct Embedding(Vec<f32>);

impl Embedding {
    /// Normalises `values` to unit length. A zero vector stays zero (its similarity to
    /// everything is 0), which only happens for degenerate inputs.
    pub fn normalized(mut values: Vec<f32>) -> Self {
        let norm = values.iter().map(|v| v * v).sum::<f32>().sqrt();
        if norm > 0.0 {
            values.iter_mut().for_each(|v| *v /= norm);
        }
        Self(values)
    }

    pub fn as_slice(&self) -> &[f32] {
        &self.0
    }

    pub fn dims(&self) -> usize {
        self.0.len()
    }

    /// Cosine similarity with another unit vector.
    pub fn cosine(&self, other: &Embedding) -> f32 {
        self.0.iter().zip(&other.0).map(|(a, b)| a * b).sum()
    }

    pub fn into_vec(self) -> Vec<f32> {
        self.0
    }
}

/// Identity of the weights that produced a vector: an index built by other weights is refused.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelFingerprint {
    pub id: String,
    pub revision: String,
    /// sha256 of the weights file.
    pub sha256: String,
    /// The routing window when it is not the model's plain truncation (`head94+tail32`):
    /// vectors of long texts differ with it, so an index built with another window is rebuilt.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub window: Option<String>,
}

/// One archetype returned by an index search.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Neighbour {
    pub id: ArchetypeId,
    pub bucket: BucketId,
    /// Cosine similarity in [-1, 1].
    pub similarity: f32,
}

/// Microseconds since `start`, for the per-stage timings every decision reports.
pub fn elapsed_micros(start: Instant) -> u64 {
    u64::try_from(start.elapsed().as_micros()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalized_has_unit_length() {
        let e = Embedding::normalized(vec![3.0, 4.0]);
        assert_eq!(e.as_slice(), &[0.6, 0.8]);
        assert!((e.cosine(&e) - 1.0).abs() < 1e-6);
    }

    #[test]
    fn zero_vector_stays_zero() {
        let e = Embedding::normalized(vec![0.0; 4]);
        assert_eq!(e.cosine(&e), 0.0);
    }
}
