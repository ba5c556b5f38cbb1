//! Reports people read (issue 11 point 5): `router eval --report DIR` writes the pictures and
//! the page; `GET /admin/stats` counts a replica's recent decisions; `router report` gives the
//! same summary for a decision-log file.

use std::path::Path;
use std::process::Command;

use axum::http::StatusCode;
use semantic_router::decide::Policy;
use semantic_router::serve::Limits;
use serde_json::{json, Value};

use crate::common;
use crate::common::http::{admin_app, as_admin, get, post_json, send};

fn router() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_router"));
    command.current_dir(common::repo_root());
    if std::env::var_os("ROUTER_MODEL_DIR").is_none() {
        command.env("ROUTER_MODELS_ROOT", common::repo_root().join("models"));
    }
    command
}

fn write_jsonl(path: &Path, rows: &[Value]) {
    let text: String = rows.iter().map(|r| format!("{r}\n")).collect();
    std::fs::write(path, text).unwrap();
}

/// The highest input list price of the shipped policy, USD per million tokens.
fn top_price() -> f64 {
    let policy = Policy::load(&common::policy_path()).unwrap();
    policy
        .targets
        .values()
        .map(|t| t.price_in_per_mtok)
        .fold(0.0, f64::max)
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-9 * b.abs().max(1e-9)
}

#[tokio::test]
async fn admin_stats_counts_the_decisions_made() {
    let app = admin_app(common::core(), Limits::default());
    let prompts = [
        "Write a Python function that reverses a linked list.",
        "Write a Rust function that parses an INI file.",
        "hi there! how are you today?",
        "Translate 'good morning' into French.",
        "Can you help me with this?",
    ];
    let mut decisions = Vec::new();
    for prompt in prompts {
        let (status, _, d) = send(&app, post_json("/classify", &json!({"prompt": prompt}))).await;
        assert_eq!(status, StatusCode::OK, "{d}");
        decisions.push(d);
    }
    let (status, _, batch) = send(
        &app,
        post_json(
            "/classify/batch",
            &json!({"requests": [{"prompt": "2 + 2 * 3 = ?"}]}),
        ),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{batch}");
    decisions.push(batch["decisions"][0].clone());

    let (status, _, stats) = send(&app, as_admin(get("/admin/stats"))).await;
    assert_eq!(status, StatusCode::OK, "{stats}");
    assert_eq!(stats["decisions"], decisions.len());
    assert_eq!(stats["seen"], decisions.len());
    for d in &decisions {
        let bucket = d["bucket"].as_str().unwrap();
        let want = decisions.iter().filter(|e| e["bucket"] == bucket).count();
        assert_eq!(stats["by_bucket"][bucket]["count"], want, "{stats}");
        let target = d["target"]["name"].as_str().unwrap();
        let want = decisions
            .iter()
            .filter(|e| e["target"]["name"] == target)
            .count();
        assert_eq!(stats["by_target"][target]["count"], want, "{stats}");
    }
    let abstained = decisions.iter().filter(|d| d["abstained"] == true).count();
    assert_eq!(stats["abstained"]["count"], abstained);
    let routed: f64 = decisions
        .iter()
        .map(|d| d["estimated_input_cost_usd"].as_f64().unwrap())
        .sum();
    let tokens: u64 = decisions
        .iter()
        .map(|d| d["prompt_tokens"].as_u64().unwrap())
        .sum();
    let spend = &stats["spend"];
    assert!(
        close(spend["routed_usd"].as_f64().unwrap(), routed),
        "{spend}"
    );
    assert!(
        close(
            spend["all_to_most_expensive_usd"].as_f64().unwrap(),
            tokens as f64 * top_price() / 1e6
        ),
        "{spend}"
    );
    assert!(spend["saving_share"].as_f64().unwrap() > 0.0, "{spend}");
    let (status, _, _) = send(&app, get("/admin/stats")).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

#[test]
fn router_report_summarises_a_decision_log_file() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("decisions.jsonl");
    let line = |bucket: &str,
                target: &str,
                abstained: bool,
                margin: f64,
                tokens: u64,
                cost: f64| {
        json!({"ts_ms": 1, "decision_id": "d", "bucket": bucket, "confidence": 0.9, "margin": margin,
               "abstained": abstained, "target": target, "fallbacks": [], "prompt_tokens": tokens, "tokens": tokens,
               "estimated_input_cost_usd": cost})
    };
    let mut text: String = [
        line("code", "mid-a", false, 0.9, 100, 3e-4),
        line("code", "mid-a", false, 0.05, 100, 3e-4),
        line("chit_chat", "nano-a", false, 0.8, 20, 2e-6),
        line("open_qa", "mid-b", true, 0.0, 80, 2e-5),
    ]
    .iter()
    .map(|l| format!("{l}\n"))
    .collect();
    text.push_str("2026-12-02T01:00:00Z INFO a log line on the same stderr\n");
    std::fs::write(&log, text).unwrap();

    let out = router()
        .args(["report", "--json", "--decision-log"])
        .arg(&log)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let s: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        (s["decisions"].as_u64(), s["skipped_lines"].as_u64()),
        (Some(4), Some(1))
    );
    assert_eq!(s["by_bucket"]["code"], json!({"count": 2, "share": 0.5}));
    assert_eq!(s["by_bucket"]["chit_chat"]["share"], 0.25);
    assert_eq!(s["by_target"]["mid-a"]["share"], 0.5);
    assert_eq!(s["abstained"], json!({"count": 1, "share": 0.25}));
    // The shipped policy's uncertain margin is 0.20: only the 0.05 one (not abstained).
    assert_eq!(s["under_confident"]["count"], 1);
    assert!(close(
        s["spend"]["routed_usd"].as_f64().unwrap(),
        3e-4 + 3e-4 + 2e-6 + 2e-5
    ));
    assert!(close(
        s["spend"]["all_to_most_expensive_usd"].as_f64().unwrap(),
        300.0 * top_price() / 1e6
    ));

    let out = router()
        .args(["report", "--decision-log"])
        .arg(&log)
        .output()
        .unwrap();
    let table = String::from_utf8(out.stdout).unwrap();
    assert!(
        table.contains("4 decisions (1 other lines skipped)") && table.contains("saved"),
        "{table}"
    );
}

#[test]
fn eval_report_writes_the_pictures_and_the_page() {
    let dir = tempfile::tempdir().unwrap();
    let (train, test) = (
        dir.path().join("train.jsonl"),
        dir.path().join("test.jsonl"),
    );
    write_jsonl(
        &train,
        &[
            json!({"text": "what's the weather like tomorrow", "label": "weather"}),
            json!({"text": "will it rain this afternoon", "label": "weather"}),
            json!({"text": "play some jazz music", "label": "music"}),
            json!({"text": "put on my workout playlist", "label": "music"}),
            json!({"text": "set an alarm for 7 am", "label": "alarm"}),
            json!({"text": "wake me up at six tomorrow", "label": "alarm"}),
        ],
    );
    write_jsonl(
        &test,
        &[
            json!({"text": "is it going to snow tonight", "label": "weather"}),
            json!({"text": "play the latest album by my favourite band", "label": "music"}),
            json!({"text": "set an alarm for noon", "label": "alarm"}),
            json!({"text": "turn the music up and wake me at 8", "label": "alarm"}),
        ],
    );
    let report = dir.path().join("report");
    let out = router()
        .args(["eval", "--train"])
        .arg(&train)
        .arg("--test")
        .arg(&test)
        .arg("--report")
        .arg(&report)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let json: Value =
        serde_json::from_str(&std::fs::read_to_string(report.join("report.json")).unwrap())
            .unwrap();
    assert_eq!(json["n"], 4);
    let bins = json["reliability"].as_array().unwrap();
    assert_eq!(
        bins.iter()
            .map(|b| b["count"].as_u64().unwrap())
            .sum::<u64>(),
        4
    );
    for name in ["confusion.svg", "reliability.svg"] {
        let svg = std::fs::read_to_string(report.join(name)).unwrap();
        assert!(
            svg.starts_with("<svg") && svg.contains("xmlns=\"http://www.w3.org/2000/svg\""),
            "{name}"
        );
        assert!(svg.trim_end().ends_with("</svg>"), "{name}");
        assert_eq!(
            svg.matches("<text").count(),
            svg.matches("</text>").count(),
            "{name}"
        );
    }
    let confusion = std::fs::read_to_string(report.join("confusion.svg")).unwrap();
    for label in ["weather", "music", "alarm"] {
        assert!(
            confusion.contains(&format!(">\n{label}\n</text>")),
            "{label} is not drawn"
        );
    }
    assert!(std::fs::read_to_string(report.join("reliability.svg"))
        .unwrap()
        .contains("perfect calibration"));
    let html = std::fs::read_to_string(report.join("index.html")).unwrap();
    assert!(html.starts_with("<!doctype html>") && html.trim_end().ends_with("</html>"));
    assert!(
        html.contains(r#"<img src="confusion.svg""#)
            && html.contains(r#"<img src="reliability.svg""#)
    );
    let accuracy = json["accuracy"].as_f64().unwrap();
    assert!(
        html.contains(&format!(r#"<td id="accuracy">{accuracy:.4}</td>"#)),
        "{html}"
    );
}
