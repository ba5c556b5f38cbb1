//! Routing quality on labeled data: train an index (and fit its scorers) on one set,
//! classify another, and score every scorer on the same embeddings.
//!
//! Test rows whose label is not a bucket of the training set (such as `oos`) are out of
//! scope: they are right when the router abstains, they do not count in in-scope accuracy,
//! and they give the out-of-scope AUROC and recall.

pub mod conversations;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Instant;

use serde::Serialize;

use crate::embed::{EmbedError, Embedder};
use crate::index::{HnswParams, IndexEntry};
use crate::pipeline::bundle::Bundle;
use crate::pipeline::indexer::{embed_all, fit_index, text_sha256, IndexerError};
use crate::scoring::calibrate::{
    auroc, expected_calibration_error, threshold_for_precision, Scored,
};
use crate::scoring::{FitOptions, TOP_MEAN_K};
use crate::store::{ExampleSet, LabeledRow};
use crate::types::{elapsed_micros, BucketId, Embedding, ScorerKind};

/// Label given to out-of-scope rows without an `oos` kind column.
const OOS_KIND_DEFAULT: &str = "oos";

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

/// Out-of-scope detection at one confidence threshold.
#[derive(Debug, Clone, Serialize)]
pub struct OosPoint {
    /// `None` at the fitted threshold (each training fold fits its own).
    pub threshold: Option<f32>,
    /// Share of accepted rows (confidence ≥ threshold) routed to their gold bucket.
    pub in_scope_precision: f64,
    /// Share of in-scope rows accepted.
    pub in_scope_coverage: f64,
    /// Share of out-of-scope rows rejected (sent to the default bucket).
    pub recall: f64,
    /// `recall` per out-of-scope kind (`id-oos`, `ood-oos`, or `oos`).
    pub recall_by_kind: BTreeMap<String, f64>,
}

/// How well confidence separates in-scope from out-of-scope rows.
#[derive(Debug, Clone, Serialize)]
pub struct OosReport {
    /// In-scope rows should be more confident than out-of-scope ones.
    pub auroc: f64,
    pub auroc_by_kind: BTreeMap<String, f64>,
    /// At the lowest threshold whose in-scope precision on these rows reaches the target.
    pub at_target_precision: Option<OosPoint>,
    /// At the threshold fitted on the training rows' held-out part.
    pub at_fitted_threshold: Option<OosPoint>,
}

/// Accuracy when only decisions at or above a confidence are kept.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct CoveragePoint {
    pub coverage: f64,
    pub accuracy: f64,
    pub threshold: f32,
}

/// One scorer's results.
#[derive(Debug, Clone, Serialize)]
pub struct EvalReport {
    pub scorer: ScorerKind,
    /// In-scope accuracy.
    pub accuracy: f64,
    pub macro_f1: f64,
    /// In-scope test rows scored.
    pub n: usize,
    /// Test rows whose label is not a training bucket (left out of accuracy).
    pub n_out_of_scope: usize,
    /// Expected calibration error of `confidence` on in-scope rows.
    pub ece: f64,
    /// Accuracy at 100 %, 90 %, ... 50 % coverage (most confident decisions kept).
    pub coverage: Vec<CoveragePoint>,
    pub oos: Option<OosReport>,
    pub per_bucket: BTreeMap<String, BucketMetrics>,
    /// gold → predicted → count
    pub confusion: BTreeMap<String, BTreeMap<String, usize>>,
    /// Per-row decision latency (embed one text + search + score), milliseconds.
    pub latency_ms: Percentiles,
}

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

/// One scorer's verdict on one test row.
#[derive(Debug, Clone)]
struct Verdict {
    predicted: String,
    confidence: f32,
    /// Confidence reached the threshold fitted on the training rows.
    accepted_at_fitted: bool,
    latency_ms: f64,
}

/// One test row and every scorer's verdict.
#[derive(Debug, Clone)]
struct Outcome {
    gold: String,
    /// `Some(kind)` for an out-of-scope row.
    oos_kind: Option<String>,
    verdicts: BTreeMap<ScorerKind, Verdict>,
}

/// Trains on `train`, classifies each test row one at a time (as served), and scores.
pub fn evaluate(
    embedder: &dyn Embedder,
    train: &[LabeledRow],
    test: &[LabeledRow],
    options: &EvalOptions,
    progress: &dyn Fn(EvalPhase, usize, usize),
) -> Result<Vec<EvalReport>, EvalError> {
    let texts: Vec<&str> = train.iter().map(|r| r.text.as_str()).collect();
    let vectors = embed_all(embedder, &texts, &|done, total| {
        progress(EvalPhase::Train, done, total)
    })?;
    let index = fitted_index(embedder, train, &vectors, options)?;
    let mut outcomes = Vec::with_capacity(test.len());
    for (i, row) in test.iter().enumerate() {
        let start = Instant::now();
        let embedded = embedder.embed(&row.text)?;
        let embed_ms = elapsed_micros(start) as f64 / 1000.0;
        outcomes.push(judge(&index, row, &embedded.embedding, embed_ms, options)?);
        progress(EvalPhase::Test, i + 1, test.len());
    }
    Ok(reports(&outcomes, options))
}

/// Scores an already fitted `index` on embedded rows (`vectors[i]` is `rows[i]`'s).
pub fn evaluate_embedded(
    index: &Bundle,
    rows: &[LabeledRow],
    vectors: &[Embedding],
    options: &EvalOptions,
) -> Result<Vec<EvalReport>, EvalError> {
    let outcomes = rows
        .iter()
        .zip(vectors)
        .map(|(row, v)| judge(index, row, v, 0.0, options))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(reports(&outcomes, options))
}

/// `folds`-fold cross-validation on `rows` (row `i` is in fold `i mod folds` of its label,
/// so every fold has each label's share): every row is classified once, by an index built
/// without its fold. Rows are embedded once, in batches; latency is search + score only.
pub fn cross_validate(
    embedder: &dyn Embedder,
    rows: &[LabeledRow],
    folds: usize,
    options: &EvalOptions,
    progress: &dyn Fn(EvalPhase, usize, usize),
) -> Result<Vec<EvalReport>, EvalError> {
    if folds < 2 || rows.len() < folds {
        return Err(EvalError::Folds {
            folds,
            rows: rows.len(),
        });
    }
    let texts: Vec<&str> = rows.iter().map(|r| r.text.as_str()).collect();
    let vectors = embed_all(embedder, &texts, &|done, total| {
        progress(EvalPhase::Train, done, total)
    })?;
    let mut seen: BTreeMap<&str, usize> = BTreeMap::new();
    let fold_of: Vec<usize> = rows
        .iter()
        .map(|r| {
            let n = seen.entry(r.label.as_str()).or_insert(0);
            *n += 1;
            (*n - 1) % folds
        })
        .collect();
    let mut outcomes = Vec::with_capacity(rows.len());
    for fold in 0..folds {
        let (train, test): (Vec<usize>, Vec<usize>) =
            (0..rows.len()).partition(|&i| fold_of[i] != fold);
        let train_rows: Vec<LabeledRow> = train.iter().map(|&i| rows[i].clone()).collect();
        let train_vectors: Vec<Embedding> = train.iter().map(|&i| vectors[i].clone()).collect();
        let index = fitted_index(embedder, &train_rows, &train_vectors, options)?;
        for &i in &test {
            outcomes.push(judge(&index, &rows[i], &vectors[i], 0.0, options)?);
        }
        progress(EvalPhase::Test, outcomes.len(), rows.len());
    }
    Ok(reports(&outcomes, options))
}

/// An index of `train` (already embedded as `vectors`) with its scorers fitted.
fn fitted_index(
    embedder: &dyn Embedder,
    train: &[LabeledRow],
    vectors: &[Embedding],
    options: &EvalOptions,
) -> Result<Bundle, EvalError> {
    let examples = ExampleSet::from_rows(train);
    if examples.is_empty() {
        return Err(EvalError::EmptyTrain);
    }
    // Training rows as data sets give them: duplicates kept, one entry per row.
    let entries: Vec<IndexEntry> = train
        .iter()
        .zip(vectors)
        .enumerate()
        .map(|(i, (row, v))| IndexEntry {
            id: crate::types::ArchetypeId::new(&format!("row-{i}")),
            bucket: BucketId::new(&row.label),
            text_sha256: text_sha256(&row.text),
            embedding: v.clone(),
        })
        .collect();
    let index = Bundle::build(
        &entries,
        embedder.dims(),
        embedder.fingerprint().clone(),
        examples.content_sha256(),
        options.hnsw,
    )?;
    let fit = FitOptions {
        k: options.k,
        ..options.fit.clone()
    };
    Ok(fit_index(index, &fit, None)?.0)
}

/// Every requested scorer's verdict on one embedded row.
fn judge(
    index: &Bundle,
    row: &LabeledRow,
    query: &Embedding,
    embed_ms: f64,
    options: &EvalOptions,
) -> Result<Outcome, EvalError> {
    let in_scope = index
        .manifest()
        .counts
        .contains_key(&BucketId::new(&row.label));
    let start = Instant::now();
    let neighbours = index.neighbours(query, options.k.max(TOP_MEAN_K))?;
    let search_ms = elapsed_micros(start) as f64 / 1000.0;
    let scoring = &index.scoring;
    let mut verdicts = BTreeMap::new();
    for &kind in &options.scorers {
        let start = Instant::now();
        // The kNN vote sees k neighbours, top-mean its own 5.
        let considered = &neighbours[..neighbours.len().min(options.k)];
        let scores = scoring.score(kind, query.as_slice(), considered);
        let latency_ms = embed_ms + search_ms + elapsed_micros(start) as f64 / 1000.0;
        let (predicted, confidence) = scores.as_ref().map_or_else(
            || ("(none)".to_owned(), 0.0),
            |s| (s.bucket().to_string(), s.confidence()),
        );
        let threshold = scoring
            .calibration()
            .threshold(scoring.effective(kind))
            .unwrap_or(0.0);
        verdicts.insert(
            kind,
            Verdict {
                predicted,
                confidence,
                accepted_at_fitted: confidence >= threshold,
                latency_ms,
            },
        );
    }
    Ok(Outcome {
        gold: row.label.clone(),
        oos_kind: (!in_scope).then(|| {
            row.oos_kind
                .clone()
                .unwrap_or_else(|| OOS_KIND_DEFAULT.to_owned())
        }),
        verdicts,
    })
}

fn reports(outcomes: &[Outcome], options: &EvalOptions) -> Vec<EvalReport> {
    options
        .scorers
        .iter()
        .map(|&kind| report_for(kind, outcomes, options.fit.target_precision))
        .collect()
}

fn report_for(kind: ScorerKind, outcomes: &[Outcome], target_precision: f64) -> EvalReport {
    let verdict = |o: &Outcome| o.verdicts.get(&kind).cloned();
    let in_scope: Vec<(&Outcome, Verdict)> = outcomes
        .iter()
        .filter(|o| o.oos_kind.is_none())
        .filter_map(|o| verdict(o).map(|v| (o, v)))
        .collect();
    let out_of_scope: Vec<(&Outcome, Verdict)> = outcomes
        .iter()
        .filter(|o| o.oos_kind.is_some())
        .filter_map(|o| verdict(o).map(|v| (o, v)))
        .collect();
    let pairs: Vec<(String, String)> = in_scope
        .iter()
        .map(|(o, v)| (o.gold.clone(), v.predicted.clone()))
        .collect();
    let mut latencies: Vec<f64> = in_scope.iter().map(|(_, v)| v.latency_ms).collect();
    let mut report = score(
        kind,
        &pairs,
        out_of_scope.len(),
        Percentiles::of(&mut latencies),
    );
    let calibration_points: Vec<(f32, bool)> = in_scope
        .iter()
        .map(|(o, v)| (v.confidence, v.predicted == o.gold))
        .collect();
    report.ece = expected_calibration_error(&calibration_points);
    report.coverage = coverage_curve(&calibration_points);
    report.oos = oos_report(&in_scope, &out_of_scope, target_precision);
    report
}

/// Accuracy of the most confident 100 %, 90 %, ..., 50 % of in-scope decisions.
fn coverage_curve(points: &[(f32, bool)]) -> Vec<CoveragePoint> {
    let mut sorted = points.to_vec();
    sorted.sort_by(|a, b| b.0.total_cmp(&a.0));
    (5..=10)
        .rev()
        .filter_map(|tenths| {
            let keep = (sorted.len() * tenths).div_ceil(10);
            let kept = sorted.get(..keep).filter(|k| !k.is_empty())?;
            Some(CoveragePoint {
                coverage: keep as f64 / sorted.len() as f64,
                accuracy: kept.iter().filter(|(_, ok)| *ok).count() as f64 / keep as f64,
                threshold: kept[keep - 1].0,
            })
        })
        .collect()
}

fn oos_report(
    in_scope: &[(&Outcome, Verdict)],
    out_of_scope: &[(&Outcome, Verdict)],
    target_precision: f64,
) -> Option<OosReport> {
    let positives: Vec<f32> = in_scope.iter().map(|(_, v)| v.confidence).collect();
    let negatives: Vec<f32> = out_of_scope.iter().map(|(_, v)| v.confidence).collect();
    let auroc_all = auroc(&positives, &negatives)?;
    let kinds: BTreeSet<&str> = out_of_scope
        .iter()
        .filter_map(|(o, _)| o.oos_kind.as_deref())
        .collect();
    let of_kind = |kind: &str| -> Vec<&Verdict> {
        out_of_scope
            .iter()
            .filter(|(o, _)| o.oos_kind.as_deref() == Some(kind))
            .map(|(_, v)| v)
            .collect()
    };
    let auroc_by_kind = kinds
        .iter()
        .filter_map(|&k| {
            let negatives: Vec<f32> = of_kind(k).iter().map(|v| v.confidence).collect();
            Some((k.to_owned(), auroc(&positives, &negatives)?))
        })
        .collect();
    let point = |accepted: &dyn Fn(&Verdict) -> bool, threshold: Option<f32>| -> OosPoint {
        let accepted_in: Vec<&(&Outcome, Verdict)> =
            in_scope.iter().filter(|(_, v)| accepted(v)).collect();
        let accepted_oos = out_of_scope.iter().filter(|(_, v)| accepted(v)).count();
        let correct = accepted_in
            .iter()
            .filter(|(o, v)| v.predicted == o.gold)
            .count();
        let recall_of = |verdicts: &[&Verdict]| {
            ratio(
                verdicts.iter().filter(|v| !accepted(v)).count(),
                verdicts.len(),
            )
        };
        let all_oos: Vec<&Verdict> = out_of_scope.iter().map(|(_, v)| v).collect();
        OosPoint {
            threshold,
            in_scope_precision: ratio(correct, accepted_in.len() + accepted_oos),
            in_scope_coverage: ratio(accepted_in.len(), in_scope.len()),
            recall: recall_of(&all_oos),
            recall_by_kind: kinds
                .iter()
                .map(|&k| (k.to_owned(), recall_of(&of_kind(k))))
                .collect(),
        }
    };
    let candidates: Vec<Scored> = in_scope
        .iter()
        .map(|(o, v)| Scored {
            confidence: v.confidence,
            correct: v.predicted == o.gold,
        })
        .chain(out_of_scope.iter().map(|(_, v)| Scored {
            confidence: v.confidence,
            correct: false,
        }))
        .collect();
    let at_target_precision = threshold_for_precision(&candidates, target_precision).map(|op| {
        point(
            &|v: &Verdict| v.confidence >= op.threshold,
            Some(op.threshold),
        )
    });
    let at_fitted_threshold = Some(point(&|v: &Verdict| v.accepted_at_fitted, None));
    Some(OosReport {
        auroc: auroc_all,
        auroc_by_kind,
        at_target_precision,
        at_fitted_threshold,
    })
}

fn ratio(part: usize, whole: usize) -> f64 {
    if whole == 0 {
        0.0
    } else {
        part as f64 / whole as f64
    }
}

/// Accuracy, macro-F1, per-bucket precision/recall and the confusion table from
/// (gold, predicted) pairs.
pub fn score(
    scorer: ScorerKind,
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
        ece: 0.0,
        coverage: Vec::new(),
        oos: None,
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
            ScorerKind::WeightedKnn,
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
