//! The fleet's uncertain-decision queue (`router_uncertain`): with a shared store every
//! replica's uncertain decisions go to one table, so operators label the fleet's, whichever
//! replica they ask, and a tenant's items stay in its namespace.
//!
//! Writes stay off the request path: a bounded channel drained by one task on the runtime.
//! When it is full (a slow or unreachable database) an item is dropped and counted; the
//! replica's own in-memory queue still holds it. Each namespace keeps its newest `capacity`
//! items, as the in-memory queue does.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use deadpool_postgres::Pool;
use tokio::sync::mpsc;

use super::{database, unavailable, CALL_DEADLINE};
use crate::store::StoreError;

/// Items waiting for the writer; past this, new ones are dropped.
const PENDING_MAX: usize = 256;
/// Counter of items the shared queue never got.
pub const DROPPED_METRIC: &str = "router_uncertain_shared_dropped_total";

/// A handle on the shared queue; cheap to clone.
#[derive(Clone)]
pub struct SharedUncertain {
    pool: Pool,
    pending: mpsc::Sender<Offered>,
    dropped: Arc<AtomicU64>,
}

struct Offered {
    namespace: String,
    /// The item as JSON: the store keeps it as the pipeline wrote it.
    item: String,
}

/// One page read back.
#[derive(Debug)]
pub struct UncertainRows {
    /// Items as JSON text, newest first.
    pub items: Vec<String>,
    /// How many items the namespace (or every namespace) holds now.
    pub held: u64,
}

impl SharedUncertain {
    /// Starts the writer on `runtime`; each namespace keeps its newest `capacity` items.
    pub(super) fn start(pool: Pool, capacity: usize, runtime: &tokio::runtime::Handle) -> Self {
        let (pending, received) = mpsc::channel(PENDING_MAX);
        let dropped = Arc::new(AtomicU64::new(0));
        let keep = i64::try_from(capacity).unwrap_or(i64::MAX);
        runtime.spawn(write_all(
            pool.clone(),
            received,
            keep,
            Arc::clone(&dropped),
        ));
        Self {
            pool,
            pending,
            dropped,
        }
    }

    /// Queues `item` (JSON) for `namespace`; never waits.
    pub fn offer(&self, namespace: &str, item: String) {
        let offered = Offered {
            namespace: namespace.to_owned(),
            item,
        };
        if self.pending.try_send(offered).is_err() {
            count_drop(&self.dropped);
        }
    }

    /// Items the shared queue never got (full channel, or a write that failed).
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// The newest `limit` items of `namespace`, or of every namespace when `None`.
    pub async fn newest(
        &self,
        namespace: Option<&str>,
        limit: usize,
    ) -> Result<UncertainRows, StoreError> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let read = async {
            let client = self.pool.get().await.map_err(unavailable)?;
            let rows = client
                .query(
                    "SELECT item::text FROM router_uncertain
                     WHERE $1::text IS NULL OR namespace = $1 ORDER BY id DESC LIMIT $2",
                    &[&namespace, &limit],
                )
                .await
                .map_err(database)?;
            let held: i64 = client
                .query_one(
                    "SELECT count(*) FROM router_uncertain WHERE $1::text IS NULL OR namespace = $1",
                    &[&namespace],
                )
                .await
                .map_err(database)?
                .get(0);
            Ok(UncertainRows {
                items: rows.iter().map(|r| r.get(0)).collect(),
                held: u64::try_from(held).unwrap_or(0),
            })
        };
        tokio::time::timeout(CALL_DEADLINE, read)
            .await
            .unwrap_or_else(|_| {
                Err(StoreError::Unavailable(format!(
                    "the shared store did not answer within {} s",
                    CALL_DEADLINE.as_secs()
                )))
            })
    }
}

fn count_drop(dropped: &AtomicU64) {
    dropped.fetch_add(1, Ordering::Relaxed);
    ::metrics::counter!(DROPPED_METRIC).increment(1);
}

/// The writer: one insert (and trim) per item, in order, each within the call deadline.
async fn write_all(
    pool: Pool,
    mut received: mpsc::Receiver<Offered>,
    keep: i64,
    dropped: Arc<AtomicU64>,
) {
    while let Some(offered) = received.recv().await {
        let written = tokio::time::timeout(CALL_DEADLINE, write_one(&pool, &offered, keep)).await;
        let error = match written {
            Ok(Ok(())) => continue,
            Ok(Err(e)) => e.to_string(),
            Err(_) => format!("no answer within {} s", CALL_DEADLINE.as_secs()),
        };
        count_drop(&dropped);
        tracing::warn!(%error, "an uncertain decision was not written to the shared store (this replica still holds it)");
    }
}

async fn write_one(pool: &Pool, offered: &Offered, keep: i64) -> Result<(), StoreError> {
    let client = pool.get().await.map_err(unavailable)?;
    client
        .execute(
            "INSERT INTO router_uncertain (namespace, item) VALUES ($1, $2::text::jsonb)",
            &[&offered.namespace, &offered.item],
        )
        .await
        .map_err(database)?;
    // Keep the namespace's newest `keep`: everything older than the oldest of those goes.
    client
        .execute(
            "DELETE FROM router_uncertain WHERE namespace = $1 AND id < (
                 SELECT coalesce(min(id), 0) FROM (
                     SELECT id FROM router_uncertain WHERE namespace = $1
                     ORDER BY id DESC LIMIT $2) AS kept)",
            &[&offered.namespace, &keep],
        )
        .await
        .map_err(database)?;
    Ok(())
}
