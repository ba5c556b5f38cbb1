//! What operators see: the Prometheus series after real requests (names and labels), and the
//! decision log's JSON line for a request (ids, timings, no prompt unless `--log-prompts`).
//!
//! The metrics recorder is process-wide: tests in this binary share it, so counts are
//! asserted as at least what this test did, never exactly.

use std::io::Write;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use axum::http::StatusCode;
use axum::Router;
use metrics_exporter_prometheus::PrometheusHandle;
use semantic_router::pipeline::compose::{DecisionLogDestination, DecisionLogSettings};
use semantic_router::serve::auth::AdminToken;
use semantic_router::serve::decision_log::{DecisionLog, PROMPT_CHARS};
use semantic_router::serve::{build_app, AppState, Limits};
use serde_json::{json, Value};

use crate::common;
use crate::common::http::{bearer, get, post_json, report_on_fresh_decision, send};

const TOKEN: &str = "observability-token";

/// The process-wide recorder, installed once for this binary.
fn recorder() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(semantic_router::serve::metrics::install)
        .clone()
}

/// An app over a fresh core that renders the shared recorder at `/metrics`.
fn scraped_app(limits: Limits) -> Router {
    let metrics = recorder();
    let state = AppState::starting(limits, Some(metrics)).with_admin_token(AdminToken::new(TOKEN));
    state.set_core(common::core());
    build_app(state)
}

/// The value of the series `name` whose labels include every one of `labels`.
fn series(scrape: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    scrape.lines().find_map(|line| {
        let rest = line.strip_prefix(name)?;
        let (label_text, value) = match rest.strip_prefix('{') {
            Some(r) => r.split_once("} ")?,
            None => ("", rest.strip_prefix(' ')?),
        };
        let all = labels
            .iter()
            .all(|(k, v)| label_text.split(',').any(|kv| kv == format!("{k}=\"{v}\"")));
        all.then(|| value.trim().parse().ok()).flatten()
    })
}

fn assert_series(scrape: &str, name: &str, labels: &[(&str, &str)], at_least: f64) {
    let value = series(scrape, name, labels).unwrap_or_else(|| {
        let near: Vec<&str> = scrape.lines().filter(|l| l.starts_with(name)).collect();
        panic!(
            "no {name} with {labels:?}; the scrape has:\n{}",
            near.join("\n")
        )
    });
    assert!(
        value >= at_least,
        "{name} {labels:?} = {value} < {at_least}"
    );
}

#[tokio::test]
async fn metrics_name_each_series_with_its_labels() {
    let app = scraped_app(Limits::default());
    let prompt = json!({"prompt": "Write a Rust function that parses an ISO 8601 date"});
    let (status, _, first) = send(&app, post_json("/classify", &prompt)).await;
    assert_eq!(status, StatusCode::OK, "{first}");
    let (status, _, _) = send(&app, post_json("/classify", &prompt)).await;
    assert_eq!(status, StatusCode::OK);
    let conversation = json!({"messages": [
        {"role": "user", "content": "Write a Rust function that parses an ISO 8601 date"},
        {"role": "assistant", "content": "fn parse(s: &str) -> Option<Date> { Date::parse(s).ok() }"},
        {"role": "user", "content": "thanks! what is the capital of France?"},
    ]});
    let (status, _, followup) = send(&app, post_json("/classify", &conversation)).await;
    assert_eq!(status, StatusCode::OK, "{followup}");
    assert!(followup["conversation"].is_object(), "{followup}");
    let (status, _, _) = send(&app, get("/no/such/route")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let reload = bearer(
        TOKEN,
        post_json("/admin/reload", &json!({"what": "policy"})),
    );
    let (status, _, body) = send(&app, reload).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let target = first["target"]["name"].as_str().unwrap().to_owned();
    let failure = json!({"outcome": "server_error", "latency_ms": 900});
    for _ in 0..10 {
        let Some((status, body)) =
            report_on_fresh_decision(&app, &prompt, &target, failure.clone()).await
        else {
            break; // The breaker opened: decisions no longer name the target.
        };
        assert_eq!(status, StatusCode::OK, "{body}");
    }
    // Admission refuses every request of an app with no room: 429, counted.
    let full = scraped_app(Limits {
        max_in_flight: 0,
        ..Limits::default()
    });
    let (status, _, _) = send(&full, post_json("/classify", &prompt)).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);

    let (status, headers, scrape) = send(&app, get("/metrics")).await;
    assert_eq!(status, StatusCode::OK);
    assert!(headers["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/plain"));
    let scrape = scrape.as_str().unwrap().to_owned();

    let ok = [("route", "/classify"), ("status", "200")];
    assert_series(&scrape, "router_requests_total", &ok, 3.0);
    let unmatched = [("route", "unmatched"), ("status", "404")];
    assert_series(&scrape, "router_requests_total", &unmatched, 1.0);
    // Whole-request times by route and status; a refusal's are there too.
    assert_series(&scrape, "router_request_duration_seconds_count", &ok, 3.0);
    let refused = [("route", "/classify"), ("status", "429")];
    assert_series(
        &scrape,
        "router_request_duration_seconds_count",
        &refused,
        1.0,
    );
    let finest = [("route", "/classify"), ("status", "429"), ("le", "0.00025")];
    assert_series(
        &scrape,
        "router_request_duration_seconds_bucket",
        &finest,
        0.0,
    );
    // The model's queue that admission reads, set at scrape time (idle now).
    assert_series(&scrape, "router_model_queue_texts", &[], 0.0);
    assert_series(&scrape, "router_model_queue_seconds", &[], 0.0);
    for stage in ["tokenize", "embed", "search", "score", "decide", "total"] {
        // 0.1 ms is the finest bucket; 50 ms is one too.
        for le in ["0.0001", "0.05", "+Inf"] {
            let labels = [("stage", stage), ("le", le)];
            assert_series(
                &scrape,
                "router_stage_duration_seconds_bucket",
                &labels,
                0.0,
            );
        }
        let count = [("stage", stage)];
        assert_series(&scrape, "router_stage_duration_seconds_count", &count, 1.0);
    }
    let bucket = first["bucket"].as_str().unwrap();
    let abstained = first["abstained"].as_bool().unwrap().to_string();
    let decided = [
        ("bucket", bucket),
        ("target", target.as_str()),
        ("abstained", abstained.as_str()),
    ];
    assert_series(&scrape, "router_decisions_total", &decided, 2.0);
    let changed = (followup["conversation"]["task"] != followup["bucket"]).to_string();
    let followups = [("changed_bucket", changed.as_str())];
    assert_series(
        &scrape,
        "router_conversation_followups_total",
        &followups,
        1.0,
    );
    let reloaded = [("kind", "policy"), ("outcome", "ok"), ("result", "swapped")];
    assert_series(&scrape, "router_reload_total", &reloaded, 1.0);
    assert_series(&scrape, "router_archetypes", &[("bucket", bucket)], 1.0);
    assert_series(&scrape, "router_overloaded_total", &[], 1.0);
    assert_series(&scrape, "router_cache_hits_total", &[], 1.0);
    assert_series(&scrape, "router_cache_misses_total", &[], 1.0);
    assert_series(&scrape, "router_decision_log_dropped_total", &[], 0.0);
    let (_, _, info) = send(&app, get("/info")).await;
    let build = [
        ("version", env!("CARGO_PKG_VERSION")),
        ("model", info["model"]["id"].as_str().unwrap()),
        ("revision", info["model"]["revision"].as_str().unwrap()),
        (
            "policy_version",
            info["policy"]["version"].as_str().unwrap(),
        ),
        ("index_version", info["index"]["version"].as_str().unwrap()),
    ];
    assert_eq!(series(&scrape, "router_build_info", &build), Some(1.0));
    let open = [("target", target.as_str()), ("state", "open")];
    assert_eq!(series(&scrape, "router_breaker_state", &open), Some(1.0));
    let closed = [("target", target.as_str()), ("state", "closed")];
    assert_eq!(series(&scrape, "router_breaker_state", &closed), Some(0.0));
    let opened = [
        ("target", target.as_str()),
        ("from", "closed"),
        ("to", "open"),
    ];
    assert_series(&scrape, "router_breaker_transitions_total", &opened, 1.0);
    // Bounded labels only: no prompt text, decision id or raw path is a label.
    assert!(!scrape.contains("ISO 8601"), "a prompt is in the scrape");
    assert!(!scrape.contains(first["decision_id"].as_str().unwrap()));
    assert!(!scrape.contains("/no/such/route"));
}

/// An in-memory decision-log destination.
#[derive(Clone, Default)]
struct Sink(Arc<Mutex<Vec<u8>>>);

impl Write for Sink {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Sink {
    /// Waits until `n` lines were written and returns them parsed.
    async fn lines(&self, n: usize) -> (String, Vec<Value>) {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let text = String::from_utf8(self.0.lock().unwrap().clone()).unwrap();
            if text.lines().count() >= n {
                let lines = text
                    .lines()
                    .map(|l| serde_json::from_str(l).expect("each line is JSON"))
                    .collect();
                return (text, lines);
            }
            assert!(Instant::now() < deadline, "no decision-log line: {text:?}");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

fn logged_app(log_prompts: bool) -> (Router, Sink) {
    let sink = Sink::default();
    let settings = DecisionLogSettings {
        destination: DecisionLogDestination::Off,
        sample: 1.0,
        log_prompts,
    };
    let log = DecisionLog::with_writer(sink.clone(), &settings, 64).unwrap();
    let state = AppState::ready(common::core(), Limits::default()).with_decision_log(log);
    (build_app(state), sink)
}

#[tokio::test]
async fn a_decision_log_line_has_ids_and_timings_and_no_prompt_unless_asked() {
    let secret = "Summarise the quarterly zanzibarquokka revenue figures in three bullet points";
    let request = json!({"prompt": secret, "request_id": "req-obs-1", "tenant": "acme"});
    let (app, sink) = logged_app(false);
    let (status, _, decision) = send(&app, post_json("/classify", &request)).await;
    assert_eq!(status, StatusCode::OK, "{decision}");
    let (text, lines) = sink.lines(1).await;
    println!("decision-log line: {}", text.lines().next().unwrap());
    let line = &lines[0];
    assert_eq!(line["decision_id"], decision["decision_id"]);
    assert_eq!(line["request_id"], "req-obs-1");
    assert_eq!(line["tenant"], "acme");
    assert_eq!(line["bucket"], decision["bucket"]);
    assert_eq!(line["target"], decision["target"]["name"]);
    assert_eq!(line["policy_version"], decision["policy_version"]);
    assert_eq!(line["index_version"], decision["index_version"]);
    assert_eq!(line["cache"], "miss");
    assert!(line["model"].as_str().is_some_and(|m| !m.is_empty()));
    assert!(line["estimated_input_cost_usd"].is_number());
    assert!(line["rules"].is_array() && line["fallbacks"].is_array());
    for stage in ["tokenize", "embed", "search", "score", "decide", "total"] {
        assert!(line["timings_us"][stage].is_u64(), "{stage} in {line}");
    }
    assert!(line["timings_us"]["total"].as_u64().unwrap() > 0);
    assert!(line.get("prompt").is_none(), "{line}");
    assert!(
        !text.contains("zanzibarquokka"),
        "the prompt leaked: {text}"
    );

    // With --log-prompts the routed text is written, cut to PROMPT_CHARS characters.
    let (app, sink) = logged_app(true);
    let long = format!("{secret} {}", "é".repeat(400));
    let request = json!({"messages": [{"role": "user", "content": long}]});
    let (status, _, _) = send(&app, post_json("/classify", &request)).await;
    assert_eq!(status, StatusCode::OK);
    let (_, lines) = sink.lines(1).await;
    let prompt = lines[0]["prompt"].as_str().expect("the prompt is logged");
    assert_eq!(prompt.chars().count(), PROMPT_CHARS);
    assert!(long.starts_with(prompt));
    assert!(lines[0]["request_id"].is_null());
}

#[tokio::test]
async fn drills_name_the_first_fallback_and_show_in_metrics_and_the_decision_log() {
    let dir = tempfile::tempdir().unwrap().keep();
    let policy = dir.join("policy.toml");
    let shipped = std::fs::read_to_string(common::policy_path()).unwrap();
    // The shipped file's commented example, turned on for every code decision.
    let drilled = shipped.replace(
        "# drill = { percent = 1.0, window_utc = \"02:00-04:00\" }",
        "drill = { percent = 100.0 }",
    );
    assert_ne!(
        drilled, shipped,
        "the shipped policy documents a drill example"
    );
    std::fs::write(&policy, drilled).unwrap();
    let sink = Sink::default();
    let settings = DecisionLogSettings {
        destination: DecisionLogDestination::Off,
        sample: 1.0,
        log_prompts: false,
    };
    let log = DecisionLog::with_writer(sink.clone(), &settings, 64).unwrap();
    let state = AppState::starting(Limits::default(), Some(recorder())).with_decision_log(log);
    state.set_core(common::core_with_policy(&dir, &policy));
    let app = build_app(state);

    let request = json!({"prompt": "Write a Python function that merges two sorted lists", "request_id": "drill-1"});
    let (status, _, d) = send(&app, post_json("/classify", &request)).await;
    assert_eq!(status, StatusCode::OK, "{d}");
    assert_eq!(d["bucket"], "code");
    assert_eq!(d["target"]["name"], "frontier-a", "{d}");
    assert_eq!(d["fallbacks"][0]["name"], "mid-a");
    assert_eq!(d["drill"]["primary"], "mid-a");
    let drill_reason = |reasons: &Value| {
        reasons
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r.as_str().unwrap().starts_with("drill: "))
    };
    assert!(drill_reason(&d["reasons"]), "{d}");
    assert!(d["feedback_tokens"]["frontier-a"].is_string());

    let (_, lines) = sink.lines(1).await;
    assert_eq!(lines[0]["target"], "frontier-a");
    assert!(drill_reason(&lines[0]["reasons"]), "{}", lines[0]);
    let (_, _, scrape) = send(&app, get("/metrics")).await;
    let scrape = scrape.as_str().unwrap().to_owned();
    let drills = series(
        &scrape,
        "router_drills_total",
        &[("bucket", "code"), ("target", "frontier-a")],
    );
    assert!(drills.is_some_and(|n| n >= 1.0), "{scrape}");
}

#[tokio::test]
async fn request_and_trace_ids_are_taken_echoed_and_logged() {
    let (app, sink) = logged_app(false);
    let parent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    let mut request = post_json("/classify", &json!({"prompt": "hello there, how are you?"}));
    let headers = request.headers_mut();
    headers.insert("x-request-id", "req-hdr-7".parse().unwrap());
    headers.insert("traceparent", parent.parse().unwrap());
    let (status, headers, decision) = send(&app, request).await;
    assert_eq!(status, StatusCode::OK, "{decision}");
    assert_eq!(headers["x-request-id"], "req-hdr-7");
    assert_eq!(
        decision["request_id"], "req-hdr-7",
        "the header id when the body has none"
    );
    let answered = headers["traceparent"].to_str().unwrap().to_owned();
    let parts: Vec<&str> = answered.split('-').collect();
    assert_eq!(
        (parts[0], parts[1], parts[3]),
        ("00", "4bf92f3577b34da6a3ce929d0e0e4736", "01")
    );
    assert!(
        parts[2].len() == 16 && parts[2] != "00f067aa0ba902b7",
        "{answered}"
    );
    let (_, lines) = sink.lines(1).await;
    assert_eq!(lines[0]["request_id"], "req-hdr-7");
    assert_eq!(lines[0]["trace_id"], "4bf92f3577b34da6a3ce929d0e0e4736");
    assert_eq!(lines[0]["span_id"], parts[2]);

    // Without them (or with malformed ones) the router makes both up, and says so.
    let mut request = post_json("/classify", &json!({"prompt": "hello again"}));
    request
        .headers_mut()
        .insert("traceparent", "not-a-trace".parse().unwrap());
    let (_, headers, decision) = send(&app, request).await;
    assert_eq!(headers["x-request-id"].len(), 26, "a ULID");
    assert!(
        decision.get("request_id").is_none(),
        "a made-up id is not the caller's"
    );
    assert_ne!(
        &headers["traceparent"].to_str().unwrap()[3..35],
        "4bf92f3577b34da6a3ce929d0e0e4736"
    );
    // Every route answers with them, errors included.
    let (status, headers, _) = send(&app, get("/no-such-route")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(headers.contains_key("x-request-id") && headers.contains_key("traceparent"));
}
