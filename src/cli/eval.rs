//! `router eval --train FILE (--test FILE | --cv K) [--compare] [--json] [--report DIR]`, or
//! `router eval --conversations FILE` (see `eval_conversations`).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::Context as _;

use clap::Args;
use serde_json::json;

use super::ModelArgs;
use crate::decide::Policy;
use crate::eval::{
    cross_validate, evaluate, routing_cost, EvalOptions, EvalPhase, EvalReport, RoutingCost,
};
use crate::pipeline::compose::{load_embedder, progress_bar};
use crate::scoring::{FitOptions, DEFAULT_TARGET_PRECISION};
use crate::store::{read_labeled_rows, RowFilter};
use crate::types::ScorerKind;

/// Above this many labels the confusion table lists the most frequent confusions instead.
const FULL_CONFUSION_MAX_LABELS: usize = 12;
const TOP_CONFUSIONS: usize = 15;

#[derive(Debug, Args)]
pub struct EvalArgs {
    /// Labeled JSONL to build the index from ({"text", "bucket" or "label"}).
    #[arg(long, required_unless_present = "conversations")]
    pub train: Option<PathBuf>,
    /// Labeled JSONL to classify; labels not in --train are out of scope (right when the
    /// router abstains). Required unless --cv or --conversations is given.
    #[arg(long, required_unless_present_any = ["cv", "conversations"])]
    pub test: Option<PathBuf>,
    /// Route every user turn of these dialogues with its history (MT-Bench-101's
    /// {"task", "history": [{"user", "bot"}]} or {"messages": [...], "label"?}) through the
    /// shipped policy and archetypes, and report follow-ups kept in the first turn's bucket
    /// and sent to a cheaper tier, per task.
    #[arg(long, conflicts_with_all = ["train", "test", "cv"])]
    pub conversations: Option<PathBuf>,
    /// With --conversations: tasks left out of the overall figures (comma-separated).
    #[arg(long, value_delimiter = ',', default_value = "TS")]
    pub exclude_tasks: Vec<String>,
    #[command(flatten)]
    pub state: super::args::StateArgs,
    /// K-fold cross-validation on --train instead of a test file.
    #[arg(long, conflicts_with = "test")]
    pub cv: Option<usize>,
    /// Keep only training rows where KEY is one of the values, e.g. `split=train` or `fold=0,1,2`.
    #[arg(long = "train-where")]
    pub train_where: Vec<RowFilter>,
    /// Keep only test rows where KEY is one of the values, e.g. `split=val`.
    #[arg(long = "test-where")]
    pub test_where: Vec<RowFilter>,
    /// Neighbours that vote.
    #[arg(long, default_value_t = 10)]
    pub k: usize,
    /// The scorer to report (the one the policy would serve).
    #[arg(long, default_value = "combined")]
    pub scorer: ScorerKind,
    /// Report every scorer side by side on the same embeddings: weighted kNN, centroid,
    /// top-5 mean (as aurelio semantic-router scores), head, combined.
    #[arg(long)]
    pub compare: bool,
    /// In-scope precision the abstain threshold aims for (out-of-scope recall is reported there).
    #[arg(long, default_value_t = DEFAULT_TARGET_PRECISION)]
    pub target_precision: f64,
    /// Write the report as JSON ({"accuracy", "macro_f1", "n", ...}).
    #[arg(long)]
    pub json: bool,
    /// Also write, into this directory, report.json (what --json prints), confusion.svg,
    /// reliability.svg and index.html showing them with the figures (the reported scorer).
    #[arg(long, value_name = "DIR")]
    pub report: Option<PathBuf>,
    #[command(flatten)]
    pub model: ModelArgs,
}

pub fn run(args: &EvalArgs) -> anyhow::Result<()> {
    if let Some(path) = &args.conversations {
        return super::eval_conversations::run(args, path);
    }
    let train_path = args
        .train
        .as_ref()
        .ok_or_else(|| anyhow::anyhow!("--train is required"))?;
    let train = read_labeled_rows(train_path, &args.train_where)?;
    let test = match &args.test {
        Some(path) => Some(read_labeled_rows(path, &args.test_where)?),
        None => None,
    };
    let (embedder, _) = load_embedder(&args.model.settings())?;
    let mut scorers = vec![args.scorer];
    if args.compare {
        scorers.extend(ScorerKind::ALL.into_iter().filter(|k| *k != args.scorer));
    }
    let options = EvalOptions {
        k: args.k,
        scorers,
        fit: FitOptions {
            target_precision: args.target_precision,
            ..FitOptions::default()
        },
        ..EvalOptions::default()
    };
    let train_bar = progress_bar("embedding training rows");
    let test_bar = progress_bar("classifying test rows");
    let progress = |phase, done, total| {
        let bar = match phase {
            EvalPhase::Train => &train_bar,
            EvalPhase::Test => &test_bar,
        };
        bar.set_length(total as u64);
        bar.set_position(done as u64);
    };
    let reports = match (&test, args.cv) {
        (Some(test), _) => evaluate(embedder.as_ref(), &train, test, &options, &progress)?,
        (None, Some(folds)) => {
            cross_validate(embedder.as_ref(), &train, folds, &options, &progress)?
        }
        (None, None) => anyhow::bail!("give --test FILE or --cv K"),
    };
    train_bar.finish_and_clear();
    test_bar.finish_and_clear();

    // What the misroutes cost under the policy, where the labels are its buckets.
    let policy = Policy::load(&args.state.policy)?;
    let costs: Vec<(ScorerKind, RoutingCost)> = reports
        .iter()
        .filter_map(|r| routing_cost(&policy, &r.confusion).map(|c| (r.scorer, c)))
        .collect();
    let primary = &reports[0];
    let json_report = || -> anyhow::Result<serde_json::Value> {
        let mut value = serde_json::to_value(primary)?;
        value["train_rows"] = json!(train.len());
        value["k"] = json!(args.k);
        if let Some(folds) = args.cv {
            value["cv_folds"] = json!(folds);
        }
        if let Some(oos) = &primary.oos {
            value["oos_auroc"] = json!(oos.auroc);
            value["oos_recall"] = json!(oos.at_target_precision.as_ref().map(|p| p.recall));
            value["target_precision"] = json!(args.target_precision);
        }
        if let Some((_, cost)) = costs.iter().find(|(k, _)| *k == primary.scorer) {
            value["routing_cost"] = json!(cost);
            value["policy_version"] = json!(policy.version);
        }
        value["scorers"] = json!(reports
            .iter()
            .map(|r| (r.scorer.name(), r))
            .collect::<BTreeMap<_, _>>());
        Ok(value)
    };
    if let Some(dir) = &args.report {
        write_report(dir, primary, &json_report()?)?;
    }
    if args.json {
        super::stdin_jsonl::write_line(&json_report()?.to_string())?;
    } else {
        let mut text = String::new();
        for report in &reports {
            render(&mut text, report);
            if let Some((_, c)) = costs.iter().find(|(k, _)| *k == report.scorer) {
                let _ = writeln!(
                    text,
                    "policy {}: under-routed {:.4} (a cheaper tier than the label's), over-routed {:.4}, of {} rows labeled with its buckets",
                    policy.version, c.under_routed, c.over_routed, c.rows
                );
            }
        }
        super::stdin_jsonl::write_line(text.trim_end())?;
    }
    Ok(())
}

/// `--report DIR`: the JSON, the two pictures and the page that shows them.
fn write_report(dir: &Path, report: &EvalReport, json: &serde_json::Value) -> anyhow::Result<()> {
    use crate::eval::figures::{confusion_svg, index_html, reliability_svg};
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let files = [
        ("report.json", serde_json::to_string_pretty(json)?),
        ("confusion.svg", confusion_svg(report)?),
        ("reliability.svg", reliability_svg(report)?),
        (
            "index.html",
            index_html(report, "confusion.svg", "reliability.svg"),
        ),
    ];
    for (name, content) in files {
        let path = dir.join(name);
        std::fs::write(&path, content).with_context(|| format!("writing {}", path.display()))?;
    }
    tracing::info!(dir = %dir.display(), "report written (index.html, confusion.svg, reliability.svg, report.json)");
    Ok(())
}

pub(super) fn render(out: &mut String, r: &EvalReport) {
    let _ = writeln!(
        out,
        "== {} ==\naccuracy {:.4}   macro-F1 {:.4}   n {} in scope ({} out of scope, not counted)",
        r.scorer.name(),
        r.accuracy,
        r.macro_f1,
        r.n,
        r.n_out_of_scope
    );
    let _ = writeln!(out, "expected calibration error {:.4}", r.ece);
    let curve: Vec<String> = r
        .coverage
        .iter()
        .map(|c| format!("{:.0}% → {:.4}", c.coverage * 100.0, c.accuracy))
        .collect();
    let _ = writeln!(out, "accuracy at coverage: {}", curve.join(", "));
    if let Some(oos) = &r.oos {
        let by_kind: Vec<String> = oos
            .auroc_by_kind
            .iter()
            .map(|(k, v)| format!("{k} {v:.4}"))
            .collect();
        let _ = writeln!(
            out,
            "out of scope: AUROC {:.4} ({})",
            oos.auroc,
            by_kind.join(", ")
        );
        for (name, point) in [
            ("at target precision", &oos.at_target_precision),
            ("at fitted threshold", &oos.at_fitted_threshold),
        ] {
            match point {
                Some(p) => {
                    let by_kind: Vec<String> = p
                        .recall_by_kind
                        .iter()
                        .map(|(k, v)| format!("{k} {v:.3}"))
                        .collect();
                    let _ = writeln!(
                        out,
                        "  {name}: threshold {}, in-scope precision {:.3}, coverage {:.3}, OOS recall {:.3} ({})",
                        p.threshold.map_or_else(|| "fitted on training rows".to_owned(), |t| format!("{t:.3}")),
                        p.in_scope_precision,
                        p.in_scope_coverage,
                        p.recall,
                        by_kind.join(", ")
                    );
                }
                None => {
                    let _ = writeln!(out, "  {name}: not reachable");
                }
            }
        }
    }
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
