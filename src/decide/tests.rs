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

#[test]
fn rule_force_bucket() {
    let r = run(
        &policy(),
        &code(),
        &RequestContext {
            prompt_tokens: 6000,
            ..req()
        },
    )
    .unwrap();
    assert_eq!(r.bucket.as_str(), "long");
    assert_eq!(names(&r), ["l"]);
    assert!(
        has_reason(
            &r,
            "rule long: forced bucket long (semantic match was code)"
        ),
        "{:?}",
        r.reasons
    );
}

#[test]
fn rule_cap_tier() {
    let free = RequestContext {
        tier: Some("free".into()),
        ..req()
    };
    let r = run(&policy(), &code(), &free).unwrap();
    assert_eq!(names(&r), ["m", "s"]);
    assert!(
        has_reason(&r, "rule free-cap: capped tier at mid, dropped l"),
        "{:?}",
        r.reasons
    );
    let pro = RequestContext {
        tier: Some("pro".into()),
        ..req()
    };
    assert_eq!(
        names(&run(&policy(), &code(), &pro).unwrap()),
        ["l", "m", "s"]
    );
}

#[test]
fn rule_require_capabilities() {
    let json = RequestContext {
        metadata: BTreeMap::from([("format".to_owned(), serde_json::json!("json"))]),
        ..req()
    };
    let r = run(&policy(), &code(), &json).unwrap();
    assert_eq!(names(&r), ["m", "s"]);
    assert!(
        has_reason(&r, "rule json: required json_mode, dropped l"),
        "{:?}",
        r.reasons
    );
}

#[test]
fn rule_prefer_fastest() {
    let high = RequestContext {
        priority: Priority::High,
        ..req()
    };
    let r = run(&policy(), &code(), &high).unwrap();
    assert_eq!(names(&r), ["s", "m", "l"]);
    assert!(
        has_reason(&r, "rule fast: preferred fastest: s, m, l"),
        "{:?}",
        r.reasons
    );
}

#[test]
fn request_capabilities_drop_targets_and_can_leave_none() {
    let vision = RequestContext {
        capabilities: BTreeSet::from(["vision".to_owned()]),
        ..req()
    };
    let r = run(&policy(), &code(), &vision).unwrap();
    assert_eq!(names(&r), ["l", "m"]);
    assert!(
        has_reason(&r, "capabilities: request needs vision; dropped s"),
        "{:?}",
        r.reasons
    );
    let e = run(&policy(), &sure("chat"), &vision).unwrap_err();
    assert!(
        matches!(&e, DecideError::NoEligibleTarget { bucket, why } if bucket.as_str() == "chat" && why.contains("vision")),
        "{e}"
    );
}

#[test]
fn rules_that_empty_the_bucket_are_an_error_not_a_silent_pick() {
    let r = RequestContext {
        tier: Some("free".into()),
        prompt_tokens: 6000,
        ..req()
    };
    let e = run(&policy(), &code(), &r).unwrap_err();
    assert!(
        matches!(&e, DecideError::NoEligibleTarget { why, .. } if why.contains("rule free-cap capped tier at mid, dropped l")),
        "{e}"
    );
}

#[test]
fn prompts_larger_than_a_window_skip_that_target() {
    let r = run(
        &policy(),
        &code(),
        &RequestContext {
            prompt_tokens: 4000,
            ..req()
        },
    )
    .unwrap();
    assert_eq!(names(&r), ["l", "m"]);
    assert!(
        has_reason(
            &r,
            "context: prompt of 4000 tokens exceeds the context window of s"
        ),
        "{:?}",
        r.reasons
    );
    let e = run(
        &policy(),
        &sure("chat"),
        &RequestContext {
            prompt_tokens: 4000,
            ..req()
        },
    );
    assert!(matches!(e, Err(DecideError::NoEligibleTarget { .. })));
}

#[test]
fn open_targets_are_skipped_with_a_reason() {
    let (base, now) = times();
    let health = view(&[("l", 1, 0)], base);
    let r = at(&policy(), &code(), &req(), &health, now).unwrap();
    assert_eq!(names(&r), ["m", "s"]);
    assert!(
        has_reason(&r, "health: skipped l (open)"),
        "{:?}",
        r.reasons
    );
    assert!(r.probe.is_none());
}

#[test]
fn single_target_bucket_still_cools_its_primary_down() {
    let (base, now) = times();
    let health = view(&[("s", 1, 0)], base);
    let chat = sure("chat");
    let r = at(&policy(), &chat, &req(), &health, now).unwrap();
    assert_eq!(names(&r), ["s"]);
    assert!(
        has_reason(&r, "health: skipped s (open)"),
        "{:?}",
        r.reasons
    );
    assert!(
        has_reason(&r, "least recently failed, so s first"),
        "{:?}",
        r.reasons
    );
    let e = at(&rejecting(), &chat, &req(), &health, now).unwrap_err();
    match e {
        DecideError::AllTargetsOpen {
            targets,
            retry_after,
            ..
        } => {
            assert_eq!(targets, ["s"]);
            assert!(retry_after > Duration::ZERO && retry_after <= Duration::from_secs(10));
        }
        other @ (DecideError::UnknownBucket { .. } | DecideError::NoEligibleTarget { .. }) => {
            panic!("{other}")
        }
    }
}

#[test]
fn all_open_picks_the_least_recently_failed_first() {
    let (base, now) = times();
    // l failed last (98 s), m first (91 s), s at 95 s: all still open at 100 s.
    let health = view(&[("l", 1, 7), ("m", 1, 0), ("s", 1, 4)], base);
    let r = at(&policy(), &code(), &req(), &health, now).unwrap();
    assert_eq!(names(&r), ["m", "s", "l"]);
}

#[test]
fn a_half_open_primary_is_the_probe_and_one_in_flight_is_skipped() {
    let (base, now) = times();
    let r = at(
        &policy(),
        &code(),
        &req(),
        &view(&[("l", 2, 50)], base),
        now,
    )
    .unwrap();
    assert_eq!(r.target.name, "l");
    assert_eq!(r.probe.as_deref(), Some("l"));
    assert!(
        has_reason(&r, "l is half-open; this request is its probe"),
        "{:?}",
        r.reasons
    );
    let r = at(
        &policy(),
        &code(),
        &req(),
        &view(&[("l", 3, 50)], base),
        now,
    )
    .unwrap();
    assert_eq!(names(&r), ["m", "s"]);
    assert!(
        has_reason(&r, "skipped l (half-open, probe in flight)"),
        "{:?}",
        r.reasons
    );
}

/// A routing key inside (or outside) code's 30% canary share.
fn key(inside: bool) -> String {
    (0..)
        .map(|i| format!("req-{i}"))
        .find(|k| canary::in_share("code", k, 30) == inside)
        .expect("some key falls on each side. This is a bug.")
}

#[test]
fn canary_takes_its_share_as_primary() {
    let inside = RequestContext {
        routing_key: Some(key(true)),
        ..req()
    };
    let r = run(&policy(), &code(), &inside).unwrap();
    assert_eq!(
        names(&r),
        ["c", "l", "m"],
        "the old primary is the first fallback"
    );
    assert_eq!(
        r.canary,
        Some(CanaryApplied {
            target: "c".into(),
            percent: 30
        })
    );
    assert!(
        has_reason(
            &r,
            "canary: routing key in the 30% share of code; c is primary, then l, m"
        ),
        "{:?}",
        r.reasons
    );
    let outside = RequestContext {
        routing_key: Some(key(false)),
        ..req()
    };
    let r = run(&policy(), &code(), &outside).unwrap();
    assert_eq!(names(&r), ["l", "m", "s"]);
    assert!(r.canary.is_none() && has_reason(&r, "outside the 30% share"));
    let r = run(&policy(), &code(), &req()).unwrap();
    assert!(r.canary.is_none() && has_reason(&r, "no routing key"));
}

#[test]
fn an_ineligible_canary_is_not_applied() {
    let r = RequestContext {
        routing_key: Some(key(true)),
        capabilities: BTreeSet::from(["long_context".to_owned()]),
        ..req()
    };
    let r = run(&policy(), &code(), &r).unwrap();
    assert_eq!(names(&r), ["l"]);
    assert!(r.canary.is_none());
    assert!(
        has_reason(&r, "but c lacks long_context; not applied"),
        "{:?}",
        r.reasons
    );
}

#[test]
fn shadow_is_listed_unless_it_is_cooling_down() {
    let r = run(&policy(), &code(), &req()).unwrap();
    assert_eq!(r.shadow.as_ref().map(|t| t.name.as_str()), Some("w"));
    assert!(has_reason(&r, "shadow: mirror to w"));
    let (base, now) = times();
    let r = at(&policy(), &code(), &req(), &view(&[("w", 1, 0)], base), now).unwrap();
    assert!(r.shadow.is_none() && has_reason(&r, "shadow: w is cooling down"));
}

fn request_strategy() -> impl Strategy<Value = RequestContext> {
    (
        prop_oneof![
            Just(50usize),
            Just(900),
            Just(3000),
            Just(6000),
            Just(200_000)
        ],
        proptest::option::of(prop_oneof![Just("free".to_owned()), Just("pro".to_owned())]),
        prop_oneof![
            Just(Priority::Low),
            Just(Priority::Normal),
            Just(Priority::High)
        ],
        proptest::collection::btree_set(
            prop_oneof![Just("vision".to_owned()), Just("json_mode".to_owned())],
            0..2,
        ),
        any::<bool>(),
        proptest::option::of("[a-z0-9]{1,8}"),
    )
        .prop_map(
            |(prompt_tokens, tier, priority, capabilities, json, routing_key)| RequestContext {
                prompt_tokens,
                tenant: None,
                tier,
                priority,
                capabilities,
                metadata: if json {
                    BTreeMap::from([("format".to_owned(), serde_json::json!("json"))])
                } else {
                    BTreeMap::new()
                },
                routing_key,
                utc_seconds: None,
            },
        )
}

/// Scores over the policy's buckets (or none): random shares, confidence and neighbours.
fn scores_strategy() -> impl Strategy<Value = Option<BucketScores>> {
    let buckets = ["chat", "code", "math", "long"];
    proptest::option::weighted(
        0.9,
        (
            proptest::collection::vec((0usize..4, 0.0f32..1.0), 1..6),
            proptest::option::of(0.0f32..=1.0),
            -1.0f32..1.0,
            0usize..12,
        )
            .prop_map(move |(shares, confidence, top_similarity, considered)| {
                let named: Vec<(&str, f32)> =
                    shares.iter().map(|&(b, w)| (buckets[b], w)).collect();
                let mut s = scores(&named, top_similarity, considered / 2, considered);
                // Calibrated scorers' confidence need not be the top share.
                s.confidence = confidence.unwrap_or(s.confidence);
                s
            }),
    )
}

proptest! {
    #[test]
    fn decision_invariants(
        scores in scores_strategy(),
        fitted_threshold in proptest::option::of(0.0f32..=1.0),
        request in request_strategy(),
        states in proptest::collection::vec((0u8..4, 0u64..9), 5),
        reject in any::<bool>(),
        fitted_math in any::<bool>(),
    ) {
        let p = match (reject, fitted_math) {
            (true, _) => rejecting(),
            (false, true) => fitted(),
            (false, false) => policy(),
        };
        let (base, now) = times();
        let targets = ["s", "m", "l", "c", "w"];
        let spec: Vec<(&str, u8, u64)> = targets.iter().zip(&states).map(|(t, (s, f))| (*t, *s, *f)).collect();
        let health = view(&spec, base);
        let input = DecideInput {
            conversation: None,
            scores: scores.as_ref(),
            fitted_threshold,
            request: &request,
            health: &health,
            now,
        };
        let result = decide(&p, &input);
        // identical inputs, identical outcome
        let again = decide(&p, &input);
        prop_assert_eq!(format!("{result:?}"), format!("{again:?}"));
        let r = match result {
            Ok(r) => r,
            Err(DecideError::NoEligibleTarget { why, .. }) => {
                prop_assert!(!why.is_empty());
                return Ok(());
            }
            Err(DecideError::AllTargetsOpen { targets, .. }) => {
                prop_assert!(reject && !targets.is_empty());
                return Ok(());
            }
            Err(e @ DecideError::UnknownBucket { .. }) => return Err(TestCaseError::fail(e.to_string())),
        };
        let named: Vec<&Arc<Target>> = std::iter::once(&r.target).chain(&r.fallbacks).collect();
        prop_assert!(named.len() <= MAX_TARGETS);
        prop_assert!(!r.fallbacks.contains(&r.target));
        prop_assert!(!r.reasons.is_empty());
        // Never an open target while a usable one is named: either every named target is
        // usable, or none is (all cooling down, least recently failed first, said so).
        let usable = named.iter().filter(|t| health.availability(&t.name, now).usable()).count();
        prop_assert!(usable == named.len() || usable == 0, "{:?}", r.reasons);
        if usable == 0 {
            prop_assert!(!reject);
            prop_assert!(r.reasons.iter().any(|x| x.contains("cooling down")));
        }
        // What the request needs, every named target has.
        for t in &named {
            prop_assert!(request.capabilities.is_subset(&t.capabilities));
            prop_assert!(t.context_window as usize >= request.prompt_tokens);
            if request.tier.as_deref() == Some("free") {
                prop_assert!(t.tier <= Tier::Mid);
            }
        }
        // Below 5000 tokens no rule forces a bucket: the bucket is the semantic one.
        if request.prompt_tokens <= 5000 {
            match (&scores, r.abstained) {
                (None, abstained) => prop_assert!(abstained),
                (Some(s), false) => {
                    // The top bucket, or (a split within the uncertain margin) the runner-up
                    // when its primary is of a more capable tier, said so.
                    let top = s.bucket();
                    if &r.bucket != top {
                        let second = &s.ranked[1];
                        prop_assert_eq!(&r.bucket, &second.bucket);
                        prop_assert!(s.ranked[0].score - second.score < p.matching.uncertain_margin);
                        prop_assert!(p.primary_tier(&second.bucket) > p.primary_tier(top));
                        prop_assert!(r.reasons.iter().any(|x| x.starts_with("uncertain:")));
                    }
                    let threshold = p.bucket(top).unwrap().min_confidence.resolve(fitted_threshold);
                    prop_assert!(r.confidence >= threshold);
                }
                (Some(_), true) => prop_assert_eq!(&r.bucket, &p.default_bucket),
            }
        }
        prop_assert_eq!(r.confidence, scores.as_ref().map_or(0.0, BucketScores::confidence));
    }
}
