//! Issue 3 on the real app: admin token, archetype management with durable journal and
//! background rebuilds, reloads that keep the last good state, provider feedback and breakers.

use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::{header, Request, StatusCode};
use axum::Router;
use http_body_util::BodyExt;
use semantic_router::serve::auth::AdminToken;
use semantic_router::serve::{build_app, AppState, Core, Limits};
use serde_json::{json, Value};
use tower::ServiceExt;

use crate::common;

const TOKEN: &str = "test-admin-token";

fn admin_app(core: Core, limits: Limits) -> Router {
    build_app(AppState::ready(core, limits).with_admin_token(AdminToken::new(TOKEN)))
}

async fn send(
    app: &Router,
    method: &str,
    uri: &str,
    body: Option<Value>,
    token: Option<&str>,
) -> (StatusCode, Value) {
    let mut request = Request::builder().method(method).uri(uri);
    if let Some(token) = token {
        request = request.header(header::AUTHORIZATION, format!("Bearer {token}"));
    }
    let request = match body {
        Some(b) => request
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(b.to_string())),
        None => request.body(Body::empty()),
    }
    .unwrap();
    let response = app.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

async fn wait_for_index(app: &Router, version: &str) {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let (_, ready) = send(app, "GET", "/ready", None, None).await;
        if ready["index_version"] == version {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "index {version} never went live: {ready}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn admin_endpoints_need_the_token_and_are_off_without_one() {
    let off = build_app(AppState::ready(common::core(), Limits::default()));
    let (status, body) = send(&off, "GET", "/archetypes", None, Some(TOKEN)).await;
    assert_eq!(
        (status.as_u16(), body["error"]["code"].as_str()),
        (403, Some("admin_disabled"))
    );
    assert!(body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("ROUTER_ADMIN_TOKEN"));

    let app = admin_app(common::core(), Limits::default());
    let (status, body) = send(&app, "POST", "/admin/rebuild", None, None).await;
    assert_eq!(
        (status.as_u16(), body["error"]["code"].as_str()),
        (401, Some("unauthorized"))
    );
    let (status, body) = send(&app, "DELETE", "/archetypes/code-001", None, Some("wrong")).await;
    assert_eq!(
        (status.as_u16(), body["error"]["code"].as_str()),
        (403, Some("forbidden"))
    );
    let (status, _) = send(&app, "GET", "/archetypes?limit=1", None, Some(TOKEN)).await;
    assert_eq!(status, StatusCode::OK);
    // /classify and /feedback stay open.
    let (status, _) = send(
        &app,
        "POST",
        "/classify",
        Some(json!({"prompt": "hello!"})),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn added_archetypes_are_validated_durable_and_reach_the_live_index() {
    let data = tempfile::tempdir().unwrap();
    let app = admin_app(common::core_in(data.path()), Limits::default());
    let shipped = common::read_jsonl(&common::archetypes_dir().join("chit_chat.jsonl"));
    let shipped_text = shipped[0]["text"].as_str().unwrap();
    let shipped_id = shipped[0]["id"].as_str().unwrap();

    let (status, body) = send(
        &app,
        "POST",
        "/archetypes",
        Some(json!({"examples": [{"text": "x", "bucket": "poetry"}]})),
        Some(TOKEN),
    )
    .await;
    assert_eq!(
        (status.as_u16(), body["error"]["code"].as_str()),
        (422, Some("unknown_bucket")),
        "{body}"
    );
    let (status, body) = send(
        &app,
        "POST",
        "/archetypes",
        Some(json!({"examples": [{"text": shipped_text, "bucket": "code"}]})),
        Some(TOKEN),
    )
    .await;
    assert_eq!(
        (status.as_u16(), body["error"]["code"].as_str()),
        (409, Some("conflict")),
        "{body}"
    );
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains(shipped_id),
        "{body}"
    );
    let (status, body) = send(
        &app,
        "POST",
        "/archetypes",
        Some(json!({"examples": [{"text": shipped_text, "bucket": "chit_chat"}]})),
        Some(TOKEN),
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    assert_eq!(body["accepted"][0]["created"], false);
    assert_eq!(body["accepted"][0]["id"], shipped_id);

    let text =
        "Reconcile the quarterly ledger export against the bank statement CSV and flag mismatches";
    let (status, body) = send(
        &app,
        "POST",
        "/archetypes",
        Some(json!({"examples": [{"text": text, "bucket": "extraction", "id": "ops-ledger-1"}]})),
        Some(TOKEN),
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    let version = body["index_version"].as_str().unwrap().to_owned();
    assert_ne!(body["current_index_version"], version);
    assert!(
        data.path().join("archetypes.journal.jsonl").is_file(),
        "durable before the answer"
    );
    wait_for_index(&app, &version).await;
    let (_, d) = send(
        &app,
        "POST",
        "/classify",
        Some(json!({"prompt": text})),
        None,
    )
    .await;
    assert_eq!(d["index_version"], version);
    assert_eq!(d["neighbours"][0]["id"], "ops-ledger-1");
    assert!(d["neighbours"][0]["similarity"].as_f64().unwrap() > 0.999);

    let (status, page) = send(
        &app,
        "GET",
        "/archetypes?bucket=extraction&limit=500",
        None,
        Some(TOKEN),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert!(page["archetypes"]
        .as_array()
        .unwrap()
        .iter()
        .any(|a| a["id"] == "ops-ledger-1"));
    let (_, first) = send(
        &app,
        "GET",
        "/archetypes?bucket=code&limit=5",
        None,
        Some(TOKEN),
    )
    .await;
    assert_eq!(first["archetypes"].as_array().unwrap().len(), 5);
    let after = first["next_after"].as_str().unwrap();
    let (_, second) = send(
        &app,
        "GET",
        &format!("/archetypes?bucket=code&limit=5&after={after}"),
        None,
        Some(TOKEN),
    )
    .await;
    assert!(second["archetypes"][0]["id"].as_str().unwrap() > after);

    let (status, body) = send(
        &app,
        "DELETE",
        "/archetypes/ops-ledger-1",
        None,
        Some(TOKEN),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    wait_for_index(&app, body["index_version"].as_str().unwrap()).await;
    let (status, body) = send(
        &app,
        "DELETE",
        "/archetypes/ops-ledger-1",
        None,
        Some(TOKEN),
    )
    .await;
    assert_eq!(
        (status.as_u16(), body["error"]["code"].as_str()),
        (404, Some("not_found"))
    );
}

#[tokio::test]
async fn classify_keeps_answering_during_a_rebuild_and_versions_only_move_forward() {
    let limits = Limits {
        max_in_flight: 256,
        ..Limits::default()
    };
    let app = admin_app(common::core(), limits);
    let (_, ready) = send(&app, "GET", "/ready", None, None).await;
    let old = ready["index_version"].as_str().unwrap().to_owned();
    let examples: Vec<Value> = (0..40).map(|i| json!({"text": format!("Route ticket number {i} about a refund for a damaged parcel to the right team"), "bucket": "classification"})).collect();
    let (status, body) = send(
        &app,
        "POST",
        "/archetypes",
        Some(json!({"examples": examples})),
        Some(TOKEN),
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    let new = body["index_version"].as_str().unwrap().to_owned();
    let tasks: Vec<_> = (0..200)
        .map(|i| {
            let app = app.clone();
            tokio::spawn(async move {
                send(
                    &app,
                    "POST",
                    "/classify",
                    Some(json!({"prompt": format!("hi there, question {i}")})),
                    None,
                )
                .await
            })
        })
        .collect();
    for task in tasks {
        let (status, d) = task.await.unwrap();
        assert_eq!(status, StatusCode::OK, "{d}");
        let v = d["index_version"].as_str().unwrap();
        assert!(v == old || v == new, "{v}");
    }
    wait_for_index(&app, &new).await;
    let (_, d) = send(
        &app,
        "POST",
        "/classify",
        Some(json!({"prompt": "one more"})),
        None,
    )
    .await;
    assert_eq!(
        d["index_version"], new,
        "after the swap, only the new version is served"
    );
}

#[tokio::test]
async fn admin_reload_refuses_a_broken_policy_and_applies_a_good_one() {
    let dir = tempfile::tempdir().unwrap();
    let policy = dir.path().join("policy.toml");
    let shipped = std::fs::read_to_string(common::policy_path()).unwrap();
    std::fs::write(&policy, &shipped).unwrap();
    let core = common::core_with_policy(dir.path(), &policy);
    let app = admin_app(core, Limits::default());

    std::fs::write(&policy, shipped.replace("[matching]", "[matchng]")).unwrap();
    let (status, body) = send(
        &app,
        "POST",
        "/admin/reload",
        Some(json!({"what": "policy"})),
        Some(TOKEN),
    )
    .await;
    assert_eq!(
        (status.as_u16(), body["error"]["code"].as_str()),
        (422, Some("reload_failed")),
        "{body}"
    );
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("matchng"),
        "{body}"
    );
    let (_, ready) = send(&app, "GET", "/ready", None, None).await;
    assert_eq!(ready["policy_version"], "2026-12-01.1");
    assert!(
        ready["last_reload_error"]
            .as_str()
            .unwrap()
            .contains("matchng"),
        "{ready}"
    );

    std::fs::write(
        &policy,
        shipped.replace(
            "policy_version = \"2026-12-01.1\"",
            "policy_version = \"2026-11-30.9\"",
        ),
    )
    .unwrap();
    let (status, body) = send(&app, "POST", "/admin/reload", None, Some(TOKEN)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (_, d) = send(
        &app,
        "POST",
        "/classify",
        Some(json!({"prompt": "tell me a joke"})),
        None,
    )
    .await;
    assert_eq!(d["policy_version"], "2026-11-30.9");
}

#[tokio::test]
async fn feedback_opens_a_breaker_and_decisions_skip_the_open_target() {
    let app = admin_app(common::core(), Limits::default());
    let prompt = json!({"prompt": "Write a Rust function that parses an ISO 8601 date"});
    let (_, before) = send(&app, "POST", "/classify", Some(prompt.clone()), None).await;
    let primary = before["target"]["name"].as_str().unwrap().to_owned();

    let (status, body) = send(
        &app,
        "POST",
        "/feedback",
        Some(json!({"target": "nope", "outcome": "timeout"})),
        None,
    )
    .await;
    assert_eq!(
        (status.as_u16(), body["error"]["code"].as_str()),
        (422, Some("unknown_target"))
    );
    let (status, body) = send(
        &app,
        "POST",
        "/feedback",
        Some(json!({"target": primary, "outcome": "exploded"})),
        None,
    )
    .await;
    assert_eq!(
        (status.as_u16(), body["error"]["code"].as_str()),
        (400, Some("invalid_request")),
        "{body}"
    );
    for _ in 0..10 {
        let (status, _) = send(
            &app,
            "POST",
            "/feedback",
            Some(json!({"target": primary, "outcome": "server_error", "latency_ms": 900})),
            None,
        )
        .await;
        assert_eq!(status, StatusCode::OK);
    }
    let (_, health) = send(&app, "GET", "/health/targets", None, None).await;
    let breaker = health["targets"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["target"] == primary.as_str())
        .unwrap()
        .clone();
    assert_eq!(breaker["state"], "open", "{health}");

    let (_, after) = send(&app, "POST", "/classify", Some(prompt), None).await;
    assert_ne!(after["target"]["name"], primary.as_str(), "{after}");
    let reasons: Vec<&str> = after["reasons"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r.as_str().unwrap())
        .collect();
    assert!(
        reasons
            .iter()
            .any(|r| r.contains("health") && r.contains(&primary)),
        "{reasons:?}"
    );
}

#[tokio::test]
async fn fit_refits_the_live_scorers_and_uncertain_decisions_are_kept_for_labeling() {
    let app = admin_app(common::core(), Limits::default());
    let (status, body) = send(
        &app,
        "POST",
        "/admin/fit",
        Some(json!({"target_precision": 0.9})),
        Some(TOKEN),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["scorer"], "combined");
    let fit = &body["fit"];
    assert_eq!(fit["target_precision"], 0.9);
    assert!(fit["rows_calibrated"].as_u64().unwrap() > 100, "{fit}");
    let combined = fit["scorers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["scorer"] == "combined")
        .unwrap();
    assert!(combined["accuracy"].as_f64().unwrap() > 0.7, "{combined}");
    let (status, _) = send(
        &app,
        "POST",
        "/admin/fit",
        Some(json!({"target_precision": 1.5})),
        Some(TOKEN),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);

    // A clear request, and one between two buckets (summarize vs. extract from one passage).
    let (_, clear) = send(
        &app,
        "POST",
        "/classify",
        Some(json!({"prompt": "Write a Python function that reverses a linked list."})),
        None,
    )
    .await;
    assert_eq!(clear["bucket"], "code");
    let margin = clear["margin"].as_f64().unwrap();
    let scores = clear["scores"].as_array().unwrap();
    assert!(margin > 0.0 && margin <= scores[0]["score"].as_f64().unwrap());
    // Prompts between buckets: some of them have a small margin or abstain.
    let mut decisions = vec![(clear, "linked list".to_owned())];
    for prompt in [
        "hmm, what about the other thing from before?",
        "Can you help me with this?",
        "List some thoughts on the paragraph below and tell me what it is about.",
        "Is this a question about a story or about facts?",
        "Explain, then sum up, then classify: the sky is blue.",
    ] {
        let (_, d) = send(
            &app,
            "POST",
            "/classify",
            Some(json!({"prompt": prompt})),
            None,
        )
        .await;
        decisions.push((d, prompt.to_owned()));
    }
    let (status, queue) = send(&app, "GET", "/admin/uncertain?limit=50", None, Some(TOKEN)).await;
    assert_eq!(status, StatusCode::OK, "{queue}");
    let items = queue["items"].as_array().unwrap();
    let threshold = queue["uncertain_margin"].as_f64().unwrap();
    assert!(!items.is_empty(), "some prompt is uncertain: {decisions:?}");
    for (decision, text) in &decisions {
        let uncertain =
            decision["abstained"] == true || decision["margin"].as_f64().unwrap() < threshold;
        let item = items
            .iter()
            .find(|i| i["decision_id"] == decision["decision_id"]);
        assert_eq!(item.is_some(), uncertain, "{decision}");
        if let Some(item) = item {
            assert!(item["text"].as_str().unwrap().contains(text.as_str()));
        }
    }
    let (status, _) = send(&app, "GET", "/admin/uncertain", None, None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}
