//! Micro-batching of served requests: concurrent requests share one forward pass.
//!
//! One worker thread owns the model's time. It blocks for the first queued job, then takes
//! whatever else is already queued (up to [`MAX_BATCH`] texts and [`MAX_BATCH_BYTES`]) and
//! embeds it together. It never waits for a batch to fill: a lone request at concurrency 1
//! runs at once, and under load the batch is what piled up while the previous one ran. Where
//! the embedder pads a batch (on a GPU), jobs are grouped by text length so short prompts are
//! not padded to a long one; the CPU pass lays a batch end to end, so there it is one pass.
//! The queue is bounded by admission, which reads the worker's [`Backlog`] to refuse a
//! request that would wait past its budget, and a permit rides with each job until it is
//! answered.
//!
//! A job is one text to retrieve (embed, then search the job's snapshot): the routed turn of
//! a request or an earlier turn of its conversation. Deciding is left to the caller. The
//! embedding does not depend on the snapshot, so jobs holding different snapshots (a swap
//! mid-batch) share a forward pass and each searches its own.

use std::panic::AssertUnwindSafe;
use std::sync::{mpsc, Arc};
use std::time::Instant;

use tokio::sync::{oneshot, OwnedSemaphorePermit};

use super::backlog::Backlog;
use super::snapshot::Snapshot;
use super::stages::{Retrieval, Stages};
use super::PipelineError;

/// Most texts in one batch taken off the queue.
pub const MAX_BATCH: usize = 32;

/// Most bytes of text in one batch (a longer text goes alone): long prompts gain little from
/// sharing a forward pass, and a pass of 32 of them would make every request that arrives
/// meanwhile wait for all 32 on top of its budget.
pub const MAX_BATCH_BYTES: usize = 8 * 1024;

/// A group's longest text may be this many times its shortest (plus [`GROUP_SLACK_BYTES`])
/// before the group is cut: bytes stand in for tokens, which only the embedder counts.
const GROUP_LENGTH_RATIO: usize = 2;
const GROUP_SLACK_BYTES: usize = 24;

/// What a job gets back.
pub type JobResult = Result<Arc<Retrieval>, PipelineError>;

struct Job {
    text: String,
    snapshot: Arc<Snapshot>,
    reply: oneshot::Sender<JobResult>,
    /// Held until the job is answered: the queue plus the batch in progress never exceed the
    /// admission limit. Shared by the items of one `/classify/batch`.
    _permit: Arc<OwnedSemaphorePermit>,
    /// The submitter's span (the request's): the worker thread runs the job's stages in it,
    /// so traces show them under the request that asked.
    span: tracing::Span,
}

/// The sending side; cheap to clone. The worker ends when every sender is dropped.
#[derive(Clone)]
pub struct Batcher {
    queue: mpsc::Sender<Job>,
    backlog: Arc<Backlog>,
}

impl Batcher {
    /// Starts the worker thread.
    pub fn spawn(stages: Arc<Stages>) -> std::io::Result<Self> {
        let (queue, jobs) = mpsc::channel();
        let backlog = Arc::new(Backlog::default());
        let measured = Arc::clone(&backlog);
        std::thread::Builder::new()
            .name("router-batcher".to_owned())
            .spawn(move || work(&stages, &jobs, &measured))?;
        Ok(Self { queue, backlog })
    }

    /// The work queued for the model now, and how long it will take.
    pub fn backlog(&self) -> &Arc<Backlog> {
        &self.backlog
    }

    /// Queues one text; the receiver gets its retrieval.
    pub fn submit(
        &self,
        permit: Arc<OwnedSemaphorePermit>,
        snapshot: Arc<Snapshot>,
        text: String,
    ) -> Result<Pending, PipelineError> {
        let (reply, answer) = oneshot::channel();
        let job = Job {
            text,
            snapshot,
            reply,
            _permit: permit,
            span: tracing::Span::current(),
        };
        let bytes = job.text.len();
        self.backlog.submitted(bytes);
        if self.queue.send(job).is_err() {
            self.backlog.taken((1, bytes));
            return Err(PipelineError::WorkerStopped);
        }
        Ok(Pending(answer))
    }
}

/// A queued job's answer to come.
pub struct Pending(oneshot::Receiver<JobResult>);

impl Pending {
    pub async fn answer(self) -> JobResult {
        self.0.await.map_err(|_| PipelineError::WorkerStopped)?
    }
}

fn work(stages: &Stages, jobs: &mpsc::Receiver<Job>, backlog: &Backlog) {
    // The worker feeds the model: it yields the cores to the async threads as the model does.
    crate::embed::threads::join_model_priority();
    // A job taken off the queue that did not fit in the last batch starts the next one.
    let mut carried: Option<Job> = None;
    while let Some(first) = carried.take().or_else(|| jobs.recv().ok()) {
        let mut bytes = first.text.len();
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match jobs.try_recv() {
                Ok(job) if bytes + job.text.len() > MAX_BATCH_BYTES => {
                    carried = Some(job);
                    break;
                }
                Ok(job) => {
                    bytes += job.text.len();
                    batch.push(job);
                }
                Err(mpsc::TryRecvError::Empty | mpsc::TryRecvError::Disconnected) => break,
            }
        }
        let taken = (batch.len(), bytes);
        // Clients that went away (timeouts, disconnects) cost nothing.
        batch.retain(|job| !job.reply.is_closed());
        ::metrics::histogram!(super::BATCH_SIZE_METRIC).record(batch.len() as f64);
        let (started, texts) = (Instant::now(), batch.len());
        backlog.taken(taken);
        let groups = if stages.embedder.pads_batches() {
            length_groups(batch, |job| job.text.len())
        } else {
            vec![batch]
        };
        for group in groups {
            // A panic in the model must not take the worker (and every later request) down:
            // the group's callers get an error when their reply senders drop.
            let run = std::panic::catch_unwind(AssertUnwindSafe(|| run_group(stages, group)));
            if run.is_err() {
                tracing::error!("the batch worker caught a panic; its requests failed");
            }
        }
        backlog.observe_pass(texts, started.elapsed());
    }
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

fn run_group(stages: &Stages, group: Vec<Job>) {
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
    match batch_span.in_scope(|| stages.embed(&texts)) {
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
                run_group(stages, vec![job]);
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
