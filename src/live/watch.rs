//! A debounced file watcher: edits to the policy file or the archetype directory become
//! reload requests. It never reloads anything itself.
//!
//! The policy is watched through its *directory*, and any event there counts, because the
//! file itself often gets no event at all: editors write a temp file and rename it over the
//! old one, and Kubernetes updates a mounted ConfigMap by writing a new timestamped directory
//! (`..2026_12_01_10_00_00.123456789/policy.toml`) and atomically renaming a new `..data_tmp`
//! symlink over `..data`, while `policy.toml -> ..data/policy.toml` stays untouched. Since
//! events in the directory are often about other files (the old timestamped directory being
//! removed, a neighbour's temp file), the watcher compares the policy's content hash, read
//! through the symlinks, with the last one it saw and asks for a reload only when it changed.
//!
//! The archetype files are compared the same way, for another reason too: inotify reports a
//! file being *opened*, and the debouncer does not say which kind an event was, so without
//! the comparison every read of a `.jsonl` (the reload's own included) would ask for the next
//! reload, forever.

use std::path::{Path, PathBuf};
use std::time::Duration;

use notify::RecursiveMode;
use notify_debouncer_mini::{new_debouncer, DebounceEventResult, Debouncer};
use sha2::{Digest, Sha256};

use super::{ReloadHandle, ReloadKind};

/// Editors save in bursts (write temp, rename, touch); one reload per burst.
const DEBOUNCE: Duration = Duration::from_millis(250);

/// Keeps the watch alive; dropping it stops watching.
pub struct Watch {
    _debouncer: Debouncer<notify::RecommendedWatcher>,
}

/// Watches the policy file's directory (non-recursively; see the module docs) and the
/// archetypes directory.
pub fn watch(policy: &Path, archetypes: &Path, reloads: ReloadHandle) -> notify::Result<Watch> {
    let policy = absolute(policy);
    let archetypes = absolute(archetypes);
    let policy_dir = policy
        .parent()
        .map_or_else(|| PathBuf::from("."), Path::to_path_buf);
    let policy_for_events = policy.clone();
    let policy_dir_for_events = policy_dir.clone();
    let archetypes_for_events = archetypes.clone();
    // What the reloader last read (or will read for the request this watcher sent last).
    let mut seen = content_hash(&policy);
    let mut seen_archetypes = archetypes_hash(&archetypes);
    let mut debouncer = new_debouncer(DEBOUNCE, move |result: DebounceEventResult| {
        let Ok(events) = result else { return };
        let mut policy_dir_touched = false;
        let mut archetypes_changed = false;
        for event in events {
            let path = absolute(&event.path);
            policy_dir_touched |=
                path == policy_for_events || path.parent() == Some(policy_dir_for_events.as_path());
            archetypes_changed |= path.starts_with(&archetypes_for_events)
                && (path.extension().is_some_and(|e| e == "jsonl") || is_kubelet_entry(&path));
        }
        if policy_dir_touched && replace_if_changed(&mut seen, content_hash(&policy_for_events)) {
            tracing::info!(path = %policy_for_events.display(), "policy file changed");
            reloads.send(ReloadKind::Policy);
        }
        if archetypes_changed
            && replace_if_changed(
                &mut seen_archetypes,
                archetypes_hash(&archetypes_for_events),
            )
        {
            tracing::info!(dir = %archetypes_for_events.display(), "archetype files changed");
            reloads.send(ReloadKind::Archetypes);
        }
    })?;
    debouncer
        .watcher()
        .watch(&policy_dir, RecursiveMode::NonRecursive)?;
    let mode = if archetypes.is_dir() {
        RecursiveMode::Recursive
    } else {
        RecursiveMode::NonRecursive
    };
    debouncer.watcher().watch(&archetypes, mode)?;
    Ok(Watch {
        _debouncer: debouncer,
    })
}

/// Whether `now` differs from what was last seen (then it becomes what was seen): events
/// that touched files without changing them ask for nothing.
fn replace_if_changed(seen: &mut Option<[u8; 32]>, now: Option<[u8; 32]>) -> bool {
    if *seen == now {
        return false;
    }
    *seen = now;
    true
}

/// The sha256 of the file's content, read through symlinks; `None` while it cannot be read
/// (a reload then reports why, and the next readable content counts as a change).
fn content_hash(path: &Path) -> Option<[u8; 32]> {
    std::fs::read(path)
        .ok()
        .map(|bytes| Sha256::digest(&bytes).into())
}

/// One hash over every `.jsonl` below `dir` (name and content, in name order, read through
/// symlinks; kubelet's `..` entries skipped, since `..data` is reached through the links).
fn archetypes_hash(dir: &Path) -> Option<[u8; 32]> {
    let mut files = Vec::new();
    collect_jsonl(dir, &mut files);
    files.sort();
    let mut hasher = Sha256::new();
    for file in &files {
        hasher.update(file.as_os_str().as_encoded_bytes());
        hasher.update(std::fs::read(file).ok()?);
    }
    Some(hasher.finalize().into())
}

fn collect_jsonl(dir: &Path, into: &mut Vec<PathBuf>) {
    if dir.is_file() {
        into.push(dir.to_path_buf());
        return;
    }
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if is_kubelet_entry(&path) {
            continue;
        }
        if path.is_dir() {
            collect_jsonl(&path, into);
        } else if path.extension().is_some_and(|e| e == "jsonl") {
            into.push(path);
        }
    }
}

/// kubelet's own entries in a mounted ConfigMap: `..data`, `..data_tmp` and the timestamped
/// directories, all named `..something`. A swap touches only these.
fn is_kubelet_entry(path: &Path) -> bool {
    path.file_name()
        .and_then(|n| n.to_str())
        .is_some_and(|n| n.starts_with("..") && n.len() > 2)
}

fn absolute(path: &Path) -> PathBuf {
    std::path::absolute(path).unwrap_or_else(|_| path.to_owned())
}
