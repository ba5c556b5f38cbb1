//! The one reloader. The file watcher, SIGHUP, `POST /admin/reload`, `POST /admin/rebuild`
//! and archetype changes all send a [`ReloadKind`] here; nothing else reloads anything.
//!
//! Requests that arrive while one is running are coalesced into the next run. A run builds
//! its candidate off the async threads, validates it against the other half of the snapshot
//! and swaps it in with one store; when anything fails the last good snapshot keeps serving.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use serde::Serialize;
use tokio::sync::{mpsc, oneshot};

use super::LiveState;
use crate::embed::Embedder;
use crate::index::HnswParams;
use crate::indexer::rebuild_index;
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
}

impl ReloadKind {
    fn name(self) -> &'static str {
        match self {
            Self::Policy => "policy",
            Self::Archetypes => "archetypes",
            Self::Rebuild => "rebuild",
        }
    }
}

type Reply = oneshot::Sender<Result<String, String>>;

struct Request {
    kind: ReloadKind,
    reply: Option<Reply>,
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
        if self.tx.send(Request { kind, reply: None }).is_err() {
            tracing::warn!(
                kind = kind.name(),
                "the reloader has stopped; request dropped"
            );
        }
    }

    /// Queues a reload and waits for the run that includes it.
    pub async fn request(&self, kind: ReloadKind) -> Result<String, String> {
        let (reply, answer) = oneshot::channel();
        self.tx
            .send(Request {
                kind,
                reply: Some(reply),
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

    /// One run over a coalesced set of kinds. Blocking: embeds, writes files.
    fn apply(&self, kinds: &BTreeSet<ReloadKind>) -> Result<String, String> {
        let mut done = Vec::new();
        let mut rebuild = false;
        for kind in kinds {
            match kind {
                ReloadKind::Policy => {
                    let versions = self
                        .live
                        .reload_policy(&self.policy_path)
                        .map_err(|e| e.to_string())?;
                    done.push(format!("policy → {versions}"));
                }
                ReloadKind::Archetypes => {
                    lock(&self.store).reload().map_err(|e| e.to_string())?;
                    rebuild = true;
                }
                ReloadKind::Rebuild => rebuild = true,
            }
        }
        if rebuild {
            let examples = lock(&self.store).examples().clone();
            let previous = self.live.snapshot();
            if previous.index.manifest().examples_sha256 == examples.content_sha256() {
                done.push(format!("index unchanged ({})", previous.index.version()));
            } else {
                let mut index = rebuild_index(
                    &examples,
                    self.embedder.as_ref(),
                    self.hnsw,
                    Some(&previous.index),
                    &|_, _| {},
                )
                .map_err(|e| e.to_string())?;
                index.save(&self.bundle_dir).map_err(|e| e.to_string())?;
                let versions = self
                    .live
                    .swap_index(Arc::new(index))
                    .map_err(|e| e.to_string())?;
                done.push(format!("index → {versions}"));
            }
        }
        Ok(done.join("; "))
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
        lock(&status).running = true;
        let worker = Arc::clone(&reloader);
        let job_kinds = kinds.clone();
        let result = tokio::task::spawn_blocking(move || worker.apply(&job_kinds))
            .await
            .unwrap_or_else(|e| Err(format!("reload task failed: {e}")));
        {
            let mut s = lock(&status);
            s.running = false;
            s.runs += 1;
            match &result {
                Ok(summary) => {
                    s.last_ok = Some(summary.clone());
                    s.last_error = None;
                }
                Err(e) => s.last_error = Some(e.clone()),
            }
        }
        let outcome = if result.is_ok() { "ok" } else { "error" };
        for kind in &kinds {
            metrics::counter!("router_reload_total", "kind" => kind.name(), "outcome" => outcome)
                .increment(1);
        }
        match &result {
            Ok(summary) => tracing::info!(summary, "reload done"),
            Err(e) => {
                tracing::error!(error = %e, "reload failed; the last good state keeps serving")
            }
        }
        for request in batch {
            if let Some(reply) = request.reply {
                let _ = reply.send(result.clone());
            }
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}
