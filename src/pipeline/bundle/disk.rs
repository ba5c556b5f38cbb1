//! Bundles on disk. Writing is atomic (a staging directory, fsynced, committed as a new
//! version behind a pointer: [`layout`]). Loading refuses anything it cannot verify: an unknown schema, another model's
//! fingerprint, a file whose sha256 differs from the manifest (checked before usearch or
//! safetensors reads a byte).

use std::fs;
use std::path::Path;

use sha2::{Digest, Sha256};

use super::layout::{self, fsync, POINTER_FILE};
use super::manifest::{BUNDLE_SCHEMA_VERSION, HEAD_FILE, INDEX_FILE, MANIFEST_FILE};
use super::{Bundle, BundleError, BundleManifest};
use crate::index::ArchetypeIndex;
use crate::scoring::{fit_rows, load_head, save_head, LinearHead, ScoringModel};
use crate::types::ModelFingerprint;

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> BundleError {
    let path = path.display().to_string();
    move |source| BundleError::Io { path, source }
}

/// Writes `bundle` into `dir`: files into a staging directory inside it, each fsynced and
/// hashed into the manifest (written last), then committed as a new version ([`layout`]).
pub fn save(bundle: &mut Bundle, dir: &Path) -> Result<(), BundleError> {
    let staging = layout::staging(dir).map_err(io(dir))?;
    let index_path = staging.path().join(INDEX_FILE);
    bundle.index.write(&index_path)?;
    fsync(&index_path).map_err(io(&index_path))?;
    bundle.manifest.index_sha256 = sha256_file(&index_path).map_err(io(&index_path))?;
    bundle.manifest.scoring.head_sha256 = match bundle.scoring.head() {
        Some(head) => {
            let head_path = staging.path().join(HEAD_FILE);
            save_head(head, &head_path)?;
            fsync(&head_path).map_err(io(&head_path))?;
            Some(sha256_file(&head_path).map_err(io(&head_path))?)
        }
        None => None,
    };
    let manifest_path = staging.path().join(MANIFEST_FILE);
    let json = serde_json::to_vec_pretty(&bundle.manifest)
        .expect("a bundle manifest always serialises. This is a bug.");
    fs::write(&manifest_path, json).map_err(io(&manifest_path))?;
    fsync(&manifest_path).map_err(io(&manifest_path))?;
    layout::commit(dir, staging).map_err(io(dir))?;
    Ok(())
}

/// Loads and verifies the bundle in `dir`, built by `expected_model`.
pub fn load(dir: &Path, expected_model: &ModelFingerprint) -> Result<Bundle, BundleError> {
    let Some(files) = layout::current_dir(dir) else {
        return Err(BundleError::Refused {
            path: dir.display().to_string(),
            message: format!("no bundle here (no {POINTER_FILE}, no version with a {MANIFEST_FILE}); build one with `router train --out {}`", dir.display()),
        });
    };
    let dir = files.as_path();
    let refuse = |message: String| BundleError::Refused {
        path: dir.display().to_string(),
        message,
    };
    let manifest = read_manifest(dir).map_err(|e| e.map_refused(&refuse))?;
    check_compatible(&manifest, expected_model).map_err(&refuse)?;
    let index_path = dir.join(INDEX_FILE);
    verify_file(&index_path, INDEX_FILE, &manifest.index_sha256)?.map_err(&refuse)?;
    let index = ArchetypeIndex::open(
        &index_path,
        manifest.keys.clone(),
        manifest.dims,
        manifest.hnsw,
    )
    .map_err(|e| refuse(e.to_string()))?;
    let head = load_verified_head(dir, &manifest).map_err(|e| e.map_refused(&refuse))?;
    let labeled = index.labeled_vectors();
    let (buckets, rows) = fit_rows(&labeled);
    if buckets != manifest.scoring.buckets && head.is_some() {
        return Err(refuse(
            "the scoring model's buckets differ from the index's; rebuild it with `router train`"
                .to_owned(),
        ));
    }
    let scoring = ScoringModel::new(
        buckets,
        manifest.dims,
        &rows,
        head,
        manifest.scoring.calibration.clone(),
    )
    .map_err(|e| refuse(e.to_string()))?;
    let head_sha256 = manifest.scoring.head_sha256.clone();
    let mut bundle = Bundle::assemble(manifest, index, scoring);
    bundle.manifest.scoring.head_sha256 = head_sha256;
    Ok(bundle)
}

/// A load step's failure: I/O as it is, anything else a refusal with this reason.
enum StepError {
    Io(BundleError),
    Refused(String),
}

impl StepError {
    fn map_refused(self, refuse: &impl Fn(String) -> BundleError) -> BundleError {
        match self {
            Self::Io(e) => e,
            Self::Refused(message) => refuse(message),
        }
    }
}

fn read_manifest(dir: &Path) -> Result<BundleManifest, StepError> {
    let path = dir.join(MANIFEST_FILE);
    let text = fs::read(&path).map_err(|e| StepError::Io(io(&path)(e)))?;
    let manifest: BundleManifest = serde_json::from_slice(&text)
        .map_err(|e| StepError::Refused(format!("{MANIFEST_FILE} is not a valid manifest: {e}")))?;
    if manifest.schema_version != BUNDLE_SCHEMA_VERSION {
        return Err(StepError::Refused(format!(
            "schema_version {} is not supported (this build reads {BUNDLE_SCHEMA_VERSION}); rebuild it with `router train`",
            manifest.schema_version
        )));
    }
    Ok(manifest)
}

/// Whether vectors of this bundle are comparable with what `expected` embeds.
fn check_compatible(manifest: &BundleManifest, expected: &ModelFingerprint) -> Result<(), String> {
    if manifest.model.window != expected.window && manifest.model.sha256 == expected.sha256 {
        let name = |w: &Option<String>| w.clone().unwrap_or_else(|| "full".to_owned());
        return Err(format!(
            "it was built with routing window {}, but the router runs window {}; rebuild it with `router train` (or run with the same --window-head/--window-tail)",
            name(&manifest.model.window),
            name(&expected.window)
        ));
    }
    if &manifest.model != expected {
        return Err(format!(
            "it was built with model {}@{} (weights sha256 {}), but the router runs {}@{} (weights sha256 {}); rebuild it with `router train`",
            manifest.model.id,
            manifest.model.revision,
            manifest.model.sha256,
            expected.id,
            expected.revision,
            expected.sha256
        ));
    }
    if manifest.metric != "cos" {
        return Err(format!(
            "metric `{}` is not supported (expected cos)",
            manifest.metric
        ));
    }
    Ok(())
}

/// `Ok(Err(reason))` when the file's sha256 is not the manifest's; I/O errors as they are.
fn verify_file(path: &Path, name: &str, expected: &str) -> Result<Result<(), String>, BundleError> {
    let actual = sha256_file(path).map_err(io(path))?;
    Ok(if actual == expected {
        Ok(())
    } else {
        Err(format!(
            "{name} has sha256 {actual} but the manifest says {expected}: the file is corrupt or from another bundle; rebuild it with `router train`"
        ))
    })
}

fn load_verified_head(
    dir: &Path,
    manifest: &BundleManifest,
) -> Result<Option<LinearHead>, StepError> {
    let Some(expected) = &manifest.scoring.head_sha256 else {
        return Ok(None);
    };
    let path = dir.join(HEAD_FILE);
    verify_file(&path, HEAD_FILE, expected)
        .map_err(StepError::Io)?
        .map_err(StepError::Refused)?;
    load_head(&path, manifest.dims, manifest.scoring.buckets.len())
        .map(Some)
        .map_err(|e| StepError::Refused(e.to_string()))
}

fn sha256_file(path: &Path) -> std::io::Result<String> {
    let bytes = fs::read(path)?;
    Ok(hex::encode(Sha256::digest(&bytes)))
}
