//! The `router` binary: parse flags, set up logging, run the command. `router serve` goes to
//! the HTTP edge, every other command to the command-line edge.

use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use semantic_router::cli::{Cli, Command, EdgeArgs};
use semantic_router::serve::callers::ClientTokens;
use semantic_router::serve::deadline::RequestTimeouts;
use semantic_router::serve::feedback_sig::DecisionSigner;
use semantic_router::serve::listen::ConnLimits;
use semantic_router::serve::EdgeSettings;
use tracing_subscriber::EnvFilter;

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let filter = EnvFilter::try_from_env("ROUTER_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    // ROUTER_LOG_FORMAT=json gives one JSON object per log line for log shippers.
    if std::env::var("ROUTER_LOG_FORMAT").is_ok_and(|f| f == "json") {
        builder.json().init();
    } else {
        builder.init();
    }
    match cli.command {
        Command::Serve(args) => {
            let edge = edge_settings(&args.edge)?;
            let settings = args.into_settings()?;
            tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()?
                .block_on(semantic_router::serve::run(settings, edge))
        }
        Command::Offline(command) => semantic_router::cli::run(command),
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
