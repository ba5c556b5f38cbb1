//! Faults with the real binary: kill -9 during a rebuild (and its bundle swap) and during a
//! policy reload restarts into the last good state with every acknowledged archetype; a
//! bundle directory that cannot be written fails the rebuild cleanly while the old index
//! keeps serving. `scripts/fault-drill.sh` repeats the kill drills many times.

use std::ffi::OsStr;
use std::path::Path;
use std::time::{Duration, Instant};

use semantic_router::pipeline::bundle::{current_dir, Bundle};
use serde_json::{json, Value};

use crate::common;
use crate::common::process::{http, http_as, start};

const TOKEN: &str = "t0ken";
const ENVS: [(&str, &str); 3] = [
    ("ROUTER_ADMIN_TOKEN", TOKEN),
    ("ROUTER_MAX_IN_FLIGHT", "256"),
    ("ROUTER_QUEUE_BUDGET_MS", "600000"),
];

fn args<'a>(policy: &'a Path, data: &'a Path) -> [&'a OsStr; 4] {
    [
        OsStr::new("--policy"),
        policy.as_os_str(),
        OsStr::new("--data-dir"),
        data.as_os_str(),
    ]
}

/// A temp dir holding a copy of the shipped policy; returns (dir, policy path, data dir).
fn setup() -> (tempfile::TempDir, std::path::PathBuf, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let policy = dir.path().join("policy.toml");
    std::fs::copy(common::policy_path(), &policy).unwrap();
    let data = dir.path().join("data");
    (dir, policy, data)
}

fn post_batch(addr: &str, tag: &str, n: usize) -> (Vec<String>, String) {
    let ids: Vec<String> = (0..n).map(|i| format!("{tag}-{i}")).collect();
    let examples: Vec<Value> = ids.iter().enumerate().map(|(i, id)| json!({"id": id, "bucket": "classification",
        "text": format!("Sort customer complaint {tag} number {i} about a damaged parcel into billing, shipping or product")})).collect();
    let (status, ack) = http_as(
        addr,
        "POST",
        "/archetypes",
        Some(&json!({"examples": examples}).to_string()),
        Some(TOKEN),
    );
    assert_eq!(status, 202, "{ack}");
    (ids, ack["index_version"].as_str().unwrap().to_owned())
}

fn listed_ids(addr: &str) -> Vec<String> {
    let (status, page) = http_as(
        addr,
        "GET",
        "/archetypes?bucket=classification&limit=1000",
        None,
        Some(TOKEN),
    );
    assert_eq!(status, 200, "{page}");
    assert!(page["next_after"].is_null(), "one page holds them all");
    page["archetypes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["id"].as_str().unwrap().to_owned())
        .collect()
}

fn classify_ok(addr: &str) -> Value {
    let (status, d) = http(
        addr,
        "POST",
        "/classify",
        Some(
            &json!({"prompt": "Write a bash script that renames every .txt file to .md"})
                .to_string(),
        ),
    );
    assert_eq!(status, 200, "{d}");
    d
}

fn sigkill(child: &mut common::process::KillOnDrop) {
    child.0.kill().unwrap(); // SIGKILL: no shutdown, no flush
    child.0.wait().unwrap();
}

/// The bundle left on disk after a kill: one complete, verifiable bundle, never none.
fn assert_bundle_on_disk(data: &Path) {
    let dir = data.join("index");
    assert!(
        current_dir(&dir).is_some(),
        "no bundle on disk after the kill: {:?}",
        std::fs::read_dir(&dir).map(|d| d.count())
    );
    if let Err(e) = Bundle::load(&dir, &common::embedder_fingerprint()) {
        panic!("the bundle left on disk is refused: {e}");
    }
}

#[test]
fn kill_9_during_a_rebuild_restarts_with_every_acknowledged_archetype() {
    let (_dir, policy, data) = setup();
    let args = args(&policy, &data);
    let mut acknowledged = Vec::new();
    let mut last_version = String::new();
    // Kills at several points of the rebuild: embedding, saving, swapping, after.
    for (round, delay_ms) in [0u64, 40, 150, 400].into_iter().enumerate() {
        let (mut child, addr, _) = start(&args, &ENVS);
        let (ids, version) = post_batch(&addr, &format!("kill-{round}"), 20);
        acknowledged.extend(ids);
        last_version = version;
        std::thread::sleep(Duration::from_millis(delay_ms));
        sigkill(&mut child);
        assert_bundle_on_disk(&data);
    }
    let (_child, addr, log) = start(&args, &ENVS);
    let listed = listed_ids(&addr);
    let lost: Vec<&String> = acknowledged
        .iter()
        .filter(|id| !listed.contains(id))
        .collect();
    assert!(lost.is_empty(), "acknowledged but lost: {lost:?}");
    let (status, ready) = http(&addr, "GET", "/ready", None);
    assert_eq!(status, 200, "{ready}");
    assert_eq!(
        ready["index_version"], last_version,
        "the restarted index holds every acknowledged archetype"
    );
    assert_eq!(classify_ok(&addr)["index_version"], last_version);
    let refused: Vec<String> = log
        .try_iter()
        .filter(|l| l.contains("refusing the saved index bundle"))
        .collect();
    assert!(refused.is_empty(), "{refused:?}");
}

#[test]
fn kill_9_during_a_policy_reload_restarts_with_a_valid_policy() {
    let (_dir, policy, data) = setup();
    let args = args(&policy, &data);
    let shipped = std::fs::read_to_string(&policy).unwrap();
    let (mut child, _addr, _) = start(&args, &ENVS);
    // An editor's atomic save, then a reload, killed while it runs.
    let edited = shipped.replace(
        "policy_version = \"2026-12-01.1\"",
        "policy_version = \"2026-11-30.9\"",
    );
    assert_ne!(edited, shipped);
    let tmp = policy.with_extension("toml.tmp");
    std::fs::write(&tmp, &edited).unwrap();
    std::fs::rename(&tmp, &policy).unwrap();
    // SIGHUP queues the reload; SIGKILL follows before it can have finished.
    let hup = std::process::Command::new("kill")
        .args(["-HUP", &child.0.id().to_string()])
        .status()
        .unwrap();
    assert!(hup.success());
    std::thread::sleep(Duration::from_millis(2));
    sigkill(&mut child);

    let (mut child, addr, _) = start(&args, &ENVS);
    let (status, ready) = http(&addr, "GET", "/ready", None);
    assert_eq!(
        (status, ready["policy_version"].as_str()),
        (200, Some("2026-11-30.9"))
    );
    assert_eq!(classify_ok(&addr)["policy_version"], "2026-11-30.9");

    // Killed while the file watcher reloads a broken edit: the restart refuses the file by
    // name rather than serving a half-read policy.
    std::fs::write(&policy, "schema_version = 1\npolicy_version = ").unwrap();
    std::thread::sleep(Duration::from_millis(100));
    sigkill(&mut child);
    let out = common::process::router()
        .args(["serve", "--addr", "127.0.0.1:0"])
        .args(args)
        .envs(ENVS)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains("policy.toml"), "{stderr}");
}

/// Makes `dir` unwritable: chmod where that binds (not root), else a regular file in place
/// of the directory, which no one can create entries under. Returns how.
fn make_unwritable(dir: &Path) -> &'static str {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o555)).unwrap();
    if std::fs::write(dir.join(".probe"), b"").is_err() {
        return "chmod 555";
    }
    std::fs::remove_file(dir.join(".probe")).unwrap();
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    // Root ignores the mode bits: the served bundle is in memory, so move the directory
    // aside and leave a file where it was.
    std::fs::rename(dir, dir.with_extension("aside")).unwrap();
    std::fs::write(dir, b"not a directory").unwrap();
    "a file in place of the directory (running as root)"
}

#[test]
fn an_unwritable_bundle_dir_fails_the_rebuild_and_the_old_index_keeps_serving() {
    let (_dir, policy, data) = setup();
    let args = args(&policy, &data);
    let (_child, addr, _) = start(&args, &ENVS);
    let (_, before) = http(&addr, "GET", "/ready", None);
    let old = before["index_version"].as_str().unwrap().to_owned();
    let how = make_unwritable(&data.join("index"));
    eprintln!("bundle directory made unwritable with {how}");

    let (ids, promised) = post_batch(&addr, "readonly", 5);
    let deadline = Instant::now() + Duration::from_secs(120);
    let ready = loop {
        let (status, ready) = http(&addr, "GET", "/ready", None);
        assert_eq!(status, 200, "{ready}");
        if !ready["last_reload_error"].is_null() {
            break ready;
        }
        assert!(Instant::now() < deadline, "never reported: {ready}");
        std::thread::sleep(Duration::from_millis(50));
    };
    let error = ready["last_reload_error"].as_str().unwrap();
    assert!(error.contains("could not be saved"), "{error}");
    assert!(error.contains("index"), "names the directory: {error}");
    assert_eq!(ready["index_version"], old, "the old index keeps serving");
    assert_ne!(promised, old);
    assert_eq!(classify_ok(&addr)["index_version"], old);
    // Acknowledged (in the journal) though not yet served.
    let listed = listed_ids(&addr);
    assert!(ids.iter().all(|id| listed.contains(id)));

    let (status, scrape) = common::process::http_text(&addr, "/metrics");
    assert_eq!(status, 200);
    assert!(
        scrape.lines().any(|l| l.starts_with("router_reload_total{")
            && l.contains("outcome=\"error\"")
            && l.contains("result=\"rebuild\"")),
        "{scrape}"
    );
    // Lets the temp dir be removed (a no-op on the file root's variant leaves).
    use std::os::unix::fs::PermissionsExt;
    let _ = std::fs::set_permissions(data.join("index"), std::fs::Permissions::from_mode(0o755));
}
