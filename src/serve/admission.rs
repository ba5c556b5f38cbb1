//! Admission by waiting time, not by a fixed count: a request waits for the model up to a
//! queueing budget (`--queue-budget-ms`) and is refused (429 with `Retry-After`) only when it
//! would wait longer. Two waits are checked, both before any waiting, so past capacity the
//! refusal is immediate:
//! - the model's queue: the time the texts queued ahead of it that do not fit in the next
//!   forward pass take at the recent model time per text (`pipeline::backlog`), which the
//!   caller passes in;
//! - a permit: `--max-in-flight` bounds the requests admitted at once (their texts and
//!   workspaces are the memory at stake); a request that finds every permit taken waits for
//!   one up to the budget, refused at once when the requests waiting before it, times the
//!   recent time a permit is held, shared among the permits, would pass it.
//!
//! So a burst a little past capacity is absorbed by a few milliseconds of queueing instead of
//! turning into client retries, and no admitted request queues much longer than the budget.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Why a request was not admitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// The model's queue would take longer than the budget to reach it: refused at once.
    ModelQueueTooLong,
    /// The requests waiting for a permit before it would take longer than the budget.
    WouldWaitTooLong,
    /// It waited the whole budget and no permit came free.
    BudgetSpent,
}

#[derive(Debug)]
pub struct Admission {
    permits: Arc<Semaphore>,
    capacity: usize,
    budget: Duration,
    /// Requests waiting for a permit now.
    waiting: AtomicUsize,
    /// Recent time a request holds its permit, in µs (exponentially weighted).
    hold_us: AtomicU64,
}

/// Counts a waiter while it waits, whichever way the wait ends.
struct Waiting<'a>(&'a AtomicUsize);

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Admission {
    pub fn new(capacity: usize, budget: Duration) -> Self {
        Self {
            permits: Arc::new(Semaphore::new(capacity)),
            capacity: capacity.max(1),
            budget,
            waiting: AtomicUsize::new(0),
            hold_us: AtomicU64::new(0),
        }
    }

    /// A permit at once if one is free and the model's queue (`model_wait`, how long the
    /// request would queue for the model) is within the budget; else after waiting at most
    /// the budget for a permit.
    pub async fn admit(&self, model_wait: Duration) -> Result<OwnedSemaphorePermit, Refusal> {
        if model_wait > self.budget {
            return Err(Refusal::ModelQueueTooLong);
        }
        if let Ok(permit) = Arc::clone(&self.permits).try_acquire_owned() {
            return Ok(permit);
        }
        let position = self.waiting.fetch_add(1, Ordering::Relaxed) + 1;
        let _waiting = Waiting(&self.waiting);
        if self.expected_wait(position) > self.budget {
            return Err(Refusal::WouldWaitTooLong);
        }
        match tokio::time::timeout(self.budget, Arc::clone(&self.permits).acquire_owned()).await {
            Ok(Ok(permit)) => Ok(permit),
            // A closed semaphore (never closed here) or the budget spent.
            Ok(Err(_)) | Err(_) => Err(Refusal::BudgetSpent),
        }
    }

    /// Records how long a served request held its permit, for the next estimates.
    pub fn observe_hold(&self, held: Duration) {
        let sample = u64::try_from(held.as_micros()).unwrap_or(u64::MAX);
        let old = self.hold_us.load(Ordering::Relaxed);
        let new = if old == 0 {
            sample
        } else {
            (old * 7 + sample) / 8
        };
        self.hold_us.store(new, Ordering::Relaxed);
    }

    /// Permits come free at about `capacity / hold` per unit of time.
    fn expected_wait(&self, position: usize) -> Duration {
        let hold = self.hold_us.load(Ordering::Relaxed);
        Duration::from_micros(hold.saturating_mul(position as u64) / self.capacity as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_request_waits_for_a_permit_freed_within_the_budget() {
        let admission = Arc::new(Admission::new(1, Duration::from_secs(30)));
        let held = admission.admit(Duration::ZERO).await.unwrap();
        let waiter = tokio::spawn({
            let admission = Arc::clone(&admission);
            async move { admission.admit(Duration::ZERO).await.map(drop) }
        });
        tokio::task::yield_now().await;
        drop(held);
        assert_eq!(waiter.await.unwrap(), Ok(()));
    }

    #[tokio::test]
    async fn past_capacity_the_refusal_comes_without_waiting() {
        let admission = Admission::new(2, Duration::from_millis(20));
        let _a = admission.admit(Duration::ZERO).await.unwrap();
        let _b = admission.admit(Duration::ZERO).await.unwrap();
        // Each request holds its permit ~1 s: the first in line would wait ~0.5 s.
        admission.observe_hold(Duration::from_secs(1));
        assert_eq!(
            admission.admit(Duration::ZERO).await.err(),
            Some(Refusal::WouldWaitTooLong)
        );
        assert_eq!(admission.waiting.load(Ordering::Relaxed), 0);
    }

    #[tokio::test]
    async fn a_model_queue_longer_than_the_budget_is_refused_with_permits_free() {
        let admission = Admission::new(64, Duration::from_millis(20));
        assert_eq!(
            admission.admit(Duration::from_millis(21)).await.err(),
            Some(Refusal::ModelQueueTooLong)
        );
        assert!(admission.admit(Duration::from_millis(20)).await.is_ok());
        assert_eq!(admission.waiting.load(Ordering::Relaxed), 0);
    }

    #[tokio::test]
    async fn a_wait_ends_with_the_budget_when_no_permit_comes_free() {
        let admission = Admission::new(1, Duration::from_millis(5));
        let _held = admission.admit(Duration::ZERO).await.unwrap();
        assert_eq!(
            admission.admit(Duration::ZERO).await.err(),
            Some(Refusal::BudgetSpent)
        );
        assert_eq!(admission.waiting.load(Ordering::Relaxed), 0);
    }
}
