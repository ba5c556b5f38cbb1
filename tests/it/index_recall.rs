//! usearch (its HNSW graph walk, and its exhaustive search that serves small indexes) against
//! exact brute-force search in f32 on real embeddings.

use semantic_router::index::recall::recall_at_k;
use semantic_router::index::{ExactIndex, HnswParams, UsearchIndex};
use semantic_router::pipeline::indexer::embed_all;
use semantic_router::store::read_labeled_rows;
use semantic_router::types::Embedding;

use crate::common;

/// A usearch index that always walks its graph, and the f32 oracle.
fn indexes(vectors: &[Embedding]) -> (UsearchIndex, ExactIndex) {
    let entries: Vec<(u64, &Embedding)> = vectors
        .iter()
        .enumerate()
        .map(|(i, v)| (i as u64, v))
        .collect();
    let dims = vectors[0].dims();
    (
        UsearchIndex::build(dims, graph_walk(), &entries).unwrap(),
        ExactIndex::build(dims, &entries).unwrap(),
    )
}

fn graph_walk() -> HnswParams {
    HnswParams {
        exact_search_up_to: 0,
        ..HnswParams::default()
    }
}

#[test]
fn served_and_hnsw_recall_on_shipped_archetypes() {
    let index = common::shipped_index();
    let served = index.index.vector_search();
    let vectors: Vec<Embedding> = (0..index.len() as u64)
        .map(|k| served.vector(k).unwrap())
        .collect();
    assert!(
        vectors.len() <= HnswParams::default().exact_search_up_to,
        "the shipped archetypes are served by exhaustive search"
    );
    let (hnsw, exact) = indexes(&vectors);
    // Served: exhaustive over f16 vectors, so only rounding ties may differ from f32.
    let served_recall = recall_at_k(served, &exact, &vectors, 10).unwrap();
    let hnsw_recall = recall_at_k(&hnsw, &exact, &vectors, 10).unwrap();
    eprintln!(
        "recall@10 on {} archetype vectors: served {served_recall:.4}, graph walk {hnsw_recall:.4}",
        vectors.len()
    );
    assert!(served_recall >= 0.999, "served recall@10 {served_recall}");
    assert!(hnsw_recall >= 0.99, "graph-walk recall@10 {hnsw_recall}");
}

#[test]
fn hnsw_recall_on_10k_real_vectors() {
    let Some(path) = common::shared_data("clinc150.jsonl") else {
        return;
    };
    let rows = read_labeled_rows(&path, &[]).unwrap();
    let texts: Vec<&str> = rows.iter().take(10_500).map(|r| r.text.as_str()).collect();
    let vectors = embed_all(common::embedder().as_ref(), &texts, &|_, _| {}).unwrap();
    let (base, queries) = vectors.split_at(10_000);
    let (hnsw, exact) = indexes(base);
    let recall = recall_at_k(&hnsw, &exact, queries, 10).unwrap();
    eprintln!("recall@10 on 10,000 CLINC150 vectors, 500 held-out queries: {recall:.4}");
    assert!(recall >= 0.99, "recall@10 {recall}");
}
