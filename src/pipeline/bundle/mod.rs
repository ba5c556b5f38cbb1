//! The index bundle: an [`ArchetypeIndex`] and the [`ScoringModel`] fitted on the same
//! examples, side by side, with the manifest that binds them to the model that embedded them.
//! This is where the two stages meet; neither knows the other.
//!
//! On disk a bundle is a directory of versions (`index.usearch` + `scoring.safetensors` +
//! `manifest.json` each) behind a `CURRENT` pointer ([`layout`]), written atomically and
//! verified on load ([`disk`]).

pub mod disk;
pub mod layout;
pub mod manifest;

use std::path::{Path, PathBuf};

pub use manifest::{
    index_version, BundleManifest, ScoringManifest, BUNDLE_SCHEMA_VERSION, HEAD_FILE, INDEX_FILE,
    MANIFEST_FILE,
};

use crate::index::{ArchetypeIndex, HnswParams, IndexEntry, IndexError};
use crate::scoring::{fit_rows, Calibration, ScoringError, ScoringModel};
use crate::types::{BucketId, Embedding, ModelFingerprint, Neighbour};

#[derive(Debug, thiserror::Error)]
pub enum BundleError {
    /// User error: a bundle on disk cannot be used (named directory, reason, what to do).
    #[error("index bundle {path}: {message}")]
    Refused { path: String, message: String },
    /// Runtime error: reading or writing a bundle's files failed.
    #[error("index bundle {path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Index(#[from] IndexError),
    #[error(transparent)]
    Scoring(#[from] ScoringError),
}

/// A searchable index with its scoring model and manifest: what a snapshot serves.
pub struct Bundle {
    manifest: BundleManifest,
    version: String,
    pub index: ArchetypeIndex,
    pub scoring: ScoringModel,
}

impl Bundle {
    /// Builds an in-memory bundle (not yet saved) from embedded examples, with unfitted
    /// scorers (centroids and kNN work at once; [`Bundle::with_scoring`] adds a fitted head).
    pub fn build(
        entries: &[IndexEntry],
        dims: usize,
        model: ModelFingerprint,
        examples_sha256: String,
        hnsw: HnswParams,
    ) -> Result<Self, BundleError> {
        let index = ArchetypeIndex::build(entries, dims, hnsw)?;
        let labeled: Vec<(BucketId, Embedding)> = entries
            .iter()
            .map(|e| (e.bucket.clone(), e.embedding.clone()))
            .collect();
        let (buckets, rows) = fit_rows(&labeled);
        let scoring = ScoringModel::new(buckets, dims, &rows, None, Calibration::default())?;
        let manifest = BundleManifest {
            schema_version: BUNDLE_SCHEMA_VERSION,
            model,
            dims,
            metric: "cos".to_owned(),
            built_at: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs()),
            examples_sha256,
            // Filled in when saved: the files' hashes are only known once they are written.
            index_sha256: String::new(),
            hnsw,
            counts: index.counts(),
            keys: index.keys().to_vec(),
            scoring: ScoringManifest {
                buckets: Vec::new(),
                calibration: Calibration::default(),
                head_sha256: None,
            },
        };
        Ok(Self::assemble(manifest, index, scoring))
    }

    /// Joins loaded or built parts; the manifest's scoring section follows `scoring`.
    fn assemble(
        mut manifest: BundleManifest,
        index: ArchetypeIndex,
        scoring: ScoringModel,
    ) -> Self {
        manifest.scoring.buckets = scoring.buckets().to_vec();
        manifest.scoring.calibration = scoring.calibration().clone();
        let version = manifest.version();
        Self {
            manifest,
            version,
            index,
            scoring,
        }
    }

    /// Installs a scoring model fitted on this bundle's examples (see `scoring::fit_scoring`).
    pub fn with_scoring(self, scoring: ScoringModel) -> Self {
        let mut manifest = self.manifest;
        // Filled in when saved.
        manifest.scoring.head_sha256 = None;
        Self::assemble(manifest, self.index, scoring)
    }

    /// Loads and verifies the bundle in `dir`, built by `expected_model`.
    pub fn load(dir: &Path, expected_model: &ModelFingerprint) -> Result<Self, BundleError> {
        disk::load(dir, expected_model)
    }

    /// Writes the bundle into `dir` atomically: readers see the old bundle or the new one.
    pub fn save(&mut self, dir: &Path) -> Result<(), BundleError> {
        disk::save(self, dir)
    }

    /// The `k` nearest archetypes of `query`, most similar first.
    pub fn neighbours(&self, query: &Embedding, k: usize) -> Result<Vec<Neighbour>, IndexError> {
        self.index.neighbours(query, k)
    }

    pub fn manifest(&self) -> &BundleManifest {
        &self.manifest
    }

    pub fn version(&self) -> &str {
        &self.version
    }

    pub fn len(&self) -> usize {
        self.index.len()
    }

    pub fn is_empty(&self) -> bool {
        self.index.is_empty()
    }

    pub fn dims(&self) -> usize {
        self.manifest.dims
    }
}

pub use layout::current_dir;

/// Whether `dir` holds a bundle (a complete version or the legacy layout); says nothing
/// about its validity.
pub fn bundle_exists(dir: &Path) -> bool {
    current_dir(dir).is_some()
}

pub fn default_bundle_dir(data_dir: &Path) -> PathBuf {
    data_dir.join("index")
}

#[cfg(test)]
mod tests;
