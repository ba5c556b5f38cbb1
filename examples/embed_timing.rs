//! Latency of one embedding (tokenize + forward + pool + normalise) for a short, a medium and
//! a long prompt: `ROUTER_MODEL_DIR=… cargo run --release --example embed_timing [iterations]`.
//! `ROUTER_PRECISION=f32|bf16`, `ROUTER_WINDOW_HEAD` / `ROUTER_WINDOW_TAIL` pick the options
//! (defaults otherwise). Prints p50 / p99 in milliseconds to stderr. A measuring aid, not a test.

use std::time::Instant;

use semantic_router::embed::bert::{Backend, BertEmbedder, EmbedOptions};
use semantic_router::embed::model_files::{resolve, ModelManifest, ModelSource};
use semantic_router::embed::Embedder;

fn main() -> anyhow::Result<()> {
    let iterations: usize = std::env::args()
        .nth(1)
        .map(|s| s.parse())
        .transpose()?
        .unwrap_or(200);
    let source = match std::env::var_os("ROUTER_MODEL_DIR") {
        Some(dir) => ModelSource::Dir(dir.into()),
        None => ModelSource::Auto {
            models_root: "models".into(),
        },
    };
    let files = resolve(&ModelManifest::default_manifest(), &source)?;
    let mut options = EmbedOptions::default();
    if let Some(p) = std::env::var("ROUTER_PRECISION")
        .ok()
        .filter(|p| p != "auto")
    {
        options.precision = p.parse().map_err(anyhow::Error::msg)?;
    }
    if let Ok(head) = std::env::var("ROUTER_WINDOW_HEAD") {
        options.window.head = head.parse()?;
    }
    if let Ok(tail) = std::env::var("ROUTER_WINDOW_TAIL") {
        options.window.tail = tail.parse()?;
    }
    let embedder = BertEmbedder::load_with_options(
        &files,
        candle_core::Device::Cpu,
        Backend::Packed,
        options,
    )?;
    eprintln!(
        "precision {:?}, window {:?}, {} threads",
        embedder.precision(),
        embedder.window(),
        rayon::current_num_threads()
    );
    let sentence = "The quarterly report covers revenue, costs and the hiring plan for next year. ";
    let texts = [
        "Write a haiku about autumn leaves falling".to_owned(),
        sentence.repeat(4) + "Summarise it.",
        sentence.repeat(15),
    ];
    for text in &texts {
        let tokens = embedder.embed(text)?.tokens;
        for _ in 0..20 {
            embedder.embed(text)?;
        }
        let mut times: Vec<f64> = (0..iterations)
            .map(|_| {
                let start = Instant::now();
                let _ = embedder.embed(text);
                start.elapsed().as_secs_f64() * 1e3
            })
            .collect();
        times.sort_by(f64::total_cmp);
        let at = |q: f64| times[((times.len() - 1) as f64 * q).round() as usize];
        eprintln!(
            "{tokens:>4} tokens: min {:7.2} ms  p50 {:7.2} ms  p99 {:7.2} ms",
            times[0],
            at(0.5),
            at(0.99)
        );
    }
    Ok(())
}
