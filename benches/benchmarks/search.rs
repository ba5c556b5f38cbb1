//! usearch HNSW vs exact search at the shipped archetype count and at 10× that.

use criterion::{criterion_group, BenchmarkId, Criterion};
use semantic_router::index::{ExactIndex, HnswParams, UsearchIndex, VectorSearch};
use semantic_router::indexer::embed_all;
use semantic_router::types::Embedding;

/// Deterministic variations of real vectors (fixed seed), to reach 10× the archetype count.
fn jitter(base: &[Embedding], n: usize) -> Vec<Embedding> {
    let mut state = 0x2545_f491_4f6c_dd1du64;
    let mut next = || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state >> 40) as f32 / (1u64 << 24) as f32 - 0.5
    };
    (0..n)
        .map(|i| {
            let v = base[i % base.len()]
                .as_slice()
                .iter()
                .map(|x| x + 0.05 * next())
                .collect();
            Embedding::normalized(v)
        })
        .collect()
}

fn search(c: &mut Criterion) {
    let embedder = super::embedder();
    let examples = super::archetypes();
    let texts: Vec<&str> = examples
        .examples()
        .iter()
        .map(|e| e.text.as_str())
        .collect();
    let real = embed_all(embedder.as_ref(), &texts, &|_, _| {}).expect("embeds");
    let query = real[real.len() / 2].clone();
    let mut group = c.benchmark_group("search k=10");
    for n in [real.len(), real.len() * 10] {
        let vectors = if n == real.len() {
            real.clone()
        } else {
            jitter(&real, n)
        };
        let entries: Vec<(u64, &Embedding)> = vectors
            .iter()
            .enumerate()
            .map(|(i, v)| (i as u64, v))
            .collect();
        let hnsw = UsearchIndex::build(384, HnswParams::default(), &entries).expect("builds");
        let exact = ExactIndex::build(384, &entries).expect("builds");
        group.bench_with_input(BenchmarkId::new("usearch hnsw", n), &n, |b, _| {
            b.iter(|| hnsw.search(&query, 10).expect("searches"))
        });
        group.bench_with_input(BenchmarkId::new("exact", n), &n, |b, _| {
            b.iter(|| exact.search(&query, 10).expect("searches"))
        });
    }
    group.finish();
}

criterion_group!(benches, search);
