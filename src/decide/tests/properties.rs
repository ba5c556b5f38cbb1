//! Properties every decision keeps, over generated requests, scores and health.

use super::*;

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
