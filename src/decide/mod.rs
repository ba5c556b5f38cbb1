//! Stage 3: neighbours + request context + provider health → [`Routing`]. Pure: no I/O, no
//! clock (time is passed in), no randomness, so the same inputs always give the same routing
//! (property-tested below).
//!
//! vote (similarity-weighted kNN) → thresholds (global and per bucket; below them the
//! policy's default bucket) → side rules and the request's needs → canary → health → the
//! targets, escalation, shadow and estimated cost.

pub mod canary;
pub mod catalogue;
pub mod decision;
pub mod health;
pub mod policy;
pub mod request;
pub mod rules;
mod select;
pub mod vote;

use std::time::{Duration, Instant};

pub use canary::{CanaryApplied, CanarySpec};
pub use catalogue::{Latency, Target, Tier};
pub use decision::{Decision, Routing, Timings, MAX_LISTED_SCORES};
pub use health::{
    Availability, Breaker, BreakerState, HealthConfig, HealthView, Outcome, OutcomeReport, Phase,
    TargetHealth, Transition, WhenAllOpen,
};
pub use policy::{Policy, PolicyError, Threshold, Trigger};
pub use request::{Priority, RequestContext};
pub use rules::{Prefer, Rule};
pub use vote::{weighted_vote, Vote};

use crate::types::{BucketId, BucketScores, Neighbour};

#[derive(Debug, thiserror::Error)]
pub enum DecideError {
    /// User error (in the index or policy): the vote chose a bucket the policy does not have.
    /// Snapshots are cross-checked when built, so at request time this is a bug.
    #[error("bucket `{0}` is not in the routing policy")]
    UnknownBucket(BucketId),
    /// User error: no target of the bucket can serve this request (its capabilities, its
    /// size, or the side rules ruled every one out). HTTP 422.
    #[error("no target of bucket `{bucket}` can serve this request: {why}")]
    NoEligibleTarget { bucket: BucketId, why: String },
    /// Runtime failure: every eligible target's circuit breaker is open and the policy says
    /// to reject rather than try one anyway. HTTP 503; the first may reopen after
    /// `retry_after`.
    #[error("every eligible target of bucket `{bucket}` is cooling down ({}); retry in {}s", .targets.join(", "), .retry_after.as_secs().max(1))]
    AllTargetsOpen {
        bucket: BucketId,
        targets: Vec<String>,
        retry_after: Duration,
    },
}

/// Routes one request from its nearest archetypes by the similarity-weighted kNN vote (no
/// fitted scorer), what the request says about itself, and the providers' health at `now`.
pub fn decide(
    policy: &Policy,
    neighbours: &[Neighbour],
    request: &RequestContext,
    health: &HealthView,
    now: Instant,
) -> Result<Routing, DecideError> {
    let scores = weighted_vote(neighbours).map(Vote::into_scores);
    decide_scored(policy, scores.as_ref(), request, health, now)
}

/// Routes one request from its bucket scores (`None`: nothing to compare with), what the
/// request says about itself, and the providers' health at `now`.
pub fn decide_scored(
    policy: &Policy,
    scores: Option<&BucketScores>,
    request: &RequestContext,
    health: &HealthView,
    now: Instant,
) -> Result<Routing, DecideError> {
    let mut reasons = Vec::with_capacity(4);
    let (bucket, confidence, abstained) = match scores {
        None => {
            reasons.push(format!(
                "semantic: no archetypes to compare with; default bucket {}",
                policy.default_bucket
            ));
            (policy.default_bucket.clone(), 0.0, true)
        }
        Some(s) => {
            let winner = s.bucket();
            let bucket_policy = policy
                .bucket(winner)
                .ok_or_else(|| DecideError::UnknownBucket(winner.clone()))?;
            let summary = format!(
                "semantic ({}): {} {:.2}, margin {:.2}; {} of {} neighbours agree",
                s.scorer,
                winner,
                s.confidence(),
                s.margin(),
                s.agreeing,
                s.considered
            );
            let threshold = bucket_policy.min_confidence.resolve(s.fitted_threshold);
            if s.considered > 0 && s.top_similarity < policy.matching.min_similarity {
                reasons.push(format!(
                    "{summary}; nearest archetype similarity {:.2} is below {:.2}, so default bucket {}",
                    s.top_similarity, policy.matching.min_similarity, policy.default_bucket
                ));
                (policy.default_bucket.clone(), s.confidence(), true)
            } else if s.confidence() < threshold {
                reasons.push(format!(
                    "{summary}; confidence is below {winner}'s threshold {threshold:.2}, so default bucket {}",
                    policy.default_bucket
                ));
                (policy.default_bucket.clone(), s.confidence(), true)
            } else {
                reasons.push(summary);
                (winner.clone(), s.confidence(), false)
            }
        }
    };
    let selected = select::select(policy, bucket, request, health, now, &mut reasons)?;
    let bucket_policy = policy
        .bucket(&selected.bucket)
        .ok_or_else(|| DecideError::UnknownBucket(selected.bucket.clone()))?;
    let mut targets = selected.targets.into_iter();
    let target = targets
        .next()
        .expect("select returns at least one target. This is a bug.");
    let fallbacks: Vec<_> = targets.collect();
    let estimated_input_cost_usd = target.input_cost_usd(request.prompt_tokens);
    reasons.push(format!(
        "policy {}: {} → {} ({}/{}), {} fallback(s); ~${estimated_input_cost_usd:.6} input for {} tokens",
        policy.version,
        selected.bucket,
        target.name,
        target.provider,
        target.model,
        fallbacks.len(),
        request.prompt_tokens,
    ));
    Ok(Routing {
        bucket: selected.bucket,
        confidence,
        margin: scores.map_or(0.0, BucketScores::margin),
        scorer: scores.map(|s| s.scorer),
        scores: scores.map_or_else(Vec::new, |s| {
            s.ranked.iter().take(MAX_LISTED_SCORES).cloned().collect()
        }),
        abstained,
        target,
        fallbacks,
        escalation: bucket_policy.escalation.clone(),
        reasons,
        estimated_input_cost_usd,
        canary: selected.canary,
        shadow: selected.shadow,
        probe: selected.probe,
    })
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, BTreeSet};
    use std::sync::Arc;

    use proptest::prelude::*;

    use super::policy::MAX_TARGETS;
    use super::*;
    use crate::types::ArchetypeId;

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

    fn n(bucket: &str, similarity: f32) -> Neighbour {
        Neighbour {
            id: ArchetypeId::new(bucket),
            bucket: BucketId::new(bucket),
            similarity,
        }
    }

    fn code() -> Vec<Neighbour> {
        vec![n("code", 0.8), n("code", 0.7), n("chat", 0.4)]
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
                b.record(&OutcomeReport::new(Outcome::ServerError), &p.health, at);
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

    fn run(
        p: &Policy,
        neighbours: &[Neighbour],
        r: &RequestContext,
    ) -> Result<Routing, DecideError> {
        let (_, now) = times();
        decide(p, neighbours, r, &HealthView::default(), now)
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
            r.reasons[0].contains(
                "semantic (weighted_knn): code 0.79, margin 0.58; 2 of 3 neighbours agree"
            ),
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
        let r = run(&policy(), &[n("code", 0.2), n("code", 0.2)], &req()).unwrap();
        assert_eq!(r.bucket.as_str(), "chat");
        assert!(r.abstained);
        assert!(r.reasons[0].contains("below 0.30"), "{:?}", r.reasons);
    }

    #[test]
    fn per_bucket_threshold_applies() {
        // 0.7 share: enough for the global 0.5, not for math's 0.8.
        let r = run(&policy(), &[n("math", 0.7), n("code", 0.3)], &req()).unwrap();
        assert_eq!(r.bucket.as_str(), "chat");
        assert!(
            r.reasons[0].contains("math's threshold 0.80"),
            "{:?}",
            r.reasons
        );
    }

    #[test]
    fn no_neighbours_uses_default() {
        let r = run(&policy(), &[], &req()).unwrap();
        assert_eq!(r.bucket.as_str(), "chat");
        assert!(r.abstained);
    }

    #[test]
    fn bucket_missing_from_policy_is_an_error() {
        assert!(matches!(
            run(&policy(), &[n("poetry", 0.9)], &req()),
            Err(DecideError::UnknownBucket(_))
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
        let e = run(&policy(), &[n("chat", 0.9)], &vision).unwrap_err();
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
            &[n("chat", 0.9)],
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
        let r = decide(&policy(), &code(), &req(), &health, now).unwrap();
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
        let chat = [n("chat", 0.9)];
        let r = decide(&policy(), &chat, &req(), &health, now).unwrap();
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
        let e = decide(&rejecting(), &chat, &req(), &health, now).unwrap_err();
        match e {
            DecideError::AllTargetsOpen {
                targets,
                retry_after,
                ..
            } => {
                assert_eq!(targets, ["s"]);
                assert!(retry_after > Duration::ZERO && retry_after <= Duration::from_secs(10));
            }
            other @ (DecideError::UnknownBucket(_) | DecideError::NoEligibleTarget { .. }) => {
                panic!("{other}")
            }
        }
    }

    #[test]
    fn all_open_picks_the_least_recently_failed_first() {
        let (base, now) = times();
        // l failed last (98 s), m first (91 s), s at 95 s: all still open at 100 s.
        let health = view(&[("l", 1, 7), ("m", 1, 0), ("s", 1, 4)], base);
        let r = decide(&policy(), &code(), &req(), &health, now).unwrap();
        assert_eq!(names(&r), ["m", "s", "l"]);
    }

    #[test]
    fn a_half_open_primary_is_the_probe_and_one_in_flight_is_skipped() {
        let (base, now) = times();
        let r = decide(
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
        let r = decide(
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
        let r = decide(&policy(), &code(), &req(), &view(&[("w", 1, 0)], base), now).unwrap();
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
                },
            )
    }

    proptest! {
        #[test]
        fn decision_invariants(
            sims in proptest::collection::vec((0usize..4, -1.0f32..1.0), 0..12),
            request in request_strategy(),
            states in proptest::collection::vec((0u8..4, 0u64..9), 5),
            reject in any::<bool>(),
        ) {
            let names_ = ["chat", "code", "math", "long"];
            let neighbours: Vec<Neighbour> = sims.iter().map(|(b, s)| n(names_[*b], *s)).collect();
            let p = if reject { rejecting() } else { policy() };
            let (base, now) = times();
            let targets = ["s", "m", "l", "c", "w"];
            let spec: Vec<(&str, u8, u64)> = targets.iter().zip(&states).map(|(t, (s, f))| (*t, *s, *f)).collect();
            let health = view(&spec, base);
            let result = decide(&p, &neighbours, &request, &health, now);
            // identical inputs, identical outcome
            let again = decide(&p, &neighbours, &request, &health, now);
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
                Err(e @ DecideError::UnknownBucket(_)) => return Err(TestCaseError::fail(e.to_string())),
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
            if !r.abstained && request.prompt_tokens <= 5000 {
                let threshold = p.bucket(&r.bucket).unwrap().min_confidence.resolve(None);
                prop_assert!(r.confidence >= threshold);
            }
            if r.abstained && request.prompt_tokens <= 5000 {
                prop_assert_eq!(&r.bucket, &p.default_bucket);
            }
        }
    }
}
