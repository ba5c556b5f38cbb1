//! What the router answers: the [`Decision`] (JSON of `POST /classify`) and its parts.

use serde::Serialize;

use super::policy::{Escalation, Target};
use crate::types::{BucketId, Neighbour};

/// The routing outcome of the pure `decide` step, before ids, versions and timings.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Routing {
    pub bucket: BucketId,
    pub confidence: f32,
    /// True when the semantic match was not trusted and the default bucket was used.
    pub abstained: bool,
    pub target: Target,
    pub fallbacks: Vec<Target>,
    pub escalation: Escalation,
    /// Every step that shaped the outcome, in order.
    pub reasons: Vec<String>,
}

/// Microseconds spent per stage of one decision.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Timings {
    pub tokenize: u64,
    pub embed: u64,
    pub search: u64,
    pub decide: u64,
    pub total: u64,
}

/// The full decision returned to callers and logged.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Decision {
    pub decision_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
    pub bucket: BucketId,
    pub confidence: f32,
    pub abstained: bool,
    pub target: Target,
    pub fallbacks: Vec<Target>,
    pub escalation: Escalation,
    pub reasons: Vec<String>,
    pub neighbours: Vec<Neighbour>,
    /// Tokens the model embedded, and whether the prompt was longer than that.
    pub tokens: usize,
    pub prompt_tokens: usize,
    pub truncated: bool,
    pub policy_version: String,
    pub index_version: String,
    pub timings_us: Timings,
}
