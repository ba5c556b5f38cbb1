//! The operators' page in a real browser (headless Chromium over the DevTools pipe), against
//! the real router on a real socket (port 0): it shows the decisions per bucket and target
//! that `/classify` made, the breakers, the versions, and labeling an uncertain decision on it
//! adds the archetype. Skipped, saying so, where no Chromium is installed (CI installs it).

use std::collections::BTreeMap;
use std::future::IntoFuture;

use axum::http::StatusCode;
use semantic_router::serve::Limits;
use serde_json::{json, Value};

use crate::common;
use crate::common::chromium::Browser;
use crate::common::http::{admin_app, as_admin, get, post_json, send, ADMIN_TOKEN};

/// Prompts with clear buckets, and ones between buckets (some land in the uncertain queue).
const PROMPTS: &[&str] = &[
    "Write a Python function that reverses a linked list.",
    "Fix the off-by-one error in this Rust loop: for i in 0..=v.len() { v[i] += 1 }",
    "hi there! how are you today?",
    "Translate 'good morning' into Spanish.",
    "hmm, what about the other thing from before?",
    "Can you help me with this?",
    "Explain, then sum up, then classify: the sky is blue.",
];

/// The page's numbers, read from its tables: bucket → count, target → count.
const READ_TABLES: &str = r#"(() => {
  const read = (id, attr) => Object.fromEntries([...document.querySelectorAll('#' + id + ' tbody tr')]
    .map((r) => [r.getAttribute(attr), Number(r.querySelector('.count').textContent)]));
  return { buckets: read('buckets', 'data-bucket'), targets: read('targets', 'data-target'),
           decisions: Number(document.getElementById('summary').dataset.decisions || -1) };
})()"#;

#[test]
fn the_page_shows_live_decisions_and_labels_an_uncertain_item() {
    let Some(mut browser) = Browser::launch() else {
        return;
    };
    let rt = tokio::runtime::Runtime::new().unwrap();
    let _guard = rt.enter();
    // Every decision below a margin of 0.99 is kept for labeling, so the queue is not empty.
    let dir = tempfile::tempdir().unwrap();
    let shipped = std::fs::read_to_string(common::policy_path()).unwrap();
    let policy = dir.path().join("policy.toml");
    std::fs::write(
        &policy,
        shipped.replace("uncertain_margin = 0.20", "uncertain_margin = 0.99"),
    )
    .unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir(&data).unwrap();
    let app = admin_app(common::core_with_policy(&data, &policy), Limits::default());
    let listener = rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let addr = listener.local_addr().unwrap();
    // Served until the runtime is dropped at the end of the test.
    rt.spawn(axum::serve(listener, app.clone()).into_future());

    let (mut buckets, mut targets) = (BTreeMap::new(), BTreeMap::new());
    // A decision that named mid-a: feedback about mid-a must carry its signed token.
    let mut named_mid_a: Option<(Value, Value)> = None;
    for prompt in PROMPTS {
        let (status, _, d) = rt.block_on(send(
            &app,
            post_json("/classify", &json!({"prompt": prompt})),
        ));
        assert_eq!(status, StatusCode::OK, "{d}");
        *buckets
            .entry(d["bucket"].as_str().unwrap().to_owned())
            .or_insert(0) += 1;
        *targets
            .entry(d["target"]["name"].as_str().unwrap().to_owned())
            .or_insert(0) += 1;
        if named_mid_a.is_none() && d["feedback_tokens"]["mid-a"].is_string() {
            named_mid_a = Some((
                d["decision_id"].clone(),
                d["feedback_tokens"]["mid-a"].clone(),
            ));
        }
    }
    let (decision_id, token) = named_mid_a.expect("a decision names mid-a");
    let (status, _, answer) = rt.block_on(send(
        &app,
        post_json(
            "/feedback",
            &json!({"target": "mid-a", "outcome": "timeout", "decision_id": decision_id, "feedback_token": token}),
        ),
    ));
    assert_eq!(status, StatusCode::OK, "{answer}");

    let page = browser.open(&format!("http://{addr}/ui"));
    browser.wait_for(
        &page,
        "document.getElementById('status').textContent",
        |v| v == "ready",
    );
    // Versions and reload status come without a token.
    let versions = browser.wait_for(
        &page,
        "document.getElementById('versions').textContent",
        |v| v.as_str().is_some_and(|t| t.contains("last reload error")),
    );
    assert!(
        versions
            .as_str()
            .unwrap()
            .contains("sentence-transformers/all-MiniLM-L6-v2"),
        "{versions}"
    );
    let breaker = browser.wait_for(
        &page,
        "document.querySelector('#breakers tr[data-target=\"mid-a\"]')?.textContent ?? null",
        |v| v.is_string(),
    );
    assert!(breaker.as_str().unwrap().contains("closed"), "{breaker}");

    browser.type_into(&page, "#token", ADMIN_TOKEN);
    browser.click(&page, "#save-token");
    let want = json!({"buckets": buckets, "targets": targets, "decisions": PROMPTS.len()});
    let shown = browser.wait_for(&page, READ_TABLES, |v| v == &want);
    assert_eq!(shown, want);
    // By hand: `ROUTER_UI_SCREENSHOT=docs/ui.png cargo test --release ui::` saves the page.
    if let Some(path) = std::env::var_os("ROUTER_UI_SCREENSHOT") {
        browser.screenshot(&page, std::path::Path::new(&path));
    }

    let (_, _, queue) = rt.block_on(send(&app, as_admin(get("/admin/uncertain"))));
    assert!(
        !queue["items"].as_array().unwrap().is_empty(),
        "some prompt is uncertain: {queue}"
    );
    // Label the first uncertain item as chit_chat with the page's own select and button.
    let item = browser.wait_for(
        &page,
        "(() => { const i = document.querySelector('#uncertain .item'); return i ? {id: i.dataset.decision, text: i.querySelector('.text').textContent} : document.getElementById('uncertain-count').textContent + ' | ' + document.getElementById('status').textContent; })()",
        Value::is_object,
    );
    let id = item["id"].as_str().unwrap().to_owned();
    let text = item["text"]
        .as_str()
        .unwrap()
        .trim_end_matches(" …")
        .to_owned();
    assert!(PROMPTS.contains(&text.as_str()), "{item}");
    browser.eval(
        &page,
        &format!("document.querySelector('#uncertain .item[data-decision={}] select').value = 'chit_chat'", json!(id)),
    );
    browser.click(
        &page,
        &format!("#uncertain .item[data-decision=\"{id}\"] button.label"),
    );
    let status = browser.wait_for(
        &page,
        "document.getElementById('label-status').textContent",
        |v| {
            v.as_str()
                .is_some_and(|t| t.contains("labeled") || t.contains("failed"))
        },
    );
    assert!(
        status
            .as_str()
            .unwrap()
            .starts_with(&format!("labeled {id} as chit_chat")),
        "{status}"
    );

    let (status, _, page_body) = rt.block_on(send(
        &app,
        as_admin(get("/archetypes?bucket=chit_chat&limit=1000")),
    ));
    assert_eq!(status, StatusCode::OK);
    let added = page_body["archetypes"]
        .as_array()
        .unwrap()
        .iter()
        .any(|a| a["text"] == text.as_str());
    assert!(
        added,
        "the labeled text is not among chit_chat's archetypes: {text}"
    );
}
