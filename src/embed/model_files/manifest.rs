//! The model manifest (`models/manifest.toml`, built into the binary): which model, at which
//! revision, the sha256 of each file, and where the mirror package keeps them.

use std::collections::BTreeMap;

use serde::Deserialize;

use super::error::ModelFilesError;
use crate::types::ModelFingerprint;

/// The manifest shipped with the binary, so the router works from any working directory.
pub const DEFAULT_MANIFEST: &str = include_str!("../../../models/manifest.toml");

pub const CONFIG_FILE: &str = "config.json";
pub const TOKENIZER_FILE: &str = "tokenizer.json";
pub const WEIGHTS_FILE: &str = "model.safetensors";
/// Every file the model needs, each pinned by the manifest.
pub(super) const REQUIRED_FILES: [&str; 3] = [CONFIG_FILE, TOKENIZER_FILE, WEIGHTS_FILE];

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawManifest {
    schema_version: u32,
    id: String,
    revision: String,
    dims: usize,
    max_seq_length: usize,
    cache_dir: String,
    mirror: RawMirror,
    files: BTreeMap<String, String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMirror {
    package: String,
    version: String,
    path_in_package: String,
}

/// The validated model manifest (`models/manifest.toml`).
#[derive(Debug, Clone)]
pub struct ModelManifest {
    pub id: String,
    pub revision: String,
    pub dims: usize,
    pub max_seq_length: usize,
    pub cache_dir: String,
    pub mirror_package: String,
    pub mirror_version: String,
    pub mirror_path: String,
    /// file name → lowercase hex sha256
    pub files: BTreeMap<String, String>,
}

impl ModelManifest {
    pub fn parse(text: &str, origin: &str) -> Result<Self, ModelFilesError> {
        let err = |message: String| ModelFilesError::Manifest {
            origin: origin.to_owned(),
            message,
        };
        let raw: RawManifest = toml::from_str(text).map_err(|e| err(e.to_string()))?;
        if raw.schema_version != 1 {
            return Err(err(format!(
                "schema_version {} is not supported (expected 1)",
                raw.schema_version
            )));
        }
        for name in REQUIRED_FILES {
            let Some(hash) = raw.files.get(name) else {
                return Err(err(format!("files.\"{name}\" is missing")));
            };
            if hash.len() != 64 || !hash.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(err(format!("files.\"{name}\" is not a sha256 hex digest")));
            }
        }
        Ok(Self {
            id: raw.id,
            revision: raw.revision,
            dims: raw.dims,
            max_seq_length: raw.max_seq_length,
            cache_dir: raw.cache_dir,
            mirror_package: raw.mirror.package,
            mirror_version: raw.mirror.version,
            mirror_path: raw.mirror.path_in_package,
            files: raw
                .files
                .into_iter()
                .map(|(k, v)| (k, v.to_ascii_lowercase()))
                .collect(),
        })
    }

    pub fn default_manifest() -> Self {
        Self::parse(DEFAULT_MANIFEST, "models/manifest.toml (built in)")
            .expect("the built-in model manifest is valid. This is a bug.")
    }

    pub(super) fn expected_hash(&self, name: &str) -> &str {
        self.files
            .get(name)
            .map(String::as_str)
            .expect("validated manifests list every required file. This is a bug.")
    }

    /// What identifies this model in index manifests: an index built by other weights is refused.
    pub fn fingerprint(&self) -> ModelFingerprint {
        ModelFingerprint {
            id: self.id.clone(),
            revision: self.revision.clone(),
            sha256: self.expected_hash(WEIGHTS_FILE).to_owned(),
            window: None,
        }
    }
}
