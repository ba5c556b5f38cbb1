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

use super::LiveState;
use crate::embed::Embedder;
use crate::index::HnswParams;
use crate::indexer::rebuild_index_fitted;
use crate::scoring::{FitOptions, FitReport};
use crate::store::ArchetypeStore;

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

type Reply = oneshot::Sender<Result<String, String>>;

struct Request {
    kind: ReloadKind,
    reply: Option<Reply>,
    /// For [`ReloadKind::Fit`]: the in-scope precision the thresholds aim for from now on.
    target_precision: Option<f64>,
}

/// What `/ready` and `/info` show about reloading.
#[derive(Debug, Clone, Default, Serialize)]
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
    pub async fn request(&self, kind: ReloadKind) -> Result<String, String> {
        self.request_with(kind, None).await
    }

    /// Refits the scorers with thresholds aimed at `target_precision` (kept for later
    /// rebuilds) and answers with the fit report as JSON.
    pub async fn fit(&self, target_precision: Option<f64>) -> Result<String, String> {
        self.request_with(ReloadKind::Fit, target_precision).await
    }

    async fn request_with(
        &self,
        kind: ReloadKind,
        target_precision: Option<f64>,
    ) -> Result<String, String> {
        let (reply, answer) = oneshot::channel();
        self.tx
            .send(Request {
                kind,
                reply: Some(reply),
                target_precision,
            })
            .map_err(|_| "the reloader has stopped".to_owned())?;
        answer
            .await
            .map_err(|_| "the reloader stopped before answering".to_owned())?
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
    fn apply(&self, kinds: &BTreeSet<ReloadKind>) -> BTreeMap<ReloadKind, Result<String, String>> {
        let mut results = BTreeMap::new();
        let mut rebuild = kinds.contains(&ReloadKind::Rebuild);
        let refit = kinds.contains(&ReloadKind::Fit);
        if kinds.contains(&ReloadKind::Policy) {
            let outcome = self
                .live
                .reload_policy(&self.policy_path)
                .map(|versions| format!("policy → {versions}"))
                .map_err(|e| e.to_string());
            results.insert(ReloadKind::Policy, outcome);
        }
        if kinds.contains(&ReloadKind::Archetypes) {
            match lock(&self.store).reload() {
                Ok(()) => rebuild = true,
                Err(e) => {
                    results.insert(ReloadKind::Archetypes, Err(e.to_string()));
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

    /// Rebuilds the index from the store (re-embedding only new texts), checks it against the
    /// policy, saves it for the next start and swaps it in.
    /// Rebuilds the index when the archetypes changed (or always, with `refit`); with
    /// `refit` the answer is the fit report as JSON.
    fn rebuild(&self, refit: bool) -> Result<String, String> {
        let examples = lock(&self.store).examples().clone();
        let previous = self.live.snapshot();
        if !refit && previous.index.manifest().examples_sha256 == examples.content_sha256() {
            return Ok(format!("index unchanged ({})", previous.index.version()));
        }
        let fit = lock(&self.fit).clone();
        let (mut index, report) = rebuild_index_fitted(
            &examples,
            self.embedder.as_ref(),
            self.hnsw,
            Some(&previous.index),
            &fit,
            &|_, _| {},
        )
        .map_err(|e| e.to_string())?;
        self.live.check_index(&index).map_err(|e| e.to_string())?;
        // The examples are already durable in the journal: a failed save only costs a
        // re-embed at the next start, so it is logged rather than blocking the swap.
        if let Err(e) = index.save(&self.bundle_dir) {
            tracing::warn!(error = %e, "the rebuilt index is served but could not be saved");
        }
        let versions = self
            .live
            .swap_index(Arc::new(index))
            .map_err(|e| e.to_string())?;
        if refit {
            return Ok(fit_summary(&report, &versions));
        }
        Ok(format!("index → {versions}"))
    }
}

fn fit_summary(report: &FitReport, versions: &str) -> String {
    serde_json::json!({"versions": versions, "fit": report}).to_string()
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
                let failed = Err(format!("reload task failed: {e}"));
                kinds.iter().map(|k| (*k, failed.clone())).collect()
            });
        let errors: Vec<String> = results.values().filter_map(|r| r.clone().err()).collect();
        {
            let mut s = lock(&status);
            s.running = false;
            s.runs += 1;
            let oks: Vec<String> = results.values().filter_map(|r| r.clone().ok()).collect();
            if !oks.is_empty() {
                s.last_ok = Some(oks.join("; "));
            }
            s.last_error = (!errors.is_empty()).then(|| errors.join("; "));
        }
        for (kind, result) in &results {
            let outcome = if result.is_ok() { "ok" } else { "error" };
            metrics::counter!("router_reload_total", "kind" => kind.name(), "outcome" => outcome)
                .increment(1);
            match result {
                Ok(summary) => tracing::info!(kind = kind.name(), summary, "reload done"),
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
                    .unwrap_or_else(|| Ok("nothing to do".to_owned()));
                let _ = reply.send(answer);
            }
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}
