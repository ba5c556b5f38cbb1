//! The learning loop's inbox: decisions the router was unsure of (it abstained, or the top
//! two buckets were close), kept in a bounded queue so operators can label them and add them
//! back as archetypes (`GET /admin/uncertain`, then `POST /archetypes`).
//!
//! Bounded and in memory on purpose: it holds prompt text, so it never grows without limit
//! and never reaches the data directory; capacity 0 turns it off. With a shared store
//! (`--store postgres://…`) each item is also handed to the fleet's queue in the database
//! ([`SharedUncertain`], written off the request path), so every replica shows every
//! replica's items.

use std::collections::VecDeque;
use std::sync::{Mutex, OnceLock};

use serde::{Deserialize, Serialize};

use crate::decide::Decision;
use crate::store::shared::uncertain::SharedUncertain;
use crate::store::SHARED_NAMESPACE;
use crate::types::BucketScore;

/// Prompt characters kept per item: enough to label it, bounded so a 1 MB prompt stays small.
pub const MAX_TEXT_CHARS: usize = 2000;
/// Items kept unless configured otherwise.
pub const DEFAULT_CAPACITY: usize = 1000;
/// Bucket scores kept per item.
const SCORES_KEPT: usize = 3;

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct UncertainItem {
    pub decision_id: String,
    /// Seconds since the Unix epoch.
    pub at: u64,
    /// The routed text, cut at [`MAX_TEXT_CHARS`] characters.
    pub text: String,
    pub text_truncated: bool,
    pub bucket: String,
    pub abstained: bool,
    pub confidence: f32,
    pub margin: f32,
    /// The closest buckets: what a labeler chooses between.
    pub scores: Vec<BucketScore>,
    pub policy_version: String,
    pub index_version: String,
    /// The request's tenant: a tenant's token sees only its own items.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant: Option<String>,
}

/// Why a decision is kept, given the policy's margin floor.
pub fn is_uncertain(decision: &Decision, margin_below: f32) -> bool {
    decision.routing.abstained || decision.routing.margin < margin_below
}

pub struct UncertainQueue {
    capacity: usize,
    inner: Mutex<Inner>,
    /// The fleet's queue, set once at start-up when the store is shared.
    shared: OnceLock<SharedUncertain>,
}

#[derive(Default)]
struct Inner {
    items: VecDeque<UncertainItem>,
    /// Items ever offered, including those pushed out by newer ones.
    seen: u64,
}

impl UncertainQueue {
    pub fn new(capacity: usize) -> Self {
        Self {
            capacity,
            inner: Mutex::new(Inner::default()),
            shared: OnceLock::new(),
        }
    }

    /// Hands every item from now on to the fleet's queue too (a second call changes nothing).
    pub fn share(&self, shared: SharedUncertain) {
        let _ = self.shared.set(shared);
    }

    /// The fleet's queue, when the store is shared.
    pub fn shared(&self) -> Option<&SharedUncertain> {
        self.shared.get()
    }

    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Keeps `decision` for `text`; the oldest item leaves when the queue is full.
    pub fn offer(&self, decision: &Decision, text: &str, tenant: Option<&str>) {
        if self.capacity == 0 {
            return;
        }
        let kept: String = text.chars().take(MAX_TEXT_CHARS).collect();
        let item = UncertainItem {
            decision_id: decision.decision_id.clone(),
            at: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs()),
            text_truncated: kept.len() < text.len(),
            text: kept,
            bucket: decision.routing.bucket.to_string(),
            abstained: decision.routing.abstained,
            confidence: decision.routing.confidence,
            margin: decision.routing.margin,
            scores: decision
                .routing
                .scores
                .iter()
                .take(SCORES_KEPT)
                .cloned()
                .collect(),
            policy_version: decision.policy_version.clone(),
            index_version: decision.index_version.clone(),
            tenant: tenant.map(str::to_owned),
        };
        if let Some(shared) = self.shared.get() {
            match serde_json::to_string(&item) {
                Ok(json) => shared.offer(tenant.unwrap_or(SHARED_NAMESPACE), json),
                Err(e) => tracing::warn!(error = %e, "an uncertain item did not serialise"),
            }
        }
        let mut inner = self.lock();
        if inner.items.len() == self.capacity {
            inner.items.pop_front();
        }
        inner.items.push_back(item);
        inner.seen += 1;
    }

    /// The newest `limit` items, newest first, and how many were ever offered.
    pub fn newest(&self, limit: usize) -> (Vec<UncertainItem>, u64) {
        let inner = self.lock();
        (
            inner.items.iter().rev().take(limit).cloned().collect(),
            inner.seen,
        )
    }

    pub fn len(&self) -> usize {
        self.lock().items.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A panic while holding the lock cannot leave the queue inconsistent: take it anyway.
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl Default for UncertainQueue {
    fn default() -> Self {
        Self::new(DEFAULT_CAPACITY)
    }
}
