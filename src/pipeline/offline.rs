//! Loading for offline commands (`router classify`, `router eval --conversations`): the model,
//! the policy and one bundle, without a reloader or live state.

use std::sync::Arc;

use super::bundle::default_bundle_dir;
use super::compose::{load_bundle, load_embedder, ComposeError, ModelSettings, StatePaths};
use super::{Pipeline, PipelineOptions, Snapshot};
use crate::decide::Policy;
use crate::embed::Embedder;
use crate::store::ArchetypeStore;

/// What an offline command routes with: the pipeline (no reloader, no live state) and one
/// snapshot of the policy and bundle.
pub struct OfflineCore {
    pub pipeline: Pipeline,
    pub snapshot: Arc<Snapshot>,
}

/// Loads the model, policy and bundle for an offline command. With `paths.index` the named
/// bundle is used as is and the archetypes are not read.
pub fn load_offline(
    paths: &StatePaths,
    model: &ModelSettings,
    progress: &dyn Fn(usize, usize),
) -> Result<OfflineCore, ComposeError> {
    let policy = Policy::load(&paths.policy)?;
    let (embedder, _) = load_embedder(model)?;
    let examples = match &paths.index {
        Some(_) => crate::store::ExampleSet::default(),
        None => ArchetypeStore::open(&paths.archetypes, &paths.data_dir)?
            .examples()
            .clone(),
    };
    let bundle = load_bundle(
        paths.index.as_deref(),
        &default_bundle_dir(&paths.data_dir),
        &examples,
        embedder.as_ref(),
        None,
        progress,
    )?;
    let snapshot = Snapshot::new(Arc::new(policy), Arc::new(bundle), embedder.dims())?;
    let pipeline = Pipeline::new(embedder, PipelineOptions::default());
    Ok(OfflineCore {
        pipeline,
        snapshot: Arc::new(snapshot),
    })
}
