//! How much work waits for the model and how long it will take: what the edge's admission
//! reads to refuse at once a request that would wait past its queueing budget, instead of
//! queueing it behind a fixed count of others.
//!
//! The batch worker keeps both numbers: the texts submitted and not yet answered (queued, or
//! in the forward pass running now) and the recent model time per text (a batch's wall time
//! divided by its texts, so the saving of batching is in it). Their product is the time the
//! queue ahead of a new text takes to drain.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

#[derive(Debug, Default)]
pub struct Backlog {
    /// Texts submitted and not yet answered.
    texts: AtomicUsize,
    /// Recent model time per text in ns (exponentially weighted over batches); 0 until the
    /// first batch, so nothing is refused before anything was measured.
    per_text_ns: AtomicU64,
}

impl Backlog {
    /// The time the texts already submitted take to go through the model.
    pub fn expected_wait(&self) -> Duration {
        let texts = self.texts.load(Ordering::Relaxed) as u64;
        Duration::from_nanos(texts.saturating_mul(self.per_text_ns.load(Ordering::Relaxed)))
    }

    /// Texts submitted and not yet answered.
    pub fn texts(&self) -> usize {
        self.texts.load(Ordering::Relaxed)
    }

    /// Counts one submitted text until the returned ticket drops (answered or abandoned).
    pub(super) fn enter(self: &Arc<Self>) -> Ticket {
        self.texts.fetch_add(1, Ordering::Relaxed);
        Ticket(Arc::clone(self))
    }

    /// Records a batch of `texts` that took `took` in the worker.
    pub(super) fn observe_batch(&self, texts: usize, took: Duration) {
        if texts == 0 {
            return;
        }
        let sample = u64::try_from(took.as_nanos() / texts as u128).unwrap_or(u64::MAX);
        let old = self.per_text_ns.load(Ordering::Relaxed);
        // A quarter weight: a change of prompt mix shows within a few batches.
        let new = if old == 0 {
            sample
        } else {
            old - old / 4 + sample / 4
        };
        self.per_text_ns.store(new.max(1), Ordering::Relaxed);
    }
}

/// One text counted in the backlog while it is alive.
#[derive(Debug)]
pub(super) struct Ticket(Arc<Backlog>);

impl Drop for Ticket {
    fn drop(&mut self) {
        self.0.texts.fetch_sub(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_wait_is_the_texts_ahead_times_the_recent_time_per_text() {
        let backlog = Arc::new(Backlog::default());
        let tickets: Vec<Ticket> = (0..3).map(|_| backlog.enter()).collect();
        assert_eq!(
            backlog.expected_wait(),
            Duration::ZERO,
            "nothing measured yet"
        );
        backlog.observe_batch(4, Duration::from_millis(40));
        assert_eq!(backlog.expected_wait(), Duration::from_millis(30));
        drop(tickets);
        assert_eq!(backlog.texts(), 0);
        assert_eq!(backlog.expected_wait(), Duration::ZERO);
    }

    #[test]
    fn the_time_per_text_follows_recent_batches() {
        let backlog = Backlog::default();
        backlog.observe_batch(1, Duration::from_millis(8));
        for _ in 0..20 {
            backlog.observe_batch(2, Duration::from_millis(4));
        }
        let per_text = backlog.per_text_ns.load(Ordering::Relaxed);
        assert!((2_000_000..2_100_000).contains(&per_text), "{per_text}");
        backlog.observe_batch(0, Duration::from_secs(1));
        assert_eq!(backlog.per_text_ns.load(Ordering::Relaxed), per_text);
    }
}
