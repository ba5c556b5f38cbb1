//! The swappable state: the current [`Snapshot`] behind an `ArcSwap`.
//!
//! Requests take the snapshot once (`snapshot()`) and keep that `Arc` to the end. A reload
//! builds and validates the candidate off the hot path and swaps it in with one store; when
//! anything fails, the last good snapshot keeps serving and the error is kept for `/ready`.
//!
//! Beside it, the other per-process live state: provider health ([`HealthBoard`]), which is
//! not swapped with the snapshot (a reload keeps what callers have reported).

use std::path::Path;
use std::sync::{Arc, Mutex};

use arc_swap::ArcSwap;

use crate::decide::{Policy, PolicyError};
use crate::index::LoadedIndex;
use crate::pipeline::{Snapshot, SnapshotError};

pub mod health_board;
pub mod reloader;
pub mod watch;

pub use health_board::{HealthBoard, TargetReport};
pub use reloader::{ReloadHandle, ReloadKind, Reloader};

#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    #[error(transparent)]
    Policy(#[from] PolicyError),
    #[error(transparent)]
    Snapshot(#[from] SnapshotError),
}

pub struct LiveState {
    current: ArcSwap<Snapshot>,
    model_dims: usize,
    /// The last failed reload, cleared by the next success. Read by `/ready`, never by requests.
    last_error: Mutex<Option<String>>,
}

impl LiveState {
    pub fn new(snapshot: Snapshot, model_dims: usize) -> Self {
        Self {
            current: ArcSwap::from_pointee(snapshot),
            model_dims,
            last_error: Mutex::new(None),
        }
    }

    /// The snapshot a request uses from start to end.
    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.current.load_full()
    }

    /// Re-reads the policy file and swaps it in with the current index.
    /// Returns the new policy version; on error nothing changes.
    pub fn reload_policy(&self, path: &Path) -> Result<String, ReloadError> {
        let result = Policy::load(path)
            .map_err(ReloadError::from)
            .and_then(|policy| {
                let index = Arc::clone(&self.snapshot().index);
                Ok(Snapshot::new(Arc::new(policy), index, self.model_dims)?)
            });
        self.install(result)
    }

    /// Swaps in a new index with the current policy. On error nothing changes.
    pub fn swap_index(&self, index: Arc<LoadedIndex>) -> Result<String, ReloadError> {
        let policy = Arc::clone(&self.snapshot().policy);
        self.install(Snapshot::new(policy, index, self.model_dims).map_err(ReloadError::from))
    }

    fn install(&self, candidate: Result<Snapshot, ReloadError>) -> Result<String, ReloadError> {
        match candidate {
            Ok(snapshot) => {
                let version = format!("{} / {}", snapshot.policy.version, snapshot.index.version());
                self.current.store(Arc::new(snapshot));
                *self.lock_error() = None;
                tracing::info!(versions = %version, "snapshot swapped");
                Ok(version)
            }
            Err(e) => {
                tracing::error!(error = %e, "reload refused; the last good snapshot keeps serving");
                *self.lock_error() = Some(e.to_string());
                Err(e)
            }
        }
    }

    /// Whether `index` could be swapped in with the current policy (nothing changes).
    pub fn check_index(&self, index: &LoadedIndex) -> Result<(), ReloadError> {
        Ok(Snapshot::check(
            &self.snapshot().policy,
            index,
            self.model_dims,
        )?)
    }

    pub fn last_error(&self) -> Option<String> {
        self.lock_error().clone()
    }

    fn lock_error(&self) -> std::sync::MutexGuard<'_, Option<String>> {
        // A poisoned lock only means a panic while holding a String; the value is still usable.
        self.last_error
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}
