//! Fallback drills through the policy file and `decide`: parsing (unknown fields and bad
//! percents are errors naming the path), per-bucket over top-level, and a drilled decision
//! naming the first fallback with the reason `drill`.

use std::time::Instant;

use super::*;
use crate::types::BucketScore;

const POLICY: &str = r#"
schema_version = 1
policy_version = "d.1"
default_bucket = "chat"
drill = { percent = 100.0 }
[matching]
k = 5
min_confidence = 0.5
min_similarity = 0.3
[escalation]
on = ["timeout"]
timeout_ms = 1000
max_attempts = 2
[targets.a]
provider = "p"
model = "a-20250101"
tier = "mid"
context_window = 8000
price_in_per_mtok = 1.0
price_out_per_mtok = 2.0
[targets.b]
provider = "q"
model = "b-20250101"
tier = "mid"
context_window = 8000
price_in_per_mtok = 1.0
price_out_per_mtok = 2.0
[buckets.chat]
targets = ["a", "b"]
[buckets.code]
targets = ["b", "a"]
drill = { percent = 0.0 }
[buckets.solo]
targets = ["a"]
"#;

fn decide_for(policy: &Policy, bucket: &str, key: Option<&str>) -> Routing {
    let scores = BucketScores {
        scorer: crate::types::ScorerKind::Combined,
        ranked: vec![BucketScore {
            bucket: crate::types::BucketId::new(bucket),
            score: 1.0,
        }],
        confidence: 0.9,
        top_similarity: 0.9,
        agreeing: 1,
        considered: 1,
    };
    let request = RequestContext {
        routing_key: key.map(str::to_owned),
        ..RequestContext::default()
    };
    decide(
        policy,
        &DecideInput {
            conversation: None,
            scores: Some(&scores),
            fitted_threshold: None,
            request: &request,
            health: &HealthView::default(),
            now: Instant::now(),
        },
    )
    .unwrap()
}

#[test]
fn a_drilled_decision_names_the_first_fallback_with_the_reason_drill() {
    let policy = Policy::parse(POLICY, "d.toml").unwrap();
    let r = decide_for(&policy, "chat", Some("req-1"));
    assert_eq!(r.target.name, "b");
    assert_eq!(r.fallbacks[0].name, "a", "the primary is next in line");
    assert!(
        r.reasons.iter().any(|x| x.starts_with("drill: ")),
        "{:?}",
        r.reasons
    );
    let drill = r.drill.unwrap();
    assert_eq!((drill.target.as_str(), drill.primary.as_str()), ("b", "a"));
    // The bucket's own `drill` wins over the top level; no fallback, no drill; no key, no drill.
    assert!(decide_for(&policy, "code", Some("req-1")).drill.is_none());
    let solo = decide_for(&policy, "solo", Some("req-1"));
    assert!(solo.drill.is_none() && solo.reasons.iter().any(|x| x.contains("no fallback")));
    assert!(decide_for(&policy, "chat", None).drill.is_none());
}

#[test]
fn drill_settings_are_validated_with_their_path() {
    let err = |text: String| Policy::parse(&text, "d.toml").unwrap_err().to_string();
    let e = err(POLICY.replace("drill = { percent = 0.0 }", "drill = { percent = 101.0 }"));
    assert!(e.contains("buckets.code.drill.percent"), "{e}");
    let e = err(POLICY.replace("drill = { percent = 100.0 }", "drill = { percent = -1.0 }"));
    assert!(e.contains("drill.percent"), "{e}");
    let e = err(POLICY.replace("{ percent = 0.0 }", "{ percent = 1.0, every = \"day\" }"));
    assert!(e.contains("unknown field"), "{e}");
    let e = err(POLICY.replace(
        "{ percent = 0.0 }",
        "{ percent = 1.0, window_utc = \"25:00-01:00\" }",
    ));
    assert!(e.contains("buckets.code.drill.window_utc"), "{e}");
}
