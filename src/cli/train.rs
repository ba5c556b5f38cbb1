//! `router train --examples FILE_OR_DIR --out DIR`.

use std::path::PathBuf;

use anyhow::Context;
use clap::Args;

use super::ModelArgs;
use crate::index::HnswParams;
use crate::pipeline::compose::{load_embedder, progress_bar};
use crate::pipeline::indexer::build_index;
use crate::store::{ExampleSet, Strictness};

#[derive(Debug, Args)]
pub struct TrainArgs {
    /// Labeled JSONL: {"text", "bucket" (or "label"), "id"?}; a file or a directory of *.jsonl.
    #[arg(long, env = "ROUTER_EXAMPLES")]
    pub examples: PathBuf,
    /// Directory to write the bundle into (index.usearch + manifest.json), replaced atomically.
    #[arg(long)]
    pub out: PathBuf,
    /// Reject unknown fields and conflicting labels (the rules for the project's own archetypes).
    #[arg(long)]
    pub strict: bool,
    #[command(flatten)]
    pub model: ModelArgs,
}

pub fn run(args: &TrainArgs) -> anyhow::Result<()> {
    let strictness = if args.strict {
        Strictness::Archetypes
    } else {
        Strictness::Dataset
    };
    let examples = ExampleSet::load(&args.examples, strictness)
        .with_context(|| format!("reading examples from {}", args.examples.display()))?;
    if examples.conflicts_skipped > 0 || examples.duplicates_dropped > 0 {
        tracing::warn!(
            duplicates = examples.duplicates_dropped,
            conflicting_labels = examples.conflicts_skipped,
            "skipped repeated texts (a text keeps its first label)"
        );
    }
    let (embedder, _) = load_embedder(&args.model.settings())?;
    let bar = progress_bar("embedding examples");
    let mut index = build_index(
        &examples,
        embedder.as_ref(),
        HnswParams::default(),
        &|done, total| {
            bar.set_length(total as u64);
            bar.set_position(done as u64);
        },
    )?;
    bar.finish_and_clear();
    index.save(&args.out)?;
    let summary = serde_json::json!({
        "out": args.out.display().to_string(),
        "index_version": index.version(),
        "examples": index.len(),
        "counts": index.manifest().counts,
    });
    super::stdin_jsonl::write_line(&summary.to_string())?;
    Ok(())
}
