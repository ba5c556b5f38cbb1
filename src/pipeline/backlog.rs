//! How long a new text would queue for the model: what the edge's admission reads to refuse
//! at once a request that would wait past its queueing budget, instead of queueing it behind
//! a fixed count of others.
//!
//! The batcher runs one forward pass at a time and takes what is queued (up to
//! [`MAX_BATCH`] texts and [`MAX_BATCH_BYTES`]) into the next one. So a new text is taken by
//! the next pass unless the texts queued before it already fill it: its queueing is the time
//! of the queued texts that do not fit, at the recent model time per text (a forward pass's
//! wall time divided by its texts, so the saving of batching is in it; the searches after
//! it, up to a tenth of a short text's pass, are left out). The pass in progress is not
//! counted: it is already running, and bounded by the same caps, so it adds at most one
//! pass of service to every request alike.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use super::batcher::{MAX_BATCH, MAX_BATCH_BYTES};

#[derive(Debug, Default)]
pub struct Backlog {
    /// Texts submitted and not yet taken into a pass, and their bytes (each text's
    /// `Embedder::pass_cost`: what the batcher counts against `MAX_BATCH_BYTES`).
    queued: AtomicUsize,
    queued_bytes: AtomicUsize,
    /// Recent model time per text in ns (exponentially weighted over passes); 0 until the
    /// first pass, so nothing is refused before anything was measured.
    per_text_ns: AtomicU64,
}

impl Backlog {
    /// How long a text submitted now would queue behind the texts before it.
    pub fn expected_wait(&self) -> Duration {
        let per_text = self.per_text_ns.load(Ordering::Relaxed);
        Duration::from_nanos(per_text.saturating_mul(self.beyond_next_batch() as u64))
    }

    /// Texts queued for the model and not yet taken into a forward pass.
    pub fn queued(&self) -> usize {
        self.queued.load(Ordering::Relaxed)
    }

    /// Queued texts that will not fit in the next batch (by count or by bytes, the queue's
    /// mean text standing in for each).
    fn beyond_next_batch(&self) -> usize {
        let queued = self.queued.load(Ordering::Relaxed);
        let bytes = self.queued_bytes.load(Ordering::Relaxed);
        let by_count = queued.saturating_sub(MAX_BATCH);
        let by_bytes = match bytes.checked_sub(MAX_BATCH_BYTES) {
            Some(over) if over > 0 => queued.saturating_mul(over) / bytes,
            _ => 0,
        };
        by_count.max(by_bytes)
    }

    /// A text counting `bytes` was submitted.
    pub(super) fn submitted(&self, bytes: usize) {
        self.queued.fetch_add(1, Ordering::Relaxed);
        self.queued_bytes.fetch_add(bytes, Ordering::Relaxed);
    }

    /// `(texts, bytes)` left the queue: the batcher took them into a pass.
    pub(super) fn taken(&self, (texts, bytes): (usize, usize)) {
        self.queued.fetch_sub(texts, Ordering::Relaxed);
        self.queued_bytes.fetch_sub(bytes, Ordering::Relaxed);
    }

    /// Records a finished pass of `texts` that took `took`.
    pub(super) fn observe_pass(&self, texts: usize, took: Duration) {
        if texts == 0 {
            return;
        }
        let sample = u64::try_from(took.as_nanos() / texts as u128).unwrap_or(u64::MAX);
        let old = self.per_text_ns.load(Ordering::Relaxed);
        // A quarter weight: a change of prompt mix shows within a few passes.
        let new = if old == 0 {
            sample
        } else {
            old - old / 4 + sample / 4
        };
        self.per_text_ns.store(new.max(1), Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_text_waits_only_for_the_texts_that_do_not_fit_in_the_next_pass() {
        let backlog = Backlog::default();
        backlog.observe_pass(4, Duration::from_secs(40)); // 10 s a text
        assert_eq!(backlog.expected_wait(), Duration::ZERO, "idle");
        for _ in 0..MAX_BATCH {
            backlog.submitted(10);
        }
        // A full batch queued: the next pass has no room for a new text.
        assert_eq!(backlog.expected_wait(), Duration::ZERO);
        backlog.submitted(10);
        assert_eq!(backlog.expected_wait(), Duration::from_secs(10));
        assert_eq!(backlog.queued(), MAX_BATCH + 1);
        backlog.taken((MAX_BATCH, 10 * MAX_BATCH));
        assert_eq!(backlog.expected_wait(), Duration::ZERO);
        backlog.taken((1, 10));
        assert_eq!(backlog.queued(), 0);
    }

    #[test]
    fn long_texts_past_one_batch_in_bytes_are_waiting_ahead() {
        let backlog = Backlog::default();
        backlog.observe_pass(1, Duration::from_secs(1));
        for _ in 0..4 {
            backlog.submitted(MAX_BATCH_BYTES / 2);
        }
        // Two fit in the next batch; the other two are ahead of a new text.
        assert_eq!(backlog.expected_wait(), Duration::from_secs(2));
        backlog.taken((1, MAX_BATCH_BYTES / 2));
        assert_eq!(backlog.expected_wait(), Duration::from_secs(1));
    }

    #[test]
    fn the_time_per_text_follows_recent_passes() {
        let backlog = Backlog::default();
        backlog.observe_pass(1, Duration::from_millis(8));
        for _ in 0..20 {
            backlog.observe_pass(2, Duration::from_millis(4));
        }
        let per_text = backlog.per_text_ns.load(Ordering::Relaxed);
        assert!((2_000_000..2_100_000).contains(&per_text), "{per_text}");
        backlog.observe_pass(0, Duration::from_secs(1));
        assert_eq!(backlog.per_text_ns.load(Ordering::Relaxed), per_text);
    }
}
