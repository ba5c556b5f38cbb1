//! A semantic LLM router: decides, per request, which LLM should answer a prompt.
//!
//! ```text
//!                     archetypes/*.jsonl ──(train / serve start)──► indexer ──► index bundle (usearch + head + manifest)
//!                                                                                  │ load / swap
//! prompt ─► embed ──Embedding──► index ──Vec<Neighbour>──► scoring ──BucketScores──► decide ──Decision──► serve / cli
//!           (candle BERT,         (usearch HNSW,            (softmax head + kNN,        (thresholds,        (axum, metrics,
//!            mean-pool, L2)        exact oracle)             calibrated confidence)      policy → targets)   errors → status)
//!                                       ▲                                                   ▲
//!                                       └── Snapshot (ArcSwap): index (+ fitted scorers) + policy, swapped whole ── live
//! ```
//!
//! Data flows one way: `types` ← stages (`embed`, `scoring`, `index`, `decide`) ← composers
//! (`archetypes`, `indexer`, `pipeline`, `eval`, `uncertain`) ← `live` ← edges (`serve`,
//! `cli`). A stage never imports another stage, with one exception: the index bundle carries
//! the scoring model fitted on its examples, so `index` builds on `scoring`. The live state's
//! health board (`live::HealthBoard`) imports only `decide`, so the pipeline reads it too.

pub mod types;

pub mod decide;
pub mod embed;
pub mod index;
pub mod scoring;

pub mod archetypes;
pub mod eval;
pub mod indexer;
pub mod pipeline;
pub mod store;
pub mod uncertain;

pub mod live;

pub mod cli;
pub mod serve;
