//! `router classify` and `router embed`: JSONL on stdin → one JSON line per input on stdout,
//! in order. A bad line gets an `{"error": ..., "line": N}` line in its place (so outputs stay
//! aligned with inputs) and the command exits non-zero at the end.

use std::io::{BufRead, Write};

use anyhow::Context;
use clap::Args;
use serde::Deserialize;
use serde_json::json;

use super::args::StateArgs;
use super::ModelArgs;
use crate::embed::Embedder;
use crate::pipeline::compose::{load_embedder, load_offline, progress_bar, OfflineCore};
use crate::pipeline::ClassifyInput;

/// Lines embedded per forward pass; batch results equal single ones.
const STDIN_BATCH: usize = 32;

#[derive(Debug, Args)]
pub struct ClassifyArgs {
    #[command(flatten)]
    pub state: StateArgs,
    #[command(flatten)]
    pub model: ModelArgs,
}

#[derive(Debug, Args)]
pub struct EmbedArgs {
    #[command(flatten)]
    pub model: ModelArgs,
}

#[derive(Debug, Deserialize)]
struct TextLine {
    text: String,
    #[serde(default)]
    request_id: Option<String>,
}

/// The single place the CLI writes to stdout.
pub fn write_line(line: &str) -> std::io::Result<()> {
    let mut out = std::io::stdout().lock();
    writeln!(out, "{line}")?;
    out.flush()
}

/// Reads stdin lines in chunks, parsing each; calls `handle` with parsed inputs or per-line errors.
fn for_each_chunk(
    mut handle: impl FnMut(Vec<Result<TextLine, String>>) -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    let stdin = std::io::stdin().lock();
    let mut chunk = Vec::with_capacity(STDIN_BATCH);
    for (i, line) in stdin.lines().enumerate() {
        let line = line.context("reading stdin")?;
        if line.trim().is_empty() {
            continue;
        }
        let parsed = serde_json::from_str::<TextLine>(&line)
            .map_err(|e| format!("line {}: {e}", i + 1))
            .and_then(|t| {
                if t.text.trim().is_empty() {
                    Err(format!("line {}: `text` is empty", i + 1))
                } else {
                    Ok(t)
                }
            });
        chunk.push(parsed);
        if chunk.len() == STDIN_BATCH {
            handle(std::mem::take(&mut chunk))?;
        }
    }
    if !chunk.is_empty() {
        handle(chunk)?;
    }
    Ok(())
}

/// The exit status after every line was answered: non-zero if any line failed.
fn all_lines_ok(failures: usize) -> anyhow::Result<()> {
    anyhow::ensure!(
        failures == 0,
        "{failures} input line(s) failed (see their error lines)"
    );
    Ok(())
}

fn error_line(message: &str) -> String {
    json!({"error": message}).to_string()
}

pub fn classify(args: &ClassifyArgs) -> anyhow::Result<()> {
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
    let mut failures = 0usize;
    for_each_chunk(|chunk| {
        for parsed in chunk {
            let line = match parsed {
                Ok(t) => {
                    let input = ClassifyInput {
                        text: t.text,
                        request_id: t.request_id,
                        ..ClassifyInput::default()
                    };
                    match pipeline.classify(&snapshot, &input) {
                        Ok(decision) => serde_json::to_string(&decision)?,
                        Err(e) => {
                            failures += 1;
                            error_line(&e.to_string())
                        }
                    }
                }
                Err(message) => {
                    failures += 1;
                    error_line(&message)
                }
            };
            write_line(&line)?;
        }
        Ok(())
    })?;
    all_lines_ok(failures)
}

pub fn embed(args: &EmbedArgs) -> anyhow::Result<()> {
    let (embedder, _) = load_embedder(&args.model.settings())?;
    let mut failures = 0usize;
    for_each_chunk(|chunk| {
        let texts: Vec<&str> = chunk
            .iter()
            .filter_map(|p| p.as_ref().ok().map(|t| t.text.as_str()))
            .collect();
        let mut embedded = embedder.embed_batch(&texts)?.into_iter();
        for parsed in &chunk {
            let line = match parsed {
                Ok(_) => {
                    let e = embedded
                        .next()
                        .expect("one embedding per valid line. This is a bug.");
                    json!({"embedding": e.embedding.as_slice(), "tokens": e.tokens}).to_string()
                }
                Err(message) => {
                    failures += 1;
                    error_line(message)
                }
            };
            write_line(&line)?;
        }
        Ok(())
    })?;
    all_lines_ok(failures)
}
