//! Building the router's core: resolve and verify the model, load it, warm it with one probe
//! embedding, read the policy and archetypes, load the saved index bundle or build and save one.
//! Shared by `router serve` and the offline commands so both start the same way.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use anyhow::Context;
use serde::Serialize;

use crate::archetypes::ExampleSet;
use crate::decide::Policy;
use crate::embed::bert::{Backend, BertEmbedder, EmbedOptions};
use crate::embed::device::{device_name, select_device, DeviceChoice};
use crate::embed::model_files::{resolve, ModelManifest, ModelSource};
use crate::embed::Embedder;
use crate::index::bundle::default_bundle_dir;
use crate::index::{HnswParams, LoadedIndex};
use crate::indexer::{load_or_build, IndexOrigin};
use crate::live::{LiveState, Reloader};
use crate::pipeline::{Pipeline, Snapshot};
use crate::store::ArchetypeStore;
use crate::types::ModelFingerprint;

use super::Core;

/// Where the model comes from.
#[derive(Debug, Clone)]
pub struct ModelSettings {
    /// Exactly this directory (verified, no fallback), or `None` for cache → hub → mirror.
    pub model_dir: Option<PathBuf>,
    /// Root of the local model cache (`models/`).
    pub models_root: PathBuf,
    pub device: DeviceChoice,
    /// Precision of the CPU forward pass and the routing window.
    pub embed: EmbedOptions,
}

/// What `/info` reports about the model.
#[derive(Debug, Clone, Serialize)]
pub struct CoreInfo {
    pub model: ModelFingerprint,
    pub device: &'static str,
}

/// Resolves, verifies, loads and warms the embedder.
pub fn load_embedder(settings: &ModelSettings) -> anyhow::Result<(Arc<BertEmbedder>, CoreInfo)> {
    let manifest = ModelManifest::default_manifest();
    let source = match &settings.model_dir {
        Some(dir) => ModelSource::Dir(dir.clone()),
        None => ModelSource::Auto {
            models_root: settings.models_root.clone(),
        },
    };
    let files = resolve(&manifest, &source)?;
    let device = select_device(settings.device).context("selecting the device")?;
    let backend = Backend::for_device(&device);
    let embedder =
        BertEmbedder::load_with_options(&files, device.clone(), backend, settings.embed)?;
    // One probe so the first request does not pay for lazy initialisation.
    embedder.embed("warm up").context("warm-up embedding")?;
    let info = CoreInfo {
        model: embedder.fingerprint().clone(),
        device: device_name(&device),
    };
    let precision = embedder.precision().map_or("device", |p| p.name());
    let window = embedder.window();
    tracing::info!(model = %info.model.id, revision = %info.model.revision, device = info.device, precision, window_head = window.head, window_tail = window.tail, dir = %files.dir.display(), "model ready");
    Ok((Arc::new(embedder), info))
}

/// Loads the index: the bundle the user named (verified, never rebuilt at start), or the one
/// saved in `bundle_dir` if it matches `examples`, else one built from `examples` and saved.
pub fn load_index(
    explicit: Option<&Path>,
    bundle_dir: &Path,
    examples: &ExampleSet,
    embedder: &dyn Embedder,
    progress: &dyn Fn(usize, usize),
) -> anyhow::Result<LoadedIndex> {
    if let Some(dir) = explicit {
        return Ok(LoadedIndex::load(dir, embedder.fingerprint())?);
    }
    let (index, origin) = load_or_build(
        bundle_dir,
        examples,
        embedder,
        HnswParams::default(),
        progress,
    )?;
    match origin {
        IndexOrigin::Loaded => {
            tracing::info!(dir = %bundle_dir.display(), version = index.version(), "index bundle loaded")
        }
        IndexOrigin::Built => {
            tracing::info!(dir = %bundle_dir.display(), version = index.version(), examples = examples.len(), "index built from archetypes and saved")
        }
    }
    Ok(index)
}

/// Where the service's files are.
#[derive(Debug, Clone)]
pub struct StatePaths {
    pub policy: PathBuf,
    pub archetypes: PathBuf,
    pub data_dir: PathBuf,
    /// A bundle to start from instead of the archetypes' cached bundle.
    pub index: Option<PathBuf>,
}

/// The loaded parts a [`Core`] is assembled from.
pub struct CoreParts {
    pub embedder: Arc<dyn Embedder>,
    pub info: CoreInfo,
    pub policy: Policy,
    pub store: ArchetypeStore,
    pub index: LoadedIndex,
    pub paths: StatePaths,
}

/// Joins loaded parts into a core and starts its reloader on `runtime`.
pub fn assemble(parts: CoreParts, runtime: &tokio::runtime::Handle) -> anyhow::Result<Core> {
    let dims = parts.embedder.dims();
    let snapshot = Snapshot::new(Arc::new(parts.policy), Arc::new(parts.index), dims)?;
    let live = Arc::new(LiveState::new(snapshot, dims));
    let store = Arc::new(Mutex::new(parts.store));
    let reloads = Reloader {
        live: Arc::clone(&live),
        store: Arc::clone(&store),
        embedder: Arc::clone(&parts.embedder),
        policy_path: parts.paths.policy.clone(),
        bundle_dir: default_bundle_dir(&parts.paths.data_dir),
        hnsw: HnswParams::default(),
        fit: std::sync::Mutex::new(crate::scoring::FitOptions::default()),
    }
    .spawn(runtime);
    Ok(Core {
        pipeline: Arc::new(Pipeline::new(parts.embedder)),
        live,
        info: parts.info,
        store,
        reloads,
        paths: parts.paths,
    })
}

/// Everything `serve` needs, built in order; `phase` tells `/ready` where start-up is.
pub fn build_core(
    model: &ModelSettings,
    paths: &StatePaths,
    runtime: &tokio::runtime::Handle,
    phase: &(dyn Fn(String) + Sync),
) -> anyhow::Result<Core> {
    phase("loading the routing policy".into());
    let policy = Policy::load(&paths.policy)?;
    phase("reading the archetypes".into());
    let store = ArchetypeStore::open(&paths.archetypes, &paths.data_dir)?;
    phase("loading the model".into());
    let (embedder, info) = load_embedder(model)?;
    phase("loading the index".into());
    let bar = progress_bar("embedding archetypes");
    let index = load_index(
        paths.index.as_deref(),
        &default_bundle_dir(&paths.data_dir),
        store.examples(),
        embedder.as_ref(),
        &|done, total| {
            bar.set_length(total as u64);
            bar.set_position(done as u64);
            phase(format!(
                "building the index: {done}/{total} archetypes embedded"
            ));
        },
    )?;
    bar.finish_and_clear();
    let embedder: Arc<dyn Embedder> = embedder;
    assemble(
        CoreParts {
            embedder,
            info,
            policy,
            store,
            index,
            paths: paths.clone(),
        },
        runtime,
    )
}

/// A progress bar on stderr (hidden when stderr is not a terminal).
pub fn progress_bar(message: &'static str) -> indicatif::ProgressBar {
    let bar = indicatif::ProgressBar::new(0);
    bar.set_style(
        indicatif::ProgressStyle::with_template("{msg} [{bar:30}] {pos}/{len} ({eta})")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    bar.set_message(message);
    bar
}
