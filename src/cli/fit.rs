//! `router fit --train FILE_OR_DIR --valid FILE [--target-precision P] [--out DIR]`: fits the
//! head, the calibration and the abstain thresholds, reports how they do on the validation
//! rows, and writes the fitted bundle.

use std::path::PathBuf;

use anyhow::Context;
use clap::Args;
use serde_json::json;

use super::ModelArgs;
use crate::eval::{evaluate_embedded, EvalOptions};
use crate::index::HnswParams;
use crate::pipeline::compose::{load_embedder, progress_bar};
use crate::pipeline::indexer::{embed_all, embed_index, fit_index, Reuse};
use crate::scoring::{CalibrationRows, FitOptions, DEFAULT_TARGET_PRECISION};
use crate::store::{read_labeled_rows, ExampleSet, RowFilter, Strictness};
use crate::types::{BucketId, ScorerKind};

#[derive(Debug, Args)]
pub struct FitArgs {
    /// Labeled examples to index and train the head on ({"text", "bucket" or "label"}); a
    /// file or a directory of *.jsonl, read like `router train --examples`.
    #[arg(long)]
    pub train: PathBuf,
    /// Keep only training rows where KEY is one of the values (e.g. `oos=none`); --train is
    /// then read as one labeled file.
    #[arg(long = "train-where")]
    pub train_where: Vec<RowFilter>,
    /// Labeled JSONL the calibration and thresholds are fitted on; labels that are not
    /// training buckets (e.g. `oos`) are out of scope and should be abstained on.
    #[arg(long)]
    pub valid: PathBuf,
    /// Keep only validation rows where KEY is one of the values, e.g. `split=val`.
    #[arg(long = "valid-where")]
    pub valid_where: Vec<RowFilter>,
    /// In-scope precision the abstain thresholds aim for.
    #[arg(long, default_value_t = DEFAULT_TARGET_PRECISION)]
    pub target_precision: f64,
    /// Neighbours of the kNN scorers (the policy's `matching.k`).
    #[arg(long, default_value_t = 10)]
    pub k: usize,
    /// Write the fitted bundle here (serve it with a policy whose `min_confidence = "fitted"`).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub model: ModelArgs,
}

pub fn run(args: &FitArgs) -> anyhow::Result<()> {
    anyhow::ensure!(
        args.target_precision > 0.0 && args.target_precision <= 1.0,
        "--target-precision must be in (0, 1]"
    );
    let examples = if args.train_where.is_empty() {
        ExampleSet::load(&args.train, Strictness::Dataset)
            .with_context(|| format!("reading examples from {}", args.train.display()))?
    } else {
        ExampleSet::from_rows(&read_labeled_rows(&args.train, &args.train_where)?)
    };
    let valid = read_labeled_rows(&args.valid, &args.valid_where)?;
    let (embedder, _) = load_embedder(&args.model.settings())?;
    let bar = progress_bar("embedding training examples");
    let index = embed_index(
        &examples,
        embedder.as_ref(),
        HnswParams::default(),
        Reuse::default(),
        &|done, total| {
            bar.set_length(total as u64);
            bar.set_position(done as u64);
        },
    )?;
    bar.finish_and_clear();
    let bar = progress_bar("embedding validation rows");
    let texts: Vec<&str> = valid.iter().map(|r| r.text.as_str()).collect();
    let vectors = embed_all(embedder.as_ref(), &texts, &|done, total| {
        bar.set_length(total as u64);
        bar.set_position(done as u64);
    })?;
    bar.finish_and_clear();
    let buckets = index.scoring.buckets().to_vec();
    let rows = CalibrationRows {
        vectors: vectors.iter().map(|v| v.as_slice()).collect(),
        labels: valid
            .iter()
            .map(|r| buckets.binary_search(&BucketId::new(&r.label)).ok())
            .collect(),
    };
    let options = FitOptions {
        k: args.k,
        target_precision: args.target_precision,
        ..FitOptions::default()
    };
    let (mut index, fit) = fit_index(index, &options, Some(&rows))?;
    let eval_options = EvalOptions {
        k: args.k,
        scorers: ScorerKind::ALL.to_vec(),
        fit: options,
        ..EvalOptions::default()
    };
    let reports = evaluate_embedded(&index, &valid, &vectors, &eval_options)?;
    if let Some(out) = &args.out {
        index.save(out)?;
    }
    if args.json {
        let value = json!({
            "fit": fit,
            "reports": reports,
            "index_version": index.version(),
            "out": args.out.as_ref().map(|p| p.display().to_string()),
        });
        super::stdin_jsonl::write_line(&value.to_string())?;
        return Ok(());
    }
    let mut text = format!(
        "fitted on {} training examples, calibrated on {} rows ({} out of scope) in {:.1} s; combined head weight {:.1}; target in-scope precision {}\n",
        fit.rows_trained, fit.rows_calibrated, fit.rows_out_of_scope, fit.seconds, fit.head_weight, fit.target_precision
    );
    for s in &fit.scorers {
        let threshold = s.threshold.map_or_else(
            || "not reachable".to_owned(),
            |p| {
                format!(
                    "{:.3} (precision {:.3}, coverage {:.3})",
                    p.threshold, p.precision, p.coverage
                )
            },
        );
        text.push_str(&format!(
            "  {:<13} temperature {:.3}  threshold {threshold}\n",
            s.scorer.name(),
            s.temperature
        ));
    }
    text.push('\n');
    for report in &reports {
        super::eval::render(&mut text, report);
    }
    if let Some(out) = &args.out {
        text.push_str(&format!(
            "bundle {} written to {}\n",
            index.version(),
            out.display()
        ));
    }
    super::stdin_jsonl::write_line(text.trim_end())?;
    Ok(())
}
