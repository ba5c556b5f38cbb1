//! Criterion benchmarks, one binary: embed, search, decide, classify end to end.
//! Inputs are real prompts from ../shared/data when present (else the shipped archetypes).
//! Run: `cargo bench --bench bench_main` (add `-- embed` to pick a group).

mod benchmarks;

criterion::criterion_main!(
    benchmarks::embed::benches,
    benchmarks::search::benches,
    benchmarks::decide::benches,
    benchmarks::classify::benches,
);
