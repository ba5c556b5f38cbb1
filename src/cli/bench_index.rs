//! `router bench-index`: recall@k of usearch HNSW against exact search, search latency, build
//! time and memory, on real vectors at several index sizes and HNSW settings. The figures
//! behind the default [`HnswParams`].
//!
//! Vectors come from `router embed`'s output (JSONL `{"embedding": [...]}`), so they are
//! embedded once and reused. They are shuffled with a fixed seed; the last `--queries` are
//! held out as queries, never indexed.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::bail;
use clap::Args;
use serde_json::json;

use crate::eval::Percentiles;
use crate::index::recall::{read_embeddings, recall_at_k, shuffle};
use crate::index::{ExactIndex, HnswParams, Quantization, UsearchIndex, VectorSearch};
use crate::types::Embedding;

#[derive(Debug, Args)]
pub struct BenchIndexArgs {
    /// JSONL with an `embedding` array per line (what `router embed` writes).
    #[arg(long)]
    pub vectors: PathBuf,
    /// Index sizes to measure (comma-separated).
    #[arg(long, value_delimiter = ',', default_values_t = [1_000usize, 10_000, 100_000])]
    pub sizes: Vec<usize>,
    /// Held-out query vectors.
    #[arg(long, default_value_t = 1000)]
    pub queries: usize,
    /// Neighbours per search.
    #[arg(long, default_value_t = 10)]
    pub k: usize,
    #[arg(long, value_delimiter = ',', default_values_t = [HnswParams::default().connectivity])]
    pub connectivity: Vec<usize>,
    #[arg(long, value_delimiter = ',', default_values_t = [HnswParams::default().expansion_add])]
    pub expansion_add: Vec<usize>,
    #[arg(long, value_delimiter = ',', default_values_t = [HnswParams::default().expansion_search])]
    pub expansion_search: Vec<usize>,
    /// Vector storage: f32, f16 or i8 (comma-separated to compare).
    #[arg(long, value_delimiter = ',', default_value = "f16")]
    pub quantization: Vec<Quantization>,
    /// Timed passes over the queries; each query counts its fastest (1 = a plain single pass).
    #[arg(long, default_value_t = 3)]
    pub passes: usize,
    /// One JSON object per configuration instead of a table.
    #[arg(long)]
    pub json: bool,
}

pub fn run(args: &BenchIndexArgs) -> anyhow::Result<()> {
    let mut vectors = read_embeddings(&args.vectors)?;
    shuffle(&mut vectors);
    let largest = args.sizes.iter().copied().max().unwrap_or(0);
    if vectors.len() < largest + args.queries {
        bail!(
            "{} has {} vectors; sizes up to {largest} plus {} queries need {}",
            args.vectors.display(),
            vectors.len(),
            args.queries,
            largest + args.queries
        );
    }
    let queries = vectors.split_off(vectors.len() - args.queries);
    let dims = queries.first().map_or(0, Embedding::dims);
    for &n in &args.sizes {
        let entries: Vec<(u64, &Embedding)> = vectors[..n]
            .iter()
            .enumerate()
            .map(|(i, v)| (i as u64, v))
            .collect();
        let exact = ExactIndex::build(dims, &entries)?;
        let exact_latency = latencies(&exact, &queries, args.k, args.passes)?;
        report(
            args,
            &json!({"size": n, "search": "exact", "p50_us": exact_latency.p50, "p99_us": exact_latency.p99}),
        )?;
        for &quantization in &args.quantization {
            for &connectivity in &args.connectivity {
                for &expansion_add in &args.expansion_add {
                    let params = HnswParams {
                        connectivity,
                        expansion_add,
                        quantization,
                        ..HnswParams::default()
                    };
                    let started = Instant::now();
                    // The graph walk is what these rows measure; exact search gets its own row.
                    let mut index = UsearchIndex::build(
                        dims,
                        HnswParams {
                            exact_search_up_to: 0,
                            ..params
                        },
                        &entries,
                    )?;
                    let build_s = started.elapsed().as_secs_f64();
                    index.set_exact_search_up_to(usize::MAX);
                    let p = latencies(&index, &queries, args.k, args.passes)?;
                    let recall = recall_at_k(&index, &exact, &queries, args.k)?;
                    report(
                        args,
                        &json!({
                            "size": n, "search": "usearch-exact", "quantization": quantization,
                            "recall_at_k": recall, "k": args.k, "passes": args.passes,
                            "p50_us": p.p50, "p99_us": p.p99, "max_us": p.max,
                        }),
                    )?;
                    index.set_exact_search_up_to(0);
                    for &expansion_search in &args.expansion_search {
                        index.set_expansion_search(expansion_search);
                        let p = latencies(&index, &queries, args.k, args.passes)?;
                        let recall = recall_at_k(&index, &exact, &queries, args.k)?;
                        report(
                            args,
                            &json!({
                                "size": n, "search": "hnsw",
                                "quantization": quantization, "connectivity": connectivity,
                                "expansion_add": expansion_add, "expansion_search": expansion_search,
                                "recall_at_k": recall, "k": args.k, "passes": args.passes,
                                "p50_us": p.p50, "p99_us": p.p99, "max_us": p.max,
                                "build_s": build_s, "memory_mb": index.memory_usage() as f64 / 1e6,
                            }),
                        )?;
                    }
                }
            }
        }
    }
    Ok(())
}

fn report(args: &BenchIndexArgs, row: &serde_json::Value) -> anyhow::Result<()> {
    let line = if args.json {
        row.to_string()
    } else {
        let field = |k: &str| row.get(k).map(ToString::to_string).unwrap_or_default();
        format!(
            "n={:>7} {:<5} q={:<5} M={:<3} ef_add={:<4} ef={:<4} recall@{}={:<7} p50={:.1}us p99={:.1}us build={}s mem={}MB",
            field("size"),
            row["search"].as_str().unwrap_or_default(),
            row["quantization"].as_str().unwrap_or("-"),
            field("connectivity"),
            field("expansion_add"),
            field("expansion_search"),
            args.k,
            row["recall_at_k"].as_f64().map_or("-".to_owned(), |r| format!("{r:.4}")),
            row["p50_us"].as_f64().unwrap_or_default(),
            row["p99_us"].as_f64().unwrap_or_default(),
            row["build_s"].as_f64().map_or("-".to_owned(), |s| format!("{s:.1}")),
            row["memory_mb"].as_f64().map_or("-".to_owned(), |m| format!("{m:.1}")),
        )
    };
    super::stdin_jsonl::write_line(&line)?;
    Ok(())
}

/// Per-query search latency in µs, one query at a time (how the service searches). Each
/// query's figure is its fastest of `passes`: on a shared machine a single pass's tail is
/// other processes preempting this one, not the search.
fn latencies(
    index: &dyn VectorSearch,
    queries: &[Embedding],
    k: usize,
    passes: usize,
) -> anyhow::Result<Percentiles> {
    let mut us = vec![f64::INFINITY; queries.len()];
    for _ in 0..passes.max(1) {
        for (q, best) in queries.iter().zip(us.iter_mut()) {
            let started = Instant::now();
            index.search(q, k)?;
            *best = best.min(started.elapsed().as_secs_f64() * 1e6);
        }
    }
    Ok(Percentiles::of(&mut us))
}
