//! The whole pipeline on one snapshot: embed → search → decide, as `/classify` runs it.

use std::sync::Arc;

use criterion::{criterion_group, Criterion};
use semantic_router::decide::Policy;
use semantic_router::embed::Embedder;
use semantic_router::index::HnswParams;
use semantic_router::indexer::build_index;
use semantic_router::pipeline::{ClassifyInput, Pipeline, Snapshot};

fn classify(c: &mut Criterion) {
    let embedder = super::embedder();
    let index = build_index(
        &super::archetypes(),
        embedder.as_ref(),
        HnswParams::default(),
        &|_, _| {},
    )
    .expect("index");
    let policy = Policy::load(&super::repo().join("archetypes/policy.toml")).expect("policy");
    let snapshot =
        Snapshot::new(Arc::new(policy), Arc::new(index), embedder.dims()).expect("snapshot");
    let prompts = super::prompts();
    let short = super::prompt_with_tokens(embedder.as_ref(), &prompts, 10..=16);
    let medium = super::prompt_with_tokens(embedder.as_ref(), &prompts, 56..=64);
    let pipeline = Pipeline::new(embedder);
    let mut group = c.benchmark_group("classify end to end");
    group.sample_size(30);
    for (name, text) in [("short", short), ("medium", medium)] {
        let input = ClassifyInput {
            text,
            request_id: None,
            ..ClassifyInput::default()
        };
        group.bench_function(name, |b| {
            b.iter(|| pipeline.classify(&snapshot, &input).expect("classifies"))
        });
    }
    // What the `/classify` batch worker does under load: 16 short prompts in one forward
    // pass. Divide by 16 for the cost of one decision.
    let batch: Vec<ClassifyInput> = prompts
        .iter()
        .filter(|p| p.len() <= 60)
        .take(16)
        .map(|p| ClassifyInput {
            text: p.clone(),
            ..ClassifyInput::default()
        })
        .collect();
    group.bench_function("16 short, batched", |b| {
        b.iter(|| {
            pipeline
                .classify_batch(&snapshot, &batch)
                .expect("classifies")
        })
    });
    group.finish();
}

criterion_group!(benches, classify);
