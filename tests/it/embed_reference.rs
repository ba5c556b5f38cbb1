//! The real BERT against sentence-transformers' own embeddings (../shared/fixtures).

use semantic_router::embed::bert::{Backend, BertEmbedder, EmbedOptions};
use semantic_router::embed::kernel::{Bf16Product, Precision};
use semantic_router::embed::model_files::{resolve, ModelManifest};
use semantic_router::embed::window::Window;
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

/// An embedder with explicit options (the tests' shared one has the defaults).
fn embedder_with(precision: Precision, window: Window) -> BertEmbedder {
    embedder_with_options(EmbedOptions {
        precision,
        window,
        bf16_product: None,
    })
}

fn embedder_with_options(options: EmbedOptions) -> BertEmbedder {
    let files = resolve(&ModelManifest::default_manifest(), &common::model_source()).unwrap();
    BertEmbedder::load_with_options(&files, candle_core::Device::Cpu, Backend::Packed, options)
        .unwrap()
}

/// Compares every reference text embedded by `embedder` (tokens up to `max_tokens`); returns
/// the minimum cosine.
fn check_references(
    embedder: &BertEmbedder,
    refs: &[Reference],
    max_tokens: usize,
    min_cos: f32,
    max_abs_diff: f32,
) -> f32 {
    let mut worst = f32::INFINITY;
    for r in refs.iter().filter(|r| r.tokens <= max_tokens) {
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
        assert!(cos >= min_cos, "cosine {cos} for {:?}", r.text);
        assert!(
            max_diff < max_abs_diff,
            "max |Δ| {max_diff} for {:?}",
            r.text
        );
    }
    worst
}

#[test]
fn f32_embeddings_match_sentence_transformers() {
    let Some(refs) = references() else {
        eprintln!("SKIPPED: ../shared/fixtures is absent");
        return;
    };
    let embedder = embedder_with(Precision::F32, Window::FULL);
    assert_eq!(embedder.precision(), Some(Precision::F32));
    let worst = check_references(&embedder, &refs, 256, 0.9999, 2e-3);
    eprintln!(
        "f32: {} reference texts, minimum cosine {worst}",
        refs.len()
    );
}

#[test]
fn bf16_embeddings_match_sentence_transformers() {
    let Some(refs) = references() else {
        eprintln!("SKIPPED: ../shared/fixtures is absent");
        return;
    };
    if !semantic_router::embed::bf16::supported() {
        eprintln!("SKIPPED: this CPU has no AVX-512 BF16 (the f32 path serves it)");
        return;
    }
    // Both products, whichever this CPU runs faster: each may be the one in production.
    for product in [Bf16Product::Dot, Bf16Product::Widen] {
        let embedder = embedder_with_options(EmbedOptions {
            precision: Precision::Bf16,
            window: Window::FULL,
            bf16_product: Some(product),
        });
        assert_eq!(embedder.precision(), Some(Precision::Bf16));
        assert_eq!(embedder.bf16_product(), Some(product));
        let worst = check_references(&embedder, &refs, 256, 0.999, 1e-2);
        eprintln!(
            "bf16 ({}): {} reference texts, minimum cosine {worst}",
            product.name(),
            refs.len()
        );
    }
}

#[test]
fn default_embedder_matches_sentence_transformers_inside_its_window() {
    let Some(refs) = references() else {
        eprintln!("SKIPPED: ../shared/fixtures is absent");
        return;
    };
    let embedder = common::embedder();
    let window = embedder.window();
    let worst = check_references(&embedder, &refs, window.head + window.tail, 0.999, 1e-2);
    eprintln!("default options: minimum cosine {worst}");
}

#[test]
fn a_windowed_prompt_is_routed_from_its_head_and_tail() {
    let embedder = common::embedder();
    let window = embedder.window();
    let filler = "The committee reviewed the budget line by line and noted every change. ";
    let head = "Summarise the following notes for the board. ";
    let tail = " Which of these items were postponed, and why?";
    // About 280 filler tokens after the head and 140 before the tail: more than the window.
    let prompt = |middle: &str| {
        format!(
            "{head}{}{}{}{tail}",
            filler.repeat(20),
            middle.repeat(20),
            filler.repeat(10)
        )
    };
    let a = embedder.embed(&prompt(filler)).unwrap();
    assert!(a.truncated);
    assert_eq!(a.tokens, window.head + window.tail);
    // The middle is outside the window; the head and the tail are inside it.
    let other_middle = embedder
        .embed(&prompt(
            "Rain fell on the harbour while the ships waited to unload. ",
        ))
        .unwrap();
    assert!(a.embedding.cosine(&other_middle.embedding) > 0.99999);
    let other_tail = embedder
        .embed(&format!(
            "{head}{} Translate it into French.",
            filler.repeat(40)
        ))
        .unwrap();
    assert!(a.embedding.cosine(&other_tail.embedding) < 0.999);
    let other_head = embedder
        .embed(&format!(
            "Write a poem about this. {}{tail}",
            filler.repeat(40)
        ))
        .unwrap();
    assert!(a.embedding.cosine(&other_head.embedding) < 0.999);
    // A huge prompt's tail comes from its end, tokenized in a bounded window.
    let huge = format!("{head}{}{tail}", filler.repeat(20_000));
    let b = embedder.embed(&huge).unwrap();
    assert_eq!(b.tokens, a.tokens);
    assert!(b.embedding.cosine(&a.embedding) > 0.99999);
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
        let window = embedder.window();
        if r.tokens <= window.head + window.tail {
            assert!(b.embedding.cosine(&r.embedding) >= 0.999, "{:?}", r.text);
        }
    }
}

#[test]
fn a_megabyte_prompt_is_truncated_like_its_first_256_tokens() {
    let embedder = embedder_with(Precision::best(), Window::FULL);
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
    let Some(refs) = references() else {
        eprintln!("SKIPPED: ../shared/fixtures is absent");
        return;
    };
    // The candle-ops forward is what runs on cuda/metal; the same code on the CPU must agree
    // with sentence-transformers and with the packed CPU path.
    let files = resolve(&ModelManifest::default_manifest(), &common::model_source()).unwrap();
    let full = EmbedOptions {
        precision: Precision::F32,
        window: Window::FULL,
        bf16_product: None,
    };
    let tensor =
        BertEmbedder::load_with_options(&files, candle_core::Device::Cpu, Backend::Tensor, full)
            .unwrap();
    let packed = embedder_with(Precision::F32, Window::FULL);
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
