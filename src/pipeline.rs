//! The one place the stages meet: `classify(snapshot, input) → Decision`.
//!
//! A [`Snapshot`] is a policy and an index that were checked against each other; a request
//! uses one snapshot from start to end, so a decision never mixes versions.

use std::sync::Arc;
use std::time::Instant;

use crate::decide::{decide, DecideError, Decision, Policy, Timings};
use crate::embed::{EmbedError, Embedded, Embedder};
use crate::index::{IndexError, LoadedIndex};
use crate::types::{elapsed_micros, BucketId};

#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    #[error(transparent)]
    Embed(#[from] EmbedError),
    #[error(transparent)]
    Index(#[from] IndexError),
    #[error(transparent)]
    Decide(#[from] DecideError),
}

/// Why a policy and an index cannot serve together.
#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    /// User error: the index holds examples of buckets the policy does not route.
    #[error("the index has examples of bucket(s) {0} that the policy does not declare; add them to the policy or remove the examples")]
    UnknownBuckets(String),
    /// User error: the index was built with vectors of another size.
    #[error("the index holds {index}-dimensional vectors but the model makes {model}")]
    Dimensions { index: usize, model: usize },
}

/// A policy and an index validated against each other; swapped whole by `live`.
pub struct Snapshot {
    pub policy: Arc<Policy>,
    pub index: Arc<LoadedIndex>,
}

impl Snapshot {
    pub fn new(
        policy: Arc<Policy>,
        index: Arc<LoadedIndex>,
        model_dims: usize,
    ) -> Result<Self, SnapshotError> {
        if !index.is_empty() && index.dims() != model_dims {
            return Err(SnapshotError::Dimensions {
                index: index.dims(),
                model: model_dims,
            });
        }
        let unknown: Vec<&str> = index
            .manifest()
            .counts
            .keys()
            .filter(|b| policy.bucket(b).is_none())
            .map(BucketId::as_str)
            .collect();
        if !unknown.is_empty() {
            return Err(SnapshotError::UnknownBuckets(unknown.join(", ")));
        }
        Ok(Self { policy, index })
    }
}

/// What one request asks the router to classify.
#[derive(Debug, Clone, Default)]
pub struct ClassifyInput {
    /// The text to route (the prompt, or the last user turn of a conversation).
    pub text: String,
    pub request_id: Option<String>,
}

/// The stateless part of classification: the embedder (not hot-swapped; a model change is a
/// restart).
pub struct Pipeline {
    embedder: Arc<dyn Embedder>,
}

impl Pipeline {
    pub fn new(embedder: Arc<dyn Embedder>) -> Self {
        Self { embedder }
    }

    pub fn embedder(&self) -> &Arc<dyn Embedder> {
        &self.embedder
    }

    /// Embeds, searches and decides for one request.
    pub fn classify(
        &self,
        snapshot: &Snapshot,
        input: &ClassifyInput,
    ) -> Result<Decision, PipelineError> {
        let start = Instant::now();
        let embedded = self.embedder.embed(&input.text)?;
        self.decide_embedded(snapshot, input, embedded, start)
    }

    /// Classifies many requests with one batched forward pass; decisions are in input order.
    pub fn classify_batch(
        &self,
        snapshot: &Snapshot,
        inputs: &[ClassifyInput],
    ) -> Result<Vec<Decision>, PipelineError> {
        let start = Instant::now();
        let texts: Vec<&str> = inputs.iter().map(|i| i.text.as_str()).collect();
        let embedded = self.embedder.embed_batch(&texts)?;
        inputs
            .iter()
            .zip(embedded)
            .map(|(input, e)| self.decide_embedded(snapshot, input, e, start))
            .collect()
    }

    fn decide_embedded(
        &self,
        snapshot: &Snapshot,
        input: &ClassifyInput,
        embedded: Embedded,
        start: Instant,
    ) -> Result<Decision, PipelineError> {
        let search_start = Instant::now();
        let neighbours = snapshot
            .index
            .neighbours(&embedded.embedding, snapshot.policy.matching.k)?;
        let search_us = elapsed_micros(search_start);
        let decide_start = Instant::now();
        let routing = decide(&snapshot.policy, &neighbours)?;
        let decide_us = elapsed_micros(decide_start);
        Ok(Decision {
            decision_id: ulid::Ulid::new().to_string(),
            request_id: input.request_id.clone(),
            bucket: routing.bucket,
            confidence: routing.confidence,
            abstained: routing.abstained,
            target: routing.target,
            fallbacks: routing.fallbacks,
            escalation: routing.escalation,
            reasons: routing.reasons,
            neighbours,
            tokens: embedded.tokens,
            prompt_tokens: embedded.prompt_tokens,
            truncated: embedded.truncated,
            policy_version: snapshot.policy.version.clone(),
            index_version: snapshot.index.version().to_owned(),
            timings_us: Timings {
                tokenize: embedded.tokenize_us,
                embed: embedded.forward_us,
                search: search_us,
                decide: decide_us,
                total: elapsed_micros(start),
            },
        })
    }
}
