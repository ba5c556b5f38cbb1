//! The composition root of both edges: resolve and verify the model, load it, warm it with
//! one probe embedding, read the policy and archetypes, load the saved bundle or build and
//! save one, and join them into a [`Core`] with its live state and reloader. `router serve`
//! and the offline commands start the same way, through these functions.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use serde::Serialize;

use super::bundle::{default_bundle_dir, Bundle, BundleError};
use super::indexer::{load_or_build, IndexOrigin, IndexerError};
pub use super::limits::Limits;
use super::{Pipeline, PipelineOptions, Snapshot, SnapshotError};
use crate::decide::{Policy, PolicyError};
use crate::embed::bert::{Backend, BertEmbedder, EmbedOptions};
use crate::embed::device::{device_name, select_device, DeviceChoice};
use crate::embed::model_files::{resolve, ModelFilesError, ModelManifest, ModelSource};
use crate::embed::{EmbedError, Embedder};
use crate::index::HnswParams;
use crate::live::tenants::{load_tenants, start_tenant};
use crate::live::{LiveState, ReloadHandle, Reloader};
use crate::live::{TenantConfig, Tenants};
use crate::store::shared::SharedLog;
use crate::store::{ArchetypeStore, StoreError, StoreHealth};
use crate::types::ModelFingerprint;

#[derive(Debug, thiserror::Error)]
pub enum ComposeError {
    #[error(transparent)]
    ModelFiles(#[from] ModelFilesError),
    /// Runtime or user error: the chosen device cannot be used (e.g. no GPU for `cuda`).
    #[error("selecting the device: {0}")]
    Device(String),
    #[error("loading the model: {0}")]
    Model(#[source] EmbedError),
    #[error("warm-up embedding: {0}")]
    WarmUp(#[source] EmbedError),
    #[error(transparent)]
    Policy(#[from] PolicyError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Bundle(#[from] BundleError),
    #[error(transparent)]
    Indexer(#[from] IndexerError),
    #[error(transparent)]
    Snapshot(#[from] SnapshotError),
    #[error(transparent)]
    Tenants(#[from] crate::live::TenantsError),
}

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

/// Where the service's files are.
#[derive(Debug, Clone)]
pub struct StatePaths {
    pub policy: PathBuf,
    pub archetypes: PathBuf,
    pub data_dir: PathBuf,
    /// A bundle to start from instead of the archetypes' cached bundle.
    pub index: Option<PathBuf>,
    /// Archetype changes in PostgreSQL instead of the journal in `data_dir` (`serve` only).
    pub shared_store: Option<SharedStoreSettings>,
    /// The tenants file (`serve` only): tenant namespaces, policies and tokens.
    pub tenants: Option<PathBuf>,
}

/// The shared archetype store (`--store`).
#[derive(Debug, Clone)]
pub struct SharedStoreSettings {
    pub url: String,
    /// Catch-up read interval when no notification arrives.
    pub sync_every: std::time::Duration,
}

/// Settings of the service (`router serve`), as the command line gives them.
#[derive(Debug, Clone)]
pub struct ServiceSettings {
    pub addr: std::net::SocketAddr,
    pub paths: StatePaths,
    pub model: ModelSettings,
    pub limits: Limits,
    /// The admin bearer token's secret; `None` turns the admin and write endpoints off.
    pub admin_secret: Option<String>,
    /// How long to keep serving, `/ready` answering 503, after the first shutdown signal.
    pub drain: std::time::Duration,
    /// Where and how the structured decision log is written.
    pub decision_log: DecisionLogSettings,
}

/// Where decision-log lines go (`--decision-log`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DecisionLogDestination {
    Off,
    Stderr,
    Stdout,
    /// Appended to this file (created if missing).
    File(PathBuf),
}

impl std::str::FromStr for DecisionLogDestination {
    type Err = std::convert::Infallible;

    /// `off`, `stderr`, `stdout`, or anything else as a file path.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s {
            "off" => Self::Off,
            "stderr" => Self::Stderr,
            "stdout" | "-" => Self::Stdout,
            path => Self::File(PathBuf::from(path)),
        })
    }
}

/// The decision log's settings (`--decision-log`, `--decision-log-sample`, `--log-prompts`).
#[derive(Debug, Clone, PartialEq)]
pub struct DecisionLogSettings {
    pub destination: DecisionLogDestination,
    /// Share of decisions written, 0.0-1.0; the choice is a hash of the decision id.
    pub sample: f64,
    /// Writes the routed text (cut to a bound) into each line; off by default.
    pub log_prompts: bool,
}

impl Default for DecisionLogSettings {
    fn default() -> Self {
        Self {
            destination: DecisionLogDestination::Stderr,
            sample: 1.0,
            log_prompts: false,
        }
    }
}

/// Everything a request needs once the model is warm and a snapshot is loaded.
pub struct Core {
    pub pipeline: Arc<Pipeline>,
    pub live: Arc<LiveState>,
    pub info: CoreInfo,
    /// Shipped archetypes + the journal of API changes. Locked only by archetype writes and
    /// rebuilds, never by classification.
    pub store: Arc<Mutex<ArchetypeStore>>,
    /// The store's state, readable without its lock.
    pub store_health: Arc<StoreHealth>,
    /// The configured tenants' namespaces (empty without a tenants file).
    pub tenants: Arc<Tenants>,
    pub reloads: ReloadHandle,
    pub paths: StatePaths,
}

impl Core {
    /// The live state serving `tenant`: a configured tenant's own, else the shared one.
    /// With a tenants file, a tenant it does not declare is an error naming the known ones.
    pub fn live_for(&self, tenant: Option<&str>) -> Result<&Arc<LiveState>, String> {
        match tenant {
            Some(name) if !self.tenants.is_empty() => {
                self.tenants.get(name).map(|t| &t.live).ok_or_else(|| {
                    format!(
                        "tenant `{name}` is not configured (tenants: {})",
                        self.tenants.names().join(", ")
                    )
                })
            }
            _ => Ok(&self.live),
        }
    }
}

/// Resolves, verifies, loads and warms the embedder.
pub fn load_embedder(
    settings: &ModelSettings,
) -> Result<(Arc<BertEmbedder>, CoreInfo), ComposeError> {
    let manifest = ModelManifest::default_manifest();
    let source = match &settings.model_dir {
        Some(dir) => ModelSource::Dir(dir.clone()),
        None => ModelSource::Auto {
            models_root: settings.models_root.clone(),
        },
    };
    let files = resolve(&manifest, &source)?;
    let device = select_device(settings.device).map_err(|e| ComposeError::Device(e.to_string()))?;
    let backend = Backend::for_device(&device);
    let embedder = BertEmbedder::load_with_options(&files, device.clone(), backend, settings.embed)
        .map_err(ComposeError::Model)?;
    // One probe so the first request does not pay for lazy initialisation.
    embedder.embed("warm up").map_err(ComposeError::WarmUp)?;
    let info = CoreInfo {
        model: embedder.fingerprint().clone(),
        device: device_name(&device),
    };
    let precision = embedder.precision().map_or("device", |p| p.name());
    let window = embedder.window();
    tracing::info!(model = %info.model.id, revision = %info.model.revision, device = info.device, precision, bf16_product = embedder.bf16_product().map(|p| p.name()), window_head = window.head, window_tail = window.tail, dir = %files.dir.display(), "model ready");
    Ok((Arc::new(embedder), info))
}

/// Loads the bundle: the one the user named (verified, never rebuilt at start), or the one
/// saved in `bundle_dir` if it matches `examples`, else one built from `examples` and saved.
pub fn load_bundle(
    explicit: Option<&Path>,
    bundle_dir: &Path,
    examples: &crate::store::ExampleSet,
    embedder: &dyn Embedder,
    cache: Option<&dyn crate::store::VectorCache>,
    progress: &dyn Fn(usize, usize),
) -> Result<Bundle, ComposeError> {
    if let Some(dir) = explicit {
        return Ok(Bundle::load(dir, embedder.fingerprint())?);
    }
    let (bundle, origin) = load_or_build(
        bundle_dir,
        examples,
        embedder,
        HnswParams::default(),
        cache,
        progress,
    )?;
    match origin {
        IndexOrigin::Loaded => {
            tracing::info!(dir = %bundle_dir.display(), version = bundle.version(), "index bundle loaded")
        }
        IndexOrigin::Built => {
            tracing::info!(dir = %bundle_dir.display(), version = bundle.version(), examples = examples.len(), "index built from archetypes and saved")
        }
    }
    Ok(bundle)
}

pub use super::offline::{load_offline, OfflineCore};

/// The loaded parts a [`Core`] is assembled from.
pub struct CoreParts {
    pub embedder: Arc<dyn Embedder>,
    pub info: CoreInfo,
    pub policy: Policy,
    pub store: ArchetypeStore,
    pub bundle: Bundle,
    pub paths: StatePaths,
    pub options: PipelineOptions,
    pub tenants: Vec<TenantConfig>,
}

/// Joins loaded parts into a core and starts its reloader on `runtime`.
pub fn assemble(parts: CoreParts, runtime: &tokio::runtime::Handle) -> Result<Core, ComposeError> {
    let dims = parts.embedder.dims();
    let shared_bundle = Arc::new(parts.bundle);
    let vectors = parts.store.vector_cache();
    let tenants = parts
        .tenants
        .into_iter()
        .map(|config| {
            start_tenant(
                config,
                &parts.paths.policy,
                &parts.store,
                &shared_bundle,
                parts.embedder.as_ref(),
                &parts.paths.data_dir,
            )
        })
        .collect::<Result<Vec<_>, _>>()?;
    let tenants = Arc::new(Tenants::new(tenants));
    let snapshot = Snapshot::new(Arc::new(parts.policy), shared_bundle, dims)?;
    let live = Arc::new(LiveState::new(snapshot, dims));
    let store_health = parts.store.health();
    let listen = parts.store.listen_config();
    let shared_uncertain = parts
        .store
        .shared_uncertain(parts.options.uncertain_capacity);
    let store = Arc::new(Mutex::new(parts.store));
    let reloads = Reloader {
        live: Arc::clone(&live),
        store: Arc::clone(&store),
        embedder: Arc::clone(&parts.embedder),
        policy_path: parts.paths.policy.clone(),
        bundle_dir: default_bundle_dir(&parts.paths.data_dir),
        hnsw: HnswParams::default(),
        fit: Mutex::new(crate::scoring::FitOptions::default()),
        tenants: Arc::clone(&tenants),
        vectors,
    }
    .spawn(runtime);
    if let (Some(listen), Some(shared)) = (listen, &parts.paths.shared_store) {
        crate::live::store_sync::StoreSync {
            store: Arc::clone(&store),
            health: Arc::clone(&store_health),
            listen,
            every: shared.sync_every,
            reloads: reloads.clone(),
        }
        .spawn(runtime);
    }
    let pipeline = Pipeline::new(parts.embedder, parts.options);
    if let Some(shared) = shared_uncertain {
        pipeline.uncertain().share(shared);
    }
    Ok(Core {
        pipeline: Arc::new(pipeline),
        live,
        info: parts.info,
        store,
        store_health,
        tenants,
        reloads,
        paths: parts.paths,
    })
}

/// Everything `serve` needs, built in order; `phase` tells `/ready` where start-up is.
pub fn build_core(
    model: &ModelSettings,
    paths: &StatePaths,
    options: PipelineOptions,
    runtime: &tokio::runtime::Handle,
    phase: &(dyn Fn(String) + Sync),
) -> Result<Core, ComposeError> {
    phase("loading the routing policy".into());
    let policy = Policy::load(&paths.policy)?;
    let store = match &paths.shared_store {
        None => {
            phase("reading the archetypes".into());
            ArchetypeStore::open(&paths.archetypes, &paths.data_dir)?
        }
        Some(shared) => {
            phase("connecting to the shared archetype store".into());
            let log = SharedLog::connect(&shared.url, runtime.clone())?;
            phase("reading the shared archetype store".into());
            ArchetypeStore::open_shared(&paths.archetypes, log)?
        }
    };
    let tenants = match &paths.tenants {
        Some(file) => load_tenants(file)?,
        None => Vec::new(),
    };
    phase("loading the model".into());
    let (embedder, info) = load_embedder(model)?;
    phase("loading the index".into());
    let bar = progress_bar("embedding archetypes");
    let bundle = load_bundle(
        paths.index.as_deref(),
        &default_bundle_dir(&paths.data_dir),
        store.examples(),
        embedder.as_ref(),
        store.vector_cache().as_deref(),
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
            bundle,
            paths: paths.clone(),
            options,
            tenants,
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
