//! `router bench`: drives the real HTTP service with real prompts and prints latency
//! percentiles and throughput, with the machine, build profile and model fingerprint, so a
//! figure can be reproduced. Without `--url` it starts this binary's own service on a free port.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use clap::Args;
use serde_json::{json, Value};

use super::bench_load::{connect, request, run_load, service_refusals, Load, Timed};
use super::ModelArgs;
use crate::embed::Embedder;
use crate::eval::Percentiles;
use crate::pipeline::compose::load_embedder;

#[derive(Debug, Args)]
pub struct BenchArgs {
    /// A running router (`http://HOST:PORT`); without it, a service is started on a free port.
    #[arg(long, env = "ROUTER_BENCH_URL")]
    pub url: Option<String>,
    /// JSONL prompts ({"text": ...}), sent in order and repeated as needed.
    #[arg(long)]
    pub prompts: PathBuf,
    /// Clients sending at once, each on its own keep-alive connection.
    #[arg(long, default_value_t = 1)]
    pub concurrency: usize,
    /// Measured requests in all (after the warm-up).
    #[arg(long, default_value_t = 500)]
    pub requests: usize,
    /// Requests sent first and not measured.
    #[arg(long, default_value_t = 20)]
    pub warmup: usize,
    /// Write the report as JSON.
    #[arg(long)]
    pub json: bool,
    /// Skip the in-process embedding of the same prompts (reported beside the HTTP figures,
    /// so the cost of everything around the model shows).
    #[arg(long)]
    pub no_embed_baseline: bool,
    #[command(flatten)]
    pub model: ModelArgs,
}

/// Kills the service this command started, however the command ends.
struct OwnService(Child);

impl Drop for OwnService {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

pub fn run(args: &BenchArgs) -> anyhow::Result<()> {
    let prompts = read_prompts(&args.prompts)?;
    let (_service, addr) = match &args.url {
        Some(url) => (
            None,
            url.trim_start_matches("http://")
                .trim_end_matches('/')
                .to_owned(),
        ),
        None => {
            let (child, addr) = start_service()?;
            (Some(child), addr)
        }
    };
    wait_ready(&addr)?;
    let info = request(&mut connect(&addr)?, &addr, "GET", "/info", "")?.1;

    let bodies: Vec<String> = prompts
        .iter()
        .map(|p| json!({"prompt": p}).to_string())
        .collect();
    run_load(&addr, &bodies, args.warmup, args.concurrency.max(1))?;
    let started = Instant::now();
    let Load {
        answered: timed,
        statuses,
        mut refusal_ms,
    } = run_load(&addr, &bodies, args.requests, args.concurrency.max(1))?;
    // Refusals and failures are not throughput: only answered decisions count.
    let errors: usize = statuses.values().sum();
    let wall = started.elapsed().as_secs_f64();
    let answered_rps = timed.len() as f64 / wall;
    let p = Percentiles::of(&mut timed.iter().map(|t| t.total_ms).collect::<Vec<_>>());
    let served_model = Percentiles::of(&mut timed.iter().map(|t| t.model_ms).collect::<Vec<_>>());
    let p50_of =
        |f: fn(&Timed) -> f64| Percentiles::of(&mut timed.iter().map(f).collect::<Vec<_>>()).p50;
    let search_p50 = p50_of(|t| t.search_ms);
    // Outside the pipeline: HTTP, parsing, admission, serialising the answer.
    let outside_p50 = p50_of(|t| t.total_ms - t.served_ms);
    // Per request: what the service spent outside tokenizing and the forward pass.
    let around = Percentiles::of(
        &mut timed
            .iter()
            .map(|t| t.total_ms - t.model_ms)
            .collect::<Vec<_>>(),
    );
    // After the load, so the two never compete for the cores.
    let embed = if args.no_embed_baseline {
        None
    } else {
        Some(embed_baseline(&args.model, &prompts, args.requests)?)
    };
    let around_model = embed.as_ref().map(|e| p.p50 - e.p50);
    let service_refused = service_refusals(&addr)?;
    let refused = Percentiles::of(&mut refusal_ms);
    let report = json!({
        "served_model_p50_ms": served_model.p50,
        "search_p50_ms": search_p50,
        "outside_pipeline_p50_ms": outside_p50,
        "around_model_per_request_p50_ms": around.p50,
        "around_model_per_request_p99_ms": around.p99,
        "in_process_embed_p50_ms": embed.as_ref().map(|e| e.p50),
        "in_process_embed_p99_ms": embed.as_ref().map(|e| e.p99),
        "around_model_p50_ms": around_model,
        "p50_ms": p.p50, "p90_ms": p.p90, "p99_ms": p.p99, "max_ms": p.max,
        "throughput_rps": answered_rps,
        "errors": errors,
        "non_200_by_status": statuses,
        "refusal_429_p50_ms": (!refusal_ms.is_empty()).then_some(refused.p50),
        "refusal_429_p99_ms": (!refusal_ms.is_empty()).then_some(refused.p99),
        "service_refusal_429_within_1ms_share": service_refused.as_ref().map(|r| r.within_1ms),
        "service_refusal_429_p99_at_most_ms": service_refused.as_ref().map(|r| r.p99_at_most_ms),
        "requests": args.requests,
        "concurrency": args.concurrency,
        "prompts": args.prompts.display().to_string(),
        "machine": machine(),
        "build": info["build"],
        "model": info["model"],
        "index_version": info["index"]["version"],
    });
    let line = if args.json {
        report.to_string()
    } else {
        format!(
            "{} requests, concurrency {}: p50 {:.2} ms  p90 {:.2} ms  p99 {:.2} ms  max {:.2} ms  throughput {:.0}/s (200s only)  errors {} {:?}\nmachine: {}\nbuild: {}  model: {}@{}",
            args.requests, args.concurrency, p.p50, p.p90, p.p99, p.max,
            answered_rps, errors, statuses, report["machine"],
            info["build"], info["model"]["id"], info["model"]["revision"],
        ) + &format!(
            "\nmodel (tokenize + forward pass, as the service reported): p50 {:.2} ms; the rest of each request: p50 {:.2} ms  p99 {:.2} ms (search p50 {:.2} ms; outside the pipeline p50 {:.2} ms)",
            served_model.p50, around.p50, around.p99, search_p50, outside_p50,
        ) + &service_refused.as_ref().map_or(String::new(), |r| format!(
            "\n429s: client-side p50 {:.2} ms  p99 {:.2} ms; the service's own (router_request_duration_seconds): {:.1} % of {} within 1 ms, p99 at most {} ms",
            refused.p50, refused.p99, r.within_1ms * 100.0, r.count, r.p99_at_most_ms,
        )) + &embed.as_ref().map_or(String::new(), |e| format!(
            "\nin-process embedding of the same prompts: p50 {:.2} ms  p99 {:.2} ms  (HTTP p50 minus it: {:.2} ms)",
            e.p50, e.p99, p.p50 - e.p50,
        ))
    };
    super::stdin_jsonl::write_line(&line)?;
    Ok(())
}

/// One in-process embedding at a time of the first `n` prompts (repeated as needed), after
/// a short warm-up: the model's share of a request, on the same machine in the same run.
fn embed_baseline(model: &ModelArgs, prompts: &[String], n: usize) -> anyhow::Result<Percentiles> {
    let (embedder, _) = load_embedder(&model.settings())?;
    for prompt in prompts.iter().cycle().take(20) {
        embedder.embed(prompt)?;
    }
    let mut times = Vec::with_capacity(n);
    for prompt in prompts.iter().cycle().take(n) {
        let start = Instant::now();
        embedder.embed(prompt)?;
        times.push(start.elapsed().as_secs_f64() * 1000.0);
    }
    Ok(Percentiles::of(&mut times))
}

fn read_prompts(path: &PathBuf) -> anyhow::Result<Vec<String>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let prompts: Vec<String> = text
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let v: Value = serde_json::from_str(l)?;
            Ok(v["text"].as_str().unwrap_or_default().to_owned())
        })
        .collect::<anyhow::Result<_>>()?;
    if prompts.iter().all(|p| p.trim().is_empty()) {
        bail!("{} has no {{\"text\": ...}} lines", path.display());
    }
    Ok(prompts)
}

/// Starts `router serve --addr 127.0.0.1:0` and reads its address from the log.
fn start_service() -> anyhow::Result<(OwnService, String)> {
    let exe = std::env::current_exe().context("locating the router binary")?;
    let data_dir = std::env::var("ROUTER_DATA_DIR").unwrap_or_else(|_| "data".to_owned());
    let mut child = OwnService(
        Command::new(exe)
            .args(["serve", "--addr", "127.0.0.1:0", "--data-dir", &data_dir])
            .env("ROUTER_LOG", "warn,semantic_router::serve::run=info")
            .stderr(Stdio::piped())
            .spawn()
            .context("starting the service")?,
    );
    let stderr = child.0.stderr.take().context("service stderr")?;
    let mut lines = BufReader::new(stderr).lines();
    let addr = loop {
        let Some(line) = lines.next() else {
            bail!("the service exited before listening");
        };
        let line = line?;
        if let Some(rest) = line.split("listening on http://").nth(1) {
            break rest
                .split_whitespace()
                .next()
                .unwrap_or_default()
                .to_owned();
        }
    };
    // Keep draining the log so the service never blocks on a full pipe; ends with the service.
    std::thread::spawn(move || lines.for_each(drop));
    Ok((child, addr))
}

fn wait_ready(addr: &str) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(600);
    loop {
        if let Ok(mut stream) = connect(addr) {
            if let Ok((200, _)) = request(&mut stream, addr, "GET", "/ready", "") {
                return Ok(());
            }
        }
        if Instant::now() > deadline {
            bail!("{addr} did not become ready");
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// CPU model and core count, for reproducibility.
fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|t| {
            t.lines()
                .find(|l| l.starts_with("model name"))
                .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_owned())
        })
        .unwrap_or_else(|| std::env::consts::ARCH.to_owned());
    let cores = std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get);
    format!("{cpu}, {cores} cores, {}", std::env::consts::OS)
}
