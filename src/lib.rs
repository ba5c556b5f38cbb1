//! A semantic LLM router: decides, per request, which LLM should answer a prompt.
//!
//! ```text
//!                     archetypes/*.jsonl ──(train / serve start)──► indexer ──► index bundle (usearch + manifest)
//!                                                                                  │ load / swap
//! prompt ─► embed ──Embedding──► index ──Vec<Neighbour>──► decide ──Decision──► serve (HTTP) / cli
//!           (candle BERT,         (usearch HNSW,            (vote → bucket,           (axum, metrics,
//!            mean-pool, L2)        exact oracle)             policy → targets)         errors → status)
//!                                       ▲                         ▲
//!                                       └── Snapshot (ArcSwap): index + policy, swapped whole ── live
//! ```
//!
//! Data flows one way: `types` ← stages (`embed`, `index`, `decide`) ← composers
//! (`archetypes`, `indexer`, `pipeline`, `eval`, `health`) ← `live` ← edges (`serve`, `cli`). A stage never
//! imports another stage; nothing imports an edge.

pub mod types;

pub mod decide;
pub mod embed;
pub mod index;
pub mod scoring;

pub mod archetypes;
pub mod eval;
pub mod health;
pub mod indexer;
pub mod pipeline;
pub mod store;
pub mod uncertain;

pub mod live;

pub mod cli;
pub mod serve;
