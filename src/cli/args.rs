//! Flags shared by several commands. Every flag has an env var and a doc comment.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::Args;

use anyhow::Context;

use crate::embed::bert::EmbedOptions;
use crate::embed::device::DeviceChoice;
use crate::embed::kernel::{Bf16Product, Precision};
use crate::embed::window::Window;
use crate::pipeline::compose::{
    DecisionLogDestination, DecisionLogSettings, Limits, ModelSettings, ServiceSettings,
    SharedStoreSettings, StatePaths,
};

#[derive(Debug, Clone, Args)]
pub struct ModelArgs {
    /// Use the model files in exactly this directory (verified against models/manifest.toml; no download).
    #[arg(long, env = "ROUTER_MODEL_DIR")]
    pub model_dir: Option<PathBuf>,
    /// Root of the local model cache; missing files are fetched into <root>/<model>/.
    #[arg(long, env = "ROUTER_MODELS_ROOT", default_value = "models")]
    pub models_root: PathBuf,
    /// Device that runs the model: auto, cpu, cuda or metal (GPUs need the matching cargo feature).
    #[arg(long, env = "ROUTER_DEVICE", default_value = "auto", value_parser = parse_device)]
    pub device: DeviceChoice,
    /// Precision of the CPU linear layers: auto (bf16 where the CPU has AVX-512 BF16, else f32), f32 or bf16.
    #[arg(long, env = "ROUTER_PRECISION", default_value = "auto", value_parser = parse_precision)]
    pub precision: PrecisionChoice,
    /// Instructions that multiply bf16 weights: auto (the faster of the two on this CPU, timed at load), dot (AVX-512 BF16 dot products, activations rounded to bf16) or widen (weights widened to f32, f32 multiply-adds).
    #[arg(long, env = "ROUTER_BF16_PRODUCT", default_value = "auto", value_parser = parse_bf16_product)]
    pub bf16_product: Bf16ProductChoice,
    /// Routing window of long prompts: tokens kept from the start ([CLS] and [SEP] included); 256 with --window-tail 0 is the model's whole input.
    #[arg(long, env = "ROUTER_WINDOW_HEAD", default_value_t = Window::DEFAULT.head)]
    pub window_head: usize,
    /// Routing window of long prompts: word pieces kept from the end of a prompt longer than the window.
    #[arg(long, env = "ROUTER_WINDOW_TAIL", default_value_t = Window::DEFAULT.tail)]
    pub window_tail: usize,
}

/// `--precision`: one precision, or `None` for the best of the CPU (`auto`).
#[derive(Debug, Clone, Copy)]
pub struct PrecisionChoice(pub Option<Precision>);

fn parse_precision(s: &str) -> Result<PrecisionChoice, String> {
    match s {
        "auto" => Ok(PrecisionChoice(None)),
        other => other.parse().map(|p| PrecisionChoice(Some(p))),
    }
}

/// `--bf16-product`: one product, or `None` for the faster on this CPU (`auto`).
#[derive(Debug, Clone, Copy)]
pub struct Bf16ProductChoice(pub Option<Bf16Product>);

fn parse_bf16_product(s: &str) -> Result<Bf16ProductChoice, String> {
    match s {
        "auto" => Ok(Bf16ProductChoice(None)),
        other => other.parse().map(|p| Bf16ProductChoice(Some(p))),
    }
}

fn parse_device(s: &str) -> Result<DeviceChoice, String> {
    s.parse()
}

impl ModelArgs {
    pub fn settings(&self) -> ModelSettings {
        ModelSettings {
            model_dir: self.model_dir.clone(),
            models_root: self.models_root.clone(),
            device: self.device,
            embed: EmbedOptions {
                precision: self.precision.0.unwrap_or_else(Precision::best),
                bf16_product: self.bf16_product.0,
                window: Window {
                    head: self.window_head,
                    tail: self.window_tail,
                },
            },
        }
    }
}

/// Where the policy, archetypes and saved index live (shared by `serve` and `classify`).
#[derive(Debug, Clone, Args)]
pub struct StateArgs {
    /// Labeled archetype examples (a JSONL file or a directory of them).
    #[arg(long, env = "ROUTER_ARCHETYPES", default_value = "archetypes/examples")]
    pub archetypes: PathBuf,
    /// The routing policy file.
    #[arg(long, env = "ROUTER_POLICY", default_value = "archetypes/policy.toml")]
    pub policy: PathBuf,
    /// Where index bundles are saved between runs.
    #[arg(long, env = "ROUTER_DATA_DIR", default_value = "data")]
    pub data_dir: PathBuf,
    /// Serve this index bundle (from `router train`) instead of building one from --archetypes.
    #[arg(long, env = "ROUTER_INDEX")]
    pub index: Option<PathBuf>,
}

#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    /// Address to listen on (port 0 picks a free port; the log says which).
    #[arg(long, env = "ROUTER_ADDR", default_value = "127.0.0.1:8080")]
    pub addr: SocketAddr,
    #[command(flatten)]
    pub state: StateArgs,
    /// Keep archetype changes in PostgreSQL, shared by every replica
    /// (postgres://USER:PASS@HOST:PORT/DB), instead of the local journal in --data-dir.
    /// The router creates and migrates its tables.
    #[arg(long, env = "ROUTER_STORE")]
    pub store: Option<String>,
    /// With --store: how often a replica reads the shared changes even without a
    /// notification, in ms (a missed notification costs at most this long).
    #[arg(long, env = "ROUTER_STORE_SYNC_MS", default_value_t = 2000)]
    pub store_sync_ms: u64,
    /// Tenant namespaces (TOML: `[tenants.NAME]` with optional `policy`, `replace` and
    /// `token_sha256`): each tenant's examples, index, fitted head and policy are its own.
    #[arg(long, env = "ROUTER_TENANTS")]
    pub tenants: Option<PathBuf>,
    #[command(flatten)]
    pub model: ModelArgs,
    #[command(flatten)]
    pub edge: super::EdgeArgs,
    /// Requests admitted at once (queued for the model or in it): a bound on memory; more
    /// wait up to --queue-budget-ms for a slot.
    #[arg(long, env = "ROUTER_MAX_IN_FLIGHT", default_value_t = Limits::default().max_in_flight)]
    pub max_in_flight: usize,
    /// Longest a request waits for the model, in ms: refused at once with 429 and
    /// Retry-After when the texts queued ahead of it would take longer (or no slot of
    /// --max-in-flight comes free within it).
    #[arg(long, env = "ROUTER_QUEUE_BUDGET_MS", default_value_t = Limits::default().queue_budget_ms)]
    pub queue_budget_ms: u64,
    /// Nice value (0-19) of the threads that run the model; 0 (the default) keeps the
    /// process's own. Above 0 the service's async threads preempt them, so refusals and cache
    /// hits are a little faster while the model is saturated, but under a storm of refused
    /// requests retried at once the model gets only what refusing leaves (README: 13-19
    /// decisions/s at nice 10 against 104-110 at 0), so it is off unless asked for (Linux;
    /// elsewhere ignored).
    #[arg(long, env = "ROUTER_MODEL_NICE", default_value_t = 0,
          value_parser = clap::value_parser!(i32).range(0..=19))]
    pub model_nice: i32,
    /// Largest request body in bytes (larger bodies get 413).
    #[arg(long, env = "ROUTER_MAX_BODY_BYTES", default_value_t = Limits::default().max_body_bytes)]
    pub max_body_bytes: usize,
    /// File holding the bearer token for admin and write endpoints (else ROUTER_ADMIN_TOKEN;
    /// without either those endpoints are off).
    #[arg(long, env = "ROUTER_ADMIN_TOKEN_FILE")]
    pub admin_token_file: Option<PathBuf>,
    /// Largest batch of /classify/batch and /embed.
    #[arg(long, env = "ROUTER_MAX_BATCH", default_value_t = Limits::default().max_batch)]
    pub max_batch: usize,
    /// Memory budget in bytes of the decision cache that serves repeated prompts (0 turns it
    /// off). Emptied by every policy reload or index swap.
    #[arg(long, env = "ROUTER_CACHE_BYTES", default_value_t = Limits::default().cache_bytes)]
    pub cache_bytes: usize,
    /// Seconds to keep serving after SIGTERM/SIGINT with /ready answering 503 "draining", so
    /// load balancers stop sending before the listener closes (a second signal ends it early).
    /// In-flight requests always finish; 0 closes the listener at once.
    #[arg(long, env = "ROUTER_DRAIN_SECS", default_value_t = 0)]
    pub drain_secs: u64,
    /// Where the decision log goes, one JSON line per decision: stderr, stdout, off, or a file
    /// path (appended). Written off the request path; lines that do not fit its buffer are
    /// dropped and counted (router_decision_log_dropped_total).
    #[arg(long, env = "ROUTER_DECISION_LOG", default_value = "stderr")]
    pub decision_log: DecisionLogDestination,
    /// Share of decisions written to the decision log, 0.0-1.0 (chosen by the decision id).
    #[arg(long, env = "ROUTER_DECISION_LOG_SAMPLE", default_value_t = 1.0, value_parser = parse_share)]
    pub decision_log_sample: f64,
    /// Writes the routed text, cut to 200 characters, into the decision log (off: never).
    #[arg(long, env = "ROUTER_LOG_PROMPTS")]
    pub log_prompts: bool,
    /// Export trace spans over OTLP/HTTP to this collector URL (e.g.
    /// http://collector:4318/v1/traces); needs a build with `--features otlp`. Off: none.
    /// Which spans go is ROUTER_LOG's filter (`debug` adds the stage spans).
    #[arg(long, env = "ROUTER_OTLP_ENDPOINT")]
    pub otlp_endpoint: Option<String>,
}

fn parse_share(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if (0.0..=1.0).contains(&v) => Ok(v),
        _ => Err(format!("`{s}` is not a number from 0.0 to 1.0")),
    }
}

impl StateArgs {
    pub fn paths(&self) -> StatePaths {
        StatePaths {
            policy: self.policy.clone(),
            archetypes: self.archetypes.clone(),
            data_dir: self.data_dir.clone(),
            index: self.index.clone(),
            shared_store: None,
            tenants: None,
        }
    }
}

impl ServeArgs {
    /// The admin token's secret from --admin-token-file, else the ROUTER_ADMIN_TOKEN variable.
    fn admin_secret(&self) -> anyhow::Result<Option<String>> {
        let secret = match &self.admin_token_file {
            Some(path) => std::fs::read_to_string(path)
                .with_context(|| format!("reading the admin token file {}", path.display()))?,
            None => std::env::var("ROUTER_ADMIN_TOKEN").unwrap_or_default(),
        };
        let secret = secret.trim();
        Ok((!secret.is_empty()).then(|| secret.to_owned()))
    }

    pub fn into_settings(self) -> anyhow::Result<ServiceSettings> {
        Ok(ServiceSettings {
            admin_secret: self.admin_secret()?,
            drain: std::time::Duration::from_secs(self.drain_secs),
            decision_log: DecisionLogSettings {
                destination: self.decision_log,
                sample: self.decision_log_sample,
                log_prompts: self.log_prompts,
            },
            addr: self.addr,
            paths: StatePaths {
                shared_store: self.store.map(|url| SharedStoreSettings {
                    url,
                    sync_every: std::time::Duration::from_millis(self.store_sync_ms.max(50)),
                }),
                tenants: self.tenants,
                ..self.state.paths()
            },
            model: self.model.settings(),
            limits: Limits {
                max_in_flight: self.max_in_flight.max(1),
                queue_budget_ms: self.queue_budget_ms,
                max_body_bytes: self.max_body_bytes,
                max_batch: self.max_batch.max(1),
                cache_bytes: self.cache_bytes,
            },
        })
    }
}
