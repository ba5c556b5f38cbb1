//! Many replicas on one shared store: real `router` processes, a real PostgreSQL on loopback.
//! Writes on one replica reach the others' indexes; the database enforces all-or-nothing
//! batches and one bucket per text; a replica that starts later reuses the fleet's vectors; a
//! database restart and a kill -9 lose nothing acknowledged and stop no replica from serving.

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use semantic_router::store::shared::SharedLog;
use semantic_router::store::{ArchetypeStore, NewExample, StoreError};
use semantic_router::types::BucketId;

use crate::common::postgres::Postgres;
use crate::common::process::{http, http_as, http_text, start, KillOnDrop};
use crate::common::repo_root;

const TOKEN: &str = "fleet-t0ken";
const ENVS: [(&str, &str); 1] = [("ROUTER_ADMIN_TOKEN", TOKEN)];

/// Copies a bundle directory with its version folders (`CURRENT`, `v-NNNNNN/`).
fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &to.join(entry.file_name()));
        } else {
            std::fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
        }
    }
}

/// A replica on `pg` with its own data directory (seeded with `seed`'s saved index, so it
/// does not embed every shipped archetype again).
fn replica(pg: &Postgres, data: &Path, seed: Option<&Path>) -> (KillOnDrop, String) {
    if let Some(seed) = seed {
        copy_dir(&seed.join("index"), &data.join("index"));
    }
    let url = pg.url();
    let args = [
        "--data-dir".as_ref(),
        data.as_os_str(),
        "--store".as_ref(),
        url.as_ref(),
        "--store-sync-ms".as_ref(),
        "500".as_ref(),
    ];
    let (child, addr, _log) = start(&args, &ENVS);
    (child, addr)
}

fn post(addr: &str, path: &str, body: &Value) -> (u16, Value) {
    http_as(addr, "POST", path, Some(&body.to_string()), Some(TOKEN))
}

fn index_version(addr: &str) -> String {
    let (status, ready) = http(addr, "GET", "/ready", None);
    assert_eq!(status, 200, "{ready}");
    ready["index_version"].as_str().unwrap().to_owned()
}

/// Polls until `addr` serves `version`; returns how long that took.
fn wait_for_version(addr: &str, version: &str) -> Duration {
    let started = Instant::now();
    while index_version(addr) != version {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "{addr} never reached index {version} (serves {})",
            index_version(addr)
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    started.elapsed()
}

/// One `/classify` of `prompt`, which must answer 200: the decision.
fn classify(addr: &str, prompt: &str) -> Value {
    let (status, d) = http(
        addr,
        "POST",
        "/classify",
        Some(&json!({ "prompt": prompt }).to_string()),
    );
    assert_eq!(status, 200, "{d}");
    d
}

fn neighbour_ids(addr: &str, prompt: &str) -> Vec<String> {
    classify(addr, prompt)["neighbours"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["id"].as_str().unwrap().to_owned())
        .collect()
}

/// `router_index_vectors_total{source}` of the replica at `addr` (0 when absent).
fn index_vectors(addr: &str, source: &str) -> u64 {
    let (status, scrape) = http_text(addr, "/metrics");
    assert_eq!(status, 200);
    let series = format!("router_index_vectors_total{{source=\"{source}\"}} ");
    scrape
        .lines()
        .find_map(|l| l.strip_prefix(series.as_str()))
        .map_or(0, |v| v.trim().parse().unwrap())
}

fn total(addr: &str) -> u64 {
    let (status, page) = http_as(addr, "GET", "/archetypes?limit=1", None, Some(TOKEN));
    assert_eq!(status, 200, "{page}");
    page["total"].as_u64().unwrap()
}

/// Two stores on one database, as two replicas hold them. `add` syncs before validating, so
/// a write that then fails or adds nothing may have applied the other replica's changes on
/// its way: the store must still ask for a rebuild, or the replica serves its old index
/// until some later change (found in CI: the loser of a conflicting write stayed on it).
#[test]
fn a_write_that_fails_or_adds_nothing_still_rebuilds_for_what_its_sync_applied() {
    let Some(pg) = Postgres::start("sync_on_a_failed_write") else {
        return;
    };
    let runtime = tokio::runtime::Runtime::new().unwrap();
    // The store blocks on the runtime, from a thread in its context (as the service's
    // blocking threads are).
    let _context = runtime.enter();
    let open = || {
        let log = SharedLog::connect(&pg.url(), runtime.handle().clone()).unwrap();
        ArchetypeStore::open_shared(&repo_root().join("archetypes/examples"), log).unwrap()
    };
    let (mut first, mut second) = (open(), open());
    assert!(
        !first.take_unbuilt(),
        "the index at start is built from what was read"
    );
    let buckets: BTreeSet<BucketId> = ["creative_writing", "chit_chat"].map(BucketId::new).into();
    let offer = |bucket: &str| {
        [NewExample {
            text: "Draft a haiku about the velvet kraken of the northern quarry".into(),
            bucket: bucket.into(),
            id: None,
            tenant: None,
        }]
    };
    first.add(&offer("creative_writing"), &buckets).unwrap();
    assert!(first.take_unbuilt(), "its own addition");
    assert!(!first.take_unbuilt(), "asked once");

    // The second store has not synced since: its add applies the first's change, then finds
    // its text taken by another bucket.
    let conflict = second.add(&offer("chit_chat"), &buckets);
    assert!(
        matches!(conflict, Err(StoreError::Conflict { .. })),
        "{conflict:?}"
    );
    assert!(
        second.take_unbuilt(),
        "the first store's addition, applied on the way"
    );
    assert_eq!(second.examples().len(), first.examples().len());

    // The same text to the same bucket again: nothing added, nothing to rebuild.
    let again = second.add(&offer("creative_writing"), &buckets).unwrap();
    assert!(!again[0].created);
    assert!(!second.take_unbuilt());
}

#[test]
fn three_replicas_converge_and_the_database_decides_conflicts() {
    let Some(pg) = Postgres::start("three_replicas_converge") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let (d1, d2, d3) = (
        dir.path().join("r1"),
        dir.path().join("r2"),
        dir.path().join("r3"),
    );
    let (_r1, a1) = replica(&pg, &d1, None);
    let (_r2, a2) = replica(&pg, &d2, Some(&d1));
    let (_r3, a3) = replica(&pg, &d3, Some(&d1));
    let start_version = index_version(&a1);
    assert_eq!(index_version(&a2), start_version);
    assert_eq!(index_version(&a3), start_version);

    // A write on the first replica reaches the neighbours of the other two.
    let text = "Reconcile the quarterly zorblax ledger against the vendor's ferrous manifest";
    let (status, ack) = post(
        &a1,
        "/archetypes",
        &json!({"examples": [{"text": text, "bucket": "extraction", "id": "fleet-1"}]}),
    );
    assert_eq!(status, 202, "{ack}");
    let version = ack["index_version"].as_str().unwrap().to_owned();
    assert_ne!(version, start_version);
    for addr in [&a2, &a3] {
        let took = wait_for_version(addr, &version);
        eprintln!("{addr}: index {version} after {took:?}");
        assert!(neighbour_ids(addr, text).contains(&"fleet-1".to_owned()));
    }
    wait_for_version(&a1, &version);

    // A batch with one bad example writes nothing, on any replica.
    let before = total(&a1);
    let (status, err) = post(
        &a2,
        "/archetypes",
        &json!({"examples": [
        {"text": "Tabulate the glimmerfen survey answers by district", "bucket": "extraction"},
        {"text": "whatever", "bucket": "no_such_bucket"}]}),
    );
    assert_eq!(
        (status, err["error"]["code"].as_str()),
        (422, Some("unknown_bucket")),
        "{err}"
    );

    // Two replicas offer the same new text for different buckets at the same moment: the
    // database's unique key lets exactly one win; the other is told whose it is.
    let contested = "Draft a haiku about the velvet kraken of the northern quarry";
    let answers: Vec<(u16, Value)> = std::thread::scope(|s| {
        let barrier = Arc::new(std::sync::Barrier::new(2));
        let offers = [(&a1, "creative_writing"), (&a2, "chit_chat")].map(|(addr, bucket)| {
            let barrier = Arc::clone(&barrier);
            s.spawn(move || {
                barrier.wait();
                post(
                    addr,
                    "/archetypes",
                    &json!({"examples": [{"text": contested, "bucket": bucket}]}),
                )
            })
        });
        offers.map(|h| h.join().unwrap()).into_iter().collect()
    });
    let statuses: Vec<u16> = answers.iter().map(|(s, _)| *s).collect();
    assert!(
        statuses == [202, 409] || statuses == [409, 202],
        "exactly one of two conflicting writes wins: {answers:?}"
    );
    let (_, winner) = answers.iter().find(|(s, _)| *s == 202).unwrap();
    let winning_bucket = winner["accepted"][0]["bucket"].as_str().unwrap();
    let version = winner["index_version"].as_str().unwrap().to_owned();
    // The same text again, to the winning bucket, on a third replica: idempotent.
    let (status, again) = post(
        &a3,
        "/archetypes",
        &json!({"examples": [{"text": contested, "bucket": winning_bucket}]}),
    );
    assert_eq!(status, 202, "{again}");
    assert_eq!(again["accepted"][0]["created"], false, "{again}");
    for addr in [&a1, &a2, &a3] {
        wait_for_version(addr, &version);
        assert_eq!(
            total(addr),
            before + 1,
            "only the contested winner was added"
        );
    }

    // A replica that starts later on an empty data directory (a new pod) reads the vectors
    // the fleet embedded from the store instead of running the model on every archetype,
    // and serves the same index.
    let (_r4, a4) = replica(&pg, &dir.path().join("r4"), None);
    assert_eq!(index_version(&a4), version);
    assert!(neighbour_ids(&a4, text).contains(&"fleet-1".to_owned()));
    let from = |source: &str| index_vectors(&a4, source);
    assert_eq!(
        from("model"),
        0,
        "a later replica embeds nothing the fleet has"
    );
    assert!(
        from("shared_store") > before,
        "every archetype's vector came from the store: {}",
        from("shared_store")
    );

    // An uncertain decision on one replica is in the fleet's queue on another (written off
    // the request path, so it may take a moment).
    let uncertain = uncertain_decision_id(&a1);
    let started = Instant::now();
    loop {
        let (status, page) = http_as(&a3, "GET", "/admin/uncertain?limit=50", None, Some(TOKEN));
        assert_eq!(status, 200, "{page}");
        assert_eq!(page["source"], "shared_store", "{page}");
        let held = page["items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|i| i["decision_id"] == uncertain.as_str());
        if held {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "{uncertain} never reached the shared queue: {page}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Routes prompts that sit between buckets until one decision is uncertain (abstained, or
/// a margin under the shipped policy's 0.20) and returns its decision id.
fn uncertain_decision_id(addr: &str) -> String {
    let prompts = [
        "and?",
        "again",
        "the",
        "hmm, what about the other thing from before?",
        "asdf qwer zxcv",
    ];
    for prompt in prompts {
        let d = classify(addr, prompt);
        if d["abstained"] == true || d["margin"].as_f64().unwrap() < 0.20 {
            return d["decision_id"].as_str().unwrap().to_owned();
        }
    }
    panic!("none of {prompts:?} was uncertain under the shipped policy");
}

#[test]
fn a_database_restart_and_a_kill_9_lose_nothing_acknowledged() {
    let Some(pg) = Postgres::start("database_restart_and_kill_9") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let (d1, d2) = (dir.path().join("r1"), dir.path().join("r2"));
    let (mut r1, a1) = replica(&pg, &d1, None);
    let (_r2, a2) = replica(&pg, &d2, Some(&d1));
    let shipped = total(&a1);

    // Traffic on both replicas throughout; every answer must be a 200.
    let stop = Arc::new(AtomicBool::new(false));
    let failures = Arc::new(AtomicUsize::new(0));
    let served = Arc::new(AtomicUsize::new(0));
    let load = {
        let (stop, failures, served, a2) =
            (stop.clone(), failures.clone(), served.clone(), a2.clone());
        std::thread::spawn(move || {
            let body = json!({"prompt": "Translate 'good morning' into Portuguese"}).to_string();
            while !stop.load(Ordering::Relaxed) {
                let (status, _) = http(&a2, "POST", "/classify", Some(&body));
                let counter = if status == 200 { &served } else { &failures };
                counter.fetch_add(1, Ordering::Relaxed);
            }
        })
    };

    // The database goes away: serving goes on, writes are refused with 503, /info says so.
    pg.stop();
    let (status, err) = post(
        &a1,
        "/archetypes",
        &json!({"examples": [{"text": "Outage-time example that must not land", "bucket": "chit_chat"}]}),
    );
    assert_eq!(
        (status, err["error"]["code"].as_str()),
        (503, Some("store_unavailable")),
        "{err}"
    );
    assert_eq!(http(&a1, "GET", "/ready", None).0, 200);
    let started = Instant::now();
    loop {
        let (_, info) = http(&a2, "GET", "/info", None);
        if info["store"]["connected"] == false {
            assert!(info["store"]["last_error"].is_string(), "{info}");
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "/info never showed the outage: {info}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }

    // It comes back: the replicas reconnect by themselves and writes are accepted again.
    pg.start_server();
    let batch: Vec<Value> = (0..40)
        .map(|i| json!({"text": format!("Summarise the minutes of planning meeting number {i} of the marsh-road bridge committee"), "bucket": "summarization"}))
        .collect();
    let started = Instant::now();
    let ack = loop {
        let (status, ack) = post(&a1, "/archetypes", &json!({ "examples": batch }));
        if status == 202 {
            break ack;
        }
        assert_eq!(status, 503, "{ack}");
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "writes never resumed: {ack}"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    // kill -9 while the acknowledged batch is being embedded and the index rebuilt.
    r1.0.kill().unwrap();
    r1.0.wait().unwrap();
    let version = ack["index_version"].as_str().unwrap().to_owned();
    wait_for_version(&a2, &version);

    let (_r1, a1) = replica(&pg, &d1, None);
    wait_for_version(&a1, &version);
    assert_eq!(
        total(&a1),
        shipped + 40,
        "every acknowledged example is back"
    );
    assert_eq!(total(&a2), shipped + 40);
    stop.store(true, Ordering::Relaxed);
    load.join().unwrap();
    assert_eq!(
        failures.load(Ordering::Relaxed),
        0,
        "every classify answered 200"
    );
    assert!(served.load(Ordering::Relaxed) > 0);
}
