//! The request path after the text: embed → search → score → decide, and the offer of
//! uncertain decisions to the labeling queue. Everything that classifies (the batcher,
//! the synchronous callers, eval) runs these functions; nothing else composes the stages.

use std::sync::Arc;
use std::time::Instant;

use super::conversation::TurnPlace;
use super::input::ClassifyInput;
use super::snapshot::Snapshot;
use super::uncertain::{is_uncertain, UncertainQueue};
use super::PipelineError;
use crate::decide::conversation::{ContextTurn, ConversationInput};
use crate::decide::{
    decide, DecideError, DecideInput, Decision, HealthView, Policy, RequestContext, Routing,
    Timings,
};
use crate::embed::{Embedded, Embedder};
use crate::live::HealthBoard;
use crate::types::{elapsed_micros, BucketScores, Neighbour};

/// Decisions tried per request when probes of half-open targets are claimed by others first:
/// each failed claim takes one target out of the next try, and a bucket has at most three.
const PROBE_CLAIM_TRIES: usize = 4;

/// What the embedding and the index say about one text: everything a decision needs besides
/// the request context, the policy's rules and provider health. Cacheable per snapshot.
#[derive(Debug, Clone)]
pub struct Retrieval {
    pub embedded: Embedded,
    pub neighbours: Vec<Neighbour>,
    pub search_us: u64,
}

/// An earlier turn of the conversation, retrieved.
#[derive(Debug, Clone)]
pub struct EarlierRetrieval {
    pub turn: TurnPlace,
    pub retrieval: Arc<Retrieval>,
}

/// The parts every classification uses: the embedder (not hot-swapped; a model change is a
/// restart), the provider health board (per process) and the queue of uncertain decisions.
pub struct Stages {
    pub embedder: Arc<dyn Embedder>,
    pub health: Arc<HealthBoard>,
    pub uncertain: Arc<UncertainQueue>,
}

impl Stages {
    /// Embeds texts: a lone text alone, several in one pass (see `Embedder::embed_batch`).
    pub fn embed(&self, texts: &[&str]) -> Result<Vec<Embedded>, PipelineError> {
        // One forward pass may serve several requests (the batcher): no request parent here.
        let _span = tracing::debug_span!("embed", texts = texts.len()).entered();
        Ok(match texts {
            [one] => vec![self.embedder.embed(one)?],
            many => self.embedder.embed_batch(many)?,
        })
    }

    /// The index's neighbours of an embedded text: the part of a decision that depends only
    /// on the text and the snapshot.
    pub fn retrieve(
        &self,
        snapshot: &Snapshot,
        embedded: Embedded,
    ) -> Result<Retrieval, PipelineError> {
        let _span = tracing::debug_span!("search").entered();
        let start = Instant::now();
        let neighbours = snapshot
            .bundle
            .neighbours(&embedded.embedding, snapshot.policy.matching.k)?;
        Ok(Retrieval {
            embedded,
            neighbours,
            search_us: elapsed_micros(start),
        })
    }

    /// Scores and decides a retrieved turn (fresh or cached) with the earlier turns of its
    /// conversation, this request's context and the current provider health; `start` is
    /// when the request began. Offers the decision to the uncertain queue when the router
    /// was unsure.
    pub fn decide(
        &self,
        snapshot: &Snapshot,
        input: &ClassifyInput,
        current: &Retrieval,
        earlier: &[EarlierRetrieval],
        start: Instant,
    ) -> Result<Decision, PipelineError> {
        let embedded = &current.embedded;
        let score_span = tracing::debug_span!("score", turns = earlier.len() + 1).entered();
        let score_start = Instant::now();
        let scoring = &snapshot.bundle.scoring;
        let scorer = snapshot.policy.matching.scorer;
        let score =
            |r: &Retrieval| scoring.score(scorer, r.embedded.embedding.as_slice(), &r.neighbours);
        let scores = score(current);
        let earlier_scores: Vec<Option<BucketScores>> =
            earlier.iter().map(|e| score(&e.retrieval)).collect();
        let score_us = elapsed_micros(score_start);
        drop(score_span);
        let _decide_span = tracing::debug_span!("decide").entered();
        let conversation = ConversationInput {
            turns: earlier
                .iter()
                .zip(&earlier_scores)
                .filter_map(|(e, s)| {
                    Some(ContextTurn {
                        message_index: e.turn.message_index,
                        speaker: e.turn.speaker,
                        distance: e.turn.distance,
                        scores: s.as_ref()?,
                        tokens: e.retrieval.embedded.tokens,
                    })
                })
                .collect(),
            current_tokens: embedded.tokens,
        };
        let decide_start = Instant::now();
        let mut request = input.context.clone();
        request.prompt_tokens = input.whole_prompt_tokens(embedded);
        let routing = self.route(
            &snapshot.policy,
            &Inputs {
                scores: scores.as_ref(),
                fitted_threshold: scoring.fitted_threshold(scorer),
                conversation: (!conversation.turns.is_empty()).then_some(&conversation),
                request: &request,
            },
            decide_start,
        )?;
        let decide_us = elapsed_micros(decide_start);
        let decision = Decision {
            decision_id: ulid::Ulid::new().to_string(),
            request_id: input.request_id.clone(),
            routing,
            neighbours: current.neighbours.clone(),
            tokens: embedded.tokens,
            prompt_tokens: request.prompt_tokens,
            truncated: embedded.truncated,
            policy_version: snapshot.policy.version.clone(),
            index_version: snapshot.bundle.version().to_owned(),
            timings_us: Timings {
                tokenize: embedded.tokenize_us,
                embed: embedded.forward_us,
                search: current.search_us,
                score: score_us,
                decide: decide_us,
                total: elapsed_micros(start),
            },
        };
        if is_uncertain(&decision, snapshot.policy.matching.uncertain_margin) {
            self.uncertain
                .offer(&decision, &input.text, input.context.tenant.as_deref());
        }
        Ok(decision)
    }

    /// Decides with the current health view; when the decision would be the probe of a
    /// half-open target, claims it, or decides again with the view that shows it taken.
    fn route(
        &self,
        policy: &Policy,
        inputs: &Inputs<'_>,
        now: Instant,
    ) -> Result<Routing, DecideError> {
        let decide_with = |health: &HealthView| {
            decide(
                policy,
                &DecideInput {
                    scores: inputs.scores,
                    fitted_threshold: inputs.fitted_threshold,
                    conversation: inputs.conversation,
                    request: inputs.request,
                    health,
                    now,
                },
            )
        };
        let mut view = self.health.view();
        let mut routing = decide_with(&view)?;
        for _ in 1..PROBE_CLAIM_TRIES {
            match &routing.probe {
                Some(target) if !self.health.claim_probe(target, &policy.health, now) => {
                    view = self.health.view();
                    routing = decide_with(&view)?;
                }
                Some(_) | None => break,
            }
        }
        Ok(routing)
    }
}

/// What a decision depends on besides the policy, the health view and the clock.
struct Inputs<'a> {
    scores: Option<&'a BucketScores>,
    fitted_threshold: Option<f32>,
    conversation: Option<&'a ConversationInput<'a>>,
    request: &'a RequestContext,
}
