//! `GET /admin/stats`: what the last decisions of this replica did (shares by bucket and
//! target, abstentions, under-confident decisions, estimated spend against the most
//! expensive target), summarised by `eval::decisions` like `router report` does for a file.
//!
//! Each decision pushes a few fields onto a bounded ring (newest kept); the summary is
//! computed when asked, under the current policy's prices and margin. Per replica, in memory.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, PoisonError};

use axum::extract::State;
use axum::Json;
use serde::Serialize;
use utoipa::ToSchema;

use super::error::{ApiError, ErrorBody};
use super::openapi::AdminErrors;
use super::AppState;
use crate::decide::Decision;
use crate::eval::decisions::{summarize, Baseline, DecisionFacts, DecisionSummary};

/// Decisions kept for `/admin/stats` (a few hundred KiB at most).
pub const RECENT_CAPACITY: usize = 10_000;

/// The newest decisions' facts; cheap to clone.
#[derive(Clone)]
pub struct RecentDecisions {
    ring: Arc<Mutex<Ring>>,
}

struct Ring {
    facts: VecDeque<DecisionFacts>,
    capacity: usize,
    /// Decisions recorded since start, kept or not.
    seen: u64,
}

impl Default for RecentDecisions {
    fn default() -> Self {
        Self::with_capacity(RECENT_CAPACITY)
    }
}

impl RecentDecisions {
    pub fn with_capacity(capacity: usize) -> Self {
        Self {
            ring: Arc::new(Mutex::new(Ring {
                facts: VecDeque::with_capacity(capacity.min(1024)),
                capacity: capacity.max(1),
                seen: 0,
            })),
        }
    }

    pub fn record(&self, decision: &Decision) {
        let r = &decision.routing;
        let facts = DecisionFacts {
            bucket: r.bucket.to_string(),
            target: r.target.name.clone(),
            abstained: r.abstained,
            margin: r.margin,
            prompt_tokens: decision.prompt_tokens,
            estimated_input_cost_usd: r.estimated_input_cost_usd,
        };
        // A poisoned ring only means a panic elsewhere mid-push; its data is still counts.
        let mut ring = self.ring.lock().unwrap_or_else(PoisonError::into_inner);
        if ring.facts.len() == ring.capacity {
            ring.facts.pop_front();
        }
        ring.facts.push_back(facts);
        ring.seen += 1;
    }

    fn summary(&self, baseline: &Baseline) -> (DecisionSummary, u64, usize) {
        let ring = self.ring.lock().unwrap_or_else(PoisonError::into_inner);
        (summarize(&ring.facts, baseline), ring.seen, ring.capacity)
    }
}

/// `GET /admin/stats`.
#[derive(Debug, Serialize, ToSchema)]
pub struct StatsAnswer {
    /// Decisions made since this replica started (the summary covers the newest `window`).
    pub seen: u64,
    pub window: usize,
    pub policy_version: String,
    #[serde(flatten)]
    pub summary: DecisionSummary,
}

#[utoipa::path(get, path = "/admin/stats", security(("admin_token" = [])), tag = "admin",
    responses((status = 200, description = "A summary of this replica's recent decisions", body = StatsAnswer),
        (status = 500, description = "internal (a policy without targets)", body = ErrorBody), AdminErrors))]
pub async fn stats(State(state): State<AppState>) -> Result<Json<StatsAnswer>, ApiError> {
    let core = state.core()?;
    let snapshot = core.live.snapshot();
    let baseline = Baseline::from_policy(&snapshot.policy).ok_or_else(|| {
        ApiError::Internal("the policy has no target; a validated policy always has one".into())
    })?;
    let (summary, seen, window) = state.recent.summary(&baseline);
    Ok(Json(StatsAnswer {
        seen,
        window,
        policy_version: snapshot.policy.version.clone(),
        summary,
    }))
}
