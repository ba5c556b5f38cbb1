//! The one set of HTTP helpers for tests that drive the real app through `oneshot` (no socket,
//! no port): building the app over a core, request builders, and sending a request to get its
//! status, headers and JSON body. The real-socket client of `binary.rs` is not here: it talks
//! to a separate process.

use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::{header, HeaderMap, Request, StatusCode};
use axum::Router;
use http_body_util::BodyExt;
use semantic_router::serve::auth::AdminToken;
use semantic_router::serve::{build_app, AppState, Core, Limits};
use serde_json::Value;
use tower::ServiceExt;

/// The admin token of `admin_app`.
pub const ADMIN_TOKEN: &str = "test-admin-token";

/// The app over `core` with `limits`; admin endpoints are off (no token is set).
pub fn app_for(core: Core, limits: Limits) -> Router {
    build_app(AppState::ready(core, limits))
}

/// The app over `core` with `limits`; admin endpoints take `ADMIN_TOKEN`.
pub fn admin_app(core: Core, limits: Limits) -> Router {
    build_app(AppState::ready(core, limits).with_admin_token(AdminToken::new(ADMIN_TOKEN)))
}

/// The app over a fresh core (shipped policy and archetypes) with `limits`.
pub fn app_with(limits: Limits) -> Router {
    app_for(super::core(), limits)
}

/// The app over a fresh core with the default limits.
pub fn app() -> Router {
    app_with(Limits::default())
}

/// Sends `request`; the body is JSON, `Null` when empty, or the text when not JSON.
pub async fn send(app: &Router, request: Request<Body>) -> (StatusCode, HeaderMap, Value) {
    let response = app.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    let body = if bytes.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into()))
    };
    (status, headers, body)
}

/// `GET uri`, no body.
pub fn get(uri: &str) -> Request<Body> {
    Request::get(uri).body(Body::empty()).unwrap()
}

/// `DELETE uri`, no body.
pub fn delete(uri: &str) -> Request<Body> {
    Request::delete(uri).body(Body::empty()).unwrap()
}

/// `POST uri` with `body` as it is (possibly not valid JSON), sent as JSON.
pub fn post(uri: &str, body: impl Into<Body>) -> Request<Body> {
    Request::post(uri)
        .header(header::CONTENT_TYPE, "application/json")
        .body(body.into())
        .unwrap()
}

/// `POST uri` with a JSON value.
pub fn post_json(uri: &str, body: &Value) -> Request<Body> {
    post(uri, body.to_string())
}

/// `POST uri` without a body (and so without a content type).
pub fn post_empty(uri: &str) -> Request<Body> {
    Request::post(uri).body(Body::empty()).unwrap()
}

/// `request` with `Authorization: Bearer {token}`.
pub fn bearer(token: &str, mut request: Request<Body>) -> Request<Body> {
    let value = format!("Bearer {token}").parse().unwrap();
    request.headers_mut().insert(header::AUTHORIZATION, value);
    request
}

/// `request` with the admin token of `admin_app`.
pub fn as_admin(request: Request<Body>) -> Request<Body> {
    bearer(ADMIN_TOKEN, request)
}

/// Polls `/ready` until the live index is `version` (a background rebuild went live).
pub async fn wait_for_index(app: &Router, version: &str) {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let (_, _, ready) = send(app, get("/ready")).await;
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

/// Reports `fields` (`outcome`, `latency_ms`, ...) about `target` for a fresh decision on
/// `prompt`, as a caller does after each call: one report per decision and target (a second
/// is a replay and refused). `None` when the new decision names no `target` (its breaker
/// opened).
pub async fn report_on_fresh_decision(
    app: &Router,
    prompt: &Value,
    target: &str,
    mut fields: Value,
) -> Option<(StatusCode, Value)> {
    let (status, _, decision) = send(app, post_json("/classify", prompt)).await;
    assert_eq!(status, StatusCode::OK, "{decision}");
    let token = decision["feedback_tokens"].get(target)?.clone();
    fields["target"] = target.into();
    fields["decision_id"] = decision["decision_id"].clone();
    fields["feedback_token"] = token;
    let (status, _, body) = send(app, post_json("/feedback", &fields)).await;
    Some((status, body))
}
