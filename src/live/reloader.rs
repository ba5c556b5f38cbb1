//! The one reloader. The file watcher, SIGHUP, `POST /admin/reload`, `POST /admin/rebuild`
//! and archetype changes all send a [`ReloadKind`] here; nothing else reloads anything.
//!
//! Requests that arrive while one is running are coalesced into the next run. A run builds
//! its candidate off the async threads, validates it against the other half of the snapshot
//! and swaps it in with one store; when anything fails the last good snapshot keeps serving.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use serde::Serialize;
use tokio::sync::{mpsc, oneshot};

use super::{LiveState, Tenants, Versions};
use crate::embed::Embedder;
use crate::index::HnswParams;
use crate::pipeline::indexer::{rebuild_index_fitted, Reuse};
use crate::scoring::{FitOptions, FitReport};
use crate::store::{ArchetypeStore, VectorCache};

mod tenant_rebuild;

/// What a successful reload did.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "done", rename_all = "snake_case")]
pub enum Reloaded {
    /// The policy file was read and swapped in.
    Policy(Versions),
    /// The archetypes did not change: the serving index stays.
    IndexUnchanged { index_version: String },
    /// A rebuilt index was swapped in.
    Index(Versions),
    /// The scorers were refitted and swapped in.
    Fitted {
        versions: Versions,
        fit: Arc<FitReport>,
    },
    /// The request was coalesced into a run that had nothing for its kind.
    NothingToDo,
}

impl std::fmt::Display for Reloaded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Policy(v) => write!(f, "policy → {v}"),
            Self::IndexUnchanged { index_version } => {
                write!(f, "index unchanged ({index_version})")
            }
            Self::Index(v) => write!(f, "index → {v}"),
            Self::Fitted { versions, .. } => write!(f, "scorers refitted → {versions}"),
            Self::NothingToDo => f.write_str("nothing to do"),
        }
    }
}

/// Why a reload changed nothing; the last good state keeps serving.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReloadFailure {
    /// The policy file is unreadable or invalid, or does not fit the index.
    #[error("{0}")]
    Policy(String),
    /// The archetype files are unreadable or invalid.
    #[error("{0}")]
    Archetypes(String),
    /// Building, checking or swapping the new index failed.
    #[error("{0}")]
    Rebuild(String),
    /// The blocking reload task itself failed (a panic).
    #[error("reload task failed: {0}")]
    Task(String),
    #[error("the reloader has stopped")]
    Stopped,
}

type Outcome = Result<Reloaded, ReloadFailure>;

/// `router_reload_total{kind, outcome, result}`: outcome `ok` or `error`, result the typed
/// outcome (`swapped`, `unchanged`, `nothing_to_do`; `policy`, `archetypes`, `rebuild`,
/// `task`, `stopped` for failures).
pub const RELOAD_METRIC: &str = "router_reload_total";

/// The `result` label of an outcome.
fn result_name(outcome: &Outcome) -> &'static str {
    match outcome {
        Ok(Reloaded::Policy(_) | Reloaded::Index(_) | Reloaded::Fitted { .. }) => "swapped",
        Ok(Reloaded::IndexUnchanged { .. }) => "unchanged",
        Ok(Reloaded::NothingToDo) => "nothing_to_do",
        Err(ReloadFailure::Policy(_)) => "policy",
        Err(ReloadFailure::Archetypes(_)) => "archetypes",
        Err(ReloadFailure::Rebuild(_)) => "rebuild",
        Err(ReloadFailure::Task(_)) => "task",
        Err(ReloadFailure::Stopped) => "stopped",
    }
}

/// What to reload. Ordered: a run applies the policy first, so a rebuild checks its buckets
/// against the newest policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ReloadKind {
    /// Re-read the policy file.
    Policy,
    /// Re-read the shipped archetype files (and the journal), then rebuild the index.
    Archetypes,
    /// Rebuild the index from the store as it is.
    Rebuild,
    /// Refit the scorers (head, calibration, thresholds) on the live archetypes, even when
    /// they did not change; vectors are reused, nothing is re-embedded.
    Fit,
}

impl ReloadKind {
    fn name(self) -> &'static str {
        match self {
            Self::Policy => "policy",
            Self::Archetypes => "archetypes",
            Self::Rebuild => "rebuild",
            Self::Fit => "fit",
        }
    }
}

type Reply = oneshot::Sender<Outcome>;

struct Request {
    kind: ReloadKind,
    reply: Option<Reply>,
    /// For [`ReloadKind::Fit`]: the in-scope precision the thresholds aim for from now on.
    target_precision: Option<f64>,
}

/// What `/ready` and `/info` show about reloading.
#[derive(Debug, Clone, Default, Serialize, utoipa::ToSchema)]
pub struct ReloaderStatus {
    pub running: bool,
    pub runs: u64,
    pub last_ok: Option<String>,
    pub last_error: Option<String>,
}

/// Cheap to clone; sends requests to the reloader task.
#[derive(Clone)]
pub struct ReloadHandle {
    tx: mpsc::UnboundedSender<Request>,
    status: Arc<Mutex<ReloaderStatus>>,
}

impl ReloadHandle {
    /// Queues a reload and returns at once (safe from any thread, sync or async).
    pub fn send(&self, kind: ReloadKind) {
        if self
            .tx
            .send(Request {
                kind,
                reply: None,
                target_precision: None,
            })
            .is_err()
        {
            tracing::warn!(
                kind = kind.name(),
                "the reloader has stopped; request dropped"
            );
        }
    }

    /// Queues a reload and waits for the run that includes it.
    pub async fn request(&self, kind: ReloadKind) -> Outcome {
        self.request_with(kind, None).await
    }

    /// Refits the scorers with thresholds aimed at `target_precision` (kept for later
    /// rebuilds) and answers with the fit report.
    pub async fn fit(&self, target_precision: Option<f64>) -> Outcome {
        self.request_with(ReloadKind::Fit, target_precision).await
    }

    async fn request_with(&self, kind: ReloadKind, target_precision: Option<f64>) -> Outcome {
        let (reply, answer) = oneshot::channel();
        self.tx
            .send(Request {
                kind,
                reply: Some(reply),
                target_precision,
            })
            .map_err(|_| ReloadFailure::Stopped)?;
        answer.await.map_err(|_| ReloadFailure::Stopped)?
    }

    pub fn status(&self) -> ReloaderStatus {
        lock(&self.status).clone()
    }
}

/// Everything a reload needs.
pub struct Reloader {
    pub live: Arc<LiveState>,
    pub store: Arc<Mutex<ArchetypeStore>>,
    pub embedder: Arc<dyn Embedder>,
    pub policy_path: PathBuf,
    /// Where rebuilt bundles are saved (atomically) for the next start.
    pub bundle_dir: PathBuf,
    pub hnsw: HnswParams,
    /// How every rebuild fits the scorers; `POST /admin/fit` may change the target precision.
    pub fit: Mutex<FitOptions>,
    /// The configured tenants: each rebuilt after the shared namespace.
    pub tenants: Arc<Tenants>,
    /// Vectors the fleet embedded before (a shared store), so rebuilds embed only new texts.
    pub vectors: Option<Arc<dyn VectorCache>>,
}

impl Reloader {
    /// Starts the reloader task on `runtime`. It runs until every handle is dropped.
    pub fn spawn(self, runtime: &tokio::runtime::Handle) -> ReloadHandle {
        let (tx, rx) = mpsc::unbounded_channel();
        let status = Arc::new(Mutex::new(ReloaderStatus::default()));
        let reloader = Arc::new(self);
        // Ends when the last ReloadHandle is dropped (the channel closes); nothing waits for it.
        runtime.spawn(run(reloader, rx, Arc::clone(&status)));
        ReloadHandle { tx, status }
    }

    /// One run over a coalesced set of kinds; each kind gets its own outcome, so a broken
    /// policy never swallows a rebuild that archetype changes queued. Blocking: embeds, writes.
    fn apply(&self, kinds: &BTreeSet<ReloadKind>) -> BTreeMap<ReloadKind, Outcome> {
        let mut results = BTreeMap::new();
        let mut rebuild = kinds.contains(&ReloadKind::Rebuild);
        let refit = kinds.contains(&ReloadKind::Fit);
        if kinds.contains(&ReloadKind::Policy) {
            let outcome = self
                .live
                .reload_policy(&self.policy_path)
                .map(Reloaded::Policy)
                .map_err(|e| ReloadFailure::Policy(e.to_string()));
            results.insert(ReloadKind::Policy, outcome);
            for tenant in self.tenants.iter() {
                let path = tenant.config.policy.as_ref().unwrap_or(&self.policy_path);
                // A tenant's broken policy keeps its last good one; the error is its own.
                if let Err(e) = tenant.live.reload_policy(path) {
                    tracing::warn!(tenant = tenant.config.name, error = %e, "tenant policy refused");
                }
            }
        }
        if kinds.contains(&ReloadKind::Archetypes) {
            match lock(&self.store).reload() {
                Ok(()) => rebuild = true,
                Err(e) => {
                    results.insert(
                        ReloadKind::Archetypes,
                        Err(ReloadFailure::Archetypes(e.to_string())),
                    );
                }
            }
        }
        if rebuild || refit {
            let outcome = self.rebuild(refit);
            for kind in [ReloadKind::Archetypes, ReloadKind::Rebuild, ReloadKind::Fit] {
                if kinds.contains(&kind) && !results.contains_key(&kind) {
                    results.insert(kind, outcome.clone());
                }
            }
        }
        results
    }

    /// Rebuilds the index when the archetypes changed (or always, with `refit`), re-embedding
    /// only new texts; checks it against the policy, saves it for the next start and swaps it
    /// in.
    fn rebuild(&self, refit: bool) -> Outcome {
        let outcome = self.rebuild_shared(refit);
        for tenant in self.tenants.iter() {
            if let Err(e) = self.rebuild_tenant(tenant, refit) {
                tracing::warn!(tenant = tenant.config.name, error = %e, "tenant index not rebuilt; its last good one keeps serving");
            }
        }
        outcome
    }

    fn rebuild_shared(&self, refit: bool) -> Outcome {
        let failed = |e: &dyn std::fmt::Display| ReloadFailure::Rebuild(e.to_string());
        let examples = lock(&self.store).examples().clone();
        let previous = self.live.snapshot();
        if !refit && previous.bundle.manifest().examples_sha256 == examples.content_sha256() {
            return Ok(Reloaded::IndexUnchanged {
                index_version: previous.bundle.version().to_owned(),
            });
        }
        let fit = lock(&self.fit).clone();
        let (mut index, report) = rebuild_index_fitted(
            &examples,
            self.embedder.as_ref(),
            self.hnsw,
            Reuse::previous(&previous.bundle).with_cache(self.vectors.as_deref()),
            &fit,
            &|_, _| {},
        )
        .map_err(|e| failed(&e))?;
        self.live.check_bundle(&index).map_err(|e| failed(&e))?;
        // Saved before the swap: a full or read-only data directory fails the rebuild, the
        // old index keeps serving and the next start finds the bundle it served.
        if let Err(e) = index.save(&self.bundle_dir) {
            let message = format!("the rebuilt index could not be saved: {e}");
            self.live.record_error(message.clone());
            return Err(ReloadFailure::Rebuild(message));
        }
        let versions = self
            .live
            .swap_bundle(Arc::new(index))
            .map_err(|e| failed(&e))?;
        if refit {
            return Ok(Reloaded::Fitted {
                versions,
                fit: Arc::new(report),
            });
        }
        Ok(Reloaded::Index(versions))
    }
}

async fn run(
    reloader: Arc<Reloader>,
    mut rx: mpsc::UnboundedReceiver<Request>,
    status: Arc<Mutex<ReloaderStatus>>,
) {
    while let Some(first) = rx.recv().await {
        let mut batch = vec![first];
        while let Ok(more) = rx.try_recv() {
            batch.push(more);
        }
        let kinds: BTreeSet<ReloadKind> = batch.iter().map(|r| r.kind).collect();
        if let Some(target) = batch.iter().rev().find_map(|r| r.target_precision) {
            lock(&reloader.fit).target_precision = target;
        }
        lock(&status).running = true;
        let worker = Arc::clone(&reloader);
        let job_kinds = kinds.clone();
        let results = tokio::task::spawn_blocking(move || worker.apply(&job_kinds))
            .await
            .unwrap_or_else(|e| {
                let failed = Err(ReloadFailure::Task(e.to_string()));
                kinds.iter().map(|k| (*k, failed.clone())).collect()
            });
        let errors: Vec<String> = results
            .values()
            .filter_map(|r| r.as_ref().err().map(ToString::to_string))
            .collect();
        {
            let mut s = lock(&status);
            s.running = false;
            s.runs += 1;
            let oks: Vec<String> = results
                .values()
                .filter_map(|r| r.as_ref().ok().map(ToString::to_string))
                .collect();
            if !oks.is_empty() {
                s.last_ok = Some(oks.join("; "));
            }
            s.last_error = (!errors.is_empty()).then(|| errors.join("; "));
        }
        for (kind, result) in &results {
            let outcome = if result.is_ok() { "ok" } else { "error" };
            metrics::counter!(RELOAD_METRIC, "kind" => kind.name(), "outcome" => outcome, "result" => result_name(result))
                .increment(1);
            match result {
                Ok(done) => tracing::info!(kind = kind.name(), summary = %done, "reload done"),
                Err(e) => {
                    tracing::error!(kind = kind.name(), error = %e, "reload failed; the last good state keeps serving")
                }
            }
        }
        for request in batch {
            if let Some(reply) = request.reply {
                let answer = results
                    .get(&request.kind)
                    .cloned()
                    .unwrap_or(Ok(Reloaded::NothingToDo));
                let _ = reply.send(answer);
            }
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}
