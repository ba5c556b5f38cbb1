//! `router report --decision-log FILE [--policy FILE] [--json]`: what the decisions of a
//! decision-log file did (share by bucket and target, abstentions, under-confident decisions,
//! estimated input spend against sending everything to the policy's most expensive target),
//! summarised by `eval::decisions` exactly as `GET /admin/stats` summarises a replica's.

use std::fmt::Write as _;
use std::io::BufRead;
use std::path::PathBuf;

use anyhow::Context as _;
use clap::Args;
use serde_json::json;

use crate::decide::Policy;
use crate::eval::decisions::{summarize, Baseline, DecisionFacts, DecisionSummary};

#[derive(Debug, Args)]
pub struct ReportArgs {
    /// A decision log written by `router serve --decision-log FILE` (one JSON line per
    /// decision; other lines, such as log lines on a shared stderr, are skipped and counted).
    #[arg(long, env = "ROUTER_DECISION_LOG", value_name = "FILE")]
    pub decision_log: PathBuf,
    /// The policy whose prices and uncertain margin the summary uses (the current one: a log
    /// spanning a price change is priced at today's list prices).
    #[arg(long, env = "ROUTER_POLICY", default_value = "archetypes/policy.toml")]
    pub policy: PathBuf,
    /// Print the summary as one JSON object instead of a table.
    #[arg(long)]
    pub json: bool,
}

pub fn run(args: &ReportArgs) -> anyhow::Result<()> {
    let policy = Policy::load(&args.policy)?;
    let baseline = Baseline::from_policy(&policy)
        .ok_or_else(|| anyhow::anyhow!("{}: the policy has no target", args.policy.display()))?;
    let file = std::fs::File::open(&args.decision_log)
        .with_context(|| format!("opening {}", args.decision_log.display()))?;
    let (mut facts, mut skipped) = (Vec::new(), 0usize);
    for line in std::io::BufReader::new(file).lines() {
        let line = line.with_context(|| format!("reading {}", args.decision_log.display()))?;
        if line.trim().is_empty() {
            continue;
        }
        match serde_json::from_str::<DecisionFacts>(&line) {
            Ok(f) => facts.push(f),
            Err(_) => skipped += 1,
        }
    }
    let summary = summarize(&facts, &baseline);
    if args.json {
        let mut value = serde_json::to_value(&summary)?;
        value["skipped_lines"] = json!(skipped);
        value["policy_version"] = json!(policy.version);
        super::stdin_jsonl::write_line(&value.to_string())?;
    } else {
        super::stdin_jsonl::write_line(render(&summary, skipped).trim_end())?;
    }
    Ok(())
}

fn render(s: &DecisionSummary, skipped: usize) -> String {
    let mut out = String::new();
    let pct = |x: f64| format!("{:.1} %", 100.0 * x);
    let _ = writeln!(
        out,
        "{} decisions ({skipped} other lines skipped)",
        s.decisions
    );
    for (title, table) in [("bucket", &s.by_bucket), ("target", &s.by_target)] {
        let _ = writeln!(out, "\n{title:<20} {:>9} {:>8}", "decisions", "share");
        for (name, share) in table {
            let _ = writeln!(out, "{name:<20} {:>9} {:>8}", share.count, pct(share.share));
        }
    }
    let _ = writeln!(
        out,
        "\nabstained        {:>6} ({})\nunder-confident  {:>6} ({}; margin below {}, not abstained)",
        s.abstained.count,
        pct(s.abstained.share),
        s.under_confident.count,
        pct(s.under_confident.share),
        s.baseline.uncertain_margin
    );
    let _ = writeln!(
        out,
        "estimated input spend: ${:.6} as routed, ${:.6} with everything sent to {} (${}/Mtok): {} saved",
        s.spend.routed_usd,
        s.spend.all_to_most_expensive_usd,
        s.baseline.most_expensive_target,
        s.baseline.price_in_per_mtok,
        pct(s.spend.saving_share)
    );
    out
}
