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
use crate::pipeline::bundle::Bundle;
use crate::pipeline::{Snapshot, SnapshotError};

pub mod health_board;
pub mod reloader;
pub mod store_sync;
pub mod tenants;
pub mod watch;

pub use health_board::{HealthBoard, TargetReport};
pub use reloader::{ReloadFailure, ReloadHandle, ReloadKind, Reloaded, Reloader};
pub use tenants::{Tenant, TenantConfig, Tenants, TenantsError};

/// Gauge of archetypes per bucket in the serving index, set whenever a snapshot goes live.
pub const ARCHETYPES_METRIC: &str = "router_archetypes";

/// The same per configured tenant, labeled `tenant` (a bounded set: the tenants file's).
pub const TENANT_ARCHETYPES_METRIC: &str = "router_tenant_archetypes";

/// Sets [`ARCHETYPES_METRIC`] (or the tenant's series) from `snapshot`'s index (buckets it
/// lacks now go to 0).
fn record_archetypes(snapshot: &Snapshot, tenant: Option<&str>) {
    let counts = &snapshot.bundle.manifest().counts;
    for bucket in snapshot.policy.buckets.keys() {
        let n = counts.get(bucket).copied().unwrap_or(0) as f64;
        match tenant {
            None => metrics::gauge!(ARCHETYPES_METRIC, "bucket" => bucket.to_string()).set(n),
            Some(t) => metrics::gauge!(TENANT_ARCHETYPES_METRIC, "tenant" => t.to_owned(), "bucket" => bucket.to_string()).set(n),
        }
    }
}

/// The versions a snapshot serves.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Versions {
    pub policy_version: String,
    pub index_version: String,
}

impl std::fmt::Display for Versions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} / {}", self.policy_version, self.index_version)
    }
}

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
    /// The configured tenant this state serves (`None`: the shared namespace).
    tenant: Option<String>,
}

impl LiveState {
    pub fn new(snapshot: Snapshot, model_dims: usize) -> Self {
        Self::serving(snapshot, model_dims, None)
    }

    /// The live state of one tenant's namespace.
    pub fn for_tenant(snapshot: Snapshot, model_dims: usize, tenant: &str) -> Self {
        Self::serving(snapshot, model_dims, Some(tenant.to_owned()))
    }

    fn serving(snapshot: Snapshot, model_dims: usize, tenant: Option<String>) -> Self {
        record_archetypes(&snapshot, tenant.as_deref());
        Self {
            current: ArcSwap::from_pointee(snapshot),
            model_dims,
            last_error: Mutex::new(None),
            tenant,
        }
    }

    /// The snapshot a request uses from start to end.
    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.current.load_full()
    }

    /// Re-reads the policy file and swaps it in with the current index.
    /// Returns the new versions; on error nothing changes.
    pub fn reload_policy(&self, path: &Path) -> Result<Versions, ReloadError> {
        let result = Policy::load(path)
            .map_err(ReloadError::from)
            .and_then(|policy| {
                let bundle = Arc::clone(&self.snapshot().bundle);
                Ok(Snapshot::new(Arc::new(policy), bundle, self.model_dims)?)
            });
        self.install(result)
    }

    /// Swaps in a new bundle with the current policy. On error nothing changes.
    pub fn swap_bundle(&self, bundle: Arc<Bundle>) -> Result<Versions, ReloadError> {
        let policy = Arc::clone(&self.snapshot().policy);
        self.install(Snapshot::new(policy, bundle, self.model_dims).map_err(ReloadError::from))
    }

    /// The versions the current snapshot serves.
    pub fn versions(&self) -> Versions {
        let snapshot = self.snapshot();
        Versions {
            policy_version: snapshot.policy.version.clone(),
            index_version: snapshot.bundle.version().to_owned(),
        }
    }

    fn install(&self, candidate: Result<Snapshot, ReloadError>) -> Result<Versions, ReloadError> {
        match candidate {
            Ok(snapshot) => {
                record_archetypes(&snapshot, self.tenant.as_deref());
                self.current.store(Arc::new(snapshot));
                *self.lock_error() = None;
                let versions = self.versions();
                tracing::info!(versions = %versions, tenant = self.tenant.as_deref().unwrap_or(""), "snapshot swapped");
                Ok(versions)
            }
            Err(e) => {
                tracing::error!(error = %e, "reload refused; the last good snapshot keeps serving");
                *self.lock_error() = Some(e.to_string());
                Err(e)
            }
        }
    }

    /// Whether `bundle` could be swapped in with the current policy (nothing changes).
    pub fn check_bundle(&self, bundle: &Bundle) -> Result<(), ReloadError> {
        Ok(Snapshot::check(
            &self.snapshot().policy,
            bundle,
            self.model_dims,
        )?)
    }

    /// Records a failed reload that never reached [`Self::install`] (a rebuild that could
    /// not be saved), so `/ready` shows it; the next successful swap clears it.
    pub fn record_error(&self, message: String) {
        *self.lock_error() = Some(message);
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
