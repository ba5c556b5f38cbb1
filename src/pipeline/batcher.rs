//! Micro-batching of served requests: concurrent requests share one forward pass.
//!
//! Jobs queue here, and one drain at a time runs them on the model's own thread pool
//! (rayon's): it takes what is queued (up to [`MAX_BATCH`] texts and [`MAX_BATCH_BYTES`]),
//! embeds it together, answers, and hands on to a new pool job for the next batch until the
//! queue is empty. It never waits for a batch to fill: a lone request at concurrency 1 runs
//! at once, and under load the batch is what piled up while the previous one ran. The drain
//! runs on a pool thread rather than a thread of its own so that the forward pass forks from
//! inside the pool: a lone request then crosses threads twice (to the pool and back), not
//! four times (measured on two vCPUs: each crossing costs some 25 to 60 µs of wake-up).
//! Where the embedder pads a batch (on a GPU), jobs are grouped by length so short prompts
//! are not padded to a long one; the CPU pass lays a batch end to end, so there it is one
//! pass. The queue is bounded by admission, which reads the [`Backlog`] to refuse a request
//! that would wait past its budget, and a permit rides with each job until it is answered.
//!
//! A job is one text to retrieve (embed, then search the job's snapshot): the routed turn of
//! a request or an earlier turn of its conversation. Deciding is left to the caller. The
//! embedding does not depend on the snapshot, so jobs holding different snapshots (a swap
//! mid-batch) share a forward pass and each searches its own.

use std::panic::AssertUnwindSafe;
use std::sync::atomic::{fence, AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use crossbeam_deque::{Injector, Steal};

use tokio::sync::{oneshot, OwnedSemaphorePermit};

use super::backlog::Backlog;
use super::snapshot::Snapshot;
use super::stages::{Retrieval, Stages};
use super::PipelineError;

/// Most texts in one batch taken off the queue. 64 short prompts (a fleet of 64 callers)
/// fit one pass, so none of them queues past the next pass and admission refuses none (at
/// 32, 64 short-prompt clients met 1,458-2,773 429s in 5 s on two cores; at 64 none, at the
/// same throughput, side by side); [`MAX_BATCH_BYTES`] still bounds a pass's tokens.
pub const MAX_BATCH: usize = 64;

/// Most bytes of text in one batch (a text that costs more goes alone), each text counted at
/// what it costs the pass (`Embedder::pass_cost`: a long prompt at its routing window's
/// worth, 512 bytes for 64 tokens): a bound on a pass's tokens, so a request that arrives
/// during a pass waits for a pass of ordinary length. Counted at their whole length, two or
/// three 2-4 KB prompts filled a pass, and 16 long-prompt clients met some 80,000 429s in
/// 5 s at 45 decisions/s; counted at the window, 16 fit one pass: no 429, 80-99/s (README).
pub const MAX_BATCH_BYTES: usize = 8 * 1024;

/// A group's longest text may be this many times its shortest (plus [`GROUP_SLACK_BYTES`])
/// before the group is cut: a job's cost in bytes stands in for its tokens, which only the
/// embedder counts.
const GROUP_LENGTH_RATIO: usize = 2;
const GROUP_SLACK_BYTES: usize = 24;

/// What a job gets back.
pub type JobResult = Result<Arc<Retrieval>, PipelineError>;

struct Job {
    text: String,
    /// What the text counts for against [`MAX_BATCH_BYTES`] (`Embedder::pass_cost`).
    cost: usize,
    snapshot: Arc<Snapshot>,
    reply: oneshot::Sender<JobResult>,
    /// Held until the job is answered: the queue plus the batch in progress never exceed the
    /// admission limit. Shared by the items of one `/classify/batch`.
    _permit: Arc<OwnedSemaphorePermit>,
    /// The submitter's span (the request's): the drain runs the job's stages in it, so
    /// traces show them under the request that asked.
    span: tracing::Span,
}

struct Shared {
    stages: Arc<Stages>,
    /// Lock-free (the hot path takes no global lock): many submitters, one drain.
    jobs: Injector<Job>,
    /// Whether a drain is running or about to: at most one, so passes never overlap.
    draining: AtomicBool,
    backlog: Arc<Backlog>,
}

/// The sending side; cheap to clone.
#[derive(Clone)]
pub struct Batcher {
    shared: Arc<Shared>,
}

impl Batcher {
    /// An empty queue; nothing runs until the first submission.
    pub fn new(stages: Arc<Stages>) -> Self {
        Self {
            shared: Arc::new(Shared {
                stages,
                jobs: Injector::new(),
                draining: AtomicBool::new(false),
                backlog: Arc::new(Backlog::default()),
            }),
        }
    }

    /// The work queued for the model now, and how long it will take.
    pub fn backlog(&self) -> &Arc<Backlog> {
        &self.shared.backlog
    }

    /// Queues one text, starting a drain on the model's pool unless one is running; the
    /// receiver gets its retrieval.
    pub fn submit(
        &self,
        permit: Arc<OwnedSemaphorePermit>,
        snapshot: Arc<Snapshot>,
        text: String,
    ) -> Pending {
        let (reply, answer) = oneshot::channel();
        let cost = self.shared.stages.embedder.pass_cost(&text);
        self.shared.backlog.submitted(cost);
        let job = Job {
            text,
            cost,
            snapshot,
            reply,
            _permit: permit,
            span: tracing::Span::current(),
        };
        self.shared.jobs.push(job);
        start_drain_if_queued(&self.shared);
        Pending(answer)
    }
}

/// A queued job's answer to come.
pub struct Pending(oneshot::Receiver<JobResult>);

impl Pending {
    pub async fn answer(self) -> JobResult {
        self.0.await.map_err(|_| PipelineError::WorkerStopped)?
    }
}

/// Starts a drain unless the queue is empty or one is running. Both sides call it after
/// their own write (a submitter after its push, a drain after clearing `draining`); the fence
/// makes sure at least one of them sees the other's, so no job is left without a drain.
fn start_drain_if_queued(shared: &Arc<Shared>) {
    fence(Ordering::SeqCst);
    if !shared.jobs.is_empty() && !shared.draining.swap(true, Ordering::SeqCst) {
        let shared = Arc::clone(shared);
        rayon::spawn(move || drain(shared, None));
    }
}

/// Runs one batch, then hands the rest of the queue to a new pool job, or ends the drain
/// when the queue is empty (the next submission starts another). One batch per job: a pool
/// thread waiting inside other work (an `/embed` pass, a reload's embedding) may pick the
/// drain up, and goes back to that work after one pass instead of when the load ends.
/// `carried` is a job the last batch took off the queue but had no room for.
fn drain(shared: Arc<Shared>, carried: Option<Job>) {
    let (batch, bytes, carried) = next_batch(&shared.jobs, carried);
    if batch.is_empty() {
        shared.draining.store(false, Ordering::SeqCst);
        // A job pushed after the queue looked empty, whose submitter still saw this drain
        // running, gets a drain here.
        start_drain_if_queued(&shared);
        return;
    }
    shared.backlog.taken((batch.len(), bytes));
    // Clients that went away (timeouts, disconnects) cost nothing.
    let batch: Vec<Job> = batch
        .into_iter()
        .filter(|job| !job.reply.is_closed())
        .collect();
    ::metrics::histogram!(super::BATCH_SIZE_METRIC).record(batch.len() as f64);
    let stages = &shared.stages;
    let groups = if stages.embedder.pads_batches() {
        length_groups(batch, |job| job.cost)
    } else {
        vec![batch]
    };
    for group in groups {
        // A panic in the model must not end the drain (a panic that leaves a rayon job
        // aborts the process): the group's callers get an error when their reply senders
        // drop, and the next batch runs.
        let run = std::panic::catch_unwind(AssertUnwindSafe(|| {
            run_group(stages, &shared.backlog, group);
        }));
        if run.is_err() {
            tracing::error!("the batch drain caught a panic; its requests failed");
        }
    }
    // Other work waiting for the pool (a reload's embedding on a one-thread pool) gets a turn
    // between batches; the successor job would otherwise always come first on this thread.
    let _ = rayon::yield_now();
    rayon::spawn(move || drain(shared, carried));
}

/// Takes the next batch: `carried` first, then jobs off the front of the queue while they fit
/// in [`MAX_BATCH`] texts and [`MAX_BATCH_BYTES`]. Returns it, its cost in bytes, and the job
/// taken that did not fit (it starts the next batch).
fn next_batch(jobs: &Injector<Job>, carried: Option<Job>) -> (Vec<Job>, usize, Option<Job>) {
    let mut bytes = carried.as_ref().map_or(0, |job| job.cost);
    let mut batch: Vec<Job> = carried.into_iter().collect();
    while batch.len() < MAX_BATCH {
        let job = match jobs.steal() {
            Steal::Success(job) => job,
            Steal::Retry => continue,
            Steal::Empty => break,
        };
        if !batch.is_empty() && bytes + job.cost > MAX_BATCH_BYTES {
            return (batch, bytes, Some(job));
        }
        bytes += job.cost;
        batch.push(job);
    }
    (batch, bytes, None)
}

/// Splits items into groups of similar length, shortest first.
fn length_groups<T>(mut items: Vec<T>, len: impl Fn(&T) -> usize) -> Vec<Vec<T>> {
    items.sort_by_key(&len);
    let mut groups: Vec<Vec<T>> = Vec::new();
    for item in items {
        let fits = groups
            .last()
            .and_then(|g| g.first())
            .is_some_and(|shortest| {
                len(&item) <= len(shortest) * GROUP_LENGTH_RATIO + GROUP_SLACK_BYTES
            });
        match groups.last_mut() {
            Some(group) if fits => group.push(item),
            Some(_) | None => groups.push(vec![item]),
        }
    }
    groups
}

/// Embeds a group in one forward pass, records the pass's time per text, then searches and
/// answers each job.
fn run_group(stages: &Stages, backlog: &Backlog, group: Vec<Job>) {
    let texts: Vec<&str> = group.iter().map(|j| j.text.as_str()).collect();
    // One forward pass serves every request of the group: its span is a child of the first
    // request's and follows from the others' (in OpenTelemetry, a parent and links).
    let batch_span = group.first().map_or_else(tracing::Span::none, |first| {
        first
            .span
            .in_scope(|| tracing::debug_span!("batch", requests = group.len()))
    });
    for job in group.iter().skip(1) {
        batch_span.follows_from(&job.span);
    }
    let started = Instant::now();
    let embedded = batch_span.in_scope(|| stages.embed(&texts));
    // Recorded before any answer goes out: a caller that has its answer can count on the
    // next admission knowing what a pass costs.
    if embedded.is_ok() {
        backlog.observe_pass(texts.len(), started.elapsed());
    }
    match embedded {
        Ok(embedded) => {
            for (job, embedded) in group.into_iter().zip(embedded) {
                let result = job
                    .span
                    .in_scope(|| stages.retrieve(&job.snapshot, embedded))
                    .map(Arc::new);
                let _ = job.reply.send(result);
            }
        }
        // One bad text fails the whole batched call: answer each job on its own so only the
        // bad one fails, with its own error.
        Err(_) if group.len() > 1 => {
            for job in group {
                run_group(stages, backlog, vec![job]);
            }
        }
        Err(e) => {
            if let Some(job) = group.into_iter().next() {
                let _ = job.reply.send(Err(e));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groups_keep_similar_lengths_together() {
        let groups = length_groups(vec![10, 400, 12, 30, 800, 11, 45, 700], |&n| n);
        assert_eq!(
            groups,
            vec![vec![10, 11, 12, 30], vec![45], vec![400, 700, 800]]
        );
        assert!(length_groups(Vec::<usize>::new(), |&n| n).is_empty());
    }
}
