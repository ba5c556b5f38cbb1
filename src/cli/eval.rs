//! `router eval --train FILE --test FILE [--json] [--compare]`.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::PathBuf;

use clap::Args;
use serde_json::json;

use super::ModelArgs;
use crate::archetypes::{read_labeled_rows, RowFilter};
use crate::eval::{evaluate, EvalOptions, EvalPhase, EvalReport, Scorer};
use crate::serve::startup::{load_embedder, progress_bar};

/// Above this many labels the confusion table lists the most frequent confusions instead.
const FULL_CONFUSION_MAX_LABELS: usize = 12;
const TOP_CONFUSIONS: usize = 15;

#[derive(Debug, Args)]
pub struct EvalArgs {
    /// Labeled JSONL to build the index from ({"text", "bucket" or "label"}).
    #[arg(long)]
    pub train: PathBuf,
    /// Labeled JSONL to classify; labels not in --train are out of scope.
    #[arg(long)]
    pub test: PathBuf,
    /// Keep only training rows where KEY is one of the values, e.g. `split=train` or `fold=0,1,2`.
    #[arg(long = "train-where", value_parser = parse_filter)]
    pub train_where: Vec<RowFilter>,
    /// Keep only test rows where KEY is one of the values, e.g. `split=val`.
    #[arg(long = "test-where", value_parser = parse_filter)]
    pub test_where: Vec<RowFilter>,
    /// Neighbours that vote.
    #[arg(long, default_value_t = 10)]
    pub k: usize,
    /// Also score the nearest-centroid baseline on the same embeddings.
    #[arg(long)]
    pub compare: bool,
    /// Write the report as JSON ({"accuracy", "macro_f1", "n", ...}).
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub model: ModelArgs,
}

fn parse_filter(s: &str) -> Result<RowFilter, String> {
    s.parse()
}

pub fn run(args: &EvalArgs) -> anyhow::Result<()> {
    let train = read_labeled_rows(&args.train, &args.train_where)?;
    let test = read_labeled_rows(&args.test, &args.test_where)?;
    let (embedder, _) = load_embedder(&args.model.settings())?;
    let mut scorers = vec![Scorer::WeightedKnn];
    if args.compare {
        scorers.push(Scorer::Centroid);
    }
    let options = EvalOptions {
        k: args.k,
        scorers,
        ..EvalOptions::default()
    };
    let train_bar = progress_bar("embedding training rows");
    let test_bar = progress_bar("classifying test rows");
    let reports = evaluate(
        embedder.as_ref(),
        &train,
        &test,
        &options,
        &|phase, done, total| {
            let bar = match phase {
                EvalPhase::Train => &train_bar,
                EvalPhase::Test => &test_bar,
            };
            bar.set_length(total as u64);
            bar.set_position(done as u64);
        },
    )?;
    train_bar.finish_and_clear();
    test_bar.finish_and_clear();

    let primary = &reports[0];
    if args.json {
        let mut value = serde_json::to_value(primary)?;
        value["train_rows"] = json!(train.len());
        value["k"] = json!(args.k);
        value["scorers"] = json!(reports
            .iter()
            .map(|r| (r.scorer.name(), r))
            .collect::<BTreeMap<_, _>>());
        super::stdin_jsonl::write_line(&value.to_string())?;
    } else {
        let mut text = String::new();
        for report in &reports {
            render(&mut text, report);
        }
        super::stdin_jsonl::write_line(text.trim_end())?;
    }
    Ok(())
}

fn render(out: &mut String, r: &EvalReport) {
    let _ = writeln!(
        out,
        "== {} ==\naccuracy {:.4}   macro-F1 {:.4}   n {} in scope ({} out of scope, not counted)",
        r.scorer.name(),
        r.accuracy,
        r.macro_f1,
        r.n,
        r.n_out_of_scope
    );
    let l = r.latency_ms;
    let _ = writeln!(
        out,
        "latency per decision (ms): p50 {:.2}  p90 {:.2}  p99 {:.2}  max {:.2}",
        l.p50, l.p90, l.p99, l.max
    );
    let _ = writeln!(
        out,
        "{:<28} {:>9} {:>9} {:>9} {:>8}",
        "bucket", "precision", "recall", "f1", "support"
    );
    for (label, m) in &r.per_bucket {
        let _ = writeln!(
            out,
            "{label:<28} {:>9.3} {:>9.3} {:>9.3} {:>8}",
            m.precision, m.recall, m.f1, m.support
        );
    }
    let labels: Vec<&String> = r.per_bucket.keys().collect();
    if labels.len() <= FULL_CONFUSION_MAX_LABELS {
        let _ = writeln!(out, "confusion (rows: gold, columns: predicted)");
        let _ = write!(out, "{:<18}", "");
        for l in &labels {
            let _ = write!(out, " {l:>8.8}");
        }
        let _ = writeln!(out);
        for gold in &labels {
            let _ = write!(out, "{gold:<18.18}");
            for predicted in &labels {
                let n = r
                    .confusion
                    .get(*gold)
                    .and_then(|row| row.get(*predicted))
                    .copied()
                    .unwrap_or(0);
                let _ = write!(out, " {n:>8}");
            }
            let _ = writeln!(out);
        }
    } else {
        let mut pairs: Vec<(usize, &String, &String)> = r
            .confusion
            .iter()
            .flat_map(|(g, row)| {
                row.iter()
                    .filter(move |(p, _)| *p != g)
                    .map(move |(p, n)| (*n, g, p))
            })
            .collect();
        pairs.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(b.1)));
        let _ = writeln!(out, "most frequent confusions (gold → predicted):");
        for (n, g, p) in pairs.into_iter().take(TOP_CONFUSIONS) {
            let _ = writeln!(out, "  {n:>5}  {g} → {p}");
        }
    }
    let _ = writeln!(out);
}
