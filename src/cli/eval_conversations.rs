//! `router eval --conversations FILE [--policy FILE] [--archetypes DIR] [--json]`: every user
//! turn routed with its history through the served pipeline; follow-ups kept in the first
//! turn's bucket and sent to a cheaper tier, per task and overall.

use std::path::Path;

use serde_json::json;

use super::eval::EvalArgs;
use crate::eval::conversations::{evaluate, read_dialogues, FollowUps};
use crate::pipeline::compose::{load_offline, progress_bar, OfflineCore};

pub fn run(args: &EvalArgs, path: &Path) -> anyhow::Result<()> {
    let dialogues = read_dialogues(path)?;
    let bar = progress_bar("embedding archetypes");
    let OfflineCore { pipeline, snapshot } = load_offline(
        &args.state.paths(),
        &args.model.settings(),
        &|done, total| {
            bar.set_length(total as u64);
            bar.set_position(done as u64);
        },
    )?;
    bar.finish_and_clear();
    let bar = progress_bar("routing dialogues");
    let report = evaluate(
        &pipeline,
        &snapshot,
        &dialogues,
        &args.exclude_tasks,
        &|done, total| {
            bar.set_length(total as u64);
            bar.set_position(done as u64);
        },
    )?;
    bar.finish_and_clear();
    if args.json {
        super::stdin_jsonl::write_line(&serde_json::to_string_pretty(&json!({
            "policy_version": snapshot.policy.version,
            "index_version": snapshot.bundle.version(),
            "report": report,
        }))?)?;
        return Ok(());
    }
    let row = |name: &str, f: &FollowUps| {
        format!(
            "{name:<8} {:>6} {:>9} {:>10.3} {:>10.3} {:>8}",
            f.dialogues,
            f.follow_ups,
            f.kept_first_bucket,
            f.cheaper_tier,
            f.cheaper_without_reason
        )
    };
    let mut out = format!(
        "policy {} · index {}\n{:<8} {:>6} {:>9} {:>10} {:>10} {:>8}\n",
        snapshot.policy.version,
        snapshot.bundle.version(),
        "task",
        "dlgs",
        "follow-up",
        "kept 1st",
        "cheaper",
        "no reason"
    );
    for (task, f) in &report.by_task {
        out.push_str(&row(task, f));
        out.push('\n');
    }
    let label = format!(
        "overall (without {})",
        report.excluded_from_overall.join(", ")
    );
    out.push_str(&row("overall", &report.overall));
    out.push_str(&format!("   {label}\n"));
    Ok(super::stdin_jsonl::write_line(out.trim_end())?)
}
