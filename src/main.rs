//! The `router` binary: parse flags, set up logging (and trace export with the `otlp`
//! feature), run the command. `router serve` goes to the HTTP edge, every other command to the
//! command-line edge.

use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use semantic_router::cli::{Cli, Command, EdgeArgs};
use semantic_router::serve::callers::ClientTokens;
use semantic_router::serve::deadline::RequestTimeouts;
use semantic_router::serve::feedback_sig::DecisionSigner;
use semantic_router::serve::listen::ConnLimits;
use semantic_router::serve::EdgeSettings;
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;
use tracing_subscriber::{EnvFilter, Layer as _};

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let otlp_endpoint = match &cli.command {
        Command::Serve(args) => args.otlp_endpoint.clone(),
        Command::Offline(_) => None,
    };
    let exporter = init_logging(otlp_endpoint.as_deref())?;
    let result = match cli.command {
        Command::Serve(args) => {
            // Before anything runs the model: its pool starts at the model's priority.
            semantic_router::embed::threads::start_model_pool(args.model_nice)?;
            let edge = edge_settings(&args.edge)?;
            let settings = args.into_settings()?;
            tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()?
                .block_on(semantic_router::serve::run(settings, edge))
        }
        Command::Offline(command) => semantic_router::cli::run(command),
    };
    exporter.shutdown();
    result
}

/// Human-readable logs on stderr, or one JSON object per line with `ROUTER_LOG_FORMAT=json`
/// (for log shippers); `ROUTER_LOG` filters both, and the exported spans (which include the
/// pipeline's debug-level stage spans unless it is set).
fn init_logging(otlp_endpoint: Option<&str>) -> anyhow::Result<Exporter> {
    let log_filter =
        || EnvFilter::try_from_env("ROUTER_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    let fmt = tracing_subscriber::fmt::layer().with_writer(std::io::stderr);
    let fmt = if std::env::var("ROUTER_LOG_FORMAT").is_ok_and(|f| f == "json") {
        fmt.json().boxed()
    } else {
        fmt.boxed()
    };
    let registry = tracing_subscriber::registry().with(fmt.with_filter(log_filter()));
    match otlp_endpoint {
        None => {
            registry.init();
            Ok(Exporter::default())
        }
        #[cfg(feature = "otlp")]
        Some(endpoint) => {
            let (layer, provider) = semantic_router::serve::otlp::layer(endpoint)?;
            // The pipeline's stage spans are at debug level: exported by default, though the
            // log shows info; ROUTER_LOG, when set, filters both alike.
            let spans = EnvFilter::try_from_env("ROUTER_LOG")
                .unwrap_or_else(|_| EnvFilter::new("info,semantic_router::pipeline=debug"));
            registry.with(layer.with_filter(spans)).init();
            tracing::info!(endpoint, "exporting trace spans over OTLP/HTTP");
            Ok(Exporter(Some(provider)))
        }
        #[cfg(not(feature = "otlp"))]
        Some(_) => anyhow::bail!(
            "--otlp-endpoint needs a router built with `cargo build --release --features otlp`"
        ),
    }
}

/// The trace exporter to flush at exit (nothing without the `otlp` feature or the flag).
#[derive(Default)]
struct Exporter(#[cfg(feature = "otlp")] Option<opentelemetry_sdk::trace::SdkTracerProvider>);

impl Exporter {
    fn shutdown(self) {
        #[cfg(feature = "otlp")]
        if let Some(provider) = self.0 {
            if let Err(e) = provider.shutdown() {
                eprintln!("trace export did not flush: {e}");
            }
        }
    }
}

/// The HTTP edge's limits and caller checks from their flags (reads the token and key files).
fn edge_settings(args: &EdgeArgs) -> anyhow::Result<EdgeSettings> {
    let client_tokens = args
        .client_tokens
        .as_deref()
        .map(ClientTokens::load)
        .transpose()
        .context("--client-tokens")?;
    let decision_key = args
        .decision_key
        .as_deref()
        .map(DecisionSigner::load)
        .transpose()
        .context("--decision-key")?;
    Ok(EdgeSettings {
        connections: ConnLimits {
            header_read_timeout: Duration::from_millis(args.header_read_timeout_ms.max(1)),
            idle_timeout: Duration::from_millis(args.idle_timeout_ms.max(1)),
            max_connections: args.max_connections.max(1),
            max_connections_per_peer: args.max_connections_per_peer,
        },
        timeouts: RequestTimeouts {
            body_read: Duration::from_millis(args.body_read_timeout_ms.max(1)),
            request: Duration::from_millis(args.request_timeout_ms.max(1)),
        },
        client_tokens,
        decision_key,
        feedback_rate: args.feedback_rate,
        feedback_burst: args.feedback_burst,
    })
}
