//! The shipped policy parses and covers the shipped archetypes; typos are refused with
//! messages that name the file and the field.

use std::collections::BTreeSet;

use semantic_router::decide::Policy;
use semantic_router::store::{ExampleSet, Strictness};

use crate::common;

#[test]
fn shipped_policy_routes_every_shipped_bucket() {
    let policy = Policy::load(&common::policy_path()).unwrap();
    let examples = ExampleSet::load(&common::archetypes_dir(), Strictness::Archetypes).unwrap();
    let counts = examples.counts();
    for bucket in [
        "classification",
        "extraction",
        "summarization",
        "grounded_qa",
        "open_qa",
        "brainstorming",
        "creative_writing",
        "code",
        "math_reasoning",
        "rewriting",
        "translation",
        "role_play",
        "chit_chat",
    ] {
        let b = semantic_router::types::BucketId::new(bucket);
        assert!(policy.bucket(&b).is_some(), "policy lacks {bucket}");
        assert!(
            counts.get(&b).copied().unwrap_or(0) >= 30,
            "{bucket} has fewer than 30 archetypes"
        );
    }
    let in_policy: BTreeSet<_> = policy.buckets.keys().collect();
    assert!(counts.keys().all(|b| in_policy.contains(b)));
}

#[test]
fn typos_in_the_shipped_policy_are_named() {
    let text = std::fs::read_to_string(common::policy_path()).unwrap();
    let cases = [
        (
            "min_similarity = 0.30",
            "min_similarty = 0.30",
            "min_similarty",
        ),
        (
            "default_bucket = \"open_qa\"",
            "default_bucket = \"open_q\"",
            "default_bucket",
        ),
        (
            "targets = [\"mid-a\", \"frontier-a\", \"mid-b\"]",
            "targets = [\"mid-a\", \"frontier-x\", \"mid-b\"]",
            "buckets.code.targets[1]",
        ),
        (
            "model = \"o3-2025-04-16\"",
            "model = \"o3\"",
            "targets.reasoning-a.model",
        ),
    ];
    for (from, to, expected) in cases {
        assert!(
            text.contains(from),
            "the shipped policy no longer contains {from:?}"
        );
        let err = Policy::parse(&text.replacen(from, to, 1), "archetypes/policy.toml")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("archetypes/policy.toml") && err.contains(expected),
            "{err}"
        );
    }
}
