//! Building the router's core: resolve and verify the model, load it, warm it with one probe
//! embedding, read the policy and archetypes, load the saved index bundle or build and save one.
//! Shared by `router serve` and the offline commands so both start the same way.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use serde::Serialize;

use crate::archetypes::{ExampleSet, Strictness};
use crate::decide::Policy;
use crate::embed::bert::BertEmbedder;
use crate::embed::device::{device_name, select_device, DeviceChoice};
use crate::embed::model_files::{resolve, ModelManifest, ModelSource};
use crate::embed::Embedder;
use crate::index::bundle::default_bundle_dir;
use crate::index::{HnswParams, LoadedIndex};
use crate::indexer::{load_or_build, IndexOrigin};
use crate::live::LiveState;
use crate::pipeline::{Pipeline, Snapshot};
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
    let embedder = BertEmbedder::load(&files, device.clone())?;
    // One probe so the first request does not pay for lazy initialisation.
    embedder.embed("warm up").context("warm-up embedding")?;
    let info = CoreInfo {
        model: embedder.fingerprint().clone(),
        device: device_name(&device),
    };
    tracing::info!(model = %info.model.id, revision = %info.model.revision, device = info.device, dir = %files.dir.display(), "model ready");
    Ok((Arc::new(embedder), info))
}

/// Where the index comes from.
#[derive(Debug, Clone)]
pub enum IndexSource {
    /// A bundle the user named: loaded and verified, never rebuilt.
    Bundle(PathBuf),
    /// Built from archetypes, cached as a bundle under the data directory.
    Archetypes { dir: PathBuf, data_dir: PathBuf },
}

/// Loads the index from `source`; `progress(done, total)` reports embedding progress.
pub fn load_index(
    source: &IndexSource,
    embedder: &dyn Embedder,
    progress: &dyn Fn(usize, usize),
) -> anyhow::Result<LoadedIndex> {
    match source {
        IndexSource::Bundle(dir) => Ok(LoadedIndex::load(dir, embedder.fingerprint())?),
        IndexSource::Archetypes { dir, data_dir } => {
            let examples = ExampleSet::load(dir, Strictness::Archetypes)
                .with_context(|| format!("reading archetypes from {}", dir.display()))?;
            let bundle_dir = default_bundle_dir(data_dir);
            let (index, origin) = load_or_build(
                &bundle_dir,
                &examples,
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
    }
}

/// Everything `serve` needs, built in order; `phase` tells `/ready` where start-up is.
pub fn build_core(
    model: &ModelSettings,
    policy_path: &std::path::Path,
    index_source: &IndexSource,
    phase: &(dyn Fn(String) + Sync),
) -> anyhow::Result<Core> {
    phase("loading the routing policy".into());
    let policy = Policy::load(policy_path)?;
    phase("loading the model".into());
    let (embedder, info) = load_embedder(model)?;
    phase("loading the index".into());
    let bar = progress_bar("embedding archetypes");
    let index = load_index(index_source, embedder.as_ref(), &|done, total| {
        bar.set_length(total as u64);
        bar.set_position(done as u64);
        phase(format!(
            "building the index: {done}/{total} archetypes embedded"
        ));
    })?;
    bar.finish_and_clear();
    let dims = embedder.dims();
    let snapshot = Snapshot::new(Arc::new(policy), Arc::new(index), dims)?;
    Ok(Core {
        pipeline: Arc::new(Pipeline::new(embedder)),
        live: Arc::new(LiveState::new(snapshot, dims)),
        info,
    })
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
