//! The one request path. Every classification, served or offline, goes through here:
//!
//! ```text
//! ClassifyInput ─► retrieval cache ──hit──────────────────────────────┐
//!                      │ miss                                          ▼
//!                      ├─► admission (the edge's) ─► batcher ─► embed ─► search ─► score ─► decide ─► Decision
//!                      └─► (offline: this thread) ─► embed ───────────┘          (+ uncertain queue, cache insert)
//! ```
//!
//! [`Pipeline::serve`] and [`Pipeline::serve_many`] are the served path (micro-batched on
//! the model's thread pool, behind the edge's admission); [`Pipeline::classify`] and
//! [`Pipeline::classify_many`] run the same stages on the calling thread (CLI, eval,
//! benches). A bad text in a batch fails alone, with its own error, on every path.
//!
//! Besides the request path this module holds the composers that build what it serves: the
//! [`bundle`] (index + scoring model), the [`indexer`] (examples → bundle) and [`compose`]
//! (model → bundle → live state: the composition root of both edges).

pub mod backlog;
pub mod batcher;
pub mod bundle;
pub mod compose;
mod conversation;
pub mod indexer;
mod input;
mod limits;
pub mod offline;
mod plan;
pub mod retrieval_cache;
mod snapshot;
mod stages;
pub mod uncertain;

use std::future::Future;
use std::sync::Arc;
use std::time::Instant;

use tokio::sync::OwnedSemaphorePermit;

pub use input::{ClassifyInput, EarlierTurn, Speaker, MAX_EARLIER_TURNS};
pub use snapshot::{Snapshot, SnapshotError};
pub use stages::{Retrieval, Stages};

use crate::decide::{DecideError, Decision};
use crate::embed::{EmbedError, Embedded, Embedder};
use crate::index::IndexError;
use crate::live::HealthBoard;
use batcher::Batcher;
use plan::Plan;
use retrieval_cache::RetrievalCache;
use uncertain::UncertainQueue;

/// Histogram of texts per forward pass of the batcher.
pub const BATCH_SIZE_METRIC: &str = "router_batch_size";
pub const CACHE_HITS_METRIC: &str = "router_cache_hits_total";
pub const CACHE_MISSES_METRIC: &str = "router_cache_misses_total";

#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    #[error(transparent)]
    Embed(#[from] EmbedError),
    #[error(transparent)]
    Index(#[from] IndexError),
    #[error(transparent)]
    Decide(#[from] DecideError),
    /// Runtime failure: a queued job was dropped unanswered (the model panicked on its
    /// batch, or the process is shutting down).
    #[error("the model failed on this request's batch")]
    WorkerStopped,
}

/// Whether a served decision's retrieval came from the cache (`x-router-cache`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheOutcome {
    Hit,
    Miss,
}

impl CacheOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Hit => "hit",
            Self::Miss => "miss",
        }
    }
}

/// A served decision and where its retrieval came from.
#[derive(Debug)]
pub struct Served {
    pub decision: Decision,
    pub cache: CacheOutcome,
}

/// Sizes of the pipeline's bounded parts.
#[derive(Debug, Clone, Copy)]
pub struct PipelineOptions {
    /// Weight budget of the retrieval cache in bytes (0 turns it off).
    pub cache_bytes: usize,
    /// Uncertain decisions kept for labeling (0 keeps none).
    pub uncertain_capacity: usize,
}

impl Default for PipelineOptions {
    fn default() -> Self {
        Self {
            cache_bytes: retrieval_cache::DEFAULT_CACHE_BYTES,
            uncertain_capacity: uncertain::DEFAULT_CAPACITY,
        }
    }
}

pub struct Pipeline {
    stages: Arc<Stages>,
    cache: RetrievalCache,
    batcher: Batcher,
}

impl Pipeline {
    /// A pipeline with a fresh health board (every target closed).
    pub fn new(embedder: Arc<dyn Embedder>, options: PipelineOptions) -> Self {
        Self::with_health(embedder, Arc::new(HealthBoard::new()), options)
    }

    pub fn with_health(
        embedder: Arc<dyn Embedder>,
        health: Arc<HealthBoard>,
        options: PipelineOptions,
    ) -> Self {
        let stages = Arc::new(Stages {
            embedder,
            health,
            uncertain: Arc::new(UncertainQueue::new(options.uncertain_capacity)),
        });
        Self {
            batcher: Batcher::new(Arc::clone(&stages)),
            cache: RetrievalCache::new(options.cache_bytes),
            stages,
        }
    }

    pub fn embedder(&self) -> &Arc<dyn Embedder> {
        &self.stages.embedder
    }

    /// Where callers' outcome reports go (`POST /feedback`).
    pub fn health(&self) -> &Arc<HealthBoard> {
        &self.stages.health
    }

    /// Decisions the router was unsure of, for labeling (`GET /admin/uncertain`).
    pub fn uncertain(&self) -> &Arc<UncertainQueue> {
        &self.stages.uncertain
    }

    /// The work queued for the model, for admission's estimate of a new request's wait.
    pub fn backlog(&self) -> &Arc<backlog::Backlog> {
        self.batcher.backlog()
    }

    /// The stages themselves, for callers that embed on their own (eval, benches).
    pub fn stages(&self) -> &Stages {
        &self.stages
    }

    /// Serves one request: cached retrievals where there are some, else `admit` (the edge's
    /// admission, awaited only on a miss) and the batcher for the rest.
    pub async fn serve<E: From<PipelineError>>(
        &self,
        snapshot: Arc<Snapshot>,
        input: ClassifyInput,
        admit: impl Future<Output = Result<OwnedSemaphorePermit, E>>,
    ) -> Result<Served, E> {
        let mut served = self.serve_many(snapshot, vec![input], admit).await?;
        Ok(served.pop().unwrap_or(Err(PipelineError::WorkerStopped))?)
    }

    /// Serves many requests under one admission; each item fails alone.
    pub async fn serve_many<E: From<PipelineError>>(
        &self,
        snapshot: Arc<Snapshot>,
        inputs: Vec<ClassifyInput>,
        admit: impl Future<Output = Result<OwnedSemaphorePermit, E>>,
    ) -> Result<Vec<Result<Served, PipelineError>>, E> {
        let start = Instant::now();
        let mut plans: Vec<Plan> = inputs
            .iter()
            .map(|input| self.plan(&snapshot, input))
            .collect();
        if plans.iter().any(Plan::has_misses) {
            let permit = Arc::new(admit.await?);
            // Every miss is queued before any is awaited, so they share forward passes.
            let mut pending = Vec::new();
            for (p, plan) in plans.iter().enumerate() {
                for (t, text) in plan.misses() {
                    let queued = self.batcher.submit(
                        Arc::clone(&permit),
                        Arc::clone(&snapshot),
                        text.to_owned(),
                    );
                    pending.push((p, t, queued));
                }
            }
            for (p, t, queued) in pending {
                let retrieved = queued.answer().await;
                plans[p].fill(t, retrieved, &self.cache, &snapshot);
            }
        }
        Ok(inputs
            .iter()
            .zip(plans)
            .map(|(input, plan)| {
                let cache = plan.cache_outcome();
                let (current, earlier) = plan.into_retrievals()?;
                let decision = self
                    .stages
                    .decide(&snapshot, input, &current, &earlier, start)?;
                Ok(Served { decision, cache })
            })
            .collect())
    }

    /// Classifies one request on this thread (CLI, eval, benches): same stages, same cache.
    pub fn classify(
        &self,
        snapshot: &Arc<Snapshot>,
        input: &ClassifyInput,
    ) -> Result<Decision, PipelineError> {
        let mut decisions = self.classify_many(snapshot, std::slice::from_ref(input));
        decisions.pop().unwrap_or(Err(PipelineError::WorkerStopped))
    }

    /// Classifies many requests on this thread with one batched forward pass; decisions are
    /// in input order, and a bad text fails alone.
    pub fn classify_many(
        &self,
        snapshot: &Arc<Snapshot>,
        inputs: &[ClassifyInput],
    ) -> Vec<Result<Decision, PipelineError>> {
        let start = Instant::now();
        let mut plans: Vec<Plan> = inputs.iter().map(|i| self.plan(snapshot, i)).collect();
        let misses: Vec<(usize, usize, String)> = plans
            .iter()
            .enumerate()
            .flat_map(|(p, plan)| plan.misses().map(move |(t, text)| (p, t, text.to_owned())))
            .collect();
        let texts: Vec<&str> = misses.iter().map(|(_, _, text)| text.as_str()).collect();
        let embedded: Vec<Result<Embedded, PipelineError>> = match self.stages.embed(&texts) {
            Ok(all) => all.into_iter().map(Ok).collect(),
            // One bad text fails the batched call: embed each alone so only it fails.
            Err(_) => texts
                .iter()
                .map(|t| self.stages.embed(&[t]).map(|mut one| one.remove(0)))
                .collect(),
        };
        for ((p, t, _), embedded) in misses.into_iter().zip(embedded) {
            let retrieved = embedded
                .and_then(|e| self.stages.retrieve(snapshot, e))
                .map(Arc::new);
            plans[p].fill(t, retrieved, &self.cache, snapshot);
        }
        inputs
            .iter()
            .zip(plans)
            .map(|(input, plan)| {
                let (current, earlier) = plan.into_retrievals()?;
                self.stages
                    .decide(snapshot, input, &current, &earlier, start)
            })
            .collect()
    }

    /// What `input` needs retrieved, with what the cache already has.
    fn plan(&self, snapshot: &Arc<Snapshot>, input: &ClassifyInput) -> Plan {
        let texts = conversation::texts_to_retrieve(&snapshot.policy, input);
        Plan::new(texts, input.cache_scope.as_deref(), &self.cache, snapshot)
    }
}
