//! Scoring (every scorer, shipped archetypes), then vote + thresholds + side rules + health
//! for ten real neighbours: a plain request, and one that fires rules (free tier, high
//! priority, an image) with an open target in its bucket.

use std::collections::BTreeSet;
use std::time::Instant;

use criterion::{criterion_group, Criterion};
use semantic_router::decide::{
    decide, HealthView, Outcome, OutcomeReport, Policy, Priority, RequestContext,
};
use semantic_router::embed::Embedder;
use semantic_router::health::HealthBoard;
use semantic_router::types::{ArchetypeId, BucketId, Neighbour};

fn bench_decide(c: &mut Criterion) {
    let policy = Policy::load(&super::repo().join("archetypes/policy.toml")).expect("policy");
    let buckets = [
        "code",
        "code",
        "code",
        "math_reasoning",
        "code",
        "open_qa",
        "code",
        "code",
        "extraction",
        "code",
    ];
    let neighbours: Vec<Neighbour> = buckets
        .iter()
        .enumerate()
        .map(|(i, b)| Neighbour {
            id: ArchetypeId::new(&format!("{b}-{i}")),
            bucket: BucketId::new(b),
            similarity: 0.8 - i as f32 * 0.02,
        })
        .collect();
    let now = Instant::now();
    let plain = RequestContext {
        prompt_tokens: 60,
        ..RequestContext::default()
    };
    let healthy = HealthView::default();
    // Scoring the shipped archetypes' buckets for a real prompt, every scorer.
    let index = super::shipped_index();
    let query = super::embedder()
        .embed("Write a Python function that merges two sorted lists.")
        .expect("embeds")
        .embedding;
    let real = index.neighbours(&query, 10).expect("searches");
    let mut scoring = c.benchmark_group("score (shipped archetypes)");
    for kind in semantic_router::types::ScorerKind::ALL {
        scoring.bench_function(kind.name(), |b| {
            b.iter(|| index.scoring.score(kind, query.as_slice(), &real))
        });
    }
    scoring.finish();
    c.bench_function("decide (vote + policy)", |b| {
        b.iter(|| decide(&policy, &neighbours, &plain, &healthy, now).expect("decides"))
    });

    let busy = RequestContext {
        prompt_tokens: 900,
        tenant: Some("acme".into()),
        tier: Some("free".into()),
        priority: Priority::High,
        capabilities: BTreeSet::from(["vision".to_owned()]),
        routing_key: Some("req-42".into()),
        ..RequestContext::default()
    };
    let board = HealthBoard::new();
    for _ in 0..policy.health.consecutive_failures_to_open {
        board.record(
            "mid-a",
            &OutcomeReport::new(Outcome::RateLimited),
            &policy.health,
            now,
        );
    }
    let degraded = board.view();
    c.bench_function("decide (rules fire, one target open)", |b| {
        b.iter(|| decide(&policy, &neighbours, &busy, &degraded, now).expect("decides"))
    });
}

criterion_group!(benches, bench_decide);
