use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use proptest::prelude::*;

use super::policy::MAX_TARGETS;
use super::*;
use crate::types::{BucketScore, ScorerKind};

const POLICY: &str = r#"
schema_version = 1
policy_version = "t.1"
default_bucket = "chat"
tenant_tiers = ["free", "pro"]
[matching]
k = 5
min_confidence = 0.5
min_similarity = 0.3
[escalation]
on = ["timeout"]
timeout_ms = 1000
max_attempts = 2
[health]
window = 10
min_requests = 4
error_rate_to_open = 0.5
consecutive_failures_to_open = 2
cooldown_ms = 10000
when_all_open = "least_recently_failed"
[targets.s]
provider = "p"
model = "s-20250101"
tier = "small"
capabilities = ["json_mode"]
context_window = 1000
price_in_per_mtok = 1.0
price_out_per_mtok = 2.0
latency_rank = 1
[targets.m]
provider = "p"
model = "m-20250101"
tier = "mid"
capabilities = ["json_mode", "vision"]
context_window = 8000
price_in_per_mtok = 3.0
price_out_per_mtok = 6.0
latency_rank = 2
[targets.l]
provider = "q"
model = "l-20250101"
tier = "frontier"
capabilities = ["vision", "long_context"]
context_window = 100000
price_in_per_mtok = 10.0
price_out_per_mtok = 30.0
latency_rank = 3
[targets.c]
provider = "q"
model = "c-20250101"
tier = "mid"
capabilities = ["json_mode", "vision"]
context_window = 8000
price_in_per_mtok = 2.0
price_out_per_mtok = 4.0
latency_rank = 2
[targets.w]
provider = "r"
model = "w-20250101"
tier = "small"
context_window = 8000
price_in_per_mtok = 0.5
price_out_per_mtok = 1.0
latency_rank = 1
[buckets.chat]
targets = ["s"]
[buckets.code]
targets = ["l", "m", "s"]
canary = { target = "c", percent = 30 }
shadow = "w"
[buckets.math]
targets = ["m", "l"]
min_confidence = 0.8
[buckets.long]
targets = ["l"]
[[rules]]
name = "long"
when = { prompt_tokens_above = 5000 }
then = { force_bucket = "long" }
[[rules]]
name = "free-cap"
when = { tier = ["free"] }
then = { cap_tier = "mid" }
[[rules]]
name = "json"
when = { metadata = { format = "json" } }
then = { require_capabilities = ["json_mode"] }
[[rules]]
name = "fast"
when = { priority = "high" }
then = { prefer = "fastest" }
"#;

fn policy() -> Policy {
    Policy::parse(POLICY, "t.toml").unwrap()
}

fn rejecting() -> Policy {
    Policy::parse(
        &POLICY.replace("\"least_recently_failed\"", "\"reject\""),
        "t.toml",
    )
    .unwrap()
}

/// Scores as a scorer hands them over: `shares` normalised and ranked (highest first, ties to
/// the smaller name), the top share as the confidence, and `agreeing` of `considered`
/// neighbours in the top bucket.
fn scores(
    shares: &[(&str, f32)],
    top_similarity: f32,
    agreeing: usize,
    considered: usize,
) -> BucketScores {
    let mut by_bucket: BTreeMap<&str, f32> = BTreeMap::new();
    for &(bucket, share) in shares {
        *by_bucket.entry(bucket).or_default() += share.max(0.0);
    }
    let total: f32 = by_bucket.values().sum();
    let n = by_bucket.len() as f32;
    let mut ranked: Vec<BucketScore> = by_bucket
        .into_iter()
        .map(|(bucket, w)| BucketScore {
            bucket: BucketId::new(bucket),
            score: if total > 0.0 { w / total } else { 1.0 / n },
        })
        .collect();
    ranked.sort_by(|a, b| b.score.total_cmp(&a.score).then(a.bucket.cmp(&b.bucket)));
    BucketScores {
        scorer: ScorerKind::Combined,
        confidence: ranked[0].score,
        ranked,
        top_similarity,
        agreeing,
        considered,
    }
}

/// A confident match for `bucket` alone.
fn sure(bucket: &str) -> BucketScores {
    scores(&[(bucket, 1.0)], 0.9, 1, 1)
}

/// A confident match for code, with chat second.
fn code() -> BucketScores {
    scores(&[("code", 0.79), ("chat", 0.21)], 0.8, 2, 3)
}

fn req() -> RequestContext {
    RequestContext {
        prompt_tokens: 100,
        ..RequestContext::default()
    }
}

/// A fixed origin for health times, far enough from `now` for every cooldown to matter.
fn times() -> (Instant, Instant) {
    let base = Instant::now();
    (base, base + Duration::from_secs(100))
}

/// Target states: 0 closed, 1 open, 2 half-open (probe free), 3 half-open with a probe in
/// flight; failures happen at `base + failed_at` seconds.
fn view(states: &[(&str, u8, u64)], base: Instant) -> HealthView {
    let p = policy();
    let now = base + Duration::from_secs(100);
    let mut map = BTreeMap::new();
    for &(name, state, failed_at) in states {
        let mut b = Breaker::new();
        let at = match state {
            0 => continue,
            // open until 101..=109 s
            1 => base + Duration::from_secs(91 + failed_at % 9),
            // cooled down by 90 s
            2 | 3 => base + Duration::from_secs(failed_at.min(80)),
            _ => unreachable!("states are 0..=3"),
        };
        for _ in 0..2 {
            b.record(
                &OutcomeReport::new(ReportedOutcome::ServerError),
                &p.health,
                at,
            );
        }
        if state == 3 {
            assert!(b.claim_probe(&p.health, now));
        }
        map.insert(name.to_owned(), b.health());
    }
    HealthView::new(map)
}

fn names(r: &Routing) -> Vec<&str> {
    std::iter::once(&r.target)
        .chain(&r.fallbacks)
        .map(|t| t.name.as_str())
        .collect()
}

/// Decides for `scores` with healthy providers and no fitted threshold.
fn run(p: &Policy, scores: &BucketScores, r: &RequestContext) -> Result<Routing, DecideError> {
    let (_, now) = times();
    at(p, scores, r, &HealthView::default(), now)
}

/// Decides for `scores` with the providers' `health` at `now`, and no fitted threshold.
fn at(
    p: &Policy,
    scores: &BucketScores,
    request: &RequestContext,
    health: &HealthView,
    now: Instant,
) -> Result<Routing, DecideError> {
    let input = DecideInput {
        conversation: None,
        scores: Some(scores),
        fitted_threshold: None,
        request,
        health,
        now,
    };
    decide(p, &input)
}

fn has_reason(r: &Routing, part: &str) -> bool {
    r.reasons.iter().any(|x| x.contains(part))
}

#[test]
fn confident_match_routes_to_bucket_targets() {
    let r = run(&policy(), &code(), &req()).unwrap();
    assert_eq!(r.bucket.as_str(), "code");
    assert!(!r.abstained);
    assert_eq!(names(&r), ["l", "m", "s"]);
    assert!(
        r.reasons[0]
            .contains("semantic (combined): code 0.79, margin 0.58; 2 of 3 neighbours agree"),
        "{:?}",
        r.reasons
    );
    assert!(
        !has_reason(&r, "rule "),
        "rules that do not fire say nothing: {:?}",
        r.reasons
    );
}

#[test]
fn estimated_input_cost_uses_the_primary_price() {
    let r = run(
        &policy(),
        &code(),
        &RequestContext {
            prompt_tokens: 2000,
            ..req()
        },
    )
    .unwrap();
    assert!((r.estimated_input_cost_usd - 2000.0 * 10.0 / 1e6).abs() < 1e-12);
    assert!(
        has_reason(&r, "~$0.020000 input for 2000 tokens"),
        "{:?}",
        r.reasons
    );
}

#[test]
fn low_similarity_falls_back_to_default_with_reason() {
    let r = run(&policy(), &scores(&[("code", 1.0)], 0.2, 2, 2), &req()).unwrap();
    assert_eq!(r.bucket.as_str(), "chat");
    assert!(r.abstained);
    assert!(r.reasons[0].contains("below 0.30"), "{:?}", r.reasons);
}

#[test]
fn per_bucket_threshold_applies() {
    // 0.7 share: enough for the global 0.5, not for math's 0.8.
    let r = run(
        &policy(),
        &scores(&[("math", 0.7), ("code", 0.3)], 0.7, 1, 2),
        &req(),
    )
    .unwrap();
    assert_eq!(r.bucket.as_str(), "chat");
    assert!(
        r.reasons[0].contains("math's threshold 0.80"),
        "{:?}",
        r.reasons
    );
}

/// The policy with math's threshold left to the fitted one.
fn fitted() -> Policy {
    let text = POLICY.replace(
        "targets = [\"m\", \"l\"]\nmin_confidence = 0.8",
        "targets = [\"m\", \"l\"]\nmin_confidence = \"fitted\"",
    );
    assert_ne!(text, POLICY, "the replaced text is in POLICY");
    Policy::parse(&text, "t.toml").unwrap()
}

#[test]
fn fitted_threshold_comes_with_the_input() {
    let math = scores(&[("math", 0.7), ("code", 0.3)], 0.7, 1, 2);
    let (_, now) = times();
    let with = |fitted_threshold| {
        let input = DecideInput {
            conversation: None,
            scores: Some(&math),
            fitted_threshold,
            request: &req(),
            health: &HealthView::default(),
            now,
        };
        decide(&fitted(), &input).unwrap()
    };
    let r = with(Some(0.75));
    assert_eq!(r.bucket.as_str(), "chat");
    assert!(
        r.reasons[0].contains("math's threshold 0.75"),
        "{:?}",
        r.reasons
    );
    assert_eq!(with(Some(0.6)).bucket.as_str(), "math");
    // Nothing fitted: "fitted" means 0, so the match is trusted.
    let r = with(None);
    assert_eq!(r.bucket.as_str(), "math");
    assert!(!r.abstained);
    // A fixed threshold ignores the fitted one.
    let input = DecideInput {
        conversation: None,
        scores: Some(&math),
        fitted_threshold: Some(0.1),
        request: &req(),
        health: &HealthView::default(),
        now,
    };
    assert_eq!(decide(&policy(), &input).unwrap().bucket.as_str(), "chat");
}

#[test]
fn scores_without_neighbours_skip_the_similarity_floor() {
    // A head or centroid score with no search behind it: the nearest similarity is -1.
    let r = run(&policy(), &scores(&[("code", 1.0)], -1.0, 0, 0), &req()).unwrap();
    assert_eq!(r.bucket.as_str(), "code");
    assert!(!r.abstained);
}

#[test]
fn routing_carries_the_scores() {
    let r = run(&policy(), &code(), &req()).unwrap();
    assert_eq!(r.scorer, Some(ScorerKind::Combined));
    assert!((r.confidence - 0.79).abs() < 1e-6);
    assert!((r.margin - 0.58).abs() < 1e-6);
    let listed: Vec<&str> = r.scores.iter().map(|s| s.bucket.as_str()).collect();
    assert_eq!(listed, ["code", "chat"]);
}

#[test]
fn no_neighbours_uses_default() {
    let (_, now) = times();
    let input = DecideInput {
        conversation: None,
        scores: None,
        fitted_threshold: Some(0.9),
        request: &req(),
        health: &HealthView::default(),
        now,
    };
    let r = decide(&policy(), &input).unwrap();
    assert_eq!(r.bucket.as_str(), "chat");
    assert!(r.abstained);
}

#[test]
fn bucket_missing_from_policy_is_an_error() {
    assert!(matches!(
        run(&policy(), &sure("poetry"), &req()),
        Err(DecideError::UnknownBucket { .. })
    ));
}

// The policy's rules, provider health, canary and shadow; then the properties every decision
// keeps.
mod health_and_canary;
mod properties;
mod rules;
