//! Tenant namespaces over the real app and model: a tenant's example is its own neighbour and
//! never another's; tokens are scoped to their tenant; a tenant's own policy routes to its own
//! targets; cache hits never cross tenants.

use std::time::{Duration, Instant};

use axum::Router;
use semantic_router::serve::Limits;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use crate::common;
use crate::common::http::{admin_app, as_admin, bearer, get, post_json, send};

const ACME: &str = "acme-s3cret";
const BETA: &str = "beta-s3cret";

fn digest(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// acme and beta share the shipped examples; gamma routes code to a target of its own.
fn tenant_app() -> (tempfile::TempDir, Router) {
    let dir = tempfile::tempdir().unwrap();
    let shipped = std::fs::read_to_string(common::policy_path()).unwrap();
    let own = shipped
        .replace(
            "targets = [\"mid-a\", \"frontier-a\", \"mid-b\"]",
            "targets = [\"gamma-coder\"]",
        )
        .replace(
            "[targets.nano-a]",
            "[targets.gamma-coder]\nprovider = \"gamma\"\nmodel = \"gamma-coder-2026-01-01\"\ntier = \"mid\"\ncapabilities = [\"tools\"]\ncontext_window = 128000\nprice_in_per_mtok = 1.0\nprice_out_per_mtok = 2.0\n\n[targets.nano-a]",
        );
    assert_ne!(
        own, shipped,
        "the shipped policy's code bucket moved; update this test"
    );
    std::fs::write(dir.path().join("gamma.toml"), own).unwrap();
    let file = dir.path().join("tenants.toml");
    std::fs::write(
        &file,
        format!(
            "[tenants.acme]\ntoken_sha256 = \"{}\"\n[tenants.beta]\ntoken_sha256 = \"{}\"\n[tenants.gamma]\npolicy = \"gamma.toml\"\n",
            digest(ACME),
            digest(BETA)
        ),
    )
    .unwrap();
    let core = common::core_with_tenants(&dir.path().join("data"), &file);
    (dir, admin_app(core, Limits::default()))
}

async fn classify(app: &Router, body: Value) -> (u16, String, Value) {
    let (status, headers, d) = send(app, post_json("/classify", &body)).await;
    let cache = headers
        .get("x-router-cache")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    (status.as_u16(), cache, d)
}

fn neighbour_ids(decision: &Value) -> Vec<&str> {
    decision["neighbours"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["id"].as_str().unwrap())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenants_examples_are_its_own_and_its_token_is_scoped() {
    let (_dir, app) = tenant_app();
    let text = "Pull the sprocket serial numbers out of this quarrelsome warehouse memo";
    let add = json!({"examples": [{"text": text, "bucket": "extraction", "id": "acme-1"}]});
    let (status, _, ack) = send(&app, bearer(ACME, post_json("/archetypes", &add))).await;
    assert_eq!(status, 202, "{ack}");
    let version = ack["index_version"].as_str().unwrap().to_owned();

    // acme's index catches up in the background; then its example is acme's neighbour.
    let started = Instant::now();
    let decision = loop {
        let (status, _, d) = classify(&app, json!({"prompt": text, "tenant": "acme"})).await;
        assert_eq!(status, 200, "{d}");
        if d["index_version"] == version.as_str() {
            break d;
        }
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "acme never served {version}: {d}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(neighbour_ids(&decision)[0], "acme-1", "{decision}");
    for other in [
        json!({"prompt": text, "tenant": "beta"}),
        json!({"prompt": text}),
    ] {
        let (status, _, d) = classify(&app, other).await;
        assert_eq!(status, 200, "{d}");
        assert!(!neighbour_ids(&d).contains(&"acme-1"), "{d}");
        assert_ne!(d["index_version"], version.as_str());
    }

    // Tokens: beta cannot write or read acme's namespace, nor reload; acme lists its own.
    let for_acme =
        json!({"examples": [{"text": "beta was here", "bucket": "chit_chat", "tenant": "acme"}]});
    let (status, _, e) = send(&app, bearer(BETA, post_json("/archetypes", &for_acme))).await;
    assert_eq!(
        (status.as_u16(), e["error"]["code"].as_str()),
        (403, Some("forbidden")),
        "{e}"
    );
    let (status, _, _) = send(&app, bearer(BETA, get("/archetypes?tenant=acme"))).await;
    assert_eq!(status, 403);
    let (status, _, _) = send(&app, bearer(BETA, post_json("/admin/reload", &json!({})))).await;
    assert_eq!(status, 403);
    let (status, _, page) = send(&app, bearer(ACME, get("/archetypes"))).await;
    assert_eq!(status, 200, "{page}");
    assert_eq!(page["total"], 1, "{page}");
    assert_eq!(page["archetypes"][0]["id"], "acme-1");
    let (status, _, page) = send(&app, as_admin(get("/archetypes?tenant=acme"))).await;
    assert_eq!(
        (status.as_u16(), page["total"].as_u64()),
        (200, Some(1)),
        "{page}"
    );
    let (status, _, e) = send(&app, as_admin(get("/archetypes?tenant=nobody"))).await;
    assert_eq!(
        (status.as_u16(), e["error"]["code"].as_str()),
        (422, Some("unknown_tenant")),
        "{e}"
    );

    // An unknown tenant in a request is an error, not silently the shared namespace.
    let (status, _, e) = classify(&app, json!({"prompt": text, "tenant": "nobody"})).await;
    assert_eq!(
        (status, e["error"]["code"].as_str()),
        (422, Some("unknown_tenant")),
        "{e}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenants_policy_routes_to_its_targets_and_cache_hits_stay_within_a_tenant() {
    let (_dir, app) = tenant_app();
    let prompt = "Write a Rust function that parses an ISO 8601 date and returns the weekday";
    let (_, _, shared) = classify(&app, json!({"prompt": prompt})).await;
    let (_, _, gamma) = classify(&app, json!({"prompt": prompt, "tenant": "gamma"})).await;
    assert_eq!(shared["bucket"], "code", "{shared}");
    assert_eq!(gamma["bucket"], "code", "{gamma}");
    assert_eq!(gamma["target"]["name"], "gamma-coder", "{gamma}");
    assert_ne!(shared["target"]["name"], "gamma-coder", "{shared}");
    // /info shows each namespace's versions: what gamma's decisions carry.
    let (_, _, info) = send(&app, get("/info")).await;
    let tenants = &info["tenants"];
    assert_eq!(
        tenants["gamma"]["index_version"], gamma["index_version"],
        "{info}"
    );
    assert_eq!(
        tenants["gamma"]["policy_version"], gamma["policy_version"],
        "{info}"
    );
    assert_eq!(tenants["gamma"]["replace"], false, "{info}");
    assert!(
        tenants["acme"]["index_size"].as_u64().unwrap() > 0,
        "{info}"
    );
    // Callers report outcomes of gamma's own target as of any other: its breaker learns them.
    let report = json!({
        "target": "gamma-coder",
        "outcome": "server_error",
        "decision_id": gamma["decision_id"],
        "feedback_token": gamma["feedback_tokens"]["gamma-coder"],
    });
    let (status, _, answer) = send(&app, post_json("/feedback", &report)).await;
    assert_eq!(status.as_u16(), 200, "{answer}");
    assert_eq!(answer["target"], "gamma-coder", "{answer}");
    let unknown = json!({"target": "no-such-coder", "outcome": "ok"});
    let (status, _, answer) = send(&app, post_json("/feedback", &unknown)).await;
    assert_eq!(status.as_u16(), 422, "{answer}");
    let message = answer["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("gamma-coder") && message.contains("nano-a"),
        "{message}"
    );

    // acme asks twice: the second is a hit. beta asking the same is a miss: the cache does
    // not tell beta that someone else sent it.
    let text = "Give me three names for a bakery that only sells rye bread";
    let (_, first, _) = classify(&app, json!({"prompt": text, "tenant": "acme"})).await;
    let (_, second, _) = classify(&app, json!({"prompt": text, "tenant": "acme"})).await;
    let (_, other, _) = classify(&app, json!({"prompt": text, "tenant": "beta"})).await;
    assert_eq!((first.as_str(), second.as_str()), ("miss", "hit"));
    assert_eq!(other, "miss");
}
