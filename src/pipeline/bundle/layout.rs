//! Where a bundle's files live inside its directory, so that a save never leaves a moment
//! without a complete bundle on disk (a kill -9 at any step leaves the old or the new one).
//!
//! ```text
//! DIR/CURRENT        "v-000042\n": the version being served, replaced by rename(2)
//! DIR/v-000042/      index.usearch, scoring.safetensors, manifest.json (complete: renamed
//!                    into place only after every file was fsynced)
//! DIR/v-000041/      the version before, kept for a reader that read the old pointer
//! DIR/.tmp-*         a save in progress, or one a crash left behind (removed by the next save)
//! DIR/manifest.json  the legacy layout (files directly in DIR), still read
//! ```
//!
//! One writer per directory: a save removes temp entries it does not own.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use super::manifest::{HEAD_FILE, INDEX_FILE, MANIFEST_FILE};

/// The pointer file: names the version directory being served.
pub const POINTER_FILE: &str = "CURRENT";
const VERSION_PREFIX: &str = "v-";
const TEMP_PREFIX: &str = ".tmp-";

/// The directory holding the files of the bundle in `dir`: the version `CURRENT` names; when
/// the pointer is missing, unreadable or names nothing complete, the newest complete version
/// (logged); otherwise the legacy layout. `None` when `dir` holds no bundle at all.
pub fn current_dir(dir: &Path) -> Option<PathBuf> {
    let pointed = read_pointer(dir);
    if let Some(name) = &pointed {
        let version = dir.join(name);
        if is_complete(&version) {
            return Some(version);
        }
    }
    if let Some((_, newest)) = versions(dir)
        .into_iter()
        .rev()
        .find(|(_, p)| is_complete(p))
    {
        if dir.join(POINTER_FILE).exists() {
            tracing::warn!(dir = %dir.display(), pointer = ?pointed, using = %newest.display(),
                "the bundle pointer is unreadable or names no complete version; using the newest complete one");
        }
        return Some(newest);
    }
    is_complete(dir).then(|| dir.to_path_buf())
}

/// A directory whose manifest is present; the manifest is written last, so its files are too.
fn is_complete(dir: &Path) -> bool {
    dir.join(MANIFEST_FILE).is_file()
}

/// The version name in `dir/CURRENT`, when it is one this layout writes.
fn read_pointer(dir: &Path) -> Option<String> {
    let text = fs::read_to_string(dir.join(POINTER_FILE)).ok()?;
    let name = text.trim();
    parse_version(name).map(|_| name.to_owned())
}

fn parse_version(name: &str) -> Option<u64> {
    let digits = name.strip_prefix(VERSION_PREFIX)?;
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

fn version_name(seq: u64) -> String {
    format!("{VERSION_PREFIX}{seq:06}")
}

/// Every `v-N` directory in `dir`, oldest first (complete or not).
fn versions(dir: &Path) -> Vec<(u64, PathBuf)> {
    let Ok(entries) = fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut found: Vec<(u64, PathBuf)> = entries
        .filter_map(Result::ok)
        .filter_map(|e| {
            let seq = parse_version(e.file_name().to_str()?)?;
            e.path().is_dir().then(|| (seq, e.path()))
        })
        .collect();
    found.sort();
    found
}

/// A staging directory inside `dir` for a save; removed on drop unless committed.
pub fn staging(dir: &Path) -> std::io::Result<tempfile::TempDir> {
    fs::create_dir_all(dir)?;
    tempfile::Builder::new().prefix(TEMP_PREFIX).tempdir_in(dir)
}

/// Makes the fully written, fsynced `staged` directory the current version of `dir`: rename
/// it to the next `v-N`, then atomically replace the pointer. Returns the new version's path.
/// Until the pointer's rename, readers see the old bundle; after it, the new one.
pub fn commit(dir: &Path, staged: tempfile::TempDir) -> std::io::Result<PathBuf> {
    let previous = read_pointer(dir);
    let next = versions(dir).last().map_or(1, |(seq, _)| seq + 1);
    let name = version_name(next);
    let version = dir.join(&name);
    fsync(staged.path())?;
    // Renaming onto an existing non-empty directory fails, so a concurrent writer's version is
    // never overwritten; on any error the TempDir's drop removes the staging directory.
    fs::rename(staged.path(), &version)?;
    // The staging path is gone; keep() stops the drop from touching a reused name.
    let _ = staged.keep();
    fsync(dir)?;
    write_pointer(dir, &name)?;
    cleanup(dir, &name, previous.as_deref());
    Ok(version)
}

/// Write a temp file, fsync it, rename it over `CURRENT`, fsync the directory.
fn write_pointer(dir: &Path, name: &str) -> std::io::Result<()> {
    let mut tmp = tempfile::Builder::new()
        .prefix(TEMP_PREFIX)
        .tempfile_in(dir)?;
    writeln!(tmp, "{name}")?;
    tmp.as_file().sync_all()?;
    tmp.persist(dir.join(POINTER_FILE)).map_err(|e| e.error)?;
    fsync(dir)
}

/// After the pointer moved: drops versions other than `current` and `previous`, temp entries
/// crashes left behind and the legacy files. Best effort: the new bundle is already in place.
fn cleanup(dir: &Path, current: &str, previous: Option<&str>) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for entry in entries.filter_map(Result::ok) {
        let name = entry.file_name().to_string_lossy().into_owned();
        let stale_version =
            parse_version(&name).is_some() && name != current && Some(name.as_str()) != previous;
        let legacy = [MANIFEST_FILE, INDEX_FILE, HEAD_FILE].contains(&name.as_str());
        if !(stale_version || legacy || name.starts_with(TEMP_PREFIX)) {
            continue;
        }
        let path = entry.path();
        let removed = if path.is_dir() {
            fs::remove_dir_all(&path)
        } else {
            fs::remove_file(&path)
        };
        if let Err(e) = removed {
            tracing::warn!(path = %path.display(), error = %e, "could not remove an old bundle file");
        }
    }
}

pub fn fsync(path: &Path) -> std::io::Result<()> {
    fs::File::open(path)?.sync_all()
}
