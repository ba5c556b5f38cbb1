//! The `router` binary: parse flags, set up logging, run the command.

use clap::Parser;
use tracing_subscriber::EnvFilter;

fn main() -> anyhow::Result<()> {
    let cli = semantic_router::cli::Cli::parse();
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
    semantic_router::cli::run(cli)
}
