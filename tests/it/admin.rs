//! Issue 3 on the real app: admin token, archetype management with durable journal and
//! background rebuilds, reloads that keep the last good state, provider feedback and breakers.

use axum::http::StatusCode;
use semantic_router::serve::Limits;
use serde_json::{json, Value};

use crate::common;
use crate::common::http::{
    admin_app, app_for, as_admin, bearer, delete, get, post_empty, post_json,
    report_on_fresh_decision, send, wait_for_index,
};

#[tokio::test]
async fn admin_endpoints_need_the_token_and_are_off_without_one() {
    let off = app_for(common::core(), Limits::default());
    let (status, _, body) = send(&off, as_admin(get("/archetypes"))).await;
    assert_eq!(
        (status.as_u16(), body["error"]["code"].as_str()),
        (403, Some("admin_disabled"))
    );
    assert!(body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("ROUTER_ADMIN_TOKEN"));

    let app = admin_app(common::core(), Limits::default());
    let (status, _, body) = send(&app, post_empty("/admin/rebuild")).await;
    assert_eq!(
        (status.as_u16(), body["error"]["code"].as_str()),
        (401, Some("unauthorized"))
    );
    let (status, _, body) = send(&app, bearer("wrong", delete("/archetypes/code-001"))).await;
    assert_eq!(
        (status.as_u16(), body["error"]["code"].as_str()),
        (403, Some("forbidden"))
    );
    let (status, _, _) = send(&app, as_admin(get("/archetypes?limit=1"))).await;
    assert_eq!(status, StatusCode::OK);
    // /classify and /feedback stay open.
    let (status, _, _) = send(&app, post_json("/classify", &json!({"prompt": "hello!"}))).await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn added_archetypes_are_validated_durable_and_reach_the_live_index() {
    let data = tempfile::tempdir().unwrap();
    let app = admin_app(common::core_in(data.path()), Limits::default());
    let shipped = common::read_jsonl(&common::archetypes_dir().join("chit_chat.jsonl"));
    let shipped_text = shipped[0]["text"].as_str().unwrap();
    let shipped_id = shipped[0]["id"].as_str().unwrap();

    let (status, _, body) = send(
        &app,
        as_admin(post_json(
            "/archetypes",
            &json!({"examples": [{"text": "x", "bucket": "poetry"}]}),
        )),
    )
    .await;
    assert_eq!(
        (status.as_u16(), body["error"]["code"].as_str()),
        (422, Some("unknown_bucket")),
        "{body}"
    );
    let (status, _, body) = send(
        &app,
        as_admin(post_json(
            "/archetypes",
            &json!({"examples": [{"text": shipped_text, "bucket": "code"}]}),
        )),
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
    let (status, _, body) = send(
        &app,
        as_admin(post_json(
            "/archetypes",
            &json!({"examples": [{"text": shipped_text, "bucket": "chit_chat"}]}),
        )),
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    assert_eq!(body["accepted"][0]["created"], false);
    assert_eq!(body["accepted"][0]["id"], shipped_id);

    let text =
        "Reconcile the quarterly ledger export against the bank statement CSV and flag mismatches";
    let added = json!({"examples": [{"text": text, "bucket": "extraction", "id": "ops-ledger-1"}]});
    let (status, _, body) = send(&app, as_admin(post_json("/archetypes", &added))).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    let version = body["index_version"].as_str().unwrap().to_owned();
    assert_ne!(body["current_index_version"], version);
    assert!(
        data.path().join("archetypes.journal.jsonl").is_file(),
        "durable before the answer"
    );
    wait_for_index(&app, &version).await;
    let (_, _, d) = send(&app, post_json("/classify", &json!({"prompt": text}))).await;
    assert_eq!(d["index_version"], version);
    assert_eq!(d["neighbours"][0]["id"], "ops-ledger-1");
    assert!(d["neighbours"][0]["similarity"].as_f64().unwrap() > 0.999);

    let (status, _, page) = send(
        &app,
        as_admin(get("/archetypes?bucket=extraction&limit=500")),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert!(page["archetypes"]
        .as_array()
        .unwrap()
        .iter()
        .any(|a| a["id"] == "ops-ledger-1"));
    let (_, _, first) = send(&app, as_admin(get("/archetypes?bucket=code&limit=5"))).await;
    assert_eq!(first["archetypes"].as_array().unwrap().len(), 5);
    let after = first["next_after"].as_str().unwrap();
    let (_, _, second) = send(
        &app,
        as_admin(get(&format!(
            "/archetypes?bucket=code&limit=5&after={after}"
        ))),
    )
    .await;
    assert!(second["archetypes"][0]["id"].as_str().unwrap() > after);

    let (status, _, body) = send(&app, as_admin(delete("/archetypes/ops-ledger-1"))).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    wait_for_index(&app, body["index_version"].as_str().unwrap()).await;
    let (status, _, body) = send(&app, as_admin(delete("/archetypes/ops-ledger-1"))).await;
    assert_eq!(
        (status.as_u16(), body["error"]["code"].as_str()),
        (404, Some("not_found"))
    );
}

#[tokio::test]
async fn classify_keeps_answering_during_a_rebuild_and_versions_only_move_forward() {
    // 200 at once is far past what a 20 ms queueing budget admits: this test is about the
    // swap, so every request may wait.
    let limits = Limits {
        max_in_flight: 256,
        queue_budget_ms: 600_000,
        ..Limits::default()
    };
    let app = admin_app(common::core(), limits);
    let (_, _, ready) = send(&app, get("/ready")).await;
    let old = ready["index_version"].as_str().unwrap().to_owned();
    let examples: Vec<Value> = (0..40).map(|i| json!({"text": format!("Route ticket number {i} about a refund for a damaged parcel to the right team"), "bucket": "classification"})).collect();
    let (status, _, body) = send(
        &app,
        as_admin(post_json("/archetypes", &json!({"examples": examples}))),
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
                    post_json(
                        "/classify",
                        &json!({"prompt": format!("hi there, question {i}")}),
                    ),
                )
                .await
            })
        })
        .collect();
    for task in tasks {
        let (status, _, d) = task.await.unwrap();
        assert_eq!(status, StatusCode::OK, "{d}");
        let v = d["index_version"].as_str().unwrap();
        assert!(v == old || v == new, "{v}");
    }
    wait_for_index(&app, &new).await;
    let (_, _, d) = send(&app, post_json("/classify", &json!({"prompt": "one more"}))).await;
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
    let (status, _, body) = send(
        &app,
        as_admin(post_json("/admin/reload", &json!({"what": "policy"}))),
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
    let (_, _, ready) = send(&app, get("/ready")).await;
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
    let (status, _, body) = send(&app, as_admin(post_empty("/admin/reload"))).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (_, _, d) = send(
        &app,
        post_json("/classify", &json!({"prompt": "tell me a joke"})),
    )
    .await;
    assert_eq!(d["policy_version"], "2026-11-30.9");
}

#[tokio::test]
async fn feedback_opens_a_breaker_and_decisions_skip_the_open_target() {
    let app = admin_app(common::core(), Limits::default());
    let prompt = json!({"prompt": "Write a Rust function that parses an ISO 8601 date"});
    let (_, _, before) = send(&app, post_json("/classify", &prompt)).await;
    let primary = before["target"]["name"].as_str().unwrap().to_owned();

    let (status, _, body) = send(
        &app,
        post_json(
            "/feedback",
            &json!({"target": "nope", "outcome": "timeout"}),
        ),
    )
    .await;
    assert_eq!(
        (status.as_u16(), body["error"]["code"].as_str()),
        (422, Some("unknown_target"))
    );
    let (status, _, body) = send(
        &app,
        post_json(
            "/feedback",
            &json!({"target": primary, "outcome": "exploded"}),
        ),
    )
    .await;
    assert_eq!(
        (status.as_u16(), body["error"]["code"].as_str()),
        (400, Some("invalid_request")),
        "{body}"
    );
    let failure = json!({"outcome": "server_error", "latency_ms": 900});
    for _ in 0..10 {
        let Some((status, body)) =
            report_on_fresh_decision(&app, &prompt, &primary, failure.clone()).await
        else {
            break; // The breaker opened: decisions no longer name the primary.
        };
        assert_eq!(status, StatusCode::OK, "{body}");
    }
    let (_, _, health) = send(&app, get("/health/targets")).await;
    let breaker = health["targets"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["target"] == primary.as_str())
        .unwrap()
        .clone();
    assert_eq!(breaker["state"], "open", "{health}");

    let (_, _, after) = send(&app, post_json("/classify", &prompt)).await;
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
    let (status, _, body) = send(
        &app,
        as_admin(post_json("/admin/fit", &json!({"target_precision": 0.9}))),
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
    let (status, _, _) = send(
        &app,
        as_admin(post_json("/admin/fit", &json!({"target_precision": 1.5}))),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);

    // A clear request, and one between two buckets (summarize vs. extract from one passage).
    let (_, _, clear) = send(
        &app,
        post_json(
            "/classify",
            &json!({"prompt": "Write a Python function that reverses a linked list."}),
        ),
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
        "Sort these and explain the story.",
        "What about this one?",
    ] {
        let (_, _, d) = send(&app, post_json("/classify", &json!({"prompt": prompt}))).await;
        decisions.push((d, prompt.to_owned()));
    }
    let (status, _, queue) = send(&app, as_admin(get("/admin/uncertain?limit=50"))).await;
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
    let (status, _, _) = send(&app, get("/admin/uncertain")).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}
