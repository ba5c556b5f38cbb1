//! Scoring (every scorer, shipped archetypes), then `decide` (thresholds + side rules +
//! health) on the policy's scorer's real scores for one prompt: a plain request, and one that
//! fires rules (free tier, high priority, an image) with an open target in its bucket.

use std::collections::BTreeSet;
use std::time::Instant;

use criterion::{criterion_group, Criterion};
use semantic_router::decide::{
    decide, DecideInput, HealthView, OutcomeReport, Policy, Priority, ReportedOutcome,
    RequestContext,
};
use semantic_router::embed::Embedder;
use semantic_router::live::HealthBoard;
use semantic_router::types::ScorerKind;

fn bench_decide(c: &mut Criterion) {
    let policy = Policy::load(&super::repo().join("archetypes/policy.toml")).expect("policy");
    // Scoring the shipped archetypes' buckets for a real prompt, every scorer.
    let index = super::shipped_index();
    let query = super::embedder()
        .embed("Write a Python function that merges two sorted lists.")
        .expect("embeds")
        .embedding;
    let real = index.neighbours(&query, 10).expect("searches");
    let scoring = &index.scoring;
    let mut group = c.benchmark_group("score (shipped archetypes)");
    for kind in ScorerKind::ALL {
        group.bench_function(kind.name(), |b| {
            b.iter(|| scoring.score(kind, query.as_slice(), &real))
        });
    }
    group.finish();

    // What the pipeline hands `decide`: the policy's scorer's scores and its fitted threshold.
    let scores = scoring
        .score(policy.matching.scorer, query.as_slice(), &real)
        .expect("the shipped index has buckets");
    let now = Instant::now();
    let plain = RequestContext {
        prompt_tokens: 60,
        ..RequestContext::default()
    };
    let healthy = HealthView::default();
    let input = DecideInput {
        conversation: None,
        scores: Some(&scores),
        fitted_threshold: scoring.calibration().threshold(scores.scorer),
        request: &plain,
        health: &healthy,
        now,
    };
    c.bench_function("decide (scores + policy)", |b| {
        b.iter(|| decide(&policy, &input).expect("decides"))
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
            &OutcomeReport::new(ReportedOutcome::RateLimited),
            &policy.health,
            now,
        );
    }
    let degraded = board.view();
    let input = DecideInput {
        conversation: None,
        request: &busy,
        health: &degraded,
        ..input
    };
    c.bench_function("decide (rules fire, one target open)", |b| {
        b.iter(|| decide(&policy, &input).expect("decides"))
    });
}

criterion_group!(benches, bench_decide);
