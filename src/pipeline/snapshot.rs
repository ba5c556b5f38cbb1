//! A policy and a bundle validated against each other: what one request uses from start to
//! end, so a decision never mixes versions. Swapped whole by `live`.

use std::sync::Arc;

use super::bundle::Bundle;
use crate::decide::Policy;
use crate::types::BucketId;

/// Why a policy and a bundle cannot serve together.
#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    /// User error: the index holds examples of buckets the policy does not route.
    #[error("the index has examples of bucket(s) {0} that the policy does not declare; add them to the policy or remove the examples")]
    UnknownBuckets(String),
    /// User error: the index was built with vectors of another size.
    #[error("the index holds {index}-dimensional vectors but the model makes {model}")]
    Dimensions { index: usize, model: usize },
}

pub struct Snapshot {
    pub policy: Arc<Policy>,
    /// The archetype index and the scoring model fitted on it, side by side.
    pub bundle: Arc<Bundle>,
}

impl Snapshot {
    pub fn new(
        policy: Arc<Policy>,
        bundle: Arc<Bundle>,
        model_dims: usize,
    ) -> Result<Self, SnapshotError> {
        Self::check(&policy, &bundle, model_dims)?;
        Ok(Self { policy, bundle })
    }

    /// The scorer that actually serves the policy's choice with this bundle (head-based
    /// scorers fall back to the kNN vote in a bundle without a head).
    pub fn scorer(&self) -> crate::types::ScorerKind {
        self.bundle.scoring.effective(self.policy.matching.scorer)
    }

    /// Whether `policy` and `bundle` can serve together, without building the snapshot.
    pub fn check(policy: &Policy, bundle: &Bundle, model_dims: usize) -> Result<(), SnapshotError> {
        if !bundle.is_empty() && bundle.dims() != model_dims {
            return Err(SnapshotError::Dimensions {
                index: bundle.dims(),
                model: model_dims,
            });
        }
        let unknown: Vec<&str> = bundle
            .manifest()
            .counts
            .keys()
            .filter(|b| policy.bucket(b).is_none())
            .map(BucketId::as_str)
            .collect();
        if !unknown.is_empty() {
            return Err(SnapshotError::UnknownBuckets(unknown.join(", ")));
        }
        Ok(())
    }
}
