//! The searchable archetype index: an HNSW structure plus the key table that turns its hits
//! into [`Neighbour`]s (archetype id and bucket). It knows nothing of scoring or manifests;
//! the bundle on disk that joins it with the scoring model is assembled in `pipeline::bundle`.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::usearch_index::{HnswParams, UsearchIndex};
use super::{IndexError, VectorSearch};
use crate::types::{ArchetypeId, BucketId, Embedding, Neighbour};

/// One entry of the key table: usearch keys are positions in this list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IndexKey {
    pub key: u64,
    pub archetype_id: ArchetypeId,
    pub bucket: BucketId,
    /// sha256 of the example's text: lets a rebuild reuse this vector for unchanged text.
    pub text_sha256: String,
}

/// One labeled, embedded example ready to be indexed.
#[derive(Debug, Clone)]
pub struct IndexEntry {
    pub id: ArchetypeId,
    pub bucket: BucketId,
    pub text_sha256: String,
    pub embedding: Embedding,
}

/// Nearest archetypes of a query, read-only once built.
pub struct ArchetypeIndex {
    keys: Vec<IndexKey>,
    search: UsearchIndex,
    dims: usize,
    hnsw: HnswParams,
}

impl ArchetypeIndex {
    /// Builds an in-memory index from embedded examples. `dims` is the model's: an index
    /// with no entries still knows the size of its queries.
    pub fn build(
        entries: &[IndexEntry],
        dims: usize,
        hnsw: HnswParams,
    ) -> Result<Self, IndexError> {
        let keyed: Vec<(u64, &Embedding)> = entries
            .iter()
            .enumerate()
            .map(|(i, e)| (i as u64, &e.embedding))
            .collect();
        let search = UsearchIndex::build(dims, hnsw, &keyed)?;
        let keys = entries
            .iter()
            .enumerate()
            .map(|(i, e)| IndexKey {
                key: i as u64,
                archetype_id: e.id.clone(),
                bucket: e.bucket.clone(),
                text_sha256: e.text_sha256.clone(),
            })
            .collect();
        Ok(Self {
            keys,
            search,
            dims,
            hnsw,
        })
    }

    /// Opens an index file written by [`ArchetypeIndex::write`] with its key table. The
    /// caller has verified the file's hash: usearch trusts what it maps.
    pub fn open(
        path: &Path,
        keys: Vec<IndexKey>,
        dims: usize,
        hnsw: HnswParams,
    ) -> Result<Self, IndexError> {
        if keys.iter().enumerate().any(|(i, k)| k.key != i as u64) {
            return Err(IndexError::KeyTable(
                "keys are not numbered 0..n in order".to_owned(),
            ));
        }
        // Mapped, not copied: bundles are only ever replaced by renaming, never rewritten in
        // place, so the mapping stays valid for as long as this index lives.
        let search = if keys.is_empty() {
            UsearchIndex::load(path, dims, hnsw)?
        } else {
            UsearchIndex::view(path, dims, hnsw)?
        };
        if search.len() != keys.len() {
            return Err(IndexError::KeyTable(format!(
                "the index file holds {} vectors but the key table lists {}",
                search.len(),
                keys.len()
            )));
        }
        Ok(Self {
            keys,
            search,
            dims,
            hnsw,
        })
    }

    /// Writes the HNSW structure to `path` (the key table is the caller's to persist).
    pub fn write(&self, path: &Path) -> Result<(), IndexError> {
        self.search.save(path)
    }

    /// The `k` nearest archetypes, most similar first.
    pub fn neighbours(&self, query: &Embedding, k: usize) -> Result<Vec<Neighbour>, IndexError> {
        if self.is_empty() {
            // Every archetype deleted: nothing votes, and `decide` routes to the default bucket.
            return Ok(Vec::new());
        }
        let hits = self.search.search(query, k)?;
        Ok(hits
            .into_iter()
            .filter_map(|hit| {
                let entry = usize::try_from(hit.key)
                    .ok()
                    .and_then(|i| self.keys.get(i))?;
                Some(Neighbour {
                    id: entry.archetype_id.clone(),
                    bucket: entry.bucket.clone(),
                    similarity: hit.similarity,
                })
            })
            .collect())
    }

    pub fn keys(&self) -> &[IndexKey] {
        &self.keys
    }

    /// Examples per bucket.
    pub fn counts(&self) -> BTreeMap<BucketId, usize> {
        let mut counts = BTreeMap::new();
        for k in &self.keys {
            *counts.entry(k.bucket.clone()).or_insert(0) += 1;
        }
        counts
    }

    /// Every stored vector with its bucket, in key order (for fitting the scorers).
    pub fn labeled_vectors(&self) -> Vec<(BucketId, Embedding)> {
        self.keys
            .iter()
            .filter_map(|k| Some((k.bucket.clone(), self.search.vector(k.key)?)))
            .collect()
    }

    /// Stored vectors by text hash, for rebuilds that only embed new or changed texts.
    pub fn vectors_by_text(&self) -> HashMap<&str, Embedding> {
        self.keys
            .iter()
            .filter_map(|k| Some((k.text_sha256.as_str(), self.search.vector(k.key)?)))
            .collect()
    }

    /// The HNSW structure itself, for recall measurements against [`super::ExactIndex`].
    pub fn vector_search(&self) -> &UsearchIndex {
        &self.search
    }

    pub fn hnsw(&self) -> HnswParams {
        self.hnsw
    }

    pub fn len(&self) -> usize {
        self.search.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn dims(&self) -> usize {
        self.dims
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> ArchetypeIndex {
        let entries: Vec<IndexEntry> = (0..20)
            .map(|i| IndexEntry {
                id: ArchetypeId::new(&format!("a-{i}")),
                bucket: BucketId::new(if i % 2 == 0 { "even" } else { "odd" }),
                text_sha256: format!("t{i}"),
                embedding: Embedding::normalized(vec![1.0, i as f32, (i * i) as f32 % 7.0]),
            })
            .collect();
        ArchetypeIndex::build(&entries, 3, HnswParams::default()).unwrap()
    }

    #[test]
    fn written_index_reopens_with_the_same_neighbours() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("index.usearch");
        let index = sample();
        index.write(&path).unwrap();
        let opened =
            ArchetypeIndex::open(&path, index.keys().to_vec(), 3, HnswParams::default()).unwrap();
        let q = Embedding::normalized(vec![1.0, 4.0, 2.0]);
        assert_eq!(
            opened.neighbours(&q, 3).unwrap(),
            index.neighbours(&q, 3).unwrap()
        );
        assert_eq!(opened.counts().values().sum::<usize>(), 20);
    }

    #[test]
    fn a_key_table_of_another_size_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("index.usearch");
        let index = sample();
        index.write(&path).unwrap();
        let mut keys = index.keys().to_vec();
        keys.pop();
        let err = ArchetypeIndex::open(&path, keys, 3, HnswParams::default())
            .err()
            .unwrap();
        assert!(err.to_string().contains("key table"), "{err}");
    }

    #[test]
    fn an_empty_index_has_no_neighbours() {
        let index = ArchetypeIndex::build(&[], 3, HnswParams::default()).unwrap();
        let q = Embedding::normalized(vec![1.0, 0.0, 0.0]);
        assert!(index.neighbours(&q, 5).unwrap().is_empty());
    }
}
