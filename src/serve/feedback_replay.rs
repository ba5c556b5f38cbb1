//! One report per decision and target: a caller that holds one genuine decision cannot
//! replay its signed report thirty times to open a breaker. A decision leads to at most one
//! call per target it names, so a second report about the same pair is a replay.
//!
//! The guard remembers the pairs reported within [`MAX_REPORT_AGE`] of their decision (ULIDs
//! carry their creation time, so older decisions are refused outright and need no memory),
//! at most [`MAX_REMEMBERED`] of them: past that the oldest are forgotten, and the per-caller
//! rate limit still bounds what a replay of a forgotten pair can do.

use std::collections::{HashSet, VecDeque};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// How long after a decision its outcome may be reported.
pub const MAX_REPORT_AGE: Duration = Duration::from_secs(15 * 60);
/// Pairs remembered at most (about 100 bytes each).
pub const MAX_REMEMBERED: usize = 200_000;

/// Why a report is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// The decision is older than [`MAX_REPORT_AGE`] (or its id holds no time).
    Stale,
    /// This decision and target were reported already.
    Replayed,
}

#[derive(Debug, Clone)]
pub struct ReplayGuard {
    inner: Arc<Mutex<Seen>>,
    capacity: usize,
}

#[derive(Debug, Default)]
struct Seen {
    pairs: HashSet<(String, String)>,
    /// Insertion order, with each decision's time, for forgetting.
    order: VecDeque<(u64, (String, String))>,
}

impl Default for ReplayGuard {
    fn default() -> Self {
        Self::with_capacity(MAX_REMEMBERED)
    }
}

impl ReplayGuard {
    pub fn with_capacity(capacity: usize) -> Self {
        Self {
            inner: Arc::default(),
            capacity: capacity.max(1),
        }
    }

    /// Accepts the first report of `decision_id` for `target` made in time; refuses the rest.
    /// Call only for reports whose signature was verified.
    pub fn admit(&self, decision_id: &str, target: &str, now: SystemTime) -> Result<(), Refusal> {
        let now_ms = millis(now);
        let issued_ms = ulid::Ulid::from_string(decision_id)
            .map_err(|_| Refusal::Stale)?
            .timestamp_ms();
        let max_age_ms = MAX_REPORT_AGE.as_millis() as u64;
        if now_ms.saturating_sub(issued_ms) > max_age_ms {
            return Err(Refusal::Stale);
        }
        let mut seen = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        // Forget what can no longer be reported, then the oldest past capacity.
        while let Some((issued, _)) = seen.order.front() {
            if now_ms.saturating_sub(*issued) <= max_age_ms && seen.order.len() < self.capacity {
                break;
            }
            if let Some((_, pair)) = seen.order.pop_front() {
                seen.pairs.remove(&pair);
            }
        }
        let pair = (decision_id.to_owned(), target.to_owned());
        if !seen.pairs.insert(pair.clone()) {
            return Err(Refusal::Replayed);
        }
        seen.order.push_back((issued_ms, pair));
        Ok(())
    }
}

fn millis(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id_at(t: SystemTime) -> String {
        ulid::Ulid::from_datetime(t).to_string()
    }

    #[test]
    fn a_pair_is_reported_once_and_other_targets_stay_open() {
        let guard = ReplayGuard::default();
        let now = SystemTime::now();
        let id = id_at(now);
        assert_eq!(guard.admit(&id, "mid-a", now), Ok(()));
        assert_eq!(guard.admit(&id, "mid-a", now), Err(Refusal::Replayed));
        assert_eq!(guard.admit(&id, "mid-b", now), Ok(()));
        assert_eq!(guard.admit(&id_at(now), "mid-a", now), Ok(()));
    }

    #[test]
    fn old_or_timeless_decisions_are_stale() {
        let guard = ReplayGuard::default();
        let now = SystemTime::now();
        let old = id_at(now - MAX_REPORT_AGE - Duration::from_secs(1));
        assert_eq!(guard.admit(&old, "mid-a", now), Err(Refusal::Stale));
        assert_eq!(guard.admit("not-a-ulid", "mid-a", now), Err(Refusal::Stale));
    }

    #[test]
    fn memory_stays_bounded() {
        let guard = ReplayGuard::with_capacity(3);
        let now = SystemTime::now();
        let ids: Vec<String> = (0..5).map(|_| id_at(now)).collect();
        for id in &ids {
            assert_eq!(guard.admit(id, "t", now), Ok(()));
        }
        let seen = guard.inner.lock().unwrap();
        assert!(seen.pairs.len() <= 3 && seen.order.len() == seen.pairs.len());
    }
}
