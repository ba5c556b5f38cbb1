//! The real `router` binary: the service on port 0 (ready, classify, SIGTERM → draining → clean
//! exit) and the offline commands' contracts (train, classify, embed, eval).

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::common;
use crate::common::process::{http, http_as, router, sigterm, start, wait_ready_field};

#[test]
fn acknowledged_archetypes_survive_kill_9_and_file_edits_are_picked_up() {
    let dir = tempfile::tempdir().unwrap();
    let policy = dir.path().join("policy.toml");
    let shipped = std::fs::read_to_string(common::policy_path()).unwrap();
    std::fs::write(&policy, &shipped).unwrap();
    let data = dir.path().join("data");
    let args = [
        std::ffi::OsStr::new("--policy"),
        policy.as_os_str(),
        std::ffi::OsStr::new("--data-dir"),
        data.as_os_str(),
    ];
    let envs = [
        ("ROUTER_ADMIN_TOKEN", "t0ken"),
        ("ROUTER_MAX_IN_FLIGHT", "256"),
        // 200 requests at once below: they may all queue (this test is about the swap).
        ("ROUTER_QUEUE_BUDGET_MS", "600000"),
    ];

    let (mut first, addr, _) = start(&args, &envs);
    let example = json!({"examples": [{"text": "Pull every invoice number and due date out of the vendor email below", "bucket": "extraction", "id": "durable-1"}]});
    let (status, ack) = http_as(
        &addr,
        "POST",
        "/archetypes",
        Some(&example.to_string()),
        Some("t0ken"),
    );
    assert_eq!(status, 202, "{ack}");
    let version = ack["index_version"].as_str().unwrap().to_owned();
    first.0.kill().unwrap(); // SIGKILL: no shutdown, no flush
    first.0.wait().unwrap();

    let (_second, addr, _) = start(&args, &envs);
    let (_, page) = http_as(
        &addr,
        "GET",
        "/archetypes?bucket=extraction&limit=1000",
        None,
        Some("t0ken"),
    );
    assert!(
        page["archetypes"]
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a["id"] == "durable-1"),
        "{page}"
    );
    let (_, ready) = http(&addr, "GET", "/ready", None);
    assert_eq!(
        ready["index_version"],
        version.as_str(),
        "the restarted index contains the acknowledged example"
    );

    // Admin calls need the token, on the real socket too.
    let (status, body) = http(&addr, "POST", "/admin/rebuild", None);
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (401, Some("unauthorized"))
    );
    let (status, body) = http_as(&addr, "POST", "/admin/rebuild", None, Some("wrong"));
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (403, Some("forbidden"))
    );

    // 200 concurrent /classify calls during a rebuild all succeed, on the old or new index.
    let old = version.clone();
    let more: Vec<Value> = (0..30).map(|i| json!({"text": format!("Sort support ticket {i} about a late delivery into shipping, billing or product"), "bucket": "classification"})).collect();
    let (status, ack) = http_as(
        &addr,
        "POST",
        "/archetypes",
        Some(&json!({"examples": more}).to_string()),
        Some("t0ken"),
    );
    assert_eq!(status, 202, "{ack}");
    let new = ack["index_version"].as_str().unwrap().to_owned();
    let versions: Vec<String> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..200)
            .map(|i| {
                let addr = &addr;
                s.spawn(move || {
                    let (status, d) = http(
                        addr,
                        "POST",
                        "/classify",
                        Some(&json!({"prompt": format!("quick question number {i}")}).to_string()),
                    );
                    assert_eq!(status, 200, "{d}");
                    d["index_version"].as_str().unwrap().to_owned()
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert!(
        versions.iter().all(|v| *v == old || *v == new),
        "{versions:?}"
    );
    wait_ready_field(&addr, "index_version", &new);

    // A good edit is picked up by the file watcher; a broken one changes nothing.
    std::fs::write(
        &policy,
        shipped.replace(
            "policy_version = \"2026-12-01.1\"",
            "policy_version = \"2026-11-30.7\"",
        ),
    )
    .unwrap();
    let took = wait_ready_field(&addr, "policy_version", "2026-11-30.7");
    eprintln!("policy edit served after {took:?}");
    std::fs::write(&policy, "schema_version = 1\npolicy_version = ").unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let (_, ready) = loop {
        let r = http(&addr, "GET", "/ready", None);
        if !r.1["last_reload_error"].is_null() {
            break r;
        }
        assert!(
            Instant::now() < deadline,
            "the broken policy was never reported: {}",
            r.1
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(ready["policy_version"], "2026-11-30.7", "{ready}");
    let (status, d) = http(
        &addr,
        "POST",
        "/classify",
        Some(&json!({"prompt": "hello!"}).to_string()),
    );
    assert_eq!(
        (status, d["policy_version"].as_str()),
        (200, Some("2026-11-30.7"))
    );
}

#[test]
fn serve_on_port_zero_answers_and_drains_on_sigterm() {
    let data = tempfile::tempdir().unwrap();
    // A drain far longer than the test: only the second signal ends it, so nothing is timed.
    let (mut child, addr, log) = start(
        &[std::ffi::OsStr::new("--data-dir"), data.path().as_os_str()],
        &[("ROUTER_DRAIN_SECS", "3600"), ("ROUTER_MODEL_NICE", "10")],
    );
    assert!(
        semantic_router::pipeline::bundle::bundle_exists(&data.path().join("index")),
        "the built index is saved for the next start"
    );
    let (status, d) = http(&addr, "POST", "/classify", Some(&json!({"prompt": "Write a bash script that renames every .txt file in a folder to .md"}).to_string()));
    assert_eq!(status, 200, "{d}");
    assert_eq!(d["bucket"], "code");
    let (status, body) = http(&addr, "POST", "/classify", Some("{oops"));
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (400, Some("invalid_json"))
    );
    let (status, _) = http(&addr, "GET", "/metrics", None);
    assert_eq!(status, 200);
    #[cfg(target_os = "linux")]
    assert_model_threads_yield_to_the_service(child.0.id());

    // SIGTERM: not ready ("draining") at once, while requests are still served.
    sigterm(&child);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (status, body) = http(&addr, "GET", "/ready", None);
        if status == 503 {
            assert_eq!(body, json!({"ready": false, "reason": "draining"}));
            break;
        }
        assert_eq!(status, 200, "{body}");
        assert!(Instant::now() < deadline, "/ready never turned 503: {body}");
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(http(&addr, "GET", "/health", None).0, 200);
    let (status, d) = http(
        &addr,
        "POST",
        "/classify",
        Some(&json!({"prompt": "thanks, that was helpful!"}).to_string()),
    );
    assert_eq!(status, 200, "served while draining: {d}");

    // A second signal ends the drain; the process exits cleanly.
    sigterm(&child);
    let deadline = Instant::now() + Duration::from_secs(30);
    let exit = loop {
        if let Some(status) = child.0.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < deadline, "no exit after SIGTERM");
        std::thread::sleep(Duration::from_millis(50));
    };
    // The log reader ends when the child closes stderr, so this collects every line.
    let log: Vec<String> = log.iter().collect();
    assert!(exit.success(), "exit {exit:?}\n{}", log.join("\n"));
    assert!(
        log.iter().any(|l| l.contains("shut down cleanly")),
        "{}",
        log.join("\n")
    );
    // The decision log (stderr by default): one JSON line per decision, without the prompt.
    let decision = log
        .iter()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find(|v| v["decision_id"].is_string())
        .unwrap_or_else(|| panic!("no decision-log line:\n{}", log.join("\n")));
    assert_eq!(decision["bucket"], "code");
    assert!(decision["timings_us"]["total"].is_u64());
    assert!(!log.iter().any(|l| l.contains("renames every .txt")));
    // Readiness probes answered 503 during start-up are expected: nothing at ERROR.
    assert!(
        !log.iter().any(|l| l.contains("ERROR")),
        "{}",
        log.join("\n")
    );
}

/// The threads that run the model (and the batcher's drain) are at the `--model-nice` asked
/// for (10, or the process's own if that is higher); the async threads that answer requests
/// keep the process's.
#[cfg(target_os = "linux")]
fn assert_model_threads_yield_to_the_service(pid: u32) {
    let mut threads = Vec::new();
    for task in std::fs::read_dir(format!("/proc/{pid}/task")).unwrap() {
        let task = task.unwrap().path();
        let name = std::fs::read_to_string(task.join("comm")).unwrap();
        let stat = std::fs::read_to_string(task.join("stat")).unwrap();
        // Fields after the parenthesised name: state is the 3rd field, nice the 19th.
        let after_name = stat.rsplit(')').next().unwrap();
        let nice: i32 = after_name
            .split_whitespace()
            .nth(16)
            .unwrap()
            .parse()
            .unwrap();
        let main = task.ends_with(pid.to_string());
        threads.push((name.trim().to_owned(), nice, main));
    }
    let nice_of = |prefix: &str| -> Vec<i32> {
        let named = threads.iter().filter(|(n, _, _)| n.starts_with(prefix));
        named.map(|&(_, nice, _)| nice).collect()
    };
    let process = threads.iter().find(|t| t.2).map(|t| t.1).unwrap();
    let model = nice_of("router-model-");
    assert!(!model.is_empty(), "{threads:?}");
    assert!(model.iter().all(|&n| n == process.max(10)), "{threads:?}");
    // The batcher has no thread of its own: it drains its queue on the model's pool.
    assert!(nice_of("router-batcher").is_empty(), "{threads:?}");
    let service = nice_of("tokio-rt-worker");
    assert!(!service.is_empty(), "{threads:?}");
    assert!(service.iter().all(|&n| n == process), "{threads:?}");
}

fn run_with_stdin(command: &mut Command, stdin: &str) -> (bool, Vec<Value>, String) {
    let mut child = command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let lines = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    (
        out.status.success(),
        lines,
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn write_jsonl(path: &Path, rows: &[Value]) {
    let text: String = rows.iter().map(|r| format!("{r}\n")).collect();
    std::fs::write(path, text).unwrap();
}

#[test]
fn offline_commands_keep_their_contracts() {
    let dir = tempfile::tempdir().unwrap();
    let bundle = dir.path().join("bundle");

    // train: a bundle with a manifest bound to the model.
    let out = router()
        .args(["train", "--examples", "archetypes/examples", "--out"])
        .arg(&bundle)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let files = semantic_router::pipeline::bundle::current_dir(&bundle).unwrap();
    let manifest: Value =
        serde_json::from_slice(&std::fs::read(files.join("manifest.json")).unwrap()).unwrap();
    assert_eq!(manifest["dims"], 384);
    assert_eq!(
        manifest["model"]["sha256"],
        "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db"
    );
    assert!(manifest["counts"]["chit_chat"].as_u64().unwrap() >= 30);

    // classify: one line out per line in, in order; a bad line gets an error line.
    let input = "{\"text\": \"Translate this SQL query into a pandas expression\"}\n{\"txt\": \"typo\"}\n{\"text\": \"thanks so much, have a nice evening!\"}\n";
    let (ok, lines, stderr) =
        run_with_stdin(router().args(["classify", "--index"]).arg(&bundle), input);
    assert!(!ok, "a bad line makes the exit status non-zero");
    assert_eq!(lines.len(), 3, "{stderr}");
    assert_eq!(lines[0]["bucket"], "code");
    assert!(lines[1]["error"].as_str().unwrap().contains("line 2"));
    assert_eq!(lines[2]["bucket"], "chit_chat");
    assert_eq!(lines[0]["index_version"], lines[2]["index_version"]);

    // embed: vectors and token counts, in order.
    let (ok, lines, stderr) = run_with_stdin(
        router().arg("embed"),
        "{\"text\": \"hello world\"}\n{\"text\": \"a somewhat longer sentence to embed\"}\n",
    );
    assert!(ok, "{stderr}");
    assert_eq!(lines.len(), 2);
    assert_eq!(lines[0]["embedding"].as_array().unwrap().len(), 384);
    assert_eq!(lines[0]["tokens"], 4);
    assert!(lines[1]["tokens"].as_u64().unwrap() > 4);

    // A bundle from another model is refused with a message that says what to do.
    let mut foreign = manifest.clone();
    foreign["model"]["sha256"] = json!("f".repeat(64));
    std::fs::write(files.join("manifest.json"), foreign.to_string()).unwrap();
    let (ok, lines, stderr) = run_with_stdin(
        router().args(["classify", "--index"]).arg(&bundle),
        "{\"text\": \"hi\"}\n",
    );
    assert!(!ok && lines.is_empty());
    assert!(
        stderr.contains("built with model") && stderr.contains("router train"),
        "{stderr}"
    );

    // eval: the JSON report's contract, labels in `label`, out-of-scope rows counted apart.
    let train = dir.path().join("train.jsonl");
    let test = dir.path().join("test.jsonl");
    write_jsonl(
        &train,
        &[
            json!({"text": "what's the weather like tomorrow", "label": "weather"}),
            json!({"text": "will it rain this afternoon", "label": "weather"}),
            json!({"text": "play some jazz music", "label": "music"}),
            json!({"text": "put on my workout playlist", "label": "music"}),
        ],
    );
    write_jsonl(
        &test,
        &[
            json!({"text": "is it going to snow tonight", "label": "weather"}),
            json!({"text": "play the latest album by my favourite band", "label": "music"}),
            json!({"text": "book a table for two", "label": "oos"}),
        ],
    );
    let out = router()
        .args(["eval", "--json", "--compare", "--train"])
        .arg(&train)
        .arg("--test")
        .arg(&test)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["n"], 2);
    assert_eq!(report["n_out_of_scope"], 1);
    assert_eq!(report["accuracy"], 1.0);
    assert!(report["macro_f1"].is_number());
    assert!(report["scorers"]["centroid"]["accuracy"].is_number());
    assert!(report["latency_ms"]["p99"].is_number());
}

/// A model file that is not the pinned one (here the tokenizer, one token renamed) is refused
/// at start, before anything reads it, with a message naming the file and the fix.
#[test]
fn a_tokenizer_with_the_wrong_hash_is_refused_at_start() {
    let pinned = std::env::var_os("ROUTER_MODEL_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| common::repo_root().join("models/all-MiniLM-L6-v2"));
    // Resolve (fetch if needed) the real files first, so the only fault is the one made here.
    let _ = common::embedder();
    let dir = tempfile::tempdir().unwrap();
    for name in ["config.json", "model.safetensors"] {
        std::os::unix::fs::symlink(pinned.join(name), dir.path().join(name)).unwrap();
    }
    let tokenizer = std::fs::read_to_string(pinned.join("tokenizer.json")).unwrap();
    let tampered = tokenizer.replacen("\"[UNK]\"", "\"[UNX]\"", 1);
    assert_ne!(
        tampered, tokenizer,
        "the tokenizer file has an [UNK] token to rename"
    );
    std::fs::write(dir.path().join("tokenizer.json"), tampered).unwrap();
    let data = tempfile::tempdir().unwrap();
    let out = router()
        .args(["serve", "--addr", "127.0.0.1:0", "--model-dir"])
        .arg(dir.path())
        .arg("--data-dir")
        .arg(data.path())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success(),
        "a tampered tokenizer must stop the start: {stderr}"
    );
    let named = dir.path().join("tokenizer.json");
    assert!(
        stderr.contains(&*named.to_string_lossy()) && stderr.contains("router model fetch"),
        "the message names the file and the fix: {stderr}"
    );
}
