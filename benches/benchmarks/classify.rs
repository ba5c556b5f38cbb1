//! The request path as production runs it: `Pipeline::serve` (retrieval cache → admission →
//! batcher → embed → search → score → decide), one client and 16 concurrent, cache off
//! and on; and `Pipeline::classify` on the calling thread (what the CLI and eval run).

use std::sync::Arc;

use criterion::{criterion_group, Criterion};
use semantic_router::decide::Policy;
use semantic_router::embed::Embedder;
use semantic_router::index::HnswParams;
use semantic_router::pipeline::indexer::build_index;
use semantic_router::pipeline::{
    ClassifyInput, Pipeline, PipelineError, PipelineOptions, Snapshot,
};
use tokio::sync::Semaphore;

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
    let snapshot = Arc::new(
        Snapshot::new(Arc::new(policy), Arc::new(index), embedder.dims()).expect("snapshot"),
    );
    let prompts = super::prompts();
    let short = super::prompt_with_tokens(embedder.as_ref(), &prompts, 10..=16);
    let medium = super::prompt_with_tokens(embedder.as_ref(), &prompts, 56..=64);
    let uncached = PipelineOptions {
        cache_bytes: 0,
        ..PipelineOptions::default()
    };
    let pipeline = Arc::new(Pipeline::new(embedder.clone(), uncached));
    let cached = Arc::new(Pipeline::new(embedder, PipelineOptions::default()));
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let admission = Arc::new(Semaphore::new(64));
    let serve = |pipeline: &Arc<Pipeline>, input: ClassifyInput| {
        serve(
            Arc::clone(pipeline),
            Arc::clone(&snapshot),
            Arc::clone(&admission),
            input,
        )
    };

    let mut group = c.benchmark_group("classify");
    group.sample_size(30);
    for (name, text) in [("short", &short), ("medium", &medium)] {
        let input = ClassifyInput::prompt(text.clone());
        group.bench_function(format!("served {name}, 1 client, no cache"), |b| {
            b.iter(|| runtime.block_on(serve(&pipeline, input.clone())))
        });
        group.bench_function(format!("on this thread {name}"), |b| {
            b.iter(|| pipeline.classify(&snapshot, &input).expect("classifies"))
        });
    }
    let input = ClassifyInput::prompt(short.clone());
    runtime.block_on(serve(&cached, input.clone()));
    group.bench_function("served short, cache hit", |b| {
        b.iter(|| runtime.block_on(serve(&cached, input.clone())))
    });
    // 16 concurrent clients with different short prompts: the batcher embeds what
    // piled up together. Divide by 16 for the cost of one decision.
    let batch: Vec<ClassifyInput> = prompts
        .iter()
        .filter(|p| p.len() <= 60)
        .take(16)
        .map(|p| ClassifyInput::prompt(p.clone()))
        .collect();
    group.bench_function("served 16 short, 16 concurrent clients, no cache", |b| {
        b.iter(|| {
            runtime.block_on(async {
                let tasks: Vec<_> = batch
                    .iter()
                    .map(|input| tokio::spawn(serve(&pipeline, input.clone())))
                    .collect();
                for t in tasks {
                    t.await.expect("task");
                }
            })
        })
    });
    group.finish();
}

/// One served decision, as the `/classify` handler asks for it (admission waits here).
async fn serve(
    pipeline: Arc<Pipeline>,
    snapshot: Arc<Snapshot>,
    admission: Arc<Semaphore>,
    input: ClassifyInput,
) -> semantic_router::decide::Decision {
    let admit = async move {
        admission
            .acquire_owned()
            .await
            .map_err(|_| PipelineError::WorkerStopped)
    };
    pipeline
        .serve(snapshot, input, admit)
        .await
        .expect("classifies")
        .decision
}

criterion_group!(benches, classify);
