//! The one place the stages meet: `classify(snapshot, input) → Decision`.
//!
//! A [`Snapshot`] is a policy and an index that were checked against each other; a request
//! uses one snapshot from start to end, so a decision never mixes versions. Provider health
//! comes from the [`HealthBoard`]: one atomic load of its view per decision, and a claim only
//! when the decision would probe a half-open target.

use std::sync::Arc;
use std::time::Instant;

use crate::decide::{
    decide, DecideError, DecideInput, Decision, Policy, RequestContext, Routing, Timings,
};
use crate::embed::{EmbedError, Embedded, Embedder};
use crate::index::{IndexError, LoadedIndex};
use crate::live::HealthBoard;
use crate::types::{elapsed_micros, BucketId, BucketScores, Neighbour};
use crate::uncertain::{is_uncertain, UncertainQueue};

/// Decisions tried per request when probes of half-open targets are claimed by others first:
/// each failed claim takes one target out of the next try, and a bucket has at most three.
const PROBE_CLAIM_TRIES: usize = 4;

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
        Self::check(&policy, &index, model_dims)?;
        Ok(Self { policy, index })
    }

    /// Whether `policy` and `index` can serve together, without building the snapshot.
    pub fn check(
        policy: &Policy,
        index: &LoadedIndex,
        model_dims: usize,
    ) -> Result<(), SnapshotError> {
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
        Ok(())
    }
}

/// What the embedding and the index say about one text: everything a decision needs besides
/// the request context, the policy's rules and provider health. Cacheable per snapshot.
#[derive(Debug, Clone)]
pub struct Semantic {
    pub embedded: Embedded,
    pub neighbours: Vec<Neighbour>,
    pub search_us: u64,
}

/// What one request asks the router to classify.
#[derive(Debug, Clone, Default)]
pub struct ClassifyInput {
    /// The text to route (the prompt, or the last user turn of a conversation).
    pub text: String,
    pub request_id: Option<String>,
    /// What the side rules see. `prompt_tokens` is ignored here: the pipeline counts it.
    pub context: RequestContext,
    /// Bytes of prompt text that are not routed (system message, earlier turns). Their tokens
    /// are estimated at the routed text's bytes per token and counted in `prompt_tokens`.
    pub other_text_bytes: usize,
}

/// The embedder (not hot-swapped; a model change is a restart) and the provider health
/// board (per process; outcomes reported by callers).
pub struct Pipeline {
    embedder: Arc<dyn Embedder>,
    health: Arc<HealthBoard>,
    uncertain: Arc<UncertainQueue>,
}

impl Pipeline {
    /// A pipeline with a fresh health board (every target closed).
    pub fn new(embedder: Arc<dyn Embedder>) -> Self {
        Self::with_health(embedder, Arc::new(HealthBoard::new()))
    }

    pub fn with_health(embedder: Arc<dyn Embedder>, health: Arc<HealthBoard>) -> Self {
        Self {
            embedder,
            health,
            uncertain: Arc::new(UncertainQueue::default()),
        }
    }

    /// Replaces the queue of uncertain decisions (e.g. another capacity, or 0 to keep none).
    pub fn with_uncertain(mut self, queue: Arc<UncertainQueue>) -> Self {
        self.uncertain = queue;
        self
    }

    /// Decisions the router was unsure of, for labeling (`GET /admin/uncertain`).
    pub fn uncertain(&self) -> &Arc<UncertainQueue> {
        &self.uncertain
    }

    pub fn embedder(&self) -> &Arc<dyn Embedder> {
        &self.embedder
    }

    /// Where callers' outcome reports go (`POST /feedback`).
    pub fn health(&self) -> &Arc<HealthBoard> {
        &self.health
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
        let semantic = self.search(snapshot, embedded)?;
        self.decide_semantic(snapshot, input, &semantic, start)
    }

    /// The index's neighbours of an embedded text: the part of a decision that depends only on
    /// the text and the snapshot, not on the request context or provider health.
    pub fn search(
        &self,
        snapshot: &Snapshot,
        embedded: Embedded,
    ) -> Result<Semantic, PipelineError> {
        let search_start = Instant::now();
        let neighbours = snapshot
            .index
            .neighbours(&embedded.embedding, snapshot.policy.matching.k)?;
        Ok(Semantic {
            embedded,
            neighbours,
            search_us: elapsed_micros(search_start),
        })
    }

    /// Decides from a text's semantic part (fresh or cached) with this request's context and
    /// the current provider health; `start` is when the request began, for `timings_us.total`.
    pub fn decide_semantic(
        &self,
        snapshot: &Snapshot,
        input: &ClassifyInput,
        semantic: &Semantic,
        start: Instant,
    ) -> Result<Decision, PipelineError> {
        let embedded = &semantic.embedded;
        let decide_start = Instant::now();
        let mut request = input.context.clone();
        request.prompt_tokens = whole_prompt_tokens(embedded, input);
        let scoring = snapshot.index.scoring();
        let scores = scoring.score(
            snapshot.policy.matching.scorer,
            embedded.embedding.as_slice(),
            &semantic.neighbours,
        );
        // Fitted for the scorer that served (a head-less index falls back to the kNN vote).
        let fitted_threshold = scores
            .as_ref()
            .and_then(|s| scoring.calibration().threshold(s.scorer));
        let routing = self.route(
            &snapshot.policy,
            scores.as_ref(),
            fitted_threshold,
            &request,
            decide_start,
        )?;
        let decide_us = elapsed_micros(decide_start);
        let decision = Decision {
            decision_id: ulid::Ulid::new().to_string(),
            request_id: input.request_id.clone(),
            bucket: routing.bucket,
            confidence: routing.confidence,
            margin: routing.margin,
            scorer: routing.scorer,
            scores: routing.scores,
            abstained: routing.abstained,
            target: routing.target,
            fallbacks: routing.fallbacks,
            escalation: routing.escalation,
            reasons: routing.reasons,
            estimated_input_cost_usd: routing.estimated_input_cost_usd,
            canary: routing.canary,
            shadow: routing.shadow,
            neighbours: semantic.neighbours.clone(),
            tokens: embedded.tokens,
            prompt_tokens: request.prompt_tokens,
            truncated: embedded.truncated,
            policy_version: snapshot.policy.version.clone(),
            index_version: snapshot.index.version().to_owned(),
            timings_us: Timings {
                tokenize: embedded.tokenize_us,
                embed: embedded.forward_us,
                search: semantic.search_us,
                decide: decide_us,
                total: elapsed_micros(start),
            },
        };
        if is_uncertain(&decision, snapshot.policy.matching.uncertain_margin) {
            self.uncertain.offer(&decision, &input.text);
        }
        Ok(decision)
    }

    /// Decides with the current health view; when the decision would be the probe of a
    /// half-open target, claims it, or decides again with the view that shows it taken.
    fn route(
        &self,
        policy: &Policy,
        scores: Option<&BucketScores>,
        fitted_threshold: Option<f32>,
        request: &RequestContext,
        now: Instant,
    ) -> Result<Routing, DecideError> {
        let decide_with = |health: &_| {
            let input = DecideInput {
                scores,
                fitted_threshold,
                request,
                health,
                now,
            };
            decide(policy, &input)
        };
        let mut routing = decide_with(&self.health.view())?;
        for _ in 1..PROBE_CLAIM_TRIES {
            match &routing.probe {
                Some(target) if !self.health.claim_probe(target, &policy.health, now) => {
                    routing = decide_with(&self.health.view())?;
                }
                Some(_) | None => break,
            }
        }
        Ok(routing)
    }
}

/// Tokens of the whole prompt: the routed text's (counted before truncation) plus the rest,
/// estimated at the routed text's bytes per token.
fn whole_prompt_tokens(embedded: &Embedded, input: &ClassifyInput) -> usize {
    let routed_bytes = input.text.len().max(1);
    let others = (input.other_text_bytes as u128 * embedded.prompt_tokens as u128)
        .div_ceil(routed_bytes as u128);
    embedded
        .prompt_tokens
        .saturating_add(usize::try_from(others).unwrap_or(usize::MAX))
}
