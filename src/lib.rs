//! A semantic LLM router: decides, per request, which LLM should answer a prompt.
//!
//! ```text
//! request ─► pipeline ───────────────────────────────────────────────────────────► Decision ─► serve (HTTP) / cli
//!            │ retrieval cache → admission (the edge's) → batcher
//!            ▼
//!            embed ──Embedding──► index ──neighbours──► scoring ──BucketScores──► decide
//!            candle BERT           usearch HNSW           head + kNN,             thresholds, policy,
//!            mean-pool, L2         (exact oracle)         calibrated              rules, breakers → targets
//!
//! archetype store ─► pipeline::indexer ─► pipeline::bundle (index + scoring side by side) ─► live (ArcSwap snapshot)
//! ```
//!
//! Data flows one way. Stages (`embed`, `index`, `scoring`, `decide`) import only `types`.
//! Composers (`pipeline` with its `bundle`, `indexer` and `compose`, `store`, `live`, `eval`)
//! join them; `pipeline::compose` is the composition root both edges call. The edges
//! (`serve`, `cli`) parse, call the library and map errors; they never import each other.

pub mod types;

pub mod decide;
pub mod embed;
pub mod index;
pub mod scoring;

pub mod store;

pub mod pipeline;

pub mod eval;
pub mod live;

pub mod cli;
pub mod serve;
