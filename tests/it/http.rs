//! The HTTP API through `oneshot` on the real app (real model, real index, shipped policy).

use axum::body::Body;
use axum::http::{header, Request, StatusCode};
use semantic_router::serve::{build_app, AppState, Limits};
use serde_json::{json, Value};

use crate::common::http::{app, app_with, get, post, send};

fn assert_error(status: StatusCode, body: &Value, expected_status: u16, code: &str) {
    assert_eq!(status.as_u16(), expected_status, "{body}");
    assert_eq!(body["error"]["code"], code, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()),
        "{body}"
    );
}

#[tokio::test]
async fn classify_returns_a_complete_decision() {
    let body = json!({"prompt": "Write a Python function that returns the n-th Fibonacci number using memoization.", "request_id": "r-1", "tenant": "acme", "priority": "high"});
    let (status, _, d) = send(&app(), post("/classify", body.to_string())).await;
    assert_eq!(status, StatusCode::OK, "{d}");
    assert_eq!(d["bucket"], "code");
    assert_eq!(d["abstained"], false);
    assert_eq!(d["request_id"], "r-1");
    // priority "high" fires the shipped high-priority-fastest rule: mid-b ranks fastest in code.
    assert_eq!(d["target"]["name"], "mid-b");
    assert!(d["target"]["model"].as_str().unwrap().contains("2025"));
    assert!(d["reasons"].as_array().unwrap().iter().any(|r| r
        .as_str()
        .unwrap()
        .starts_with("rule high-priority-fastest:")));
    assert!(d["estimated_input_cost_usd"].as_f64().unwrap() > 0.0);
    let fallbacks = d["fallbacks"].as_array().unwrap();
    assert!(fallbacks.len() <= 2 && !fallbacks.contains(&d["target"]));
    assert!(d["escalation"]["on"]
        .as_array()
        .unwrap()
        .contains(&json!("timeout")));
    assert!(d["escalation"]["timeout_ms"].as_u64().unwrap() > 0);
    let confidence = d["confidence"].as_f64().unwrap();
    assert!((0.0..=1.0).contains(&confidence));
    assert!(d["reasons"][0]
        .as_str()
        .unwrap()
        .starts_with("semantic (combined):"));
    let neighbours = d["neighbours"].as_array().unwrap();
    assert_eq!(neighbours.len(), 10);
    assert!(
        neighbours[0]["similarity"].as_f64().unwrap()
            >= neighbours[9]["similarity"].as_f64().unwrap()
    );
    assert!(neighbours[0]["id"].as_str().unwrap().starts_with("code-"));
    assert_eq!(d["policy_version"], "2026-12-01.1");
    assert!(d["index_version"].as_str().unwrap().starts_with("sha256:"));
    assert!(d["decision_id"].as_str().unwrap().len() == 26);
    for stage in ["tokenize", "embed", "search", "decide", "total"] {
        assert!(d["timings_us"][stage].is_u64(), "{stage}");
    }
    assert!(d["timings_us"]["total"].as_u64() >= d["timings_us"]["embed"].as_u64());
}

#[tokio::test]
async fn messages_route_the_last_user_turn() {
    let body = json!({"messages": [
        {"role": "system", "content": "You are a helpful assistant."},
        {"role": "user", "content": "Write a function in Rust that parses a CSV line."},
        {"role": "assistant", "content": "Sure, here it is."},
        {"role": "user", "content": [{"type": "text", "text": "hi there! how's your day going?"}]}
    ]});
    let (status, _, d) = send(&app(), post("/classify", body.to_string())).await;
    assert_eq!(status, StatusCode::OK, "{d}");
    assert_eq!(d["bucket"], "chit_chat");
}

#[tokio::test]
async fn bad_requests_get_json_errors_with_stable_codes() {
    let cases: Vec<(Request<Body>, u16, &str)> = vec![
        (post("/classify", "{\"prompt\": "), 400, "invalid_json"),
        (post("/classify", "[1, 2]"), 400, "invalid_request"),
        (
            post(
                "/classify",
                json!({"prompt": "x", "promt": "y"}).to_string(),
            ),
            422,
            "unknown_field",
        ),
        (
            post("/classify", json!({"prompt": ""}).to_string()),
            400,
            "empty_prompt",
        ),
        (
            post("/classify", json!({"prompt": " \n\t "}).to_string()),
            400,
            "empty_prompt",
        ),
        (
            post("/classify", json!({"tenant": "acme"}).to_string()),
            400,
            "invalid_request",
        ),
        (
            post(
                "/classify",
                json!({"messages": [{"role": "system", "content": "x"}]}).to_string(),
            ),
            400,
            "invalid_request",
        ),
        (
            Request::post("/classify")
                .body(Body::from("{\"prompt\": \"x\"}"))
                .unwrap(),
            415,
            "unsupported_media_type",
        ),
        (get("/no/such/route"), 404, "not_found"),
        (get("/classify"), 405, "method_not_allowed"),
    ];
    for (request, status_code, code) in cases {
        let uri = request.uri().clone();
        let (status, _, body) = send(&app(), request).await;
        assert_error(status, &body, status_code, code);
        eprintln!("{uri} → {status} {code}");
    }
}

#[tokio::test]
async fn unknown_field_message_names_the_field() {
    let (_, _, body) = send(
        &app(),
        post(
            "/classify",
            json!({"prompt": "x", "temprature": 1}).to_string(),
        ),
    )
    .await;
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("temprature"),
        "{body}"
    );
}

#[tokio::test]
async fn a_one_megabyte_prompt_is_routed_from_its_window() {
    let paragraph = "Summarize the following meeting notes for the leadership team. The team discussed the roadmap. ";
    let prompt = paragraph.repeat(1_000_000 / paragraph.len() + 1);
    let (status, _, d) = send(
        &app(),
        post("/classify", json!({"prompt": prompt}).to_string()),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{d}");
    assert_eq!(d["truncated"], true);
    // The default routing window: its head and tail tokens.
    let window = semantic_router::embed::window::Window::DEFAULT;
    assert_eq!(d["tokens"], window.head + window.tail);
    assert!(d["prompt_tokens"].as_u64().unwrap() > 100_000);
}

#[tokio::test]
async fn an_oversized_body_is_refused_with_413() {
    let limits = Limits {
        max_body_bytes: 64 * 1024,
        ..Limits::default()
    };
    let prompt = "word ".repeat(20_000);
    let (status, _, body) = send(
        &app_with(limits),
        post("/classify", json!({"prompt": prompt}).to_string()),
    )
    .await;
    assert_error(status, &body, 413, "payload_too_large");
}

#[tokio::test]
async fn full_admission_answers_429_with_retry_after() {
    let limits = Limits {
        max_in_flight: 0,
        ..Limits::default()
    };
    let (status, headers, body) = send(
        &app_with(limits),
        post("/classify", json!({"prompt": "hello"}).to_string()),
    )
    .await;
    assert_error(status, &body, 429, "overloaded");
    assert_eq!(headers[header::RETRY_AFTER], "1");
}

/// What `send` answers.
type Answer = (StatusCode, axum::http::HeaderMap, Value);

/// A service with a queueing budget of 0 ms, so a request is admitted only while the texts
/// queued before it fit in the model's next forward pass (64 texts, 8 KiB, a long text
/// counted at its window); one request alone has been served, which gives the model time per
/// text its first measure (until then nothing is refused).
async fn zero_budget_app() -> axum::Router {
    let app = app_with(Limits {
        queue_budget_ms: 0,
        max_in_flight: 256,
        ..Limits::default()
    });
    let (status, _, d) = send(
        &app,
        post("/classify", json!({"prompt": "hello"}).to_string()),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{d}");
    app
}

/// A `/classify/batch` of `reports` prompts of about 3 KB each, and a lone `/classify` right
/// behind it. Relies on nothing on the handler path yielding before the batch's texts are
/// queued: `join!` polls the batch first, so its texts are queued when the lone request is
/// admitted (a layer that yielded would let the lone request in first).
async fn reports_then_one_more(app: &axum::Router, reports: usize) -> (Answer, Answer) {
    let requests: Vec<Value> = (0..reports)
        .map(|i| {
            json!({ "prompt": format!(
                "Summarise report {i}: {}",
                "revenue rose while costs fell. ".repeat(100)
            ) })
        })
        .collect();
    let batch = send(
        app,
        post(
            "/classify/batch",
            json!({ "requests": requests }).to_string(),
        ),
    );
    let lone = send(
        app,
        post("/classify", json!({"prompt": "one more"}).to_string()),
    );
    tokio::join!(batch, lone)
}

#[tokio::test]
async fn a_request_that_would_queue_past_the_budget_is_refused_though_slots_are_free() {
    let app = zero_budget_app().await;
    // 64 prompts of about 3 KB (each counts as its 64-token window, 512 bytes, so 16 fill a
    // forward pass) are admitted at once, the queue being empty; the lone request behind
    // them would wait for three passes, so it is refused though 255 slots are free.
    let ((batch_status, _, decisions), (status, headers, body)) =
        reports_then_one_more(&app, 64).await;
    assert_error(status, &body, 429, "overloaded");
    assert_eq!(headers[header::RETRY_AFTER], "1");
    // The batch itself was admitted and served whole.
    assert_eq!(batch_status, StatusCode::OK, "{decisions}");
    let decisions = decisions["decisions"].as_array().unwrap();
    assert_eq!(decisions.len(), 64);
    assert!(
        decisions.iter().all(|d| d["bucket"].is_string()),
        "{decisions:?}"
    );
}

#[tokio::test]
async fn long_prompts_count_at_the_models_window_so_a_dozen_share_one_pass() {
    let app = zero_budget_app().await;
    // 12 prompts of about 3 KB: 36 KB of text, but the model sees 64 tokens of each, so
    // they fit in the next forward pass (12 × 512 bytes of the 8 KiB), and the request behind
    // them waits for no pass beyond that one: admitted at a budget of 0. Counted at their
    // whole length (two a pass) they would fill 6 passes, and it would be refused (the cost
    // itself: `pass_cost`'s unit test).
    let ((batch_status, _, decisions), (status, _, body)) = reports_then_one_more(&app, 12).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(batch_status, StatusCode::OK, "{decisions}");
    assert_eq!(decisions["decisions"].as_array().unwrap().len(), 12);
}

#[tokio::test]
async fn a_starting_router_is_alive_but_not_ready() {
    let app = build_app(AppState::starting(Limits::default(), None));
    let (status, _, body) = send(&app, get("/health")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, _, body) = send(&app, get("/ready")).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_eq!(body["ready"], false);
    let (status, headers, body) =
        send(&app, post("/classify", json!({"prompt": "hi"}).to_string())).await;
    assert_error(status, &body, 503, "not_ready");
    assert!(headers.contains_key(header::RETRY_AFTER));
}

#[tokio::test]
async fn batch_classifies_in_order_and_names_bad_items() {
    let body = json!({"requests": [
        {"prompt": "Write a haiku about the first snow of winter."},
        {"prompt": "A bakery sells 24 muffins per tray and bakes 7 trays. It sells all but 15 muffins. How many muffins were sold?"},
        {"prompt": "good morning! how are you?"}
    ]});
    let (status, _, d) = send(&app(), post("/classify/batch", body.to_string())).await;
    assert_eq!(status, StatusCode::OK, "{d}");
    let buckets: Vec<&str> = d["decisions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["bucket"].as_str().unwrap())
        .collect();
    assert_eq!(buckets, ["creative_writing", "math_reasoning", "chit_chat"]);

    let bad = json!({"requests": [{"prompt": "ok"}, {"prompt": ""}]});
    let (status, _, body) = send(&app(), post("/classify/batch", bad.to_string())).await;
    assert_error(status, &body, 400, "invalid_request");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("requests[1]"),
        "{body}"
    );

    let limits = Limits {
        max_batch: 2,
        ..Limits::default()
    };
    let (status, _, body) = send(&app_with(limits), post("/classify/batch", body_of(3))).await;
    assert_error(status, &body, 400, "invalid_request");
}

fn body_of(n: usize) -> String {
    json!({"requests": (0..n).map(|i| json!({"prompt": format!("question {i}")})).collect::<Vec<_>>()}).to_string()
}

#[tokio::test]
async fn embed_endpoint_returns_unit_vectors_and_token_counts() {
    let (status, _, d) = send(
        &app(),
        post("/embed", json!({"text": "hello world"}).to_string()),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{d}");
    let v: Vec<f64> = d["embedding"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap())
        .collect();
    assert_eq!(v.len(), 384);
    assert!((v.iter().map(|x| x * x).sum::<f64>() - 1.0).abs() < 1e-4);
    assert_eq!(d["tokens"], 4);
    let (status, _, d) = send(
        &app(),
        post("/embed", json!({"texts": ["a", "b c"]}).to_string()),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{d}");
    assert_eq!(d["embeddings"].as_array().unwrap().len(), 2);
    let (status, _, body) = send(&app(), post("/embed", json!({"text": ""}).to_string())).await;
    assert_error(status, &body, 400, "empty_prompt");
}

#[tokio::test]
async fn ready_and_info_report_versions_and_model() {
    let (status, _, d) = send(&app(), get("/ready")).await;
    assert_eq!(status, StatusCode::OK, "{d}");
    assert_eq!(d["ready"], true);
    assert_eq!(d["policy_version"], "2026-12-01.1");
    assert!(d["last_reload_error"].is_null());
    let (status, _, d) = send(&app(), get("/info")).await;
    assert_eq!(status, StatusCode::OK, "{d}");
    assert_eq!(d["model"]["id"], "sentence-transformers/all-MiniLM-L6-v2");
    assert_eq!(
        d["model"]["sha256"],
        "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db"
    );
    assert_eq!(d["index"]["dims"], 384);
    assert!(d["index"]["counts"]["code"].as_u64().unwrap() >= 30);
    assert_eq!(d["policy"]["default_bucket"], "open_qa");
}
