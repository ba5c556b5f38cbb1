//! Stage 3: neighbours → [`Routing`]. Pure: no I/O, no clock, no randomness, so the same
//! inputs always give the same routing (property-tested below).
//!
//! vote (similarity-weighted kNN) → thresholds (global and per bucket; below them the
//! policy's default bucket) → the bucket's targets and escalation from the policy.

pub mod decision;
pub mod policy;
pub mod vote;

pub use decision::{Decision, Routing, Timings};
pub use policy::{Policy, PolicyError, Target, Trigger};
pub use vote::{weighted_vote, Vote};

use crate::types::{BucketId, Neighbour};

#[derive(Debug, thiserror::Error)]
pub enum DecideError {
    /// User error (in the index or policy): the vote chose a bucket the policy does not have.
    /// Snapshots are cross-checked when built, so at request time this is a bug.
    #[error("bucket `{0}` is not in the routing policy")]
    UnknownBucket(BucketId),
}

/// Routes one request from its nearest archetypes.
pub fn decide(policy: &Policy, neighbours: &[Neighbour]) -> Result<Routing, DecideError> {
    let vote = weighted_vote(neighbours);
    let mut reasons = Vec::with_capacity(3);
    let (bucket, confidence, abstained) = match &vote {
        None => {
            reasons.push(format!(
                "semantic: no archetypes to compare with; default bucket {}",
                policy.default_bucket
            ));
            (policy.default_bucket.clone(), 0.0, true)
        }
        Some(v) => {
            let bucket_policy = policy
                .bucket(&v.bucket)
                .ok_or_else(|| DecideError::UnknownBucket(v.bucket.clone()))?;
            let summary = format!(
                "semantic: {} of {} neighbours in {} ({:.2})",
                v.agreeing, v.considered, v.bucket, v.confidence
            );
            if v.top_similarity < policy.matching.min_similarity {
                reasons.push(format!(
                    "{summary}; nearest archetype similarity {:.2} is below {:.2}, so default bucket {}",
                    v.top_similarity, policy.matching.min_similarity, policy.default_bucket
                ));
                (policy.default_bucket.clone(), v.confidence, true)
            } else if v.confidence < bucket_policy.min_confidence {
                reasons.push(format!(
                    "{summary}; confidence is below {}'s threshold {:.2}, so default bucket {}",
                    v.bucket, bucket_policy.min_confidence, policy.default_bucket
                ));
                (policy.default_bucket.clone(), v.confidence, true)
            } else {
                reasons.push(summary);
                (v.bucket.clone(), v.confidence, false)
            }
        }
    };
    let bucket_policy = policy
        .bucket(&bucket)
        .ok_or_else(|| DecideError::UnknownBucket(bucket.clone()))?;
    let (target, fallbacks) = bucket_policy
        .targets
        .split_first()
        .expect("validated buckets have at least one target. This is a bug.");
    reasons.push(format!(
        "policy {}: {} → {} ({}/{}), {} fallback(s)",
        policy.version,
        bucket,
        target.name,
        target.provider,
        target.model,
        fallbacks.len()
    ));
    Ok(Routing {
        bucket,
        confidence,
        abstained,
        target: target.clone(),
        fallbacks: fallbacks.to_vec(),
        escalation: bucket_policy.escalation.clone(),
        reasons,
    })
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::policy::MAX_TARGETS;
    use super::*;
    use crate::types::ArchetypeId;

    const POLICY: &str = r#"
schema_version = 1
policy_version = "t.1"
default_bucket = "chat"
[matching]
k = 5
min_confidence = 0.5
min_similarity = 0.3
[escalation]
on = ["timeout"]
timeout_ms = 1000
max_attempts = 2
[targets.s]
provider = "p"
model = "s-20250101"
[targets.m]
provider = "p"
model = "m-20250101"
[targets.l]
provider = "q"
model = "l-20250101"
[buckets.chat]
targets = ["s"]
[buckets.code]
targets = ["l", "m", "s"]
[buckets.math]
targets = ["m", "l"]
min_confidence = 0.8
"#;

    fn policy() -> Policy {
        Policy::parse(POLICY, "t.toml").unwrap()
    }

    fn n(bucket: &str, similarity: f32) -> Neighbour {
        Neighbour {
            id: ArchetypeId::new(bucket),
            bucket: BucketId::new(bucket),
            similarity,
        }
    }

    #[test]
    fn confident_match_routes_to_bucket_targets() {
        let r = decide(&policy(), &[n("code", 0.8), n("code", 0.7), n("chat", 0.4)]).unwrap();
        assert_eq!(r.bucket.as_str(), "code");
        assert!(!r.abstained);
        assert_eq!(r.target.name, "l");
        assert_eq!(
            r.fallbacks
                .iter()
                .map(|t| t.name.as_str())
                .collect::<Vec<_>>(),
            ["m", "s"]
        );
        assert!(
            r.reasons[0].contains("2 of 3 neighbours in code"),
            "{:?}",
            r.reasons
        );
    }

    #[test]
    fn low_similarity_falls_back_to_default_with_reason() {
        let r = decide(&policy(), &[n("code", 0.2), n("code", 0.2)]).unwrap();
        assert_eq!(r.bucket.as_str(), "chat");
        assert!(r.abstained);
        assert!(r.reasons[0].contains("below 0.30"), "{:?}", r.reasons);
    }

    #[test]
    fn per_bucket_threshold_applies() {
        // 0.7 share: enough for the global 0.5, not for math's 0.8.
        let r = decide(&policy(), &[n("math", 0.7), n("code", 0.3)]).unwrap();
        assert_eq!(r.bucket.as_str(), "chat");
        assert!(
            r.reasons[0].contains("math's threshold 0.80"),
            "{:?}",
            r.reasons
        );
    }

    #[test]
    fn no_neighbours_uses_default() {
        let r = decide(&policy(), &[]).unwrap();
        assert_eq!(r.bucket.as_str(), "chat");
        assert!(r.abstained);
    }

    #[test]
    fn bucket_missing_from_policy_is_an_error() {
        assert!(matches!(
            decide(&policy(), &[n("poetry", 0.9)]),
            Err(DecideError::UnknownBucket(_))
        ));
    }

    proptest! {
        #[test]
        fn decision_invariants(sims in proptest::collection::vec((0usize..3, -1.0f32..1.0), 0..12)) {
            let names = ["chat", "code", "math"];
            let neighbours: Vec<Neighbour> = sims.iter().map(|(b, s)| n(names[*b], *s)).collect();
            let p = policy();
            let r = decide(&p, &neighbours).unwrap();
            prop_assert!(r.fallbacks.len() < MAX_TARGETS);
            prop_assert!(!r.fallbacks.contains(&r.target));
            prop_assert!(!r.reasons.is_empty());
            let threshold = p.bucket(&r.bucket).unwrap().min_confidence;
            if !r.abstained {
                prop_assert!(r.confidence >= threshold);
            } else {
                prop_assert_eq!(&r.bucket, &p.default_bucket);
            }
            prop_assert_eq!(decide(&p, &neighbours).unwrap(), r);
        }
    }
}
