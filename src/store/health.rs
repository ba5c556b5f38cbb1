//! What `/info` and `/metrics` say about the archetype store. Updated by the store itself and
//! read without its lock (the lock is held across database round trips and fsyncs).

use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::Serialize;

/// `router_store_connected`: 1 while the store answers, 0 while it is unreachable.
pub const STORE_CONNECTED_METRIC: &str = "router_store_connected";
/// `router_store_syncs_total{outcome}`: reads of the shared store, `ok` or `error`.
pub const STORE_SYNCS_METRIC: &str = "router_store_syncs_total";
/// `router_store_seq`: the last change of the shared store this replica has applied.
pub const STORE_SEQ_METRIC: &str = "router_store_seq";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum StoreKind {
    /// The shipped files plus the local fsynced journal: one replica, no database.
    Embedded,
    /// The shipped files plus the change log in PostgreSQL, shared by every replica.
    Postgres,
}

#[derive(Debug)]
pub struct StoreHealth {
    kind: StoreKind,
    /// The journal path, or the database address without its password.
    location: String,
    connected: AtomicBool,
    seq: AtomicI64,
    last_ok_unix_ms: AtomicU64,
    last_error: Mutex<Option<String>>,
}

/// The store's state as `/info` shows it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct StoreStatus {
    pub kind: StoreKind,
    pub location: String,
    /// False while the shared store is unreachable: the last good index keeps serving and
    /// archetype writes answer 503 with `Retry-After`.
    pub connected: bool,
    /// The last shared change applied here (replicas that agree on it serve the same index).
    pub seq: i64,
    /// Milliseconds since the store last answered (absent before the first answer).
    pub last_ok_ms_ago: Option<u64>,
    pub last_error: Option<String>,
}

impl StoreHealth {
    pub fn new(kind: StoreKind, location: String) -> Self {
        let health = Self {
            kind,
            location,
            connected: AtomicBool::new(true),
            seq: AtomicI64::new(0),
            last_ok_unix_ms: AtomicU64::new(0),
            last_error: Mutex::new(None),
        };
        metrics::gauge!(STORE_CONNECTED_METRIC).set(1.0);
        health
    }

    pub fn kind(&self) -> StoreKind {
        self.kind
    }

    /// The store answered; `seq` is the last change applied.
    pub fn answered(&self, seq: i64) {
        self.connected.store(true, Ordering::Relaxed);
        self.seq.store(seq, Ordering::Relaxed);
        self.last_ok_unix_ms.store(now_ms(), Ordering::Relaxed);
        *self
            .last_error
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = None;
        metrics::gauge!(STORE_CONNECTED_METRIC).set(1.0);
        metrics::gauge!(STORE_SEQ_METRIC).set(seq as f64);
        metrics::counter!(STORE_SYNCS_METRIC, "outcome" => "ok").increment(1);
    }

    /// The store could not be reached or refused a read.
    pub fn failed(&self, error: &dyn std::fmt::Display) {
        self.connected.store(false, Ordering::Relaxed);
        *self
            .last_error
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(error.to_string());
        metrics::gauge!(STORE_CONNECTED_METRIC).set(0.0);
        metrics::counter!(STORE_SYNCS_METRIC, "outcome" => "error").increment(1);
    }

    pub fn status(&self) -> StoreStatus {
        let last_ok = self.last_ok_unix_ms.load(Ordering::Relaxed);
        StoreStatus {
            kind: self.kind,
            location: self.location.clone(),
            connected: self.connected.load(Ordering::Relaxed),
            seq: self.seq.load(Ordering::Relaxed),
            last_ok_ms_ago: (last_ok > 0).then(|| now_ms().saturating_sub(last_ok)),
            last_error: self
                .last_error
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .clone(),
        }
    }
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}
