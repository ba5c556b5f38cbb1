//! Vote + thresholds + policy lookup for ten real neighbours.

use criterion::{criterion_group, Criterion};
use semantic_router::decide::{decide, Policy};
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
    c.bench_function("decide (vote + policy)", |b| {
        b.iter(|| decide(&policy, &neighbours).expect("decides"))
    });
}

criterion_group!(benches, bench_decide);
