//! Embed (tokenize + forward + pool + normalise) by prompt length, with the default options
//! (bf16 where the CPU has it, the default routing window), the full 256-token window, and f32.

use criterion::{criterion_group, Criterion};
use semantic_router::embed::bert::EmbedOptions;
use semantic_router::embed::kernel::Precision;
use semantic_router::embed::window::Window;
use semantic_router::embed::Embedder;

fn embed(c: &mut Criterion) {
    let default = super::embedder();
    let full = super::embedder_with(EmbedOptions {
        window: Window::FULL,
        ..EmbedOptions::default()
    });
    let f32_full = super::embedder_with(EmbedOptions {
        precision: Precision::F32,
        window: Window::FULL,
        ..EmbedOptions::default()
    });
    let prompts = super::prompts();
    // Token counts of the whole prompt (up to the model's 256).
    let short = super::prompt_with_tokens(full.as_ref(), &prompts, 10..=14);
    let medium = super::prompt_with_tokens(full.as_ref(), &prompts, 56..=64);
    let long = super::prompt_with_tokens(full.as_ref(), &prompts, 256..=256);
    let cases: [(&str, &dyn Embedder, &str); 7] = [
        ("short (~12 tokens)", default.as_ref(), &short),
        ("medium (~60 tokens)", default.as_ref(), &medium),
        ("long (routing window)", default.as_ref(), &long),
        ("long (full 256 tokens)", full.as_ref(), &long),
        ("short (~12 tokens), f32", f32_full.as_ref(), &short),
        ("medium (~60 tokens), f32", f32_full.as_ref(), &medium),
        ("long (full 256 tokens), f32", f32_full.as_ref(), &long),
    ];
    let mut tokenize = c.benchmark_group("tokenize");
    for (name, text) in [("short", &short), ("medium", &medium), ("long", &long)] {
        tokenize.bench_function(name, |b| {
            b.iter(|| default.token_ids(text).expect("tokenizes"))
        });
    }
    tokenize.finish();
    let mut group = c.benchmark_group("embed");
    group.sample_size(30);
    for (name, embedder, text) in cases {
        group.bench_function(name, |b| b.iter(|| embedder.embed(text).expect("embeds")));
    }
    group.finish();
}

criterion_group!(benches, embed);
