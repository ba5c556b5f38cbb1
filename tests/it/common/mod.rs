//! Shared test fixtures: the real embedder (loaded once per test binary), paths, temp dirs.

use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use semantic_router::archetypes::{ExampleSet, Strictness};
use semantic_router::decide::Policy;
use semantic_router::embed::bert::BertEmbedder;
use semantic_router::embed::model_files::{resolve, ModelManifest, ModelSource};
use semantic_router::embed::Embedder;
use semantic_router::index::{HnswParams, LoadedIndex};
use semantic_router::indexer::build_index;
use semantic_router::live::LiveState;
use semantic_router::pipeline::{Pipeline, Snapshot};
use semantic_router::serve::{Core, CoreInfo};

pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// `../shared` beside the project: present in CI and dev checkouts, absent in a user's clone.
pub fn shared_dir() -> Option<PathBuf> {
    let dir = repo_root().join("../shared");
    dir.is_dir().then_some(dir)
}

/// A data file from `../shared/data`, or `None` with a line saying the test was skipped.
pub fn shared_data(name: &str) -> Option<PathBuf> {
    let path = shared_dir()?.join("data").join(name);
    if path.is_file() {
        Some(path)
    } else {
        eprintln!(
            "SKIPPED: {} is absent (../shared/data is not beside this checkout)",
            path.display()
        );
        None
    }
}

pub fn model_source() -> ModelSource {
    match std::env::var_os("ROUTER_MODEL_DIR") {
        Some(dir) => ModelSource::Dir(dir.into()),
        None => ModelSource::Auto {
            models_root: repo_root().join("models"),
        },
    }
}

/// The real embedder, loaded once for the whole test binary (a test-only cache: the library
/// itself holds no globals). Resolving may fetch the model, exactly as `router serve` would.
pub fn embedder() -> Arc<BertEmbedder> {
    static EMBEDDER: OnceLock<Arc<BertEmbedder>> = OnceLock::new();
    EMBEDDER
        .get_or_init(|| {
            let manifest = ModelManifest::default_manifest();
            let files = resolve(&manifest, &model_source()).unwrap_or_else(|e| {
                panic!("the real model is needed: {e}\nFetch it with `cargo run --release -- model fetch` or set ROUTER_MODEL_DIR")
            });
            Arc::new(BertEmbedder::load(&files, candle_core::Device::Cpu).expect("model loads"))
        })
        .clone()
}

pub fn dyn_embedder() -> Arc<dyn Embedder> {
    embedder()
}

pub fn archetypes_dir() -> PathBuf {
    repo_root().join("archetypes/examples")
}

pub fn policy_path() -> PathBuf {
    repo_root().join("archetypes/policy.toml")
}

pub fn read_jsonl(path: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(path)
        .expect("readable jsonl")
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).expect("valid json line"))
        .collect()
}

/// The index of the shipped archetypes, built once per test binary with the real model.
pub fn shipped_index() -> Arc<LoadedIndex> {
    static INDEX: OnceLock<Arc<LoadedIndex>> = OnceLock::new();
    INDEX
        .get_or_init(|| {
            let examples = ExampleSet::load(&archetypes_dir(), Strictness::Archetypes)
                .expect("shipped archetypes are valid");
            let index = build_index(
                &examples,
                embedder().as_ref(),
                HnswParams::default(),
                &|_, _| {},
            )
            .expect("index builds");
            Arc::new(index)
        })
        .clone()
}

pub fn shipped_policy() -> Arc<Policy> {
    Arc::new(Policy::load(&policy_path()).expect("shipped policy is valid"))
}

/// A live state and pipeline over the shipped policy and archetypes.
pub fn core() -> Core {
    let embedder = dyn_embedder();
    let dims = embedder.dims();
    let snapshot =
        Snapshot::new(shipped_policy(), shipped_index(), dims).expect("policy and index agree");
    Core {
        pipeline: Arc::new(Pipeline::new(embedder)),
        live: Arc::new(LiveState::new(snapshot, dims)),
        info: CoreInfo {
            model: embedder_fingerprint(),
            device: "cpu",
        },
    }
}

pub fn embedder_fingerprint() -> semantic_router::types::ModelFingerprint {
    embedder().fingerprint().clone()
}
