//! Shared test fixtures: the real embedder (loaded once per test binary), paths, temp dirs,
//! ready cores; `http` holds the helpers for driving the app through `oneshot`.

use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use semantic_router::decide::Policy;
use semantic_router::embed::bert::BertEmbedder;
use semantic_router::embed::model_files::{resolve, ModelManifest, ModelSource};
use semantic_router::embed::Embedder;
use semantic_router::index::HnswParams;
use semantic_router::pipeline::bundle::Bundle;
use semantic_router::pipeline::compose::{assemble, Core, CoreInfo, CoreParts, StatePaths};
use semantic_router::pipeline::indexer::{build_index, rebuild_index, Reuse};
use semantic_router::pipeline::PipelineOptions;
use semantic_router::store::ArchetypeStore;
use semantic_router::store::{ExampleSet, Strictness};

pub mod chromium;
pub mod http;
pub mod postgres;
pub mod process;

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
    // Library logs (errors behind a 500, reload outcomes) show with `--nocapture`.
    let _ = tracing_subscriber::fmt()
        .with_env_filter("warn")
        .with_test_writer()
        .try_init();
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
pub fn shipped_index() -> Arc<Bundle> {
    static INDEX: OnceLock<Arc<Bundle>> = OnceLock::new();
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

/// A ready core over the shipped policy and archetypes, with its own empty data directory
/// (left in the temp dir: the core's reloader may write to it after the test's last line).
pub fn core() -> Core {
    let data_dir = tempfile::tempdir().expect("temp dir").keep();
    core_in(&data_dir)
}

pub fn core_in(data_dir: &Path) -> Core {
    core_with_policy(data_dir, &policy_path())
}

/// A ready core reading its policy from `policy` (so a test can edit and reload it).
pub fn core_with_policy(data_dir: &Path, policy: &Path) -> Core {
    core_from(data_dir, policy, PipelineOptions::default())
}

/// A ready core whose pipeline is sized by `options` (`router serve` takes the retrieval
/// cache's size from its limits this way), in its own empty data directory.
pub fn core_with_options(options: PipelineOptions) -> Core {
    let data_dir = tempfile::tempdir().expect("temp dir").keep();
    core_from(&data_dir, &policy_path(), options)
}

/// A ready core serving the tenants of `tenants_file`, in `data_dir`.
pub fn core_with_tenants(data_dir: &Path, tenants_file: &Path) -> Core {
    let tenants =
        semantic_router::live::tenants::load_tenants(tenants_file).expect("tenants file is valid");
    core_built(
        data_dir,
        &policy_path(),
        PipelineOptions::default(),
        tenants,
    )
}

fn core_from(data_dir: &Path, policy: &Path, options: PipelineOptions) -> Core {
    core_built(data_dir, policy, options, Vec::new())
}

fn core_built(
    data_dir: &Path,
    policy: &Path,
    options: PipelineOptions,
    tenants: Vec<semantic_router::live::TenantConfig>,
) -> Core {
    let paths = StatePaths {
        policy: policy.to_owned(),
        archetypes: archetypes_dir(),
        data_dir: data_dir.to_owned(),
        index: None,
        shared_store: None,
        tenants: None,
    };
    let store = ArchetypeStore::open(&paths.archetypes, &paths.data_dir)
        .expect("shipped archetypes are valid");
    // A private index (a rebuild may replace it), made from the shared index's stored vectors.
    let index = rebuild_index(
        store.examples(),
        embedder().as_ref(),
        HnswParams::default(),
        Reuse::previous(&shipped_index()),
        &|_, _| {},
    )
    .expect("index builds");
    assemble(
        CoreParts {
            embedder: dyn_embedder(),
            info: CoreInfo {
                model: embedder_fingerprint(),
                device: "cpu",
            },
            policy: Policy::load(&paths.policy).expect("shipped policy is valid"),
            store,
            bundle: index,
            paths,
            options,
            tenants,
        },
        &runtime(),
    )
    .expect("core assembles")
}

/// The current tokio runtime, or one kept for the sync tests.
pub fn runtime() -> tokio::runtime::Handle {
    static RUNTIME: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    tokio::runtime::Handle::try_current().unwrap_or_else(|_| {
        RUNTIME
            .get_or_init(|| {
                tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(1)
                    .enable_all()
                    .build()
                    .expect("runtime")
            })
            .handle()
            .clone()
    })
}

pub fn embedder_fingerprint() -> semantic_router::types::ModelFingerprint {
    embedder().fingerprint().clone()
}
