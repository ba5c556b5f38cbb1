//! A policy mounted from a Kubernetes ConfigMap is reloaded when kubelet swaps it.
//!
//! kubelet never writes the visible file: it writes a new timestamped directory, points a new
//! `..data_tmp` symlink at it and renames that over `..data` (one atomic rename), then removes
//! the old directory. `policy.toml -> ..data/policy.toml` itself is never touched. This test
//! builds exactly that layout, starts the watcher the server starts, and swaps it the same way.

#![cfg(unix)]

use std::os::unix::fs::symlink;
use std::path::Path;
use std::time::{Duration, Instant};

use semantic_router::live::watch::watch;

use crate::common;

/// Writes `policy` the way kubelet's atomic writer does: a new `..<timestamp>` directory, a
/// `..data_tmp` symlink to it renamed over `..data`, the visible symlink created once, the
/// previous timestamped directory removed.
fn kubelet_write(mount: &Path, timestamp: &str, policy: &str) {
    let payload = format!("..{timestamp}");
    std::fs::create_dir_all(mount.join(&payload)).unwrap();
    std::fs::write(mount.join(&payload).join("policy.toml"), policy).unwrap();
    let previous = std::fs::read_link(mount.join("..data")).ok();
    symlink(&payload, mount.join("..data_tmp")).unwrap();
    std::fs::rename(mount.join("..data_tmp"), mount.join("..data")).unwrap();
    if std::fs::symlink_metadata(mount.join("policy.toml")).is_err() {
        symlink("..data/policy.toml", mount.join("policy.toml")).unwrap();
    }
    if let Some(previous) = previous {
        std::fs::remove_dir_all(mount.join(previous)).unwrap();
    }
}

fn with_version(shipped: &str, version: &str) -> String {
    let replaced = shipped.replace(
        "policy_version = \"2026-12-01.1\"",
        &format!("policy_version = \"{version}\""),
    );
    assert_ne!(
        replaced, shipped,
        "the shipped policy_version moved; update this test"
    );
    replaced
}

/// Waits (generously: a loaded CI machine) until the live policy has `version`.
fn wait_for_version(core: &semantic_router::serve::Core, version: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while core.live.snapshot().policy.version != version {
        assert!(
            Instant::now() < deadline,
            "policy {version} was never loaded; serving {} (last error: {:?})",
            core.live.snapshot().policy.version,
            core.live.last_error()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn a_config_map_symlink_swap_reloads_the_policy() {
    let dir = tempfile::tempdir().unwrap();
    let mount = dir.path().join("config");
    let shipped = std::fs::read_to_string(common::policy_path()).unwrap();
    kubelet_write(&mount, "2026_12_01_10_00_00.000000001", &shipped);
    let policy = mount.join("policy.toml");
    let core = common::core_with_policy(&dir.path().join("data"), &policy);
    let _watch = watch(&policy, &common::archetypes_dir(), core.reloads.clone()).unwrap();
    assert_eq!(core.live.snapshot().policy.version, "2026-12-01.1");

    kubelet_write(
        &mount,
        "2026_12_01_10_01_00.000000002",
        &with_version(&shipped, "2026-11-30.8"),
    );
    wait_for_version(&core, "2026-11-30.8");

    // The watch survives the swap (it is on the directory, not on the replaced file).
    kubelet_write(
        &mount,
        "2026_12_01_10_02_00.000000003",
        &with_version(&shipped, "2026-11-30.9"),
    );
    wait_for_version(&core, "2026-11-30.9");
    assert!(core.live.last_error().is_none());
}

/// Waits until the reloader has finished `runs` reloads (or fails after a generous minute).
fn wait_for_runs(core: &semantic_router::serve::Core, runs: u64) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while core.reloads.status().runs < runs {
        assert!(Instant::now() < deadline, "reload {runs} never ran");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn reading_the_archetype_files_reloads_nothing_and_editing_them_does() {
    let dir = tempfile::tempdir().unwrap();
    let watched = dir.path().join("archetypes");
    std::fs::create_dir(&watched).unwrap();
    let file = watched.join("extra.jsonl");
    let line = r#"{"id": "watch-1", "bucket": "code", "text": "Write a shell one-liner that counts files"}"#;
    std::fs::write(&file, format!("{line}\n")).unwrap();
    let core = common::core();
    let _watch = watch(&common::policy_path(), &watched, core.reloads.clone()).unwrap();
    let before = core.reloads.status().runs;
    // inotify reports every open: reading the files (as every reload does) must not count.
    for _ in 0..20 {
        std::fs::read_to_string(&file).unwrap();
        std::thread::sleep(Duration::from_millis(25));
    }
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(
        core.reloads.status().runs,
        before,
        "reads asked for reloads"
    );

    std::fs::write(
        &file,
        format!(
            "{line}\n{}\n",
            line.replace("watch-1", "watch-2")
                .replace("counts files", "counts lines")
        ),
    )
    .unwrap();
    wait_for_runs(&core, before + 1);
    // One edit, one reload: no storm after it.
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(core.reloads.status().runs, before + 1);
}
