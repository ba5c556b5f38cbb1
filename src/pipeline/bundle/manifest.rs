//! `manifest.json`: what a bundle holds, how it was built, and the hashes that let a load
//! verify every other file before reading it.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::index::{HnswParams, IndexKey};
use crate::scoring::Calibration;
use crate::types::{BucketId, ModelFingerprint};

/// 2: adds the scoring model (head + calibration).
pub const BUNDLE_SCHEMA_VERSION: u32 = 2;
pub const INDEX_FILE: &str = "index.usearch";
pub const MANIFEST_FILE: &str = "manifest.json";
pub const HEAD_FILE: &str = "scoring.safetensors";

/// What a bundle holds and how it was built.
///
/// This struct is persisted: changes must stay backward-compatible or bump
/// [`BUNDLE_SCHEMA_VERSION`].
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BundleManifest {
    pub schema_version: u32,
    pub model: ModelFingerprint,
    pub dims: usize,
    /// Always `"cos"`: vectors are unit length and similarity is cosine.
    pub metric: String,
    /// Seconds since the Unix epoch.
    pub built_at: u64,
    /// sha256 over the examples (id, bucket, text) the index was built from.
    pub examples_sha256: String,
    /// sha256 of `index.usearch`.
    pub index_sha256: String,
    pub hnsw: HnswParams,
    /// Examples per bucket.
    pub counts: BTreeMap<BucketId, usize>,
    pub keys: Vec<IndexKey>,
    pub scoring: ScoringManifest,
}

/// The scoring model's part of the manifest; the head's weights are in [`HEAD_FILE`].
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScoringManifest {
    /// The head's class order.
    pub buckets: Vec<BucketId>,
    pub calibration: Calibration,
    /// sha256 of [`HEAD_FILE`]; `None` when the bundle has no head (fewer than two buckets).
    pub head_sha256: Option<String>,
}

impl BundleManifest {
    /// A short, stable name of this index's content: the same examples embedded by the same
    /// model give the same version, whatever the HNSW graph's random levels.
    pub fn version(&self) -> String {
        index_version(&self.model, &self.examples_sha256)
    }
}

/// The version an index of these examples built by this model has (or will have, once built).
pub fn index_version(model: &ModelFingerprint, examples_sha256: &str) -> String {
    let mut hasher = Sha256::new();
    hasher.update(model.sha256.as_bytes());
    // Another routing window gives other vectors; the plain truncation keeps old versions.
    if let Some(window) = &model.window {
        hasher.update(window.as_bytes());
    }
    hasher.update(examples_sha256.as_bytes());
    format!("sha256:{}", &hex::encode(hasher.finalize())[..16])
}
