//! The real BERT against sentence-transformers' own embeddings (../shared/fixtures).

use semantic_router::embed::Embedder;
use semantic_router::types::Embedding;

use crate::common;

struct Reference {
    text: String,
    tokens: usize,
    embedding: Embedding,
}

fn references() -> Option<Vec<Reference>> {
    let path = common::shared_dir()?.join("fixtures/minilm-l6-v2.reference.jsonl");
    Some(
        common::read_jsonl(&path)
            .into_iter()
            .map(|row| Reference {
                text: row["text"].as_str().expect("text").to_owned(),
                tokens: row["tokens"].as_u64().expect("tokens") as usize,
                embedding: Embedding::normalized(
                    row["embedding"]
                        .as_array()
                        .expect("embedding")
                        .iter()
                        .map(|v| v.as_f64().expect("number") as f32)
                        .collect(),
                ),
            })
            .collect(),
    )
}

#[test]
fn single_embeddings_match_sentence_transformers() {
    let Some(refs) = references() else {
        eprintln!("SKIPPED: ../shared/fixtures is absent");
        return;
    };
    let embedder = common::embedder();
    let mut worst = f32::INFINITY;
    for r in &refs {
        let got = embedder.embed(&r.text).unwrap();
        let cos = got.embedding.cosine(&r.embedding);
        let max_diff = got
            .embedding
            .as_slice()
            .iter()
            .zip(r.embedding.as_slice())
            .map(|(a, b)| (a - b).abs())
            .fold(0.0f32, f32::max);
        worst = worst.min(cos);
        assert_eq!(got.tokens, r.tokens, "token count for {:?}", r.text);
        assert!(cos >= 0.9999, "cosine {cos} for {:?}", r.text);
        assert!(max_diff < 2e-3, "max |Δ| {max_diff} for {:?}", r.text);
    }
    eprintln!("{} reference texts, minimum cosine {worst}", refs.len());
}

#[test]
fn batch_embeddings_equal_single_embeddings() {
    let Some(refs) = references() else {
        eprintln!("SKIPPED: ../shared/fixtures is absent");
        return;
    };
    let embedder = common::embedder();
    let texts: Vec<&str> = refs.iter().map(|r| r.text.as_str()).collect();
    let batch = embedder.embed_batch(&texts).unwrap();
    for (r, b) in refs.iter().zip(&batch) {
        let single = embedder.embed(&r.text).unwrap();
        assert_eq!(b.tokens, single.tokens);
        assert!(
            b.embedding.cosine(&single.embedding) >= 0.99999,
            "{:?}",
            r.text
        );
        assert!(b.embedding.cosine(&r.embedding) >= 0.9999, "{:?}", r.text);
    }
}

#[test]
fn a_megabyte_prompt_is_truncated_like_its_first_256_tokens() {
    let embedder = common::embedder();
    let sentence = "The quarterly report covers revenue, costs and the hiring plan for next year. ";
    let huge = sentence.repeat(1_000_000 / sentence.len() + 1);
    let head = sentence.repeat(40);
    let a = embedder.embed(&huge).unwrap();
    let b = embedder.embed(&head).unwrap();
    assert!(a.truncated && b.truncated);
    assert_eq!(a.tokens, 256);
    assert!(
        a.prompt_tokens > 100_000,
        "whole-prompt count {}",
        a.prompt_tokens
    );
    assert!(a.embedding.cosine(&b.embedding) > 0.99999);
}

#[test]
fn empty_text_is_an_error() {
    let embedder = common::embedder();
    assert!(embedder.embed("   ").is_err());
}

#[test]
fn the_gpu_forward_pass_matches_the_reference_on_the_cpu() {
    use semantic_router::embed::bert::{Backend, BertEmbedder};
    use semantic_router::embed::model_files::{resolve, ModelManifest};
    let Some(refs) = references() else {
        eprintln!("SKIPPED: ../shared/fixtures is absent");
        return;
    };
    // The candle-ops forward is what runs on cuda/metal; the same code on the CPU must agree
    // with sentence-transformers and with the packed CPU path.
    let files = resolve(&ModelManifest::default_manifest(), &common::model_source()).unwrap();
    let tensor =
        BertEmbedder::load_with(&files, candle_core::Device::Cpu, Backend::Tensor).unwrap();
    let packed = common::embedder();
    let texts: Vec<&str> = refs.iter().map(|r| r.text.as_str()).collect();
    let batch = tensor.embed_batch(&texts).unwrap();
    for (r, b) in refs.iter().zip(&batch) {
        assert!(b.embedding.cosine(&r.embedding) >= 0.9999, "{:?}", r.text);
        let single = tensor.embed(&r.text).unwrap();
        assert!(
            single
                .embedding
                .cosine(&packed.embed(&r.text).unwrap().embedding)
                >= 0.99999
        );
    }
}
