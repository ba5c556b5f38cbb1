//! The policy file's shape, exactly: what serde reads from the TOML, rejecting unknown
//! fields. Nothing here is checked yet (`validate` does that); the catalogue's and the rules'
//! raw shapes live beside their validation, in `catalogue` and `rules`.

use std::collections::BTreeMap;

use serde::Deserialize;

use super::validated::{Trigger, WhenUncertain};
use crate::decide::breaker::WhenAllOpen;
use crate::decide::catalogue::RawTarget;
use crate::decide::drill::RawDrill;
use crate::decide::rules::RawRule;
use crate::types::ScorerKind;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawPolicy {
    pub schema_version: u32,
    pub policy_version: String,
    pub default_bucket: String,
    pub matching: RawMatching,
    pub escalation: RawEscalation,
    /// The tenant tiers callers may state; when given, rules may only name these.
    #[serde(default)]
    pub tenant_tiers: Option<Vec<String>>,
    #[serde(default)]
    pub health: Option<RawHealth>,
    /// How conversations are routed; every field has a default.
    #[serde(default)]
    pub conversation: crate::decide::conversation::ConversationPolicy,
    pub targets: BTreeMap<String, RawTarget>,
    pub buckets: BTreeMap<String, RawBucket>,
    #[serde(default)]
    pub rules: Vec<RawRule>,
    /// Fallback drills of every bucket that does not set its own.
    #[serde(default)]
    pub drill: Option<RawDrill>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawMatching {
    #[serde(default)]
    pub scorer: Option<ScorerKind>,
    pub k: usize,
    pub min_confidence: RawThreshold,
    pub min_similarity: f32,
    #[serde(default)]
    pub uncertain_margin: Option<f32>,
    /// `capable` (default) or `top`: what a split between buckets of different tiers does.
    #[serde(default)]
    pub when_uncertain: Option<WhenUncertain>,
}

/// A confidence threshold as written: a number, or `"fitted"`.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub(super) enum RawThreshold {
    Value(f32),
    Word(String),
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawEscalation {
    pub on: Vec<Trigger>,
    pub timeout_ms: u64,
    pub max_attempts: usize,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawBucket {
    #[serde(default)]
    pub description: Option<String>,
    pub targets: Vec<String>,
    #[serde(default)]
    pub min_confidence: Option<RawThreshold>,
    #[serde(default)]
    pub escalation: Option<RawEscalation>,
    #[serde(default)]
    pub canary: Option<RawCanary>,
    /// A target that gets a mirrored copy of the traffic, for offline evaluation.
    #[serde(default)]
    pub shadow: Option<String>,
    /// This bucket's fallback drills (wins over the top-level `drill`).
    #[serde(default)]
    pub drill: Option<RawDrill>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawCanary {
    pub target: String,
    pub percent: u8,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawHealth {
    pub window: usize,
    pub min_requests: usize,
    pub error_rate_to_open: f64,
    pub consecutive_failures_to_open: u32,
    pub cooldown_ms: u64,
    pub when_all_open: WhenAllOpen,
}
