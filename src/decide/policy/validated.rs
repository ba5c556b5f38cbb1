//! The validated policy: the only policy types the rest of the code sees. Built by
//! `validate` from the raw file shape, so what they promise (at most [`MAX_TARGETS`] targets
//! per bucket, a default bucket that exists, rules naming only what the policy declares) is
//! never re-checked.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::decide::breaker::HealthConfig;
use crate::decide::canary::CanarySpec;
use crate::decide::catalogue::{Target, Tier};
use crate::decide::conversation::ConversationPolicy;
use crate::decide::rules::Rule;
use crate::types::{BucketId, ScorerKind};

/// Primary plus fallbacks: more than three targets per request makes tail latency a sum of
/// timeouts that no caller budgets for.
pub const MAX_TARGETS: usize = 3;

/// What makes the caller move on to the next target.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    Serialize,
    Deserialize,
    utoipa::ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Trigger {
    Timeout,
    RateLimited,
    ServerError,
    VerifierRejected,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Escalation {
    pub on: Vec<Trigger>,
    pub timeout_ms: u64,
    pub max_attempts: usize,
}

#[derive(Debug, Clone, PartialEq)]
pub struct BucketPolicy {
    pub description: Option<String>,
    /// Primary first, then fallbacks; 1..=MAX_TARGETS, no repeats.
    pub targets: Vec<Arc<Target>>,
    pub min_confidence: Threshold,
    pub escalation: Escalation,
    /// Never the bucket's primary.
    pub canary: Option<CanarySpec>,
    /// Never one of the bucket's targets or its canary.
    pub shadow: Option<Arc<Target>>,
    /// Fallback drills: the bucket's own `drill`, else the top-level one.
    pub drill: Option<crate::decide::drill::DrillSpec>,
}

/// The confidence below which a bucket is not trusted (the default bucket serves).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Threshold {
    /// A calibrated probability written in the policy.
    Fixed(f32),
    /// The threshold `router fit` fitted for the serving scorer (stored with the scoring
    /// model, passed to `decide` with the scores); 0 where none was fitted.
    Fitted,
}

impl Threshold {
    /// The number to compare a confidence with, given the fitted threshold (if any).
    pub fn resolve(self, fitted: Option<f32>) -> f32 {
        match self {
            Self::Fixed(v) => v,
            Self::Fitted => fitted.unwrap_or(0.0),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Matching {
    /// How neighbours and the head become bucket probabilities.
    pub scorer: ScorerKind,
    /// Neighbours searched per request (what the kNN scorers count).
    pub k: usize,
    /// Global confidence floor; a bucket may raise or lower it for itself.
    pub min_confidence: Threshold,
    /// Below this cosine for the nearest archetype, the prompt is like nothing we know.
    pub min_similarity: f32,
    /// Decisions whose margin (top-1 minus top-2 probability) is below this, or that
    /// abstained, are kept for labeling (`GET /admin/uncertain`).
    pub uncertain_margin: f32,
    pub when_uncertain: WhenUncertain,
}

/// What a decision does when its top two buckets are within `uncertain_margin` and their
/// primary targets are of different tiers.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum WhenUncertain {
    /// The more capable tier wins: the router's errors then cost money, not quality.
    #[default]
    Capable,
    /// The top bucket wins, whatever its tier.
    Top,
}

/// Margin below which a decision is kept for labeling unless the policy says otherwise.
pub const DEFAULT_UNCERTAIN_MARGIN: f32 = 0.2;

/// A validated routing policy.
#[derive(Debug, Clone, PartialEq)]
pub struct Policy {
    pub version: String,
    pub default_bucket: BucketId,
    pub matching: Matching,
    pub buckets: BTreeMap<BucketId, BucketPolicy>,
    /// The catalogue: every declared target by name.
    pub targets: BTreeMap<String, Arc<Target>>,
    /// Side rules in the order they are evaluated.
    pub rules: Vec<Rule>,
    pub health: HealthConfig,
    pub tenant_tiers: Option<BTreeSet<String>>,
    /// How the earlier turns of a conversation shape its routing.
    pub conversation: ConversationPolicy,
}

impl Policy {
    pub fn bucket(&self, id: &BucketId) -> Option<&BucketPolicy> {
        self.buckets.get(id)
    }

    /// The tier of the bucket's primary target (`None` for an unknown bucket).
    pub fn primary_tier(&self, id: &BucketId) -> Option<Tier> {
        self.bucket(id)?.targets.first().map(|t| t.tier)
    }

    pub fn target(&self, name: &str) -> Option<&Arc<Target>> {
        self.targets.get(name)
    }
}
