//! Micro-batching of `/classify`: concurrent requests share one forward pass.
//!
//! One worker thread owns the model's time. It blocks for the first queued job, then takes
//! whatever else is already queued (up to [`MAX_BATCH`]) and embeds it together. It never
//! waits for a batch to fill: a lone request at concurrency 1 runs at once, and under load
//! the batch is what piled up while the previous one ran, so the wait is bounded by one
//! forward pass. Jobs are grouped by text length so short prompts are not padded to a long
//! one. The queue is bounded by the admission semaphore (a permit rides with each job), so
//! a full queue is a fast 429 in the handler.
//!
//! The embedding does not depend on the snapshot, so jobs holding different snapshots (a swap
//! mid-batch) share a forward pass and each decides with its own.

use std::panic::AssertUnwindSafe;
use std::sync::{mpsc, Arc};
use std::time::Instant;

use tokio::sync::{oneshot, OwnedSemaphorePermit};

use super::error::ApiError;
use crate::decide::Decision;
use crate::pipeline::{ClassifyInput, Pipeline, PipelineError, Semantic, Snapshot};

/// Most texts in one batch taken off the queue.
pub const MAX_BATCH: usize = 32;

/// A group's longest text may be this many times its shortest (plus [`GROUP_SLACK_BYTES`])
/// before the group is cut: bytes stand in for tokens, which only the embedder counts.
const GROUP_LENGTH_RATIO: usize = 2;
const GROUP_SLACK_BYTES: usize = 24;

/// What a job gets back: the decision and its semantic part (for the decision cache).
pub type Outcome = Result<(Decision, Arc<Semantic>), PipelineError>;

struct Job {
    input: ClassifyInput,
    snapshot: Arc<Snapshot>,
    start: Instant,
    reply: oneshot::Sender<Outcome>,
    /// Held until the job is answered: the queue plus the batch in progress never exceed the
    /// admission limit.
    _permit: OwnedSemaphorePermit,
}

/// The sending side; cheap to clone. The worker ends when every sender is dropped.
#[derive(Clone)]
pub struct Batcher {
    queue: mpsc::Sender<Job>,
}

impl Batcher {
    /// Starts the worker thread.
    pub fn spawn(pipeline: Arc<Pipeline>) -> std::io::Result<Self> {
        let (queue, jobs) = mpsc::channel();
        std::thread::Builder::new()
            .name("router-batcher".to_owned())
            .spawn(move || work(&pipeline, &jobs))?;
        Ok(Self { queue })
    }

    /// Queues one request and waits for its decision. `start` is when the request began.
    pub async fn classify(
        &self,
        permit: OwnedSemaphorePermit,
        snapshot: Arc<Snapshot>,
        input: ClassifyInput,
        start: Instant,
    ) -> Result<(Decision, Arc<Semantic>), ApiError> {
        let (reply, answer) = oneshot::channel();
        let job = Job {
            input,
            snapshot,
            start,
            reply,
            _permit: permit,
        };
        self.queue
            .send(job)
            .map_err(|_| ApiError::Internal("the batch worker has stopped".into()))?;
        answer
            .await
            .map_err(|_| ApiError::Internal("the batch worker dropped a request".into()))?
            .map_err(ApiError::from)
    }
}

fn work(pipeline: &Pipeline, jobs: &mpsc::Receiver<Job>) {
    while let Ok(first) = jobs.recv() {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match jobs.try_recv() {
                Ok(job) => batch.push(job),
                Err(mpsc::TryRecvError::Empty | mpsc::TryRecvError::Disconnected) => break,
            }
        }
        // Clients that went away (timeouts, disconnects) cost nothing.
        batch.retain(|job| !job.reply.is_closed());
        ::metrics::histogram!(super::metrics::BATCH_SIZE).record(batch.len() as f64);
        for group in length_groups(batch, |job| job.input.text.len()) {
            // A panic in the model must not take the worker (and every later request) down:
            // the group's callers get an internal error when their reply senders drop.
            let run = std::panic::catch_unwind(AssertUnwindSafe(|| run_group(pipeline, group)));
            if run.is_err() {
                tracing::error!("the batch worker caught a panic; its requests failed");
            }
        }
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

fn run_group(pipeline: &Pipeline, group: Vec<Job>) {
    let embedder = pipeline.embedder();
    let texts: Vec<&str> = group.iter().map(|j| j.input.text.as_str()).collect();
    // A lone text takes the unpadded single path; a group is one padded forward pass.
    let embedded = if texts.len() == 1 {
        embedder.embed(texts[0]).map(|e| vec![e])
    } else {
        embedder.embed_batch(&texts)
    };
    match embedded {
        Ok(embedded) => {
            for (job, embedded) in group.into_iter().zip(embedded) {
                let outcome = pipeline
                    .search(&job.snapshot, embedded)
                    .and_then(|semantic| {
                        let decision = pipeline.decide_semantic(
                            &job.snapshot,
                            &job.input,
                            &semantic,
                            job.start,
                        )?;
                        Ok((decision, Arc::new(semantic)))
                    });
                let _ = job.reply.send(outcome);
            }
        }
        // One bad text fails the whole batch call (an empty text, say, though handlers refuse
        // those): answer each job on its own so only the bad one fails.
        Err(_) if group.len() > 1 => {
            for job in group {
                run_group(pipeline, vec![job]);
            }
        }
        // Only a one-job group gets here.
        Err(e) => {
            if let Some(job) = group.into_iter().next() {
                let _ = job.reply.send(Err(e.into()));
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
