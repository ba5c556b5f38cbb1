//! What the router answers: the [`Decision`] (JSON of `POST /classify`) and its parts.

use std::sync::Arc;

use serde::Serialize;

use super::canary::CanaryApplied;
use super::catalogue::Target;
use super::conversation::ConversationReport;
use super::policy::Escalation;
use crate::types::{BucketId, BucketScore, Neighbour, ScorerKind};

/// Buckets listed with their scores in a decision (the rest are near zero by then).
pub const MAX_LISTED_SCORES: usize = 10;

/// The routing outcome of the pure `decide` step, before ids, versions and timings. Its
/// fields appear at the top level of the decision JSON.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Routing {
    pub bucket: BucketId,
    /// Calibrated probability that the semantic match is right.
    pub confidence: f32,
    /// Top-1 minus top-2 probability of the semantic match (0 without one): small when two
    /// buckets are close.
    pub margin: f32,
    /// The scorer that produced the scores (absent without archetypes).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scorer: Option<ScorerKind>,
    /// The most likely buckets with their calibrated probabilities, highest first.
    pub scores: Vec<BucketScore>,
    /// True when the semantic match was not trusted and the default bucket was used.
    pub abstained: bool,
    pub target: Arc<Target>,
    /// At most `MAX_TARGETS - 1`; never the primary.
    pub fallbacks: Vec<Arc<Target>>,
    pub escalation: Escalation,
    /// Every step that shaped the outcome, in order.
    pub reasons: Vec<String>,
    /// Prompt tokens × the primary's input list price, in USD.
    pub estimated_input_cost_usd: f64,
    /// Set when the canary split sent this request to the bucket's canary target.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub canary: Option<CanaryApplied>,
    /// Set when this decision is a fallback drill: the first fallback is named as the target.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub drill: Option<super::drill::DrillApplied>,
    /// A target to mirror the request to for evaluation; its answer is never used.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shadow: Option<Arc<Target>>,
    /// Set when the primary is half-open and this request would be its one probe: the caller
    /// claims the probe (`HealthBoard::claim_probe`) or decides again with a fresh view.
    #[serde(skip)]
    pub probe: Option<String>,
    /// How the earlier turns of a conversation shaped the decision (absent for a prompt).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub conversation: Option<ConversationReport>,
}

/// Microseconds spent per stage of one decision.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Timings {
    pub tokenize: u64,
    pub embed: u64,
    pub search: u64,
    pub score: u64,
    pub decide: u64,
    pub total: u64,
}

/// The full decision returned to callers and logged: the routing plus what identifies and
/// explains it (ids, neighbours, token counts, versions, timings).
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Decision {
    pub decision_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
    #[serde(flatten)]
    pub routing: Routing,
    pub neighbours: Vec<Neighbour>,
    /// Tokens the model embedded, and whether the prompt was longer than that.
    pub tokens: usize,
    /// Tokens of the whole prompt (every turn), as the side rules saw it.
    pub prompt_tokens: usize,
    pub truncated: bool,
    pub policy_version: String,
    pub index_version: String,
    pub timings_us: Timings,
}
