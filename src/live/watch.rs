//! A debounced file watcher: edits to the policy file or the archetype directory become
//! reload requests. It never reloads anything itself.

use std::path::{Path, PathBuf};
use std::time::Duration;

use notify::RecursiveMode;
use notify_debouncer_mini::{new_debouncer, DebounceEventResult, Debouncer};

use super::{ReloadHandle, ReloadKind};

/// Editors save in bursts (write temp, rename, touch); one reload per burst.
const DEBOUNCE: Duration = Duration::from_millis(250);

/// Keeps the watch alive; dropping it stops watching.
pub struct Watch {
    _debouncer: Debouncer<notify::RecommendedWatcher>,
}

/// Watches the policy file's directory (editors replace files, which a file watch would miss)
/// and the archetypes directory.
pub fn watch(policy: &Path, archetypes: &Path, reloads: ReloadHandle) -> notify::Result<Watch> {
    let policy = absolute(policy);
    let archetypes = absolute(archetypes);
    let policy_for_events = policy.clone();
    let archetypes_for_events = archetypes.clone();
    let mut debouncer = new_debouncer(DEBOUNCE, move |result: DebounceEventResult| {
        let Ok(events) = result else { return };
        let mut policy_changed = false;
        let mut archetypes_changed = false;
        for event in events {
            let path = absolute(&event.path);
            policy_changed |= path == policy_for_events;
            archetypes_changed |= path.starts_with(&archetypes_for_events)
                && path.extension().is_some_and(|e| e == "jsonl");
        }
        if policy_changed {
            tracing::info!(path = %policy_for_events.display(), "policy file changed");
            reloads.send(ReloadKind::Policy);
        }
        if archetypes_changed {
            tracing::info!(dir = %archetypes_for_events.display(), "archetype files changed");
            reloads.send(ReloadKind::Archetypes);
        }
    })?;
    let policy_dir = policy
        .parent()
        .map_or_else(|| PathBuf::from("."), Path::to_path_buf);
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

fn absolute(path: &Path) -> PathBuf {
    std::path::absolute(path).unwrap_or_else(|_| path.to_owned())
}
