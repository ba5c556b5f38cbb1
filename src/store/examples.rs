//! Labeled examples: read JSONL, validate, deduplicate into an `ExampleSet`.
//!
//! Two readers share one shape. The project's own archetype files are strict (unknown fields
//! are typos and are rejected); labeled data sets given to `train`/`eval` may carry extra
//! columns (`split`, `fold`, ...) that are ignored. Either file may name the bucket `bucket`
//! or `label`. Data-set rows kept as they are, for `eval`, are `labeled`'s.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use serde::Deserialize;
use sha2::{Digest, Sha256};

use crate::types::{ArchetypeId, BucketId};

/// One labeled example prompt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Example {
    pub id: ArchetypeId,
    pub bucket: BucketId,
    pub text: String,
}

#[derive(Debug, thiserror::Error)]
pub enum ArchetypeError {
    /// User error: a file or directory could not be read.
    #[error("{path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    /// User error: a line is not a valid example.
    #[error("{path}:{line}: {message}")]
    Invalid {
        path: String,
        line: usize,
        message: String,
    },
    /// User error: the same text is labeled with two buckets.
    #[error("{path}:{line}: the same text is already labeled `{existing}` (id {existing_id}), not `{bucket}`")]
    Conflict {
        path: String,
        line: usize,
        bucket: BucketId,
        existing: BucketId,
        existing_id: ArchetypeId,
    },
    /// User error: two examples share an id.
    #[error("{path}:{line}: id `{id}` is used twice")]
    DuplicateId {
        path: String,
        line: usize,
        id: ArchetypeId,
    },
    /// User error: nothing to learn from.
    #[error("{path}: no examples found")]
    Empty { path: String },
}

/// How strictly to read labeled lines.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Strictness {
    /// The project's archetype files: unknown fields and conflicting labels are errors.
    Archetypes,
    /// External labeled data sets: extra columns are ignored; a text seen with two labels keeps
    /// its first label (real data sets contain a few such rows).
    Dataset,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct StrictLine {
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    bucket: Option<String>,
    #[serde(default)]
    label: Option<String>,
    text: String,
    #[serde(default)]
    #[expect(dead_code, reason = "provenance for people; accepted, not used")]
    source: Option<String>,
}

#[derive(Debug, Deserialize)]
struct LenientLine {
    #[serde(default)]
    id: Option<serde_json::Value>,
    #[serde(default)]
    bucket: Option<String>,
    #[serde(default)]
    label: Option<String>,
    text: String,
}

/// A validated, deduplicated set of examples in a stable order.
#[derive(Debug, Clone, Default)]
pub struct ExampleSet {
    examples: Vec<Example>,
    by_text: HashMap<String, usize>,
    ids: HashMap<ArchetypeId, usize>,
    /// Exact repeats dropped while reading (same text, same bucket).
    pub duplicates_dropped: usize,
    /// Texts seen again with another label and skipped (dataset mode only).
    pub conflicts_skipped: usize,
}

impl ExampleSet {
    /// Reads a JSONL file, or every `*.jsonl` file of a directory in name order.
    pub fn load(path: &Path, strictness: Strictness) -> Result<Self, ArchetypeError> {
        let files = jsonl_files(path)?;
        let mut set = Self::default();
        for file in &files {
            let text = std::fs::read_to_string(file).map_err(|source| ArchetypeError::Io {
                path: file.display().to_string(),
                source,
            })?;
            set.extend_from_jsonl(&text, &file.display().to_string(), strictness)?;
        }
        if set.is_empty() {
            return Err(ArchetypeError::Empty {
                path: path.display().to_string(),
            });
        }
        Ok(set)
    }

    /// Parses JSONL text; `origin` labels errors.
    pub fn extend_from_jsonl(
        &mut self,
        jsonl: &str,
        origin: &str,
        strictness: Strictness,
    ) -> Result<(), ArchetypeError> {
        for (i, line) in jsonl.lines().enumerate() {
            let line_no = i + 1;
            if line.trim().is_empty() {
                continue;
            }
            let invalid = |message: String| ArchetypeError::Invalid {
                path: origin.to_owned(),
                line: line_no,
                message,
            };
            let (id, bucket, label, text) = match strictness {
                Strictness::Archetypes => {
                    let l: StrictLine =
                        serde_json::from_str(line).map_err(|e| invalid(e.to_string()))?;
                    (l.id, l.bucket, l.label, l.text)
                }
                Strictness::Dataset => {
                    let l: LenientLine =
                        serde_json::from_str(line).map_err(|e| invalid(e.to_string()))?;
                    let id = l.id.as_ref().map(json_text);
                    (id, l.bucket, l.label, l.text)
                }
            };
            let bucket = match (bucket, label) {
                (Some(b), None) | (None, Some(b)) => b,
                (Some(b), Some(l)) if b == l => b,
                (Some(_), Some(_)) => {
                    return Err(invalid(
                        "both `bucket` and `label` are given and differ".into(),
                    ))
                }
                (None, None) => return Err(invalid("missing `bucket` (or `label`)".into())),
            };
            self.insert(id.as_deref(), &bucket, &text, strictness)
                .map_err(|e| e.at(origin, line_no))?;
        }
        Ok(())
    }

    /// Adds one example. Returns whether it was new (an exact repeat is not an error).
    pub fn insert(
        &mut self,
        id: Option<&str>,
        bucket: &str,
        text: &str,
        strictness: Strictness,
    ) -> Result<bool, InsertError> {
        let text = text.trim();
        if text.is_empty() {
            return Err(InsertError::EmptyText);
        }
        let bucket_name = bucket.trim();
        if bucket_name.is_empty() {
            return Err(InsertError::EmptyBucket);
        }
        let bucket = BucketId::new(bucket_name);
        let key = normalize_for_dedup(text);
        if let Some(&existing) = self.by_text.get(&key) {
            let existing = &self.examples[existing];
            if existing.bucket == bucket {
                self.duplicates_dropped += 1;
                return Ok(false);
            }
            if strictness == Strictness::Dataset {
                self.conflicts_skipped += 1;
                return Ok(false);
            }
            return Err(InsertError::Conflict {
                bucket,
                existing: existing.bucket.clone(),
                existing_id: existing.id.clone(),
            });
        }
        let id = match id {
            Some(id) if !id.trim().is_empty() => ArchetypeId::new(id.trim()),
            _ => derived_id(&bucket, &key),
        };
        if self.ids.contains_key(&id) {
            return Err(InsertError::DuplicateId(id));
        }
        let position = self.examples.len();
        self.by_text.insert(key, position);
        self.ids.insert(id.clone(), position);
        self.examples.push(Example {
            id,
            bucket,
            text: text.to_owned(),
        });
        Ok(true)
    }

    pub fn examples(&self) -> &[Example] {
        &self.examples
    }

    /// The example with this id.
    pub fn get(&self, id: &ArchetypeId) -> Option<&Example> {
        self.ids.get(id).map(|&i| &self.examples[i])
    }

    /// The example holding the same text (whitespace and case ignored), whatever its bucket.
    pub fn find_text(&self, text: &str) -> Option<&Example> {
        self.by_text
            .get(&normalize_for_dedup(text.trim()))
            .map(|&i| &self.examples[i])
    }

    /// Removes an example; the order of the others is kept.
    pub fn remove(&mut self, id: &ArchetypeId) -> Option<Example> {
        let position = self.ids.get(id).copied()?;
        let removed = self.examples.remove(position);
        self.by_text.clear();
        self.ids.clear();
        for (i, e) in self.examples.iter().enumerate() {
            self.by_text.insert(normalize_for_dedup(&e.text), i);
            self.ids.insert(e.id.clone(), i);
        }
        Some(removed)
    }

    pub fn len(&self) -> usize {
        self.examples.len()
    }

    pub fn is_empty(&self) -> bool {
        self.examples.is_empty()
    }

    /// Examples per bucket.
    pub fn counts(&self) -> BTreeMap<BucketId, usize> {
        let mut counts = BTreeMap::new();
        for e in &self.examples {
            *counts.entry(e.bucket.clone()).or_insert(0) += 1;
        }
        counts
    }

    /// A hash of the content (ids, buckets, texts) independent of file order: an index built
    /// from the same examples has the same version.
    pub fn content_sha256(&self) -> String {
        let mut lines: Vec<String> = self
            .examples
            .iter()
            .map(|e| format!("{}\t{}\t{}", e.id, e.bucket, e.text))
            .collect();
        lines.sort();
        let mut hasher = Sha256::new();
        for line in &lines {
            hasher.update(line.as_bytes());
            hasher.update(b"\n");
        }
        hex::encode(hasher.finalize())
    }
}

/// Why one example was refused, before the file and line are known.
#[derive(Debug, thiserror::Error)]
pub enum InsertError {
    #[error("`text` is empty")]
    EmptyText,
    #[error("`bucket` is empty")]
    EmptyBucket,
    #[error("the same text is already labeled `{existing}` (id {existing_id}), not `{bucket}`")]
    Conflict {
        bucket: BucketId,
        existing: BucketId,
        existing_id: ArchetypeId,
    },
    #[error("id `{0}` is used twice")]
    DuplicateId(ArchetypeId),
}

impl InsertError {
    fn at(self, path: &str, line: usize) -> ArchetypeError {
        let path = path.to_owned();
        match self {
            Self::EmptyText | Self::EmptyBucket => ArchetypeError::Invalid {
                path,
                line,
                message: self.to_string(),
            },
            Self::Conflict {
                bucket,
                existing,
                existing_id,
            } => ArchetypeError::Conflict {
                path,
                line,
                bucket,
                existing,
                existing_id,
            },
            Self::DuplicateId(id) => ArchetypeError::DuplicateId { path, line, id },
        }
    }
}

/// A JSON scalar as text: strings without quotes, anything else as JSON (`3`, `true`).
pub(super) fn json_text(value: &serde_json::Value) -> String {
    value
        .as_str()
        .map_or_else(|| value.to_string(), str::to_owned)
}

/// Whitespace-collapsed, lowercased text: what counts as "the same text".
pub(crate) fn normalize_for_dedup(text: &str) -> String {
    text.split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .to_lowercase()
}

/// A stable id for an example without one: the same text always gets the same id.
fn derived_id(bucket: &BucketId, normalized_text: &str) -> ArchetypeId {
    let digest = hex::encode(Sha256::digest(normalized_text.as_bytes()));
    ArchetypeId::new(&format!("{bucket}-{}", &digest[..10]))
}

fn jsonl_files(path: &Path) -> Result<Vec<PathBuf>, ArchetypeError> {
    let io = |source| ArchetypeError::Io {
        path: path.display().to_string(),
        source,
    };
    if path.is_dir() {
        let mut files: Vec<PathBuf> = std::fs::read_dir(path)
            .map_err(io)?
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|x| x == "jsonl"))
            .collect();
        files.sort();
        Ok(files)
    } else {
        std::fs::metadata(path).map_err(io)?;
        Ok(vec![path.to_owned()])
    }
}

#[cfg(test)]
mod tests;
