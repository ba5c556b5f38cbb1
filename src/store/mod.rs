//! The archetype store: the shipped example files plus a durable log of changes made through
//! the API (`POST /archetypes`, `DELETE /archetypes/{id}`). The effective set is the shipped
//! files with the log replayed over them, in order.
//!
//! The log is either embedded (an fsynced JSONL journal in the data directory: one replica,
//! zero set-up) or shared (PostgreSQL, `--store postgres://…`: every replica replays the same
//! changes in the same order, so they converge on the same set and the same index version).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

pub mod examples;
pub mod health;
mod journal;
pub mod labeled;
mod replay;
pub mod shared;
mod validate;
mod vector_cache;

use crate::types::{ArchetypeId, BucketId};
pub use examples::{ArchetypeError, Example, ExampleSet, InsertError, Strictness};
pub use health::{StoreHealth, StoreKind, StoreStatus};
pub use journal::JOURNAL_FILE;
pub use labeled::{read_labeled_rows, LabeledRow, RowFilter};
use replay::{apply, replay};
use shared::{Committed, Pending, SharedLog};
use validate::{one_tenant, validate};
pub use vector_cache::VectorCache;

/// The namespace of examples without a tenant.
pub const SHARED_NAMESPACE: &str = "";
/// One durable change. Persisted: keep backward-compatible.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case", deny_unknown_fields)]
pub enum JournalEntry {
    Add {
        id: String,
        bucket: String,
        text: String,
        /// The tenant's namespace; absent for the shared one.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        tenant: Option<String>,
    },
    Delete {
        id: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        tenant: Option<String>,
    },
}

impl JournalEntry {
    pub fn tenant(&self) -> Option<&str> {
        match self {
            Self::Add { tenant, .. } | Self::Delete { tenant, .. } => tenant.as_deref(),
        }
    }
}

/// An example offered through the API.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewExample {
    pub text: String,
    pub bucket: String,
    #[serde(default)]
    pub id: Option<String>,
    /// The tenant whose namespace gets the example; absent: the shared namespace. One
    /// tenant per request.
    #[serde(default)]
    pub tenant: Option<String>,
}

/// What happened to one offered example.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct AddOutcome {
    pub id: ArchetypeId,
    pub bucket: BucketId,
    /// False when the same text was already in the same bucket (adding is idempotent).
    pub created: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// User error (422): the bucket is not in the routing policy.
    #[error(
        "examples[{index}]: bucket `{bucket}` is not in the routing policy (buckets: {known})"
    )]
    UnknownBucket {
        index: usize,
        bucket: String,
        known: String,
    },
    /// User error (422): empty text or bucket, or an id used twice.
    #[error("examples[{index}]: {source}")]
    Invalid {
        index: usize,
        #[source]
        source: InsertError,
    },
    /// User error (409): the same text is labeled with another bucket.
    #[error("examples[{index}]: the same text is already archetype `{existing_id}` in bucket `{existing_bucket}`")]
    Conflict {
        index: usize,
        existing_id: ArchetypeId,
        existing_bucket: BucketId,
    },
    /// User error (404).
    #[error("no archetype with id `{0}`")]
    NotFound(ArchetypeId),
    /// User error (422): a batch for several tenants, or a tenant that is not configured.
    #[error("{0}")]
    Tenant(String),
    /// User error: the shipped files are invalid.
    #[error(transparent)]
    Archetypes(#[from] ArchetypeError),
    /// User or runtime error: the journal is unreadable or corrupt before its last line.
    #[error("archetype journal {path}:{line}: {message}")]
    Journal {
        path: String,
        line: usize,
        message: String,
    },
    /// Runtime error: the journal could not be written; nothing was acknowledged.
    #[error("archetype journal {path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    /// User error at start: `--store` is not a usable PostgreSQL URL.
    #[error("archetype store {location}: {message} (expected postgres://USER:PASS@HOST:PORT/DB)")]
    BadUrl { location: String, message: String },
    /// Runtime error (503): the shared store cannot be reached now; nothing was written and
    /// the last good index keeps serving.
    #[error("the shared archetype store is unavailable: {0}")]
    Unavailable(String),
    /// Runtime error: the shared store refused a statement or its schema is not ours.
    #[error("shared archetype store: {0}")]
    Database(String),
}

pub struct ArchetypeStore {
    shipped_dir: PathBuf,
    log: ChangeLog,
    /// The shared namespace: the shipped files and the changes without a tenant.
    examples: ExampleSet,
    /// Each tenant's own examples (added through the API with `tenant`).
    tenants: BTreeMap<String, ExampleSet>,
    health: Arc<StoreHealth>,
    /// Changes applied since the index was last asked for ([`Self::take_unbuilt`]). `add` and
    /// `delete` sync first, so a call that then fails or adds nothing may still have applied
    /// other replicas' changes, which need a rebuild as much as its own.
    unbuilt: bool,
}

enum ChangeLog {
    Embedded {
        journal_path: PathBuf,
    },
    Shared {
        log: Box<SharedLog>,
        /// Every change applied so far, in order: a reload of the shipped files replays
        /// them without asking the database.
        applied: Vec<JournalEntry>,
        seq: i64,
    },
}

impl ArchetypeStore {
    /// Reads the shipped files and replays the local journal.
    pub fn open(shipped_dir: &Path, data_dir: &Path) -> Result<Self, StoreError> {
        let journal_path = data_dir.join(JOURNAL_FILE);
        let (examples, tenants) = replay(shipped_dir, &journal::read(&journal_path)?)?;
        let health = StoreHealth::new(StoreKind::Embedded, journal_path.display().to_string());
        Ok(Self {
            shipped_dir: shipped_dir.to_owned(),
            log: ChangeLog::Embedded { journal_path },
            examples,
            tenants,
            health: Arc::new(health),
            unbuilt: false,
        })
    }

    /// Reads the shipped files and replays the shared log of `log`'s database. Blocking.
    pub fn open_shared(shipped_dir: &Path, log: SharedLog) -> Result<Self, StoreError> {
        let health = StoreHealth::new(StoreKind::Postgres, log.location().to_owned());
        let (examples, tenants) = replay(shipped_dir, &[])?;
        let mut store = Self {
            shipped_dir: shipped_dir.to_owned(),
            examples,
            tenants,
            log: ChangeLog::Shared {
                log: Box::new(log),
                applied: Vec::new(),
                seq: 0,
            },
            health: Arc::new(health),
            unbuilt: false,
        };
        store.sync()?;
        // The index at start is built from what was read here.
        store.unbuilt = false;
        Ok(store)
    }

    /// The store's state for `/info`, readable without the store's lock.
    pub fn health(&self) -> Arc<StoreHealth> {
        Arc::clone(&self.health)
    }

    /// The fleet's uncertain-decision queue, when the store is shared.
    pub fn shared_uncertain(&self, capacity: usize) -> Option<shared::uncertain::SharedUncertain> {
        match &self.log {
            ChangeLog::Embedded { .. } => None,
            ChangeLog::Shared { log, .. } => Some(log.uncertain_queue(capacity)),
        }
    }

    /// The fleet's embedding cache, when the store is shared: rebuilds read vectors other
    /// replicas computed instead of running the model again.
    pub fn vector_cache(&self) -> Option<Arc<dyn VectorCache>> {
        match &self.log {
            ChangeLog::Embedded { .. } => None,
            ChangeLog::Shared { log, .. } => Some(Arc::new(log.vectors())),
        }
    }

    /// Settings for a LISTEN connection, when the store is shared.
    pub fn listen_config(&self) -> Option<tokio_postgres::Config> {
        match &self.log {
            ChangeLog::Embedded { .. } => None,
            ChangeLog::Shared { log, .. } => Some(log.listen_config()),
        }
    }

    /// Re-reads the shipped files (after an edit on disk) and replays the log again.
    /// On error the current examples stay.
    pub fn reload(&mut self) -> Result<(), StoreError> {
        (self.examples, self.tenants) = match &self.log {
            ChangeLog::Embedded { journal_path } => {
                replay(&self.shipped_dir, &journal::read(journal_path)?)?
            }
            ChangeLog::Shared { applied, .. } => replay(&self.shipped_dir, applied)?,
        };
        Ok(())
    }

    /// Applies the shared changes committed since the last sync (by any replica); whether
    /// any were is in [`Self::take_unbuilt`]. The embedded journal has no other writer.
    pub fn sync(&mut self) -> Result<(), StoreError> {
        let ChangeLog::Shared { log, applied, seq } = &mut self.log else {
            return Ok(());
        };
        let changes = match log.changes_after(*seq) {
            Ok(changes) => changes,
            Err(e) => {
                self.health.failed(&e);
                return Err(e);
            }
        };
        for change in &changes {
            apply(&mut self.examples, &mut self.tenants, change.entry.clone());
            applied.push(change.entry.clone());
            *seq = change.seq;
        }
        self.health.answered(*seq);
        self.unbuilt |= !changes.is_empty();
        Ok(())
    }

    /// Whether examples changed since the last call: the index needs a rebuild.
    pub fn take_unbuilt(&mut self) -> bool {
        std::mem::take(&mut self.unbuilt)
    }

    /// The shared namespace.
    pub fn examples(&self) -> &ExampleSet {
        &self.examples
    }

    /// A tenant's own examples (none yet: empty).
    pub fn tenant_examples(&self, tenant: &str) -> ExampleSet {
        self.tenants.get(tenant).cloned().unwrap_or_default()
    }

    /// What a tenant's index is built from: its own examples, plus the shared ones unless
    /// its namespace replaces them. `None`: the shared namespace.
    pub fn effective(&self, tenant: Option<&str>, replace: bool) -> ExampleSet {
        let Some(tenant) = tenant else {
            return self.examples.clone();
        };
        let own = self.tenants.get(tenant);
        if replace {
            return own.cloned().unwrap_or_default();
        }
        let mut set = self.examples.clone();
        for e in own.map(ExampleSet::examples).unwrap_or_default() {
            // Validation kept the tenant's texts apart from the shared ones; a later edit of
            // the shipped files may not have: the shared example stays.
            if let Err(err) = set.insert(
                Some(e.id.as_str()),
                e.bucket.as_str(),
                &e.text,
                Strictness::Archetypes,
            ) {
                tracing::warn!(tenant, id = %e.id, error = %err, "tenant example shadowed by a shared one");
            }
        }
        set
    }

    /// Validates every offered example first (all or nothing), then makes the new ones durable
    /// (journal append + fsync, or one committed transaction) and applies them.
    pub fn add(
        &mut self,
        offered: &[NewExample],
        buckets: &BTreeSet<BucketId>,
    ) -> Result<Vec<AddOutcome>, StoreError> {
        let tenant = one_tenant(offered)?;
        // Validate against what the other replicas have committed too.
        self.sync()?;
        let scratch = self.effective(tenant.as_deref(), false);
        let (mut outcomes, pending) = validate(scratch, offered, buckets, tenant.as_deref())?;
        match &self.log {
            ChangeLog::Embedded { journal_path } => {
                let entries: Vec<JournalEntry> = pending.into_iter().map(|p| p.entry).collect();
                journal::append(journal_path, &entries)?;
                self.unbuilt |= !entries.is_empty();
                for entry in entries {
                    apply(&mut self.examples, &mut self.tenants, entry);
                }
            }
            ChangeLog::Shared { log, .. } => {
                let namespace = tenant.as_deref().unwrap_or(SHARED_NAMESPACE);
                let committed = log.commit(namespace, &pending)?;
                for (item, result) in pending.iter().zip(committed) {
                    if let Committed::AlreadyThere { id } = result {
                        outcomes[item.index].id = ArchetypeId::new(&id);
                        outcomes[item.index].created = false;
                    }
                }
                // Apply through the log, so this replica's order is everyone's order.
                self.sync()?;
            }
        }
        Ok(outcomes)
    }

    /// Removes an example (shipped or added) of a namespace durably.
    pub fn delete(
        &mut self,
        id: &ArchetypeId,
        tenant: Option<&str>,
    ) -> Result<Example, StoreError> {
        self.sync()?;
        let namespace = match tenant {
            None => Some(&self.examples),
            Some(t) => self.tenants.get(t),
        };
        let Some(existing) = namespace.and_then(|n| n.get(id)).cloned() else {
            return Err(StoreError::NotFound(id.clone()));
        };
        let entry = JournalEntry::Delete {
            id: id.to_string(),
            tenant: tenant.map(str::to_owned),
        };
        match &self.log {
            ChangeLog::Embedded { journal_path } => {
                journal::append(journal_path, std::slice::from_ref(&entry))?;
                apply(&mut self.examples, &mut self.tenants, entry);
                self.unbuilt = true;
            }
            ChangeLog::Shared { log, .. } => {
                let pending = Pending {
                    index: 0,
                    entry,
                    text_key: None,
                };
                log.commit(tenant.unwrap_or(SHARED_NAMESPACE), &[pending])?;
                self.sync()?;
            }
        }
        Ok(existing)
    }
}

#[cfg(test)]
mod tests;
