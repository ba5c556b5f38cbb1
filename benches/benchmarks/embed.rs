//! Tokenize alone, and embed (tokenize + forward + pool + normalise) by prompt length.

use criterion::{criterion_group, Criterion};
use semantic_router::embed::Embedder;

fn embed(c: &mut Criterion) {
    let embedder = super::embedder();
    let prompts = super::prompts();
    let cases = [
        (
            "short (~12 tokens)",
            super::prompt_with_tokens(embedder.as_ref(), &prompts, 10..=14),
        ),
        (
            "medium (~60 tokens)",
            super::prompt_with_tokens(embedder.as_ref(), &prompts, 56..=64),
        ),
        (
            "long (256 tokens, truncated)",
            super::prompt_with_tokens(embedder.as_ref(), &prompts, 256..=256),
        ),
    ];
    let mut group = c.benchmark_group("embed");
    group.sample_size(30);
    for (name, text) in &cases {
        group.bench_function(*name, |b| b.iter(|| embedder.embed(text).expect("embeds")));
    }
    group.finish();
}

criterion_group!(benches, embed);
