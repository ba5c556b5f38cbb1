//! The archetype store: the shipped example files plus a durable journal of changes made
//! through the API (`POST /archetypes`, `DELETE /archetypes/{id}`).
//!
//! The journal is append-only JSONL in the data directory, fsynced before a change is
//! acknowledged, so an acknowledged example survives `kill -9`. The effective set is the
//! shipped files with the journal replayed over them, in order.

use std::collections::BTreeSet;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

pub mod examples;
pub mod labeled;

use crate::types::{ArchetypeId, BucketId};
pub use examples::{ArchetypeError, Example, ExampleSet, InsertError, Strictness};
pub use labeled::{read_labeled_rows, LabeledRow, RowFilter};

pub const JOURNAL_FILE: &str = "archetypes.journal.jsonl";

/// One durable change. Persisted: keep backward-compatible.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case", deny_unknown_fields)]
pub enum JournalEntry {
    Add {
        id: String,
        bucket: String,
        text: String,
    },
    Delete {
        id: String,
    },
}

/// An example offered through the API.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewExample {
    pub text: String,
    pub bucket: String,
    #[serde(default)]
    pub id: Option<String>,
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
}

pub struct ArchetypeStore {
    shipped_dir: PathBuf,
    journal_path: PathBuf,
    examples: ExampleSet,
}

impl ArchetypeStore {
    /// Reads the shipped files and replays the journal.
    pub fn open(shipped_dir: &Path, data_dir: &Path) -> Result<Self, StoreError> {
        let journal_path = data_dir.join(JOURNAL_FILE);
        let examples = load(shipped_dir, &journal_path)?;
        Ok(Self {
            shipped_dir: shipped_dir.to_owned(),
            journal_path,
            examples,
        })
    }

    /// Re-reads the shipped files (after an edit on disk) and replays the journal again.
    /// On error the current examples stay.
    pub fn reload(&mut self) -> Result<(), StoreError> {
        self.examples = load(&self.shipped_dir, &self.journal_path)?;
        Ok(())
    }

    pub fn examples(&self) -> &ExampleSet {
        &self.examples
    }

    /// Validates every offered example first (all or nothing), then makes the new ones durable
    /// (journal append + fsync) and applies them.
    pub fn add(
        &mut self,
        offered: &[NewExample],
        buckets: &BTreeSet<BucketId>,
    ) -> Result<Vec<AddOutcome>, StoreError> {
        let known = || {
            buckets
                .iter()
                .map(BucketId::as_str)
                .collect::<Vec<_>>()
                .join(", ")
        };
        // Validate against a scratch copy so a batch with a bad item changes nothing.
        let mut scratch = self.examples.clone();
        let mut outcomes = Vec::with_capacity(offered.len());
        let mut entries = Vec::new();
        for (index, e) in offered.iter().enumerate() {
            let bucket = BucketId::new(e.bucket.trim());
            if !buckets.contains(&bucket) {
                return Err(StoreError::UnknownBucket {
                    index,
                    bucket: e.bucket.clone(),
                    known: known(),
                });
            }
            if let Some(existing) = scratch.find_text(&e.text) {
                if existing.bucket == bucket {
                    outcomes.push(AddOutcome {
                        id: existing.id.clone(),
                        bucket,
                        created: false,
                    });
                    continue;
                }
                return Err(StoreError::Conflict {
                    index,
                    existing_id: existing.id.clone(),
                    existing_bucket: existing.bucket.clone(),
                });
            }
            scratch
                .insert(
                    e.id.as_deref(),
                    bucket.as_str(),
                    &e.text,
                    Strictness::Archetypes,
                )
                .map_err(|source| StoreError::Invalid { index, source })?;
            let added = scratch
                .find_text(&e.text)
                .expect("an inserted text can be found. This is a bug.");
            entries.push(JournalEntry::Add {
                id: added.id.to_string(),
                bucket: added.bucket.to_string(),
                text: added.text.clone(),
            });
            outcomes.push(AddOutcome {
                id: added.id.clone(),
                bucket,
                created: true,
            });
        }
        self.append(&entries)?;
        self.examples = scratch;
        Ok(outcomes)
    }

    /// Removes an example (shipped or added) durably.
    pub fn delete(&mut self, id: &ArchetypeId) -> Result<Example, StoreError> {
        if self.examples.get(id).is_none() {
            return Err(StoreError::NotFound(id.clone()));
        }
        self.append(&[JournalEntry::Delete { id: id.to_string() }])?;
        self.examples
            .remove(id)
            .ok_or_else(|| StoreError::NotFound(id.clone()))
    }

    fn append(&self, entries: &[JournalEntry]) -> Result<(), StoreError> {
        if entries.is_empty() {
            return Ok(());
        }
        let io = |source| StoreError::Io {
            path: self.journal_path.display().to_string(),
            source,
        };
        let dir = self.journal_path.parent().unwrap_or(Path::new("."));
        std::fs::create_dir_all(dir).map_err(io)?;
        let created = !self.journal_path.exists();
        let mut text = String::new();
        for entry in entries {
            text.push_str(
                &serde_json::to_string(entry).expect("journal entries serialise. This is a bug."),
            );
            text.push('\n');
        }
        let mut file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.journal_path)
            .map_err(io)?;
        let before = file.metadata().map_err(io)?.len();
        // Durable before acknowledged: the caller answers only after this returns.
        let written = file
            .write_all(text.as_bytes())
            .and_then(|()| file.sync_all());
        if let Err(e) = written {
            // Leave no partial line for the next append to glue onto.
            let _ = file.set_len(before).and_then(|()| file.sync_all());
            return Err(io(e));
        }
        if created {
            // A new file's directory entry must be durable too.
            File::open(dir).and_then(|d| d.sync_all()).map_err(io)?;
        }
        Ok(())
    }
}

fn load(shipped_dir: &Path, journal_path: &Path) -> Result<ExampleSet, StoreError> {
    let mut examples = ExampleSet::load(shipped_dir, Strictness::Archetypes)?;
    if !journal_path.is_file() {
        return Ok(examples);
    }
    let path = journal_path.display().to_string();
    let text = std::fs::read_to_string(journal_path).map_err(|source| StoreError::Io {
        path: path.clone(),
        source,
    })?;
    let lines: Vec<&str> = text.lines().collect();
    for (i, line) in lines.iter().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let entry: JournalEntry = match serde_json::from_str(line) {
            Ok(entry) => entry,
            // A torn last line is a write that crashed before its fsync: never acknowledged.
            // Cut it off, so the next append does not glue a good entry onto it.
            Err(_) if i + 1 == lines.len() && !text.ends_with('\n') => {
                tracing::warn!(path, line = i + 1, "dropping a torn last journal line");
                let keep = text.rfind('\n').map_or(0, |n| n + 1) as u64;
                OpenOptions::new()
                    .write(true)
                    .open(journal_path)
                    .and_then(|f| f.set_len(keep).and_then(|()| f.sync_all()))
                    .map_err(|source| StoreError::Io {
                        path: path.clone(),
                        source,
                    })?;
                break;
            }
            Err(e) => {
                return Err(StoreError::Journal {
                    path,
                    line: i + 1,
                    message: e.to_string(),
                })
            }
        };
        apply(&mut examples, entry);
    }
    Ok(examples)
}

/// Replays one entry; entries made moot by a later edit of the shipped files are skipped.
fn apply(examples: &mut ExampleSet, entry: JournalEntry) {
    match entry {
        JournalEntry::Add { id, bucket, text } => {
            if let Err(e) = examples.insert(Some(&id), &bucket, &text, Strictness::Archetypes) {
                tracing::warn!(id, error = %e, "journal addition no longer applies; skipped");
            }
        }
        JournalEntry::Delete { id } => {
            examples.remove(&ArchetypeId::new(&id));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn setup() -> (tempfile::TempDir, PathBuf, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let shipped = dir.path().join("examples");
        std::fs::create_dir_all(&shipped).unwrap();
        std::fs::write(
            shipped.join("a.jsonl"),
            "{\"id\": \"code-1\", \"bucket\": \"code\", \"text\": \"write a parser\"}\n",
        )
        .unwrap();
        let data = dir.path().join("data");
        (dir, shipped, data)
    }

    fn buckets() -> BTreeSet<BucketId> {
        ["code", "chat"].iter().map(|b| BucketId::new(b)).collect()
    }

    fn new(text: &str, bucket: &str) -> NewExample {
        NewExample {
            text: text.into(),
            bucket: bucket.into(),
            id: None,
        }
    }

    #[test]
    fn added_examples_survive_reopening() {
        let (_dir, shipped, data) = setup();
        let mut store = ArchetypeStore::open(&shipped, &data).unwrap();
        let out = store
            .add(&[new("hello there", "chat")], &buckets())
            .unwrap();
        assert!(out[0].created);
        let reopened = ArchetypeStore::open(&shipped, &data).unwrap();
        assert_eq!(reopened.examples().len(), 2);
        assert_eq!(
            reopened.examples().get(&out[0].id).unwrap().text,
            "hello there"
        );
    }

    #[test]
    fn same_text_same_bucket_is_idempotent_other_bucket_conflicts() {
        let (_dir, shipped, data) = setup();
        let mut store = ArchetypeStore::open(&shipped, &data).unwrap();
        let again = store
            .add(&[new("Write a  parser", "code")], &buckets())
            .unwrap();
        assert_eq!((again[0].id.as_str(), again[0].created), ("code-1", false));
        let err = store
            .add(&[new("write a parser", "chat")], &buckets())
            .unwrap_err();
        assert!(matches!(err, StoreError::Conflict { .. }), "{err}");
        assert!(err.to_string().contains("code-1"));
    }

    #[test]
    fn a_bad_item_rejects_the_whole_batch() {
        let (_dir, shipped, data) = setup();
        let mut store = ArchetypeStore::open(&shipped, &data).unwrap();
        let err = store
            .add(&[new("fine", "chat"), new("x", "poetry")], &buckets())
            .unwrap_err();
        assert!(
            matches!(err, StoreError::UnknownBucket { index: 1, .. }),
            "{err}"
        );
        assert_eq!(store.examples().len(), 1);
        assert!(!data.join(JOURNAL_FILE).exists());
        let err = store.add(&[new("  ", "chat")], &buckets()).unwrap_err();
        assert!(matches!(err, StoreError::Invalid { index: 0, .. }), "{err}");
    }

    #[test]
    fn deletes_are_durable_and_unknown_ids_are_404() {
        let (_dir, shipped, data) = setup();
        let mut store = ArchetypeStore::open(&shipped, &data).unwrap();
        store.delete(&ArchetypeId::new("code-1")).unwrap();
        assert!(matches!(
            store.delete(&ArchetypeId::new("code-1")),
            Err(StoreError::NotFound(_))
        ));
        assert!(ArchetypeStore::open(&shipped, &data)
            .unwrap()
            .examples()
            .is_empty());
    }

    #[test]
    fn a_torn_last_line_is_ignored_but_earlier_corruption_is_an_error() {
        let (_dir, shipped, data) = setup();
        std::fs::create_dir_all(&data).unwrap();
        let good = serde_json::to_string(&JournalEntry::Add {
            id: "c2".into(),
            bucket: "chat".into(),
            text: "hi".into(),
        })
        .unwrap();
        std::fs::write(
            data.join(JOURNAL_FILE),
            format!("{good}\n{{\"op\": \"add\", \"id\": \"c3\", \"buc"),
        )
        .unwrap();
        let mut store = ArchetypeStore::open(&shipped, &data).unwrap();
        assert_eq!(store.examples().len(), 2);
        // The torn tail is cut off, so a later append stays readable.
        store
            .add(&[new("good evening", "chat")], &buckets())
            .unwrap();
        assert_eq!(
            ArchetypeStore::open(&shipped, &data)
                .unwrap()
                .examples()
                .len(),
            3
        );
        std::fs::write(data.join(JOURNAL_FILE), format!("garbage\n{good}\n")).unwrap();
        let err = ArchetypeStore::open(&shipped, &data).err().unwrap();
        assert!(err.to_string().contains(":1:"), "{err}");
    }
}
