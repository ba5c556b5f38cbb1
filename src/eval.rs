//! Routing accuracy on labeled data: train an index on one set, classify another, score.
//!
//! Test rows whose label is not a bucket of the training set (such as `oos`) are out of
//! scope: counted, and left out of in-scope accuracy. Every scorer sees the same embeddings.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Instant;

use serde::Serialize;

use crate::archetypes::{ExampleSet, LabeledRow};
use crate::decide::weighted_vote;
use crate::embed::{EmbedError, Embedder};
use crate::index::{HnswParams, LoadedIndex};
use crate::indexer::{build_index, IndexerError};
use crate::types::{elapsed_micros, BucketId, Embedding};

/// How a bucket is chosen from an embedding.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Scorer {
    /// Similarity-weighted vote of the k nearest archetypes (what the router serves).
    WeightedKnn,
    /// Cosine to each bucket's mean embedding: the plain baseline.
    Centroid,
}

impl Scorer {
    pub fn name(self) -> &'static str {
        match self {
            Self::WeightedKnn => "weighted_knn",
            Self::Centroid => "centroid",
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct BucketMetrics {
    pub precision: f64,
    pub recall: f64,
    pub f1: f64,
    pub support: usize,
}

#[derive(Debug, Clone, Copy, Serialize, Default)]
pub struct Percentiles {
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub max: f64,
}

impl Percentiles {
    /// Nearest-rank percentiles of `values` (any unit).
    pub fn of(values: &mut [f64]) -> Self {
        if values.is_empty() {
            return Self::default();
        }
        values.sort_by(f64::total_cmp);
        let at = |q: f64| {
            let rank = ((q * values.len() as f64).ceil() as usize).clamp(1, values.len());
            values[rank - 1]
        };
        Self {
            p50: at(0.50),
            p90: at(0.90),
            p99: at(0.99),
            max: values[values.len() - 1],
        }
    }
}

/// One scorer's results.
#[derive(Debug, Clone, Serialize)]
pub struct EvalReport {
    pub scorer: Scorer,
    /// In-scope accuracy.
    pub accuracy: f64,
    pub macro_f1: f64,
    /// In-scope test rows scored.
    pub n: usize,
    /// Test rows whose label is not a training bucket (left out of accuracy).
    pub n_out_of_scope: usize,
    pub per_bucket: BTreeMap<String, BucketMetrics>,
    /// gold → predicted → count
    pub confusion: BTreeMap<String, BTreeMap<String, usize>>,
    /// Per-row decision latency (embed one text + score), milliseconds.
    pub latency_ms: Percentiles,
}

#[derive(Debug, Clone)]
pub struct EvalOptions {
    pub k: usize,
    pub scorers: Vec<Scorer>,
    pub hnsw: HnswParams,
}

impl Default for EvalOptions {
    fn default() -> Self {
        Self {
            k: 10,
            scorers: vec![Scorer::WeightedKnn],
            hnsw: HnswParams::default(),
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
    #[error("the training set is empty")]
    EmptyTrain,
}

/// Progress of an evaluation, for a progress bar.
#[derive(Debug, Clone, Copy)]
pub enum EvalPhase {
    Train,
    Test,
}

/// Trains on `train`, classifies each test row one at a time (as served), and scores.
pub fn evaluate(
    embedder: &dyn Embedder,
    train: &[LabeledRow],
    test: &[LabeledRow],
    options: &EvalOptions,
    progress: &dyn Fn(EvalPhase, usize, usize),
) -> Result<Vec<EvalReport>, EvalError> {
    let examples = ExampleSet::from_rows(train);
    if examples.is_empty() {
        return Err(EvalError::EmptyTrain);
    }
    let index = build_index(&examples, embedder, options.hnsw, &|done, total| {
        progress(EvalPhase::Train, done, total)
    })?;
    let centroids = options
        .scorers
        .contains(&Scorer::Centroid)
        .then(|| centroids(&index));
    let buckets: BTreeSet<&BucketId> = examples.examples().iter().map(|e| &e.bucket).collect();

    let mut predictions: BTreeMap<Scorer, Vec<(String, String)>> = BTreeMap::new();
    let mut latencies: BTreeMap<Scorer, Vec<f64>> = BTreeMap::new();
    let mut out_of_scope = 0;
    for (i, row) in test.iter().enumerate() {
        if !buckets.contains(&BucketId::new(&row.label)) {
            out_of_scope += 1;
            continue;
        }
        let start = Instant::now();
        let embedded = embedder.embed(&row.text)?;
        let embed_us = elapsed_micros(start);
        for &scorer in &options.scorers {
            let start = Instant::now();
            let predicted = match scorer {
                Scorer::WeightedKnn => {
                    let neighbours = index.neighbours(&embedded.embedding, options.k)?;
                    weighted_vote(&neighbours).map(|v| v.bucket)
                }
                Scorer::Centroid => centroids
                    .as_ref()
                    .and_then(|c| nearest_centroid(c, &embedded.embedding)),
            };
            let us = embed_us + elapsed_micros(start);
            latencies
                .entry(scorer)
                .or_default()
                .push(us as f64 / 1000.0);
            let predicted = predicted.map_or_else(|| "(none)".to_owned(), |b| b.to_string());
            predictions
                .entry(scorer)
                .or_default()
                .push((row.label.clone(), predicted));
        }
        progress(EvalPhase::Test, i + 1, test.len());
    }
    Ok(options
        .scorers
        .iter()
        .map(|&scorer| {
            let pairs = predictions.remove(&scorer).unwrap_or_default();
            let mut lat = latencies.remove(&scorer).unwrap_or_default();
            score(scorer, &pairs, out_of_scope, Percentiles::of(&mut lat))
        })
        .collect())
}

/// Each bucket's normalised mean embedding, from the vectors stored in the index.
fn centroids(index: &LoadedIndex) -> Vec<(BucketId, Embedding)> {
    let mut sums: BTreeMap<BucketId, Vec<f32>> = BTreeMap::new();
    for key in &index.manifest().keys {
        let Some(v) = index.vector_search().vector(key.key) else {
            continue;
        };
        let sum = sums
            .entry(key.bucket.clone())
            .or_insert_with(|| vec![0.0; v.dims()]);
        sum.iter_mut().zip(v.as_slice()).for_each(|(s, x)| *s += x);
    }
    sums.into_iter()
        .map(|(b, sum)| (b, Embedding::normalized(sum)))
        .collect()
}

fn nearest_centroid(centroids: &[(BucketId, Embedding)], query: &Embedding) -> Option<BucketId> {
    centroids
        .iter()
        .max_by(|a, b| query.cosine(&a.1).total_cmp(&query.cosine(&b.1)))
        .map(|(b, _)| b.clone())
}

/// Accuracy, macro-F1, per-bucket precision/recall and the confusion table from
/// (gold, predicted) pairs.
pub fn score(
    scorer: Scorer,
    pairs: &[(String, String)],
    n_out_of_scope: usize,
    latency_ms: Percentiles,
) -> EvalReport {
    let mut confusion: BTreeMap<String, BTreeMap<String, usize>> = BTreeMap::new();
    for (gold, predicted) in pairs {
        *confusion
            .entry(gold.clone())
            .or_default()
            .entry(predicted.clone())
            .or_insert(0) += 1;
    }
    let correct = pairs.iter().filter(|(g, p)| g == p).count();
    let labels: BTreeSet<&String> = pairs.iter().map(|(g, _)| g).collect();
    let mut per_bucket = BTreeMap::new();
    for label in labels {
        let tp = pairs
            .iter()
            .filter(|(g, p)| g == label && p == label)
            .count() as f64;
        let predicted = pairs.iter().filter(|(_, p)| p == label).count() as f64;
        let support = pairs.iter().filter(|(g, _)| g == label).count();
        let precision = if predicted > 0.0 { tp / predicted } else { 0.0 };
        let recall = if support > 0 {
            tp / support as f64
        } else {
            0.0
        };
        let f1 = if precision + recall > 0.0 {
            2.0 * precision * recall / (precision + recall)
        } else {
            0.0
        };
        per_bucket.insert(
            label.clone(),
            BucketMetrics {
                precision,
                recall,
                f1,
                support,
            },
        );
    }
    let macro_f1 = if per_bucket.is_empty() {
        0.0
    } else {
        per_bucket.values().map(|m| m.f1).sum::<f64>() / per_bucket.len() as f64
    };
    EvalReport {
        scorer,
        accuracy: if pairs.is_empty() {
            0.0
        } else {
            correct as f64 / pairs.len() as f64
        },
        macro_f1,
        n: pairs.len(),
        n_out_of_scope,
        per_bucket,
        confusion,
        latency_ms,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(g, p)| (g.to_string(), p.to_string()))
            .collect()
    }

    #[test]
    fn scores_match_hand_computation() {
        // a: 2 gold, 1 right; b: 2 gold, 2 right; one b-prediction was an a.
        let r = score(
            Scorer::WeightedKnn,
            &pairs(&[("a", "a"), ("a", "b"), ("b", "b"), ("b", "b")]),
            1,
            Percentiles::default(),
        );
        assert_eq!(r.n, 4);
        assert_eq!(r.n_out_of_scope, 1);
        assert!((r.accuracy - 0.75).abs() < 1e-12);
        let a = &r.per_bucket["a"];
        assert!((a.precision - 1.0).abs() < 1e-12 && (a.recall - 0.5).abs() < 1e-12);
        let b = &r.per_bucket["b"];
        assert!((b.precision - 2.0 / 3.0).abs() < 1e-12 && (b.recall - 1.0).abs() < 1e-12);
        let expected_f1 = (2.0 / 3.0 + 0.8) / 2.0;
        assert!((r.macro_f1 - expected_f1).abs() < 1e-12);
        assert_eq!(r.confusion["a"]["b"], 1);
    }

    #[test]
    fn percentiles_nearest_rank() {
        let mut v: Vec<f64> = (1..=100).map(f64::from).collect();
        let p = Percentiles::of(&mut v);
        assert_eq!((p.p50, p.p90, p.p99, p.max), (50.0, 90.0, 99.0, 100.0));
    }
}
