//! The command line: `router serve | train | classify | embed | eval | fit | bench | report | model`.
//! Thin: each command parses flags, calls the library, prints. `serve` is parsed here into
//! the library's `ServiceSettings`; the binary hands those to the HTTP edge, so this edge
//! never imports the other.

mod args;
mod bench;
mod bench_index;
mod bench_load;
mod edge_args;
mod eval;
mod eval_conversations;
mod fit;
mod model;
mod report;
mod stdin_jsonl;
mod train;

use clap::{Parser, Subcommand};

pub use args::{ModelArgs, ServeArgs};
pub use edge_args::EdgeArgs;

/// A semantic LLM router: decides, per request, which LLM should answer a prompt.
#[derive(Debug, Parser)]
#[command(name = "router", version, about, long_about = None)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the HTTP service (POST /classify, /classify/batch, /embed; GET /health, /ready, /info, /metrics).
    Serve(ServeArgs),
    #[command(flatten)]
    Offline(OfflineCommand),
}

/// The commands that run without the HTTP service.
#[derive(Debug, Subcommand)]
pub enum OfflineCommand {
    /// Build an index bundle from labeled JSONL examples ({"text", "bucket" or "label"}).
    Train(train::TrainArgs),
    /// Read JSONL {"text": ...} on stdin; write one decision JSON per line on stdout, in order.
    Classify(stdin_jsonl::ClassifyArgs),
    /// Read JSONL {"text": ...} on stdin; write {"embedding": [...], "tokens": N} per line, in order.
    Embed(stdin_jsonl::EmbedArgs),
    /// Measure routing accuracy: train on one labeled file, test on another.
    Eval(eval::EvalArgs),
    /// Fit the head, calibration and abstain thresholds on validation rows; print the report.
    Fit(fit::FitArgs),
    /// Measure /classify latency and throughput over HTTP with real prompts.
    Bench(bench::BenchArgs),
    /// Measure HNSW recall@k against exact search, search latency and memory on real vectors.
    BenchIndex(bench_index::BenchIndexArgs),
    /// Summarise a decision-log file: shares by bucket and target, abstentions, spend.
    Report(report::ReportArgs),
    /// Fetch and verify the model files, or verify what is cached.
    #[command(subcommand)]
    Model(model::ModelCommand),
}

/// Runs one offline command to completion.
pub fn run(command: OfflineCommand) -> anyhow::Result<()> {
    match command {
        OfflineCommand::Train(args) => train::run(&args),
        OfflineCommand::Classify(args) => stdin_jsonl::classify(&args),
        OfflineCommand::Embed(args) => stdin_jsonl::embed(&args),
        OfflineCommand::Eval(args) => eval::run(&args),
        OfflineCommand::Fit(args) => fit::run(&args),
        OfflineCommand::Bench(args) => bench::run(&args),
        OfflineCommand::BenchIndex(args) => bench_index::run(&args),
        OfflineCommand::Report(args) => report::run(&args),
        OfflineCommand::Model(command) => model::run(&command),
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;

    #[test]
    fn cli_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn serve_defaults_work_on_a_fresh_clone() {
        let cli = Cli::try_parse_from(["router", "serve"]).unwrap();
        let Command::Serve(args) = cli.command else {
            panic!("serve")
        };
        let s = args.into_settings().unwrap();
        assert_eq!(s.addr.to_string(), "127.0.0.1:8080");
        assert_eq!(
            s.paths.policy,
            std::path::PathBuf::from("archetypes/policy.toml")
        );
        assert_eq!(
            s.paths.archetypes,
            std::path::PathBuf::from("archetypes/examples")
        );
    }
}
