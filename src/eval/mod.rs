//! Routing quality on labeled data: train an index (and fit its scorers) on one set,
//! classify another, and score every scorer on the same embeddings.
//!
//! Test rows whose label is not a bucket of the training set (such as `oos`) are out of
//! scope: they are right when the router abstains, they do not count in in-scope accuracy,
//! and they give the out-of-scope AUROC and recall.
//!
//! - `run`: one train/test split, rows already embedded, or k-fold cross-validation; the
//!   only part that calls the embedder and builds bundles.
//! - `judge`: one embedded row through a fitted bundle, giving every scorer's verdict.
//! - `report`: accuracy, macro-F1, per-bucket metrics, confusion, ECE, coverage, latency.
//! - `oos`: out-of-scope AUROC, and recall at the target precision and fitted threshold.
//!
//! - `decisions`: what recent decisions did (shares, abstentions, spend), for `router report`
//!   and `GET /admin/stats`.
//!
//! `report` and `oos` are pure functions over verdicts: they never see an embedding.

pub mod conversations;
pub mod decisions;
pub mod figures;
mod judge;
mod oos;
mod report;
mod routing_cost;
mod run;

use crate::embed::EmbedError;
use crate::index::HnswParams;
use crate::pipeline::indexer::IndexerError;
use crate::scoring::FitOptions;
use crate::types::ScorerKind;

pub use oos::{OosPoint, OosReport};
pub use report::{
    reliability_bins, score, BucketMetrics, CoveragePoint, EvalReport, Percentiles, ReliabilityBin,
};
pub use routing_cost::{routing_cost, RoutingCost};
pub use run::{cross_validate, evaluate, evaluate_embedded};

#[derive(Debug, Clone)]
pub struct EvalOptions {
    pub k: usize,
    pub scorers: Vec<ScorerKind>,
    pub hnsw: HnswParams,
    pub fit: FitOptions,
}

impl Default for EvalOptions {
    fn default() -> Self {
        Self {
            k: 10,
            scorers: vec![ScorerKind::Combined],
            hnsw: HnswParams::default(),
            fit: FitOptions::default(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum EvalError {
    #[error(transparent)]
    Indexer(#[from] IndexerError),
    #[error(transparent)]
    Embed(#[from] EmbedError),
    #[error(transparent)]
    Index(#[from] crate::index::IndexError),
    #[error(transparent)]
    Bundle(#[from] crate::pipeline::bundle::BundleError),
    #[error("the training set is empty")]
    EmptyTrain,
    #[error("cross-validation needs at least 2 folds and as many rows, got {folds} folds of {rows} rows")]
    Folds { folds: usize, rows: usize },
}

/// Progress of an evaluation, for a progress bar.
#[derive(Debug, Clone, Copy)]
pub enum EvalPhase {
    Train,
    Test,
}
