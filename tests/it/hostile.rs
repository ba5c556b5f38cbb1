//! Hostile bodies on the real app (real model, shipped policy): broken encodings, deep
//! nesting, bodies and prompts far past any sane size, invisible and right-to-left text, huge
//! conversations, wrong JSON types. Each gets a documented answer (README's error table, codes
//! from src/serve/error.rs) and the router keeps serving. The parsers' own inputs are fuzzed
//! by `scripts/fuzz.sh`; these are the cases a fuzzer's small inputs never reach.

use axum::body::Body;
use axum::http::{header, Request, StatusCode};
use axum::Router;
use http_body_util::BodyExt;
use semantic_router::serve::{build_app, AppState, Limits};
use serde_json::{json, Value};
use tower::ServiceExt;

use crate::common;

fn app() -> Router {
    build_app(AppState::ready(common::core(), Limits::default()))
}

async fn send(app: &Router, uri: &str, body: impl Into<Body>) -> (StatusCode, Value) {
    let request = Request::post(uri)
        .header(header::CONTENT_TYPE, "application/json")
        .body(body.into())
        .unwrap();
    let response = app.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    let body = serde_json::from_slice(&bytes)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into()));
    (status, body)
}

#[track_caller]
fn assert_error(what: &str, (status, body): &(StatusCode, Value), expected: u16, code: &str) {
    assert_eq!(status.as_u16(), expected, "{what}: {body}");
    assert_eq!(body["error"]["code"], code, "{what}: {body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()),
        "{what}: {body}"
    );
}

#[track_caller]
fn assert_routed(what: &str, (status, body): &(StatusCode, Value)) {
    assert_eq!(*status, StatusCode::OK, "{what}: {body}");
    assert!(body["bucket"].is_string(), "{what}: {body}");
}

/// After every hostile case the same app still routes an ordinary prompt.
async fn still_serving(app: &Router) {
    let ok = send(
        app,
        "/classify",
        json!({"prompt": "Write a Rust function that reverses a string."}).to_string(),
    )
    .await;
    assert_routed("an ordinary prompt afterwards", &ok);
}

#[tokio::test]
async fn invalid_utf8_and_lone_surrogates_are_invalid_json() {
    let app = app();
    let cases: [(&str, Vec<u8>); 5] = [
        (
            "invalid UTF-8 in the prompt",
            b"{\"prompt\": \"caf\xe9 \xff\xfe\"}".to_vec(),
        ),
        (
            "invalid UTF-8 in a key",
            b"{\"pr\xc3\x28ompt\": \"x\"}".to_vec(),
        ),
        (
            "a truncated UTF-8 sequence",
            b"{\"prompt\": \"\xe2\x82\"}".to_vec(),
        ),
        (
            "UTF-16 with a BOM",
            b"\xff\xfe{\x00\"\x00p\x00\"\x00".to_vec(),
        ),
        (
            "a lone surrogate escape",
            br#"{"prompt": "\ud800 hi"}"#.to_vec(),
        ),
    ];
    for (what, body) in cases {
        assert_error(
            what,
            &send(&app, "/classify", body).await,
            400,
            "invalid_json",
        );
    }
    let batch = b"{\"requests\": [{\"prompt\": \"\xc0\xaf\"}]}".to_vec();
    assert_error(
        "invalid UTF-8 in a batch",
        &send(&app, "/classify/batch", batch).await,
        400,
        "invalid_json",
    );
    still_serving(&app).await;
}

#[tokio::test]
async fn deeply_nested_json_is_refused_without_overflowing_the_stack() {
    let app = app();
    let depth = 100_000;
    let nested = format!("{}{}", "[".repeat(depth), "]".repeat(depth));
    // Inside a free-form field: serde_json's recursion limit (128) answers.
    let in_metadata = format!(r#"{{"prompt": "hi", "metadata": {{"a": {nested}}}}}"#);
    assert_error(
        "nested metadata",
        &send(&app, "/classify", in_metadata).await,
        400,
        "invalid_json",
    );
    let objects = format!(
        r#"{{"prompt": "hi", "metadata": {}1{}}}"#,
        r#"{"a":"#.repeat(depth),
        "}".repeat(depth)
    );
    assert_error(
        "nested objects",
        &send(&app, "/classify", objects).await,
        400,
        "invalid_json",
    );
    // As the body itself: an array is not a request object.
    assert_error(
        "a nested array body",
        &send(&app, "/classify", nested.clone()).await,
        400,
        "invalid_request",
    );
    let in_content = format!(r#"{{"messages": [{{"role": "user", "content": {nested}}}]}}"#);
    let got = send(&app, "/classify", in_content).await;
    assert!(
        ["invalid_json", "invalid_request"]
            .contains(&got.1["error"]["code"].as_str().unwrap_or("")),
        "nested content: {got:?}"
    );
    assert_eq!(got.0, StatusCode::BAD_REQUEST, "{:?}", got.1);
    still_serving(&app).await;
}

#[tokio::test]
async fn a_ten_megabyte_body_is_payload_too_large() {
    let app = app();
    let prompt = "x".repeat(10 * 1024 * 1024);
    let body = json!({"prompt": prompt}).to_string();
    assert_error(
        "10 MB prompt",
        &send(&app, "/classify", body).await,
        413,
        "payload_too_large",
    );
    // Not even valid JSON: the size is refused before the syntax is looked at.
    let junk = vec![b'['; 10 * 1024 * 1024];
    assert_error(
        "10 MB of junk",
        &send(&app, "/classify/batch", junk).await,
        413,
        "payload_too_large",
    );
    still_serving(&app).await;
}

#[tokio::test]
async fn a_million_character_prompt_is_answered_without_panicking() {
    let app = app();
    // Multi-byte characters (3 and 4 bytes) everywhere: the head/tail windows must cut on
    // character boundaries, never inside one. 1,000,000 characters, 3.5 MB, under the 4 MiB
    // body limit.
    let prompt = format!("{}{}", "漢".repeat(500_000), "😀".repeat(500_000));
    assert_eq!(prompt.chars().count(), 1_000_000);
    let got = send(&app, "/classify", json!({"prompt": prompt}).to_string()).await;
    // About one token per character: more than any target's context window, which the
    // decision names (README: "a request no target can serve gets 422 no_eligible_target").
    assert_error(
        "a million CJK and emoji characters",
        &got,
        422,
        "no_eligible_target",
    );
    assert!(
        got.1["error"]["message"]
            .as_str()
            .unwrap()
            .contains("context window"),
        "{}",
        got.1
    );
    let words = "summarize the quarterly report ".repeat(1_000_000 / 31 + 1);
    let got = send(
        &app,
        "/classify",
        json!({"prompt": &words[..1_000_000]}).to_string(),
    )
    .await;
    // Routed from its head and tail windows.
    assert_routed("a million ASCII characters", &got);
    assert_eq!(got.1["truncated"], true, "{}", got.1);
    // A million invisible characters are still nothing to route.
    let zero_width = "\u{200B}".repeat(1_000_000);
    assert_error(
        "a million zero-width spaces",
        &send(&app, "/classify", json!({"prompt": zero_width}).to_string()).await,
        400,
        "empty_prompt",
    );
    let deletes = "\u{7F}".repeat(1_000_000);
    assert_error(
        "a million DEL characters",
        &send(&app, "/classify", json!({"prompt": deletes}).to_string()).await,
        400,
        "empty_prompt",
    );
    still_serving(&app).await;
}

#[tokio::test]
async fn control_zero_width_and_right_to_left_text() {
    let app = app();
    let invisible = [
        ("control characters", "\u{0}\u{1}\u{7}\u{1B}\u{7F}\u{85}"),
        ("zero-width characters", "\u{200B}\u{200C}\u{200D}\u{2060}\u{FEFF}"),
        ("bidi controls only", "\u{200E}\u{200F}\u{202A}\u{202B}\u{202D}\u{202E}\u{202C}\u{2066}\u{2067}\u{2068}\u{2069}"),
        ("mixed invisible", " \u{AD}\t\u{FE0F}\u{E0041}\u{3164}\n"),
    ];
    for (what, prompt) in invisible {
        assert_error(
            what,
            &send(&app, "/classify", json!({"prompt": prompt}).to_string()).await,
            400,
            "empty_prompt",
        );
        let messages =
            json!({"messages": [{"role": "user", "content": [{"type": "text", "text": prompt}]}]});
        assert_error(
            what,
            &send(&app, "/classify", messages.to_string()).await,
            400,
            "empty_prompt",
        );
        let batch = json!({"requests": [{"prompt": "hello there"}, {"prompt": prompt}]});
        let got = send(&app, "/classify/batch", batch.to_string()).await;
        assert_error(what, &got, 400, "invalid_request");
        assert!(
            got.1["error"]["message"]
                .as_str()
                .unwrap()
                .contains("requests[1]"),
            "{}",
            got.1
        );
    }
    let visible = [
        (
            "an RTL override around Latin text",
            "\u{202E}Write a Python function that sorts a list\u{202C}",
        ),
        ("Arabic", "اكتب قصيدة قصيرة عن البحر"),
        (
            "Hebrew with marks",
            "\u{200F}כתוב פונקציה שממיינת רשימה\u{200F}",
        ),
        (
            "NUL and bell inside text",
            "hello\u{0}there\u{7} how are you?",
        ),
        (
            "zero-width joiners in emoji",
            "\u{1F468}\u{200D}\u{1F469}\u{200D}\u{1F467} family trip ideas",
        ),
        (
            "combining marks",
            "Z\u{0351}\u{036B}\u{0343}a\u{0360}\u{0334}l\u{0310}g\u{0352}o",
        ),
    ];
    for (what, prompt) in visible {
        assert_routed(
            what,
            &send(&app, "/classify", json!({"prompt": prompt}).to_string()).await,
        );
    }
    still_serving(&app).await;
}

#[tokio::test]
async fn a_hundred_thousand_messages() {
    let app = app();
    let turns: Vec<Value> = (0..100_000)
        .map(|i| {
            if i % 2 == 0 {
                json!({"role": "user", "content": "hi"})
            } else {
                json!({"role": "assistant", "content": "ok"})
            }
        })
        .chain([
            json!({"role": "user", "content": "Write a SQL query that counts orders per day."}),
        ])
        .collect();
    let body = json!({"messages": turns}).to_string();
    assert!(body.len() < Limits::default().max_body_bytes);
    let got = send(&app, "/classify", body).await;
    // Routed from the last user turn; the other turns' text is counted in prompt_tokens.
    assert_routed("100,000 messages", &got);
    assert!(
        got.1["prompt_tokens"].as_u64().unwrap() > 10_000,
        "{}",
        got.1
    );
    let no_user: Vec<Value> = (0..100_000)
        .map(|_| json!({"role": "system", "content": "x"}))
        .collect();
    assert_error(
        "100,000 messages, none from the user",
        &send(&app, "/classify", json!({"messages": no_user}).to_string()).await,
        400,
        "invalid_request",
    );
    let requests: Vec<Value> = (0..100_000).map(|_| json!({"prompt": "x"})).collect();
    assert_error(
        "a batch of 100,000",
        &send(
            &app,
            "/classify/batch",
            json!({"requests": requests}).to_string(),
        )
        .await,
        400,
        "invalid_request",
    );
    still_serving(&app).await;
}

#[tokio::test]
async fn numbers_and_other_wrong_types_are_invalid_requests() {
    let app = app();
    let wrong = [
        json!({"prompt": 42}),
        json!({"prompt": 4.2e300}),
        json!({"prompt": true}),
        json!({"prompt": ["x"]}),
        json!({"prompt": {"text": "x"}}),
        json!({"prompt": "x", "tenant": 7}),
        json!({"prompt": "x", "tier": 1}),
        json!({"prompt": "x", "priority": 3}),
        json!({"prompt": "x", "priority": "urgent"}),
        json!({"prompt": "x", "capabilities": [1, 2]}),
        json!({"prompt": "x", "capabilities": "vision"}),
        json!({"prompt": "x", "metadata": [1]}),
        json!({"prompt": "x", "request_id": 9}),
        json!({"messages": 5}),
        json!({"messages": [1, 2]}),
        json!({"messages": [{"role": 1, "content": "x"}]}),
        json!({"messages": [{"role": "user", "content": 5}]}),
        json!({"messages": [{"role": "user", "content": [{"type": 1, "text": "x"}]}]}),
        json!({"messages": [{"role": "user", "content": [{"type": "text", "text": 5}]}]}),
        json!(42),
        json!("prompt"),
        json!(null),
    ];
    for body in wrong {
        let got = send(&app, "/classify", body.to_string()).await;
        assert_error(&body.to_string(), &got, 400, "invalid_request");
    }
    for body in [
        json!({"requests": 5}),
        json!({"requests": [7]}),
        json!({"requests": [{"prompt": 1}]}),
    ] {
        let got = send(&app, "/classify/batch", body.to_string()).await;
        assert_error(&body.to_string(), &got, 400, "invalid_request");
    }
    assert_error(
        "a duplicate field",
        &send(&app, "/classify", r#"{"prompt": "a", "prompt": "b"}"#).await,
        400,
        "invalid_request",
    );
    // Out of range for any number type: the JSON reader refuses it as malformed.
    assert_error(
        "1e400 in metadata",
        &send(
            &app,
            "/classify",
            r#"{"prompt": "a", "metadata": {"n": 1e400}}"#,
        )
        .await,
        400,
        "invalid_json",
    );
    // Big but representable numbers in free-form metadata are fine.
    let big = r#"{"prompt": "hello, how are you?", "metadata": {"n": 18446744073709551616, "m": -1e300}}"#;
    assert_routed(
        "big numbers in metadata",
        &send(&app, "/classify", big).await,
    );
    still_serving(&app).await;
}
