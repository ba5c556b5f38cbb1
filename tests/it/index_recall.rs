//! usearch HNSW against exact brute-force search on real embeddings.

use semantic_router::index::recall::recall_at_k;
use semantic_router::index::{ExactIndex, HnswParams, UsearchIndex};
use semantic_router::pipeline::indexer::embed_all;
use semantic_router::store::read_labeled_rows;
use semantic_router::types::Embedding;

use crate::common;

fn indexes(vectors: &[Embedding]) -> (UsearchIndex, ExactIndex) {
    let entries: Vec<(u64, &Embedding)> = vectors
        .iter()
        .enumerate()
        .map(|(i, v)| (i as u64, v))
        .collect();
    let dims = vectors[0].dims();
    (
        UsearchIndex::build(dims, HnswParams::default(), &entries).unwrap(),
        ExactIndex::build(dims, &entries).unwrap(),
    )
}

#[test]
fn hnsw_recall_on_shipped_archetypes() {
    let index = common::shipped_index();
    let usearch = index.index.vector_search();
    let vectors: Vec<Embedding> = (0..index.len() as u64)
        .map(|k| usearch.vector(k).unwrap())
        .collect();
    let (_, exact) = indexes(&vectors);
    let recall = recall_at_k(usearch, &exact, &vectors, 10).unwrap();
    eprintln!(
        "recall@10 on {} archetype vectors: {recall:.4}",
        vectors.len()
    );
    assert!(recall >= 0.99, "recall@10 {recall}");
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
