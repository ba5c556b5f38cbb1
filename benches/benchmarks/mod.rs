//! Shared set-up for the benchmarks: the real model and real prompts.

pub mod classify;
pub mod decide;
pub mod embed;
pub mod search;

use std::path::PathBuf;
use std::sync::Arc;

use semantic_router::embed::bert::{Backend, BertEmbedder, EmbedOptions};
use semantic_router::embed::model_files::{resolve, ModelManifest, ModelSource};
use semantic_router::embed::Embedder;
use semantic_router::store::{read_labeled_rows, ExampleSet, Strictness};

pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The embedder with the defaults (`router serve`'s precision and routing window).
pub fn embedder() -> Arc<BertEmbedder> {
    embedder_with(EmbedOptions::default())
}

pub fn embedder_with(options: EmbedOptions) -> Arc<BertEmbedder> {
    let source = match std::env::var_os("ROUTER_MODEL_DIR") {
        Some(dir) => ModelSource::Dir(dir.into()),
        None => ModelSource::Auto {
            models_root: repo().join("models"),
        },
    };
    let files = resolve(&ModelManifest::default_manifest(), &source).unwrap_or_else(|e| {
        panic!("the benchmarks need the model: {e}; run `cargo run --release -- model fetch`")
    });
    Arc::new(
        BertEmbedder::load_with_options(&files, candle_core::Device::Cpu, Backend::Packed, options)
            .expect("model loads"),
    )
}

/// The shipped archetypes' index with its fitted scorers.
pub fn shipped_index() -> semantic_router::pipeline::bundle::Bundle {
    semantic_router::pipeline::indexer::build_index(
        &archetypes(),
        embedder().as_ref(),
        semantic_router::index::HnswParams::default(),
        &|_, _| {},
    )
    .expect("index builds")
}

pub fn archetypes() -> ExampleSet {
    ExampleSet::load(&repo().join("archetypes/examples"), Strictness::Archetypes)
        .expect("shipped archetypes")
}

/// Real prompts: CLINC150 queries and Dolly task prompts (with their passages), else archetypes.
pub fn prompts() -> Vec<String> {
    let data = repo().join("../shared/data");
    let mut texts = Vec::new();
    for file in ["clinc150.jsonl", "dolly.jsonl"] {
        if let Ok(rows) = read_labeled_rows(&data.join(file), &[]) {
            texts.extend(rows.into_iter().step_by(7).map(|r| r.text));
        }
    }
    if texts.is_empty() {
        texts = archetypes()
            .examples()
            .iter()
            .map(|e| e.text.clone())
            .collect();
    }
    texts
}

/// The first prompt whose model token count falls in `range` (counts include [CLS]/[SEP]).
pub fn prompt_with_tokens(
    embedder: &dyn Embedder,
    prompts: &[String],
    range: std::ops::RangeInclusive<usize>,
) -> String {
    prompts
        .iter()
        .find(|p| {
            embedder
                .embed(p)
                .map(|e| range.contains(&e.tokens))
                .unwrap_or(false)
        })
        .cloned()
        .unwrap_or_else(|| panic!("no prompt with {range:?} tokens"))
}
