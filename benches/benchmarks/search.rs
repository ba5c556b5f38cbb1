//! usearch HNSW vs exact search at 1k, 10k and 100k archetypes.
//!
//! Real vectors when `ROUTER_BENCH_VECTORS` names a JSONL of embeddings (`router embed` over
//! real texts, e.g. ../shared/data; see README "Performance"); otherwise deterministic
//! variations of the shipped archetypes' vectors. Queries are held-out vectors, never indexed.

use criterion::{criterion_group, BenchmarkId, Criterion};
use semantic_router::index::recall::{read_embeddings, shuffle};
use semantic_router::index::{ExactIndex, HnswParams, UsearchIndex, VectorSearch};
use semantic_router::pipeline::indexer::embed_all;
use semantic_router::types::Embedding;

const SIZES: [usize; 3] = [1_000, 10_000, 100_000];
const QUERIES: usize = 64;

/// Deterministic variations of real vectors (fixed seed).
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

/// Enough vectors for the largest size plus the queries.
fn vectors() -> (Vec<Embedding>, &'static str) {
    let wanted = SIZES[SIZES.len() - 1] + QUERIES;
    if let Some(path) = std::env::var_os("ROUTER_BENCH_VECTORS") {
        let mut real = read_embeddings(path.as_ref()).expect("ROUTER_BENCH_VECTORS is readable");
        if real.len() >= wanted {
            shuffle(&mut real);
            return (real, "real");
        }
        eprintln!(
            "ROUTER_BENCH_VECTORS has {} vectors, fewer than {wanted}; using jittered archetypes",
            real.len()
        );
    }
    let examples = super::archetypes();
    let texts: Vec<&str> = examples
        .examples()
        .iter()
        .map(|e| e.text.as_str())
        .collect();
    let real = embed_all(super::embedder().as_ref(), &texts, &|_, _| {}).expect("embeds");
    (jitter(&real, wanted), "jittered")
}

fn search(c: &mut Criterion) {
    let (mut vectors, kind) = vectors();
    let queries = vectors.split_off(vectors.len() - QUERIES);
    let mut group = c.benchmark_group(format!("search k=10 ({kind} vectors)"));
    for n in SIZES {
        let entries: Vec<(u64, &Embedding)> = vectors[..n]
            .iter()
            .enumerate()
            .map(|(i, v)| (i as u64, v))
            .collect();
        let hnsw = UsearchIndex::build(384, HnswParams::default(), &entries).expect("builds");
        let exact = ExactIndex::build(384, &entries).expect("builds");
        let mut i = 0;
        group.bench_with_input(BenchmarkId::new("usearch hnsw", n), &n, |b, _| {
            b.iter(|| {
                i = (i + 1) % QUERIES;
                hnsw.search(&queries[i], 10).expect("searches")
            })
        });
        group.bench_with_input(BenchmarkId::new("exact", n), &n, |b, _| {
            b.iter(|| {
                i = (i + 1) % QUERIES;
                exact.search(&queries[i], 10).expect("searches")
            })
        });
    }
    group.finish();
}

criterion_group!(benches, search);
