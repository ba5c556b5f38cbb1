//! Issue 5 on the real app: the `/classify` micro-batcher and the decision cache (hits, fresh
//! per-request fields, invalidation by policy reloads and index swaps).

use axum::http::StatusCode;
use axum::Router;
use semantic_router::pipeline::PipelineOptions;
use semantic_router::serve::Limits;
use serde_json::{json, Value};

use crate::common;
use crate::common::http::{admin_app, as_admin, post_empty, post_json, send, wait_for_index};

async fn classify(app: &Router, body: Value) -> (String, Value) {
    let (status, headers, d) = send(app, post_json("/classify", &body)).await;
    assert_eq!(status, StatusCode::OK, "{d}");
    let cache = headers["x-router-cache"].to_str().unwrap().to_owned();
    (cache, d)
}

fn neighbour_ids(d: &Value) -> Vec<String> {
    d["neighbours"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["id"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn a_repeated_prompt_hits_the_cache_with_fresh_per_request_fields() {
    let app = admin_app(common::core(), Limits::default());
    let prompt = "Summarize this meeting transcript into five bullet points for the team";
    let (first_cache, first) = classify(&app, json!({"prompt": prompt, "request_id": "a"})).await;
    assert_eq!(first_cache, "miss");
    // Whitespace the tokenizer ignores is the same prompt.
    let spaced = format!("  {}\n", prompt.replace(' ', " \t "));
    let (cache, again) = classify(&app, json!({"prompt": spaced, "request_id": "b"})).await;
    assert_eq!(cache, "hit");
    // Another tenant never reads this one's entries, even where tenants are not declared.
    let (cache, _) = classify(&app, json!({"prompt": prompt, "tenant": "acme"})).await;
    assert_eq!(cache, "miss");
    assert_eq!(again["bucket"], first["bucket"]);
    assert_eq!(again["confidence"], first["confidence"]);
    assert_eq!(neighbour_ids(&again), neighbour_ids(&first));
    assert_eq!(again["tokens"], first["tokens"]);
    assert_ne!(again["decision_id"], first["decision_id"]);
    assert_eq!(again["request_id"], "b");
    assert_eq!(again["timings_us"]["embed"], 0, "{again}");
    // Case is not whitespace: another key.
    let (cache, _) = classify(&app, json!({"prompt": prompt.to_uppercase()})).await;
    assert_eq!(cache, "miss");

    let off = app_without_cache();
    let (a, _) = classify(&off, json!({"prompt": prompt})).await;
    let (b, _) = classify(&off, json!({"prompt": prompt})).await;
    assert_eq!((a.as_str(), b.as_str()), ("miss", "miss"));
}

fn app_without_cache() -> Router {
    // The cache belongs to the pipeline: its size is set where the core is assembled.
    let options = PipelineOptions {
        cache_bytes: 0,
        ..PipelineOptions::default()
    };
    admin_app(
        common::core_with_options(options),
        Limits {
            cache_bytes: 0,
            // Concurrency here is about batching: requests past a 20 ms budget may wait.
            queue_budget_ms: 600_000,
            ..Limits::default()
        },
    )
}

#[tokio::test]
async fn a_policy_reload_or_an_index_swap_empties_the_cache() {
    let dir = tempfile::tempdir().unwrap();
    let policy = dir.path().join("policy.toml");
    let shipped = std::fs::read_to_string(common::policy_path()).unwrap();
    std::fs::write(&policy, &shipped).unwrap();
    let app = admin_app(
        common::core_with_policy(dir.path(), &policy),
        Limits::default(),
    );
    let prompt = "Pull every invoice number and due date out of this vendor email thread";
    classify(&app, json!({"prompt": prompt})).await;
    assert_eq!(classify(&app, json!({"prompt": prompt})).await.0, "hit");

    std::fs::write(
        &policy,
        shipped.replace(
            "policy_version = \"2026-12-01.1\"",
            "policy_version = \"2026-11-30.7\"",
        ),
    )
    .unwrap();
    let (status, _, body) = send(&app, as_admin(post_empty("/admin/reload"))).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (cache, d) = classify(&app, json!({"prompt": prompt})).await;
    assert_eq!(cache, "miss", "a new policy is a new snapshot");
    assert_eq!(d["policy_version"], "2026-11-30.7");
    assert_eq!(classify(&app, json!({"prompt": prompt})).await.0, "hit");

    // The prompt itself becomes an archetype: after the swap it is its own nearest neighbour.
    let examples =
        json!({"examples": [{"text": prompt, "bucket": "extraction", "id": "cache-test-1"}]});
    let (status, _, body) = send(&app, as_admin(post_json("/archetypes", &examples))).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    let version = body["index_version"].as_str().unwrap().to_owned();
    wait_for_index(&app, &version).await;
    let (cache, d) = classify(&app, json!({"prompt": prompt})).await;
    assert_eq!(cache, "miss", "a new index is a new snapshot");
    assert_eq!(d["index_version"], version.as_str());
    assert_eq!(d["neighbours"][0]["id"], "cache-test-1", "{d}");
}

#[tokio::test]
async fn concurrent_requests_are_batched_and_decide_like_single_ones() {
    let app = app_without_cache();
    let prompts: Vec<String> = (0..24)
        .map(|i| match i % 4 {
            0 => format!("What is {i} times {} minus seven?", i + 3),
            1 => format!("Write a short poem about autumn number {i}"),
            2 => format!("hi there, how is your day going {i}"),
            _ => format!(
                "Summarize the following report in two sentences: revenue rose {i} percent while costs fell, and the board approved a new plan for the coming year with more hiring in engineering and sales."
            ),
        })
        .collect();
    let mut singles = Vec::new();
    for p in &prompts {
        singles.push(classify(&app, json!({"prompt": p})).await.1);
    }
    let tasks: Vec<_> = prompts
        .iter()
        .map(|p| {
            let app = app.clone();
            let body = json!({"prompt": p});
            tokio::spawn(async move { classify(&app, body).await.1 })
        })
        .collect();
    for (task, single) in tasks.into_iter().zip(&singles) {
        let batched = task.await.unwrap();
        assert_eq!(batched["bucket"], single["bucket"]);
        assert_eq!(neighbour_ids(&batched), neighbour_ids(single));
        assert_eq!(batched["tokens"], single["tokens"]);
        let (a, b) = (
            batched["confidence"].as_f64().unwrap(),
            single["confidence"].as_f64().unwrap(),
        );
        assert!((a - b).abs() < 1e-3, "{a} vs {b}");
    }
}
