//! Vocabulary that crosses stages. Nothing here knows about candle, usearch or axum.

use std::fmt;
use std::sync::Arc;
use std::time::Instant;

use serde::{Deserialize, Serialize};

/// A task bucket name (`code`, `summarization`, ...). Buckets are declared by the policy;
/// an example or a decision naming a bucket the policy lacks is rejected where it enters.
#[derive(
    Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, utoipa::ToSchema,
)]
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

/// Who spoke a turn of a conversation (system and tool messages are not routing context).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Speaker {
    User,
    Assistant,
}

/// The stable id of one labeled archetype example.
#[derive(
    Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, utoipa::ToSchema,
)]
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
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
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
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Neighbour {
    pub id: ArchetypeId,
    pub bucket: BucketId,
    /// Cosine similarity in [-1, 1].
    pub similarity: f32,
}

/// How a bucket is chosen from an embedding and its nearest archetypes.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Serialize,
    Deserialize,
    utoipa::ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum ScorerKind {
    /// Similarity-weighted vote of the k nearest archetypes.
    WeightedKnn,
    /// Cosine to each bucket's mean embedding.
    Centroid,
    /// Mean similarity per bucket among the 5 nearest archetypes (how aurelio's
    /// semantic-router scores routes): a reference point, not a recommendation.
    TopMean,
    /// A softmax (multinomial logistic regression) head trained on the archetypes.
    Head,
    /// The head's and the kNN vote's calibrated probabilities, mixed with a fitted weight.
    Combined,
}

impl ScorerKind {
    pub const ALL: [ScorerKind; 5] = [
        Self::WeightedKnn,
        Self::Centroid,
        Self::TopMean,
        Self::Head,
        Self::Combined,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Self::WeightedKnn => "weighted_knn",
            Self::Centroid => "centroid",
            Self::TopMean => "top_mean",
            Self::Head => "head",
            Self::Combined => "combined",
        }
    }
}

impl fmt::Display for ScorerKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for ScorerKind {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|k| k.name() == s)
            .ok_or_else(|| {
                let names: Vec<&str> = Self::ALL.iter().map(|k| k.name()).collect();
                format!(
                    "unknown scorer `{s}` (expected one of {})",
                    names.join(", ")
                )
            })
    }
}

/// One bucket's calibrated probability.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct BucketScore {
    pub bucket: BucketId,
    pub score: f32,
}

/// What a scorer says about one prompt, before any threshold: every bucket's calibrated
/// probability, highest first, and what the neighbours looked like.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BucketScores {
    pub scorer: ScorerKind,
    /// Never empty; sums to 1.
    pub ranked: Vec<BucketScore>,
    /// Calibrated probability that the top bucket is right.
    pub confidence: f32,
    /// Cosine similarity of the nearest archetype (-1 when none was searched).
    pub top_similarity: f32,
    /// Neighbours in the winning bucket, and neighbours considered.
    pub agreeing: usize,
    pub considered: usize,
}

impl BucketScores {
    pub fn bucket(&self) -> &BucketId {
        &self.ranked[0].bucket
    }

    /// The calibrated probability that the chosen bucket is right.
    pub fn confidence(&self) -> f32 {
        self.confidence
    }

    /// Top-1 minus top-2 probability (the top-1 probability when there is one bucket).
    pub fn margin(&self) -> f32 {
        self.ranked[0].score - self.ranked.get(1).map_or(0.0, |s| s.score)
    }
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
