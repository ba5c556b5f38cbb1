//! The report of one scorer from its verdicts: in-scope accuracy, macro-F1, per-bucket
//! precision and recall, the confusion table, calibration (ECE), the coverage curve and
//! latency percentiles; the out-of-scope part comes from `oos`. Pure functions: nothing
//! here embeds, searches or scores.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use super::judge::{Judged, Outcome};
use super::oos::{oos_report, OosReport};
use super::EvalOptions;
use crate::scoring::calibrate::expected_calibration_error;
use crate::types::ScorerKind;

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

/// Accuracy when only decisions at or above a confidence are kept.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct CoveragePoint {
    pub coverage: f64,
    pub accuracy: f64,
    pub threshold: f32,
}

/// One bin of the reliability diagram: decisions whose confidence fell in `[lo, hi)`.
#[derive(Debug, Clone, Copy, Serialize, PartialEq)]
pub struct ReliabilityBin {
    pub lo: f64,
    pub hi: f64,
    pub count: usize,
    pub mean_confidence: f64,
    pub accuracy: f64,
}

/// Bins of the reliability diagram (`router eval --report`).
pub const RELIABILITY_BINS: usize = 10;

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
    /// Accuracy against mean confidence in equal-width confidence bins (empty bins left out).
    pub reliability: Vec<ReliabilityBin>,
    pub oos: Option<OosReport>,
    pub per_bucket: BTreeMap<String, BucketMetrics>,
    /// gold → predicted → count
    pub confusion: BTreeMap<String, BTreeMap<String, usize>>,
    /// Per-row decision latency (embed one text + search + score), milliseconds.
    pub latency_ms: Percentiles,
}

/// One report per requested scorer, in the order requested.
pub(super) fn reports(outcomes: &[Outcome], options: &EvalOptions) -> Vec<EvalReport> {
    options
        .scorers
        .iter()
        .map(|&kind| report_for(kind, outcomes, options.fit.target_precision))
        .collect()
}

fn report_for(kind: ScorerKind, outcomes: &[Outcome], target_precision: f64) -> EvalReport {
    // Rows `kind` judged, split by scope (each side in test order).
    let (in_scope, out_of_scope): (Vec<Judged>, Vec<Judged>) = outcomes
        .iter()
        .filter_map(|o| o.verdicts.get(&kind).cloned().map(|v| (o, v)))
        .partition(|(o, _)| o.oos_kind.is_none());
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
    report.reliability = reliability_bins(&calibration_points, RELIABILITY_BINS);
    report.oos = oos_report(&in_scope, &out_of_scope, target_precision);
    report
}

/// (confidence, correct) points binned by confidence into `bins` equal-width bins.
pub fn reliability_bins(points: &[(f32, bool)], bins: usize) -> Vec<ReliabilityBin> {
    let bins = bins.max(1);
    let mut sums = vec![(0f64, 0usize, 0usize); bins];
    for &(conf, correct) in points {
        let bin = ((f64::from(conf) * bins as f64) as usize).min(bins - 1);
        sums[bin].0 += f64::from(conf);
        sums[bin].1 += usize::from(correct);
        sums[bin].2 += 1;
    }
    sums.into_iter()
        .enumerate()
        .filter(|(_, (_, _, n))| *n > 0)
        .map(|(i, (conf, right, n))| ReliabilityBin {
            lo: i as f64 / bins as f64,
            hi: (i + 1) as f64 / bins as f64,
            count: n,
            mean_confidence: conf / n as f64,
            accuracy: right as f64 / n as f64,
        })
        .collect()
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

/// Accuracy, macro-F1, per-bucket precision/recall and the confusion table from
/// (gold, predicted) pairs.
pub fn score(
    scorer: ScorerKind,
    pairs: &[(String, String)],
    n_out_of_scope: usize,
    latency_ms: Percentiles,
) -> EvalReport {
    let correct = pairs.iter().filter(|(g, p)| g == p).count();
    let labels: BTreeSet<&String> = pairs.iter().map(|(g, _)| g).collect();
    let per_bucket: BTreeMap<String, BucketMetrics> = labels
        .into_iter()
        .map(|label| (label.clone(), bucket_metrics(pairs, label)))
        .collect();
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
        reliability: Vec::new(),
        oos: None,
        per_bucket,
        confusion: confusion_table(pairs),
        latency_ms,
    }
}

/// gold → predicted → count.
fn confusion_table(pairs: &[(String, String)]) -> BTreeMap<String, BTreeMap<String, usize>> {
    let mut confusion: BTreeMap<String, BTreeMap<String, usize>> = BTreeMap::new();
    for (gold, predicted) in pairs {
        *confusion
            .entry(gold.clone())
            .or_default()
            .entry(predicted.clone())
            .or_insert(0) += 1;
    }
    confusion
}

/// Precision, recall and F1 of `label` as one class against the rest.
fn bucket_metrics(pairs: &[(String, String)], label: &str) -> BucketMetrics {
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
    BucketMetrics {
        precision,
        recall,
        f1,
        support,
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
    fn reliability_bins_hold_their_points() {
        let points = [(0.05, false), (0.95, true), (0.91, false), (1.0, true)];
        let bins = reliability_bins(&points, 10);
        assert_eq!(bins.len(), 2);
        assert_eq!((bins[0].lo, bins[0].count, bins[0].accuracy), (0.0, 1, 0.0));
        let top = bins[1];
        assert_eq!((top.lo, top.hi, top.count), (0.9, 1.0, 3));
        assert!((top.accuracy - 2.0 / 3.0).abs() < 1e-12);
        assert!((top.mean_confidence - (0.95 + 0.91 + 1.0) / 3.0).abs() < 1e-6);
    }

    #[test]
    fn percentiles_nearest_rank() {
        let mut v: Vec<f64> = (1..=100).map(f64::from).collect();
        let p = Percentiles::of(&mut v);
        assert_eq!((p.p50, p.p90, p.p99, p.max), (50.0, 90.0, 99.0, 100.0));
    }
}
