//! Authenticated callers (issue 13 point 5): client tokens on the routing endpoints, signed
//! decisions so `/feedback` only takes reports about decisions the router issued for the
//! target it names, and a per-caller rate limit on `/feedback`. The goal: forged reports can
//! no longer open a breaker.

use axum::http::StatusCode;
use semantic_router::serve::callers::{ClientTokens, RateLimiter};
use semantic_router::serve::feedback_sig::DecisionSigner;
use semantic_router::serve::{build_app, AppState, Limits};
use serde_json::{json, Value};

use crate::common;
use crate::common::http::{bearer, get, post_json, report_on_fresh_decision, send};

const CLIENT: &str = "client-token-a";

fn app(state: impl FnOnce(AppState) -> AppState) -> axum::Router {
    build_app(state(AppState::ready(common::core(), Limits::default())))
}

fn code(body: &Value) -> Option<&str> {
    body["error"]["code"].as_str()
}

async fn breaker_state(app: &axum::Router, target: &str) -> String {
    let (_, _, health) = send(app, get("/health/targets")).await;
    health["targets"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["target"] == target)
        .map_or_else(
            || "closed".to_owned(),
            |t| t["state"].as_str().unwrap().to_owned(),
        )
}

#[tokio::test(flavor = "multi_thread")]
async fn forged_feedback_cannot_open_a_breaker_and_genuine_feedback_can() {
    // Refused reports take from the caller's bucket too; this test is not about the limit.
    let app = app(|s| s.with_feedback_limiter(RateLimiter::new(20.0, 1000)));
    let prompt = json!({"prompt": "Write a Rust function that parses an ISO 8601 date"});
    let (status, _, decision) = send(&app, post_json("/classify", &prompt)).await;
    assert_eq!(status, StatusCode::OK, "{decision}");
    let primary = decision["target"]["name"].as_str().unwrap().to_owned();
    let fallback = decision["fallbacks"][0]["name"]
        .as_str()
        .unwrap()
        .to_owned();
    let id = decision["decision_id"].as_str().unwrap().to_owned();
    let tokens = decision["feedback_tokens"].as_object().unwrap();
    assert!(
        tokens.contains_key(&primary) && tokens.contains_key(&fallback),
        "{decision}"
    );
    let token = tokens[&primary].as_str().unwrap().to_owned();

    // 30 forged reports, as in the issue: no token, a made-up one, a decision never issued.
    let forged = [
        json!({"target": primary, "outcome": "rate_limited"}),
        json!({"target": primary, "outcome": "rate_limited", "decision_id": id}),
        json!({"target": primary, "outcome": "rate_limited", "decision_id": id, "feedback_token": "00".repeat(16)}),
        json!({"target": primary, "outcome": "rate_limited", "decision_id": "01NEVERISSUED", "feedback_token": token}),
    ];
    for i in 0..30 {
        let (status, _, body) = send(&app, post_json("/feedback", &forged[i % forged.len()])).await;
        assert_eq!(
            (status.as_u16(), code(&body)),
            (403, Some("unverified_feedback")),
            "{body}"
        );
    }
    assert_eq!(breaker_state(&app, &primary).await, "closed");

    // The primary's token does not vouch for another target, even one the decision named.
    let other = json!({"target": fallback, "outcome": "server_error", "decision_id": id, "feedback_token": token});
    let (status, _, body) = send(&app, post_json("/feedback", &other)).await;
    assert_eq!(
        (status.as_u16(), code(&body)),
        (403, Some("unverified_feedback")),
        "{body}"
    );
    // The fallback's own token does.
    let fallback_token = tokens[&fallback].as_str().unwrap();
    let genuine = json!({"target": fallback, "outcome": "ok", "decision_id": id, "feedback_token": fallback_token});
    let (status, _, body) = send(&app, post_json("/feedback", &genuine)).await;
    assert_eq!(status, StatusCode::OK, "{body}");

    // One genuine report replayed thirty times counts once: one report per decision and target.
    let genuine = json!({"target": primary, "outcome": "rate_limited", "decision_id": id, "feedback_token": token});
    let (status, _, body) = send(&app, post_json("/feedback", &genuine)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    for _ in 0..30 {
        let (status, _, body) = send(&app, post_json("/feedback", &genuine)).await;
        assert_eq!(
            (status.as_u16(), code(&body)),
            (403, Some("unverified_feedback")),
            "{body}"
        );
        assert!(body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("already has a report"));
    }
    assert_eq!(breaker_state(&app, &primary).await, "closed");

    // Genuine failure reports about the primary, each on its own decision, open its breaker.
    for _ in 0..10 {
        let failure = json!({"outcome": "server_error"});
        let Some((status, body)) = report_on_fresh_decision(&app, &prompt, &primary, failure).await
        else {
            break; // Open: decisions no longer name the primary.
        };
        assert_eq!(status, StatusCode::OK, "{body}");
    }
    assert_eq!(breaker_state(&app, &primary).await, "open");
}

#[tokio::test(flavor = "multi_thread")]
async fn tokens_from_another_key_are_refused_and_a_shared_key_verifies_across_replicas() {
    let key = b"a key shared by every replica!";
    let replica_a = app(|s| s.with_signer(DecisionSigner::from_key(key)));
    let replica_b = app(|s| s.with_signer(DecisionSigner::from_key(key)));
    let stranger = app(|s| s); // its own random key
    let (_, _, decision) = send(
        &replica_a,
        post_json("/classify", &json!({"prompt": "hi there!"})),
    )
    .await;
    let target = decision["target"]["name"].as_str().unwrap();
    let report = json!({"target": target, "outcome": "ok", "decision_id": decision["decision_id"],
        "feedback_token": decision["feedback_tokens"][target]});
    let (status, _, body) = send(&replica_b, post_json("/feedback", &report)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, _, body) = send(&stranger, post_json("/feedback", &report)).await;
    assert_eq!(
        (status.as_u16(), code(&body)),
        (403, Some("unverified_feedback")),
        "{body}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn feedback_is_rate_limited_per_caller() {
    let app = app(|s| s.with_feedback_limiter(RateLimiter::new(0.01, 3)));
    let (_, _, decision) = send(
        &app,
        post_json("/classify", &json!({"prompt": "2 + 2 * 3 = ?"})),
    )
    .await;
    let target = decision["target"]["name"].as_str().unwrap();
    let prompt = json!({"prompt": "2 + 2 * 3 = ?"});
    let ok = json!({"outcome": "ok"});
    for _ in 0..3 {
        let (status, body) = report_on_fresh_decision(&app, &prompt, target, ok.clone())
            .await
            .unwrap();
        assert_eq!(status, StatusCode::OK, "{body}");
    }
    let report = json!({"target": target, "outcome": "ok", "decision_id": decision["decision_id"],
        "feedback_token": decision["feedback_tokens"][target]});
    let (status, headers, body) = send(&app, post_json("/feedback", &report)).await;
    assert_eq!(
        (status.as_u16(), code(&body)),
        (429, Some("feedback_rate_limited")),
        "{body}"
    );
    assert!(headers.contains_key("retry-after"));
}

#[tokio::test(flavor = "multi_thread")]
async fn client_tokens_guard_the_routing_endpoints_only() {
    let app = app(|s| s.with_client_tokens(Some(ClientTokens::from_tokens([CLIENT]))));
    let prompt = json!({"prompt": "hello!"});
    for (path, body) in [
        ("/classify", prompt.clone()),
        ("/classify/batch", json!({"requests": [prompt.clone()]})),
        ("/embed", json!({"text": "hello"})),
        ("/feedback", json!({"target": "mid-a", "outcome": "ok"})),
    ] {
        let (status, headers, answer) = send(&app, post_json(path, &body)).await;
        assert_eq!(
            (status.as_u16(), code(&answer)),
            (401, Some("unauthorized")),
            "{path}"
        );
        assert_eq!(headers["www-authenticate"], "Bearer");
        let (status, _, answer) = send(&app, bearer("not-a-client", post_json(path, &body))).await;
        assert_eq!(
            (status.as_u16(), code(&answer)),
            (403, Some("unknown_client_token")),
            "{path}"
        );
    }
    let (status, _, decision) = send(&app, bearer(CLIENT, post_json("/classify", &prompt))).await;
    assert_eq!(status, StatusCode::OK, "{decision}");
    let target = decision["target"]["name"].as_str().unwrap();
    let report = json!({"target": target, "outcome": "ok", "decision_id": decision["decision_id"],
        "feedback_token": decision["feedback_tokens"][target]});
    let (status, _, body) = send(&app, bearer(CLIENT, post_json("/feedback", &report))).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    // Operations endpoints stay open.
    for path in ["/health", "/ready", "/health/targets", "/openapi.json"] {
        let (status, _, _) = send(&app, get(path)).await;
        assert_eq!(status, StatusCode::OK, "{path}");
    }
}

/// With client tokens, a caller's cache entries are its own: `x-router-cache: hit` (and a
/// hit's missing model time) only ever tells a caller that it sent the text itself before.
#[tokio::test(flavor = "multi_thread")]
async fn a_cache_hit_never_reveals_another_callers_prompt() {
    const OTHER: &str = "client-token-b";
    let core = common::core_with_options(semantic_router::pipeline::PipelineOptions::default());
    let app = build_app(
        AppState::ready(core, Limits::default())
            .with_client_tokens(Some(ClientTokens::from_tokens([CLIENT, OTHER]))),
    );
    let prompt = json!({"prompt": "Summarise the attached quarterly report for the board"});
    let mut seen = Vec::new();
    for token in [CLIENT, CLIENT, OTHER, OTHER] {
        let (status, headers, decision) =
            send(&app, bearer(token, post_json("/classify", &prompt))).await;
        assert_eq!(status, StatusCode::OK, "{decision}");
        let embed_us = decision["timings_us"]["embed"].as_u64().unwrap();
        seen.push((
            headers["x-router-cache"].to_str().unwrap().to_owned(),
            embed_us > 0,
        ));
    }
    let expected = [
        ("miss", true),
        ("hit", false),
        ("miss", true),
        ("hit", false),
    ];
    assert_eq!(
        seen,
        expected.map(|(c, e)| (c.to_owned(), e)).to_vec(),
        "(x-router-cache, model ran) per request: A, A, B, B"
    );
}
