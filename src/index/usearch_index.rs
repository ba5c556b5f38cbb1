//! HNSW search with usearch: the index that serves requests.

use std::path::Path;

use serde::{Deserialize, Serialize};
use usearch::{Index, IndexOptions, MetricKind, ScalarKind};

use super::{Hit, IndexError, VectorSearch};
use crate::types::Embedding;

mod slots;

/// HNSW graph parameters, recorded in the bundle manifest so a loaded index searches the way
/// it was built. Defaults reach recall@10 ≥ 0.99 against exact search on 100k real embeddings
/// with p99 well under 1 ms (`router bench-index`, README; tests/it/index_recall.rs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HnswParams {
    pub connectivity: usize,
    pub expansion_add: usize,
    pub expansion_search: usize,
    /// How vectors are stored. Bundles written before this field existed hold f32.
    #[serde(default = "Quantization::legacy")]
    pub quantization: Quantization,
    /// Indexes of at most this many vectors are searched exhaustively (usearch's exact
    /// search over the same stored vectors): below some thousands of vectors a graph walk at
    /// the default breadth visits most of the index anyway, so brute force is both exact and
    /// faster. A query-time setting; 0 always walks the graph.
    #[serde(default = "default_exact_search_up_to")]
    pub exact_search_up_to: usize,
    /// How usearch compares vectors. Bundles written before this field existed use cosine.
    #[serde(default = "Metric::legacy")]
    pub metric: Metric,
}

impl HnswParams {
    /// Whether an index built with `other` has the graph and storage these settings would
    /// build (query-time settings aside), so a saved bundle can be kept as it is.
    pub fn builds_like(&self, other: &Self) -> bool {
        (
            self.connectivity,
            self.expansion_add,
            self.quantization,
            self.metric,
        ) == (
            other.connectivity,
            other.expansion_add,
            other.quantization,
            other.metric,
        )
    }
}

/// The comparison usearch makes. Every stored vector and query is a unit vector, so the
/// inner product ranks exactly as cosine does and skips the two norms per comparison (a
/// third less time per exhaustive search of the archetypes, `router bench-index`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Metric {
    Cos,
    Ip,
}

impl Metric {
    fn legacy() -> Self {
        Self::Cos
    }

    fn kind(self) -> MetricKind {
        match self {
            Self::Cos => MetricKind::Cos,
            Self::Ip => MetricKind::IP,
        }
    }
}

/// Measured with `router bench-index` on the shipped archetype vectors (README "Index at
/// scale"): at 2,206 vectors exact search takes 0.8× the graph walk's time warm, and half of
/// it in the service, where the forward pass has just evicted the index from the caches and a
/// sequential scan prefetches where a graph walk misses; at 10,000 the walk is 4× faster.
pub const EXACT_SEARCH_UP_TO: usize = 4_096;

fn default_exact_search_up_to() -> usize {
    EXACT_SEARCH_UP_TO
}

impl Default for HnswParams {
    fn default() -> Self {
        // Measured on 100k real embeddings (README "Index at scale"): connectivity 16 needs
        // expansion_search 192 for recall@10 0.99 (p50 1.1 ms); 32 reaches it at 128 (0.6 ms).
        Self {
            connectivity: 32,
            expansion_add: 128,
            expansion_search: 128,
            quantization: Quantization::F16,
            exact_search_up_to: EXACT_SEARCH_UP_TO,
            metric: Metric::Ip,
        }
    }
}

/// Storage of the vectors in the index. Half precision halves memory and keeps recall (unit
/// vectors' components are far inside f16's range; rounding moves a cosine by ~1e-4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Quantization {
    F32,
    F16,
    Bf16,
    I8,
}

impl Quantization {
    fn legacy() -> Self {
        Self::F32
    }

    fn scalar_kind(self) -> ScalarKind {
        match self {
            Self::F32 => ScalarKind::F32,
            Self::F16 => ScalarKind::F16,
            Self::Bf16 => ScalarKind::BF16,
            Self::I8 => ScalarKind::I8,
        }
    }
}

impl std::str::FromStr for Quantization {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "f32" => Ok(Self::F32),
            "f16" => Ok(Self::F16),
            "bf16" => Ok(Self::Bf16),
            "i8" => Ok(Self::I8),
            other => Err(format!(
                "unknown quantization `{other}` (f32, f16, bf16 or i8)"
            )),
        }
    }
}

/// Search contexts usearch keeps per index, and so the searches of one index that run at once
/// (more wait for a free one: [`slots`]). The service searches on the model's thread pool
/// (its batcher) and offline callers on their own threads, a few at a time; each context
/// costs about 36 KB (plus a bitset of the index size) for every index held, tenants'
/// included.
pub const SEARCH_CONTEXTS: usize = 16;

pub struct UsearchIndex {
    inner: Index,
    dims: usize,
    exact_search_up_to: usize,
    slots: slots::SearchSlots,
}

fn usearch_err(e: impl std::fmt::Display) -> IndexError {
    IndexError::Usearch(e.to_string())
}

fn options(dims: usize, params: HnswParams) -> IndexOptions {
    IndexOptions {
        dimensions: dims,
        metric: params.metric.kind(),
        quantization: params.quantization.scalar_kind(),
        connectivity: params.connectivity,
        expansion_add: params.expansion_add,
        expansion_search: params.expansion_search,
        multi: false,
    }
}

impl UsearchIndex {
    pub fn build(
        dims: usize,
        params: HnswParams,
        entries: &[(u64, &Embedding)],
    ) -> Result<Self, IndexError> {
        let inner = Index::new(&options(dims, params)).map_err(usearch_err)?;
        inner
            .reserve_capacity_and_threads(entries.len().max(1), SEARCH_CONTEXTS)
            .map_err(usearch_err)?;
        for (key, embedding) in entries {
            if embedding.dims() != dims {
                return Err(IndexError::Dimensions {
                    expected: dims,
                    actual: embedding.dims(),
                });
            }
            inner.add(*key, embedding.as_slice()).map_err(usearch_err)?;
        }
        Ok(Self {
            inner,
            dims,
            exact_search_up_to: params.exact_search_up_to,
            slots: slots::SearchSlots::new(SEARCH_CONTEXTS),
        })
    }

    /// Loads an index file into memory. Callers verify the file's hash first (see `bundle`),
    /// because usearch trusts the bytes it reads.
    pub fn load(path: &Path, dims: usize, params: HnswParams) -> Result<Self, IndexError> {
        Self::open(path, dims, params, false)
    }

    /// Maps an index file instead of reading it: the vectors and graph stay in the page cache,
    /// shared and paged in on demand, and opening costs no copy. The file must never be
    /// changed in place while mapped (bundles are replaced by renaming a new directory over
    /// the old, which leaves a mapped file intact until it is unmapped). The index is
    /// read-only; callers verify the file's hash first.
    pub fn view(path: &Path, dims: usize, params: HnswParams) -> Result<Self, IndexError> {
        Self::open(path, dims, params, true)
    }

    fn open(path: &Path, dims: usize, params: HnswParams, map: bool) -> Result<Self, IndexError> {
        let inner = Index::new(&options(dims, params)).map_err(usearch_err)?;
        // Thread contexts set before opening are kept by usearch's `view`.
        inner
            .reserve_capacity_and_threads(1, SEARCH_CONTEXTS)
            .map_err(usearch_err)?;
        let path = path.to_string_lossy();
        if map {
            inner.view(&path).map_err(usearch_err)?;
        } else {
            inner.load(&path).map_err(usearch_err)?;
        }
        if inner.dimensions() != dims {
            return Err(IndexError::Dimensions {
                expected: dims,
                actual: inner.dimensions(),
            });
        }
        // The search breadth is a query-time setting; the file may carry another.
        inner.change_expansion_search(params.expansion_search);
        if !map {
            inner
                .reserve_capacity_and_threads(inner.size().max(1), SEARCH_CONTEXTS)
                .map_err(usearch_err)?;
        }
        Ok(Self {
            inner,
            dims,
            exact_search_up_to: params.exact_search_up_to,
            slots: slots::SearchSlots::new(SEARCH_CONTEXTS),
        })
    }

    pub fn save(&self, path: &Path) -> Result<(), IndexError> {
        self.inner
            .save(&path.to_string_lossy())
            .map_err(usearch_err)
    }

    /// Changes the search breadth (a query-time setting) of this index.
    pub fn set_expansion_search(&self, expansion_search: usize) {
        self.inner.change_expansion_search(expansion_search);
    }

    /// Changes the size up to which this index is searched exhaustively (query-time).
    pub fn set_exact_search_up_to(&mut self, up_to: usize) {
        self.exact_search_up_to = up_to;
    }

    /// Bytes usearch holds for this index (graph, vectors, contexts); mapped files included.
    pub fn memory_usage(&self) -> usize {
        self.inner.memory_usage()
    }

    /// The stored vector of `key`, if present.
    pub fn vector(&self, key: u64) -> Option<Embedding> {
        let mut buf = vec![0f32; self.dims];
        match self.inner.get(key, &mut buf) {
            Ok(n) if n > 0 => Some(Embedding::normalized(buf)),
            Ok(_) | Err(_) => None,
        }
    }
}

impl VectorSearch for UsearchIndex {
    fn search(&self, query: &Embedding, k: usize) -> Result<Vec<Hit>, IndexError> {
        if query.dims() != self.dims {
            return Err(IndexError::Dimensions {
                expected: self.dims,
                actual: query.dims(),
            });
        }
        let _slot = self.slots.take();
        let matches = if self.inner.size() <= self.exact_search_up_to {
            self.inner.exact_search(query.as_slice(), k)
        } else {
            self.inner.search(query.as_slice(), k)
        }
        .map_err(usearch_err)?;
        Ok(matches
            .keys
            .iter()
            .zip(&matches.distances)
            // usearch's cosine and inner-product distances are both 1 − similarity here.
            .map(|(&key, &distance)| Hit {
                key,
                similarity: 1.0 - distance,
            })
            .collect())
    }

    fn len(&self) -> usize {
        self.inner.size()
    }
}

#[cfg(test)]
mod tests;
