//! The shared change log in PostgreSQL (`--store postgres://…`): every replica appends its
//! archetype changes here and replays everyone's, in one global order.
//!
//! Writers take one advisory lock per transaction, so `seq` is gap-free and increases in
//! commit order: a replica that has applied every change up to `seq` has missed none, and a
//! catch-up read of `seq > last` is complete. Each commit sends a NOTIFY so replicas catch up
//! at once; the periodic catch-up covers a missed notification.
//!
//! The rest of the store is synchronous (it runs on blocking threads, under the store's lock),
//! so this facade blocks on the async client with the runtime's handle, with a deadline on
//! every call: an unreachable database costs a bounded wait, never a stuck writer.

use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use tokio_postgres::NoTls;

pub mod schema;
pub mod uncertain;
pub mod vectors;

use super::{InsertError, JournalEntry, StoreError};
use crate::types::{ArchetypeId, BucketId};

/// The channel every commit notifies, with its `seq` as the payload.
pub const CHANNEL: &str = "router_archetypes";
/// Advisory lock held by every writing transaction (orders `seq`).
const WRITE_LOCK: i64 = 0x726f_7574_6572_0002;
/// Longest any one store call may take, connecting included.
pub(super) const CALL_DEADLINE: Duration = Duration::from_secs(5);
const POOL_SIZE: usize = 4;

/// One change read back from the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoggedChange {
    pub seq: i64,
    pub entry: JournalEntry,
}

/// What became of one offered addition inside the transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Committed {
    Written,
    /// Another replica committed the same text to the same bucket first (idempotent).
    AlreadyThere {
        id: String,
    },
}

/// An addition or deletion to commit, with the position of the offered item it came from.
#[derive(Debug, Clone)]
pub struct Pending {
    pub index: usize,
    pub entry: JournalEntry,
    /// The normalised text (additions only): unique per namespace in the database.
    pub text_key: Option<String>,
}

pub struct SharedLog {
    pool: Pool,
    config: tokio_postgres::Config,
    runtime: tokio::runtime::Handle,
    location: String,
}

impl SharedLog {
    /// Parses the URL, builds the pool and migrates the schema. Blocking.
    pub fn connect(url: &str, runtime: tokio::runtime::Handle) -> Result<Self, StoreError> {
        let config: tokio_postgres::Config = url.parse().map_err(|e| StoreError::BadUrl {
            location: redact(url),
            message: format!("{e}"),
        })?;
        let manager = Manager::from_config(
            config.clone(),
            NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(POOL_SIZE)
            .runtime(Runtime::Tokio1)
            .wait_timeout(Some(CALL_DEADLINE))
            .create_timeout(Some(CALL_DEADLINE))
            .recycle_timeout(Some(CALL_DEADLINE))
            .build()
            .map_err(|e| StoreError::BadUrl {
                location: redact(url),
                message: e.to_string(),
            })?;
        let log = Self {
            pool,
            config,
            runtime,
            location: redact(url),
        };
        let version = log.call(async {
            let mut client = log.pool.get().await.map_err(unavailable)?;
            schema::migrate(&mut client).await.map_err(|e| match e {
                schema::MigrateError::Database(e) => database(e),
                newer @ schema::MigrateError::Newer { .. } => {
                    StoreError::Database(newer.to_string())
                }
            })
        })?;
        tracing::info!(
            store = log.location,
            schema = version,
            "shared archetype store ready"
        );
        Ok(log)
    }

    /// The database address without its password, for logs and `/info`.
    pub fn location(&self) -> &str {
        &self.location
    }

    /// The fleet's uncertain-decision queue on this database, its writer started on the
    /// store's runtime; each namespace keeps its newest `capacity` items.
    pub fn uncertain_queue(&self, capacity: usize) -> uncertain::SharedUncertain {
        uncertain::SharedUncertain::start(self.pool.clone(), capacity, &self.runtime)
    }

    /// The fleet's embedding cache on this database.
    pub fn vectors(&self) -> vectors::SharedVectors {
        vectors::SharedVectors::new(self.pool.clone(), self.runtime.clone())
    }

    /// Connection settings for the listener (a dedicated connection outside the pool).
    pub fn listen_config(&self) -> tokio_postgres::Config {
        self.config.clone()
    }

    /// Every change (all namespaces) after `after`, in order. Blocking.
    pub fn changes_after(&self, after: i64) -> Result<Vec<LoggedChange>, StoreError> {
        self.call(async {
            let client = self.pool.get().await.map_err(unavailable)?;
            let rows = client
                .query(
                    "SELECT seq, op, archetype_id, bucket, body, namespace
                     FROM router_archetype_changes WHERE seq > $1 ORDER BY seq",
                    &[&after],
                )
                .await
                .map_err(database)?;
            rows.iter()
                .map(|row| {
                    let seq: i64 = row.get(0);
                    let op: &str = row.get(1);
                    let id: String = row.get(2);
                    let namespace: String = row.get(5);
                    let tenant = (namespace != super::SHARED_NAMESPACE).then_some(namespace);
                    let entry = match op {
                        "add" => JournalEntry::Add {
                            id,
                            bucket: row.get::<_, Option<String>>(3).unwrap_or_default(),
                            text: row.get::<_, Option<String>>(4).unwrap_or_default(),
                            tenant,
                        },
                        "delete" => JournalEntry::Delete { id, tenant },
                        other => {
                            return Err(StoreError::Database(format!(
                                "change {seq} has an unknown op `{other}`"
                            )))
                        }
                    };
                    Ok(LoggedChange { seq, entry })
                })
                .collect()
        })
    }

    /// Commits `pending` in one transaction (all or nothing), enforcing one bucket per text
    /// and one text per id in the namespace. Returns only after the commit. Blocking.
    pub fn commit(
        &self,
        namespace: &str,
        pending: &[Pending],
    ) -> Result<Vec<Committed>, StoreError> {
        self.call(async {
            let mut client = self.pool.get().await.map_err(unavailable)?;
            let tx = client.transaction().await.map_err(database)?;
            tx.execute("SELECT pg_advisory_xact_lock($1)", &[&WRITE_LOCK])
                .await
                .map_err(database)?;
            let mut seq: i64 = tx
                .query_one(
                    "SELECT coalesce(max(seq), 0) FROM router_archetype_changes",
                    &[],
                )
                .await
                .map_err(database)?
                .get(0);
            let mut results = Vec::with_capacity(pending.len());
            for item in pending {
                match (&item.entry, &item.text_key) {
                    (JournalEntry::Add { id, bucket, .. }, Some(key)) => {
                        let existing = tx
                            .query_opt(
                                "SELECT archetype_id, bucket, text_key FROM router_archetype_texts
                                 WHERE namespace = $1 AND (text_key = $2 OR archetype_id = $3)",
                                &[&namespace, key, id],
                            )
                            .await
                            .map_err(database)?;
                        if let Some(row) = existing {
                            let (other_id, other_bucket, other_key): (String, String, String) =
                                (row.get(0), row.get(1), row.get(2));
                            if &other_key == key && &other_bucket == bucket {
                                results.push(Committed::AlreadyThere { id: other_id });
                                continue;
                            }
                            // Dropping the transaction rolls it back: nothing is written.
                            return Err(if &other_key == key {
                                StoreError::Conflict {
                                    index: item.index,
                                    existing_id: ArchetypeId::new(&other_id),
                                    existing_bucket: BucketId::new(&other_bucket),
                                }
                            } else {
                                StoreError::Invalid {
                                    index: item.index,
                                    source: InsertError::DuplicateId(ArchetypeId::new(id)),
                                }
                            });
                        }
                        tx.execute(
                            "INSERT INTO router_archetype_texts (namespace, text_key, archetype_id, bucket)
                             VALUES ($1, $2, $3, $4)",
                            &[&namespace, key, id, bucket],
                        )
                        .await
                        .map_err(database)?;
                    }
                    (JournalEntry::Delete { id, .. }, _) => {
                        tx.execute(
                            "DELETE FROM router_archetype_texts WHERE namespace = $1 AND archetype_id = $2",
                            &[&namespace, id],
                        )
                        .await
                        .map_err(database)?;
                    }
                    (JournalEntry::Add { .. }, None) => {
                        return Err(StoreError::Database(
                            "an addition without its text key. This is a bug.".into(),
                        ))
                    }
                }
                seq += 1;
                let (op, id, bucket, body) = match &item.entry {
                    JournalEntry::Add { id, bucket, text, .. } => {
                        ("add", id, Some(bucket), Some(text))
                    }
                    JournalEntry::Delete { id, .. } => ("delete", id, None, None),
                };
                tx.execute(
                    "INSERT INTO router_archetype_changes (seq, namespace, op, archetype_id, bucket, body)
                     VALUES ($1, $2, $3, $4, $5, $6)",
                    &[&seq, &namespace, &op, id, &bucket, &body],
                )
                .await
                .map_err(database)?;
                results.push(Committed::Written);
            }
            if results.contains(&Committed::Written) {
                // Delivered to listeners only when the transaction commits.
                tx.execute("SELECT pg_notify($1, $2)", &[&CHANNEL, &seq.to_string()])
                    .await
                    .map_err(database)?;
            }
            tx.commit().await.map_err(database)?;
            Ok(results)
        })
    }

    /// Runs `work` on the runtime with the call deadline. Must be called off the async threads.
    fn call<T>(
        &self,
        work: impl std::future::Future<Output = Result<T, StoreError>>,
    ) -> Result<T, StoreError> {
        self.runtime
            .block_on(tokio::time::timeout(CALL_DEADLINE, work))
            .unwrap_or_else(|_| {
                Err(StoreError::Unavailable(format!(
                    "{} did not answer within {} s",
                    self.location,
                    CALL_DEADLINE.as_secs()
                )))
            })
    }
}

/// `postgres://user:secret@host/db` → `postgres://user:***@host/db`.
pub fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return "(not a URL)".to_owned();
    };
    match rest.split_once('@') {
        Some((credentials, host)) => {
            let user = credentials.split(':').next().unwrap_or("");
            format!("{scheme}://{user}:***@{host}")
        }
        None => url.to_owned(),
    }
}

pub(super) fn unavailable(e: deadpool_postgres::PoolError) -> StoreError {
    StoreError::Unavailable(e.to_string())
}

/// Connection trouble (no SQL state, or classes 08 connection, 53 resources, 57 operator
/// intervention such as a restart) is unavailability; anything else is a database error.
pub(super) fn database(e: tokio_postgres::Error) -> StoreError {
    match e.code().map(|c| c.code()) {
        None => StoreError::Unavailable(e.to_string()),
        Some(code)
            if ["08", "53", "57"]
                .iter()
                .any(|class| code.starts_with(class)) =>
        {
            StoreError::Unavailable(e.to_string())
        }
        Some(code) => StoreError::Database(format!("database error {code}: {e}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_never_reach_logs() {
        assert_eq!(
            redact("postgres://router:s3cret@db:5432/routes"),
            "postgres://router:***@db:5432/routes"
        );
        assert_eq!(redact("postgres://db/routes"), "postgres://db/routes");
        assert_eq!(redact("host=db"), "(not a URL)");
    }
}
