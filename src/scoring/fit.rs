//! Fitting the scorers: the head on the training rows, then temperatures, the combined
//! scorer's weight and abstain thresholds on rows the head did not see.
//!
//! Without explicit calibration rows, every fifth row of each bucket is held out: the head
//! and the neighbours are fitted on the rest, the calibration on the held-out fifth, and the
//! head is then refitted on every row (the calibration carries over; the head only gets
//! slightly surer with 25 % more rows).

use std::time::Instant;

use ndarray::{Array2, ArrayView2};
use serde::Serialize;

use super::calibrate::{
    expected_calibration_error, fit_temperature, softmax_with_temperature, threshold_for_precision,
    OperatingPoint, Platt, Scored,
};
use super::head::{HeadOptions, LinearHead};
use super::{Calibration, ScoringError, ScoringModel};
use crate::types::{ArchetypeId, BucketId, Neighbour, ScorerKind};

/// In-scope precision the abstain thresholds aim for unless told otherwise.
pub const DEFAULT_TARGET_PRECISION: f64 = 0.95;
/// Candidate head weights of the combined scorer.
const HEAD_WEIGHT_GRID: [f32; 11] = [0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0];
/// Calibration queries per matrix product when searching neighbours by brute force.
const QUERY_CHUNK: usize = 256;

/// Labeled vectors: `labels[i]` indexes the bucket list.
#[derive(Debug, Clone, Default)]
pub struct FitRows<'a> {
    pub vectors: Vec<&'a [f32]>,
    pub labels: Vec<usize>,
}

/// Rows to calibrate on; `None` marks an out-of-scope row (right when the router abstains).
#[derive(Debug, Clone, Default)]
pub struct CalibrationRows<'a> {
    pub vectors: Vec<&'a [f32]>,
    pub labels: Vec<Option<usize>>,
}

#[derive(Debug, Clone)]
pub struct FitOptions {
    pub head: HeadOptions,
    /// Neighbours of the kNN scorers (the policy's `matching.k`).
    pub k: usize,
    pub target_precision: f64,
    /// One row in this many of each bucket is held out for calibration.
    pub holdout_every: usize,
}

impl Default for FitOptions {
    fn default() -> Self {
        Self {
            head: HeadOptions::default(),
            k: 10,
            target_precision: DEFAULT_TARGET_PRECISION,
            holdout_every: 5,
        }
    }
}

/// How one scorer did on the calibration rows.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ScorerFitReport {
    pub scorer: ScorerKind,
    /// In-scope accuracy on the calibration rows.
    pub accuracy: f64,
    /// Expected calibration error after the temperature.
    pub ece: f64,
    pub temperature: f32,
    /// Where `target_precision` is reached, if anywhere.
    pub threshold: Option<OperatingPoint>,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct FitReport {
    pub buckets: usize,
    pub rows_trained: usize,
    pub rows_calibrated: usize,
    pub rows_out_of_scope: usize,
    pub head_weight: f32,
    pub target_precision: f64,
    pub seconds: f64,
    pub scorers: Vec<ScorerFitReport>,
}

/// Fits the head, the temperatures, the combined weight and the thresholds. With
/// `calibrate_on`, the head is trained on all of `train` and calibrated there; without, a
/// fifth of `train` is held out for calibration (see the module docs).
pub fn fit_scoring(
    buckets: Vec<BucketId>,
    dims: usize,
    train: &FitRows<'_>,
    calibrate_on: Option<&CalibrationRows<'_>>,
    options: &FitOptions,
) -> Result<(ScoringModel, FitReport), ScoringError> {
    let start = Instant::now();
    let classes = buckets.len();
    let mut report = FitReport {
        buckets: classes,
        rows_trained: train.vectors.len(),
        rows_calibrated: 0,
        rows_out_of_scope: 0,
        head_weight: Calibration::default().head_weight,
        target_precision: options.target_precision,
        seconds: 0.0,
        scorers: Vec::new(),
    };
    if classes < 2 || train.vectors.is_empty() {
        // Nothing to separate: the kNN vote (or the default bucket) decides.
        let model = ScoringModel::new(buckets, dims, train, None, Calibration::default())?;
        return Ok((model, report));
    }
    let model = match calibrate_on {
        Some(rows) => {
            let head = LinearHead::train(&train.vectors, &train.labels, classes, &options.head)?;
            let uncalibrated =
                ScoringModel::new(buckets, dims, train, Some(head), Calibration::default())?;
            let (calibration, scorers) = calibrate(&uncalibrated, train, rows, options);
            report.scorers = scorers;
            report.rows_calibrated = rows.vectors.len();
            report.rows_out_of_scope = rows.labels.iter().filter(|l| l.is_none()).count();
            uncalibrated.with_calibration(calibration)
        }
        None => {
            let (fit_part, held_out) = split(train, options.holdout_every);
            let calibration = if held_out.vectors.is_empty() {
                Calibration::default()
            } else {
                let head =
                    LinearHead::train(&fit_part.vectors, &fit_part.labels, classes, &options.head)?;
                let partial = ScoringModel::new(
                    buckets.clone(),
                    dims,
                    &fit_part,
                    Some(head),
                    Calibration::default(),
                )?;
                let (calibration, scorers) = calibrate(&partial, &fit_part, &held_out, options);
                report.scorers = scorers;
                report.rows_calibrated = held_out.vectors.len();
                calibration
            };
            let head = LinearHead::train(&train.vectors, &train.labels, classes, &options.head)?;
            ScoringModel::new(buckets, dims, train, Some(head), calibration)?
        }
    };
    report.head_weight = model.calibration().head_weight;
    report.seconds = start.elapsed().as_secs_f64();
    Ok((model, report))
}

/// Every `every`-th row of each bucket goes to the held-out part.
fn split<'a>(rows: &FitRows<'a>, every: usize) -> (FitRows<'a>, CalibrationRows<'a>) {
    let every = every.max(2);
    let mut seen = std::collections::HashMap::new();
    let mut fit_part = FitRows::default();
    let mut held_out = CalibrationRows::default();
    for (v, &label) in rows.vectors.iter().zip(&rows.labels) {
        let count = seen.entry(label).or_insert(0usize);
        *count += 1;
        if *count % every == 0 {
            held_out.vectors.push(v);
            held_out.labels.push(Some(label));
        } else {
            fit_part.vectors.push(v);
            fit_part.labels.push(label);
        }
    }
    (fit_part, held_out)
}

/// Fits temperatures, the combined weight and thresholds of `model` on `rows`, whose
/// neighbours are searched (exactly) among `reference`.
fn calibrate(
    model: &ScoringModel,
    reference: &FitRows<'_>,
    rows: &CalibrationRows<'_>,
    options: &FitOptions,
) -> (Calibration, Vec<ScorerFitReport>) {
    let neighbours = exact_neighbours(model.buckets(), reference, &rows.vectors, options.k);
    let mut calibration = Calibration {
        target_precision: options.target_precision,
        fitted_on_rows: rows.vectors.len(),
        ..Calibration::default()
    };
    let raw_of = |model: &ScoringModel, kind: ScorerKind| -> Vec<Vec<f32>> {
        rows.vectors
            .iter()
            .zip(&neighbours)
            .map(|(v, n)| model.raw_scores(kind, v, n))
            .collect()
    };
    let in_scope = |raw: &[Vec<f32>]| -> Vec<(Vec<f32>, usize)> {
        raw.iter()
            .zip(&rows.labels)
            .filter_map(|(z, l)| l.map(|l| (z.clone(), l)))
            .collect()
    };
    let mut raw_by_kind = std::collections::BTreeMap::new();
    for kind in [
        ScorerKind::WeightedKnn,
        ScorerKind::Centroid,
        ScorerKind::TopMean,
        ScorerKind::Head,
    ] {
        let raw = raw_of(model, kind);
        calibration
            .temperatures
            .insert(kind, fit_temperature(&in_scope(&raw)));
        raw_by_kind.insert(kind, raw);
    }
    let soft_knn: Vec<Vec<f32>> = neighbours
        .iter()
        .map(|n| model.soft_knn_scores(n))
        .collect();
    calibration.knn_softmax_temperature = fit_temperature(&in_scope(&soft_knn));
    // The head weight that routes the held-out rows best (ties: the lower NLL).
    let mut best = (f64::NEG_INFINITY, f64::INFINITY, 0.5f32);
    for w in HEAD_WEIGHT_GRID {
        let trial = model.clone().with_calibration(Calibration {
            head_weight: w,
            ..calibration.clone()
        });
        let scored = in_scope(&raw_of(&trial, ScorerKind::Combined));
        let accuracy = accuracy_of(&scored);
        let nll = scored
            .iter()
            .map(|(z, gold)| -f64::from(softmax_with_temperature(z, 1.0)[*gold].max(1e-12)).ln())
            .sum::<f64>();
        if accuracy > best.0 || (accuracy == best.0 && nll < best.1) {
            best = (accuracy, nll, w);
        }
    }
    calibration.head_weight = best.2;
    let with_weight = model.clone().with_calibration(calibration.clone());
    let combined = raw_of(&with_weight, ScorerKind::Combined);
    calibration
        .temperatures
        .insert(ScorerKind::Combined, fit_temperature(&in_scope(&combined)));
    raw_by_kind.insert(ScorerKind::Combined, combined);

    let closeness: Vec<f32> = rows.vectors.iter().map(|v| model.closeness(v)).collect();
    // (top bucket, top score) per row and scorer, with the temperatures fitted above.
    let mut tops = std::collections::BTreeMap::new();
    for (kind, raw) in &raw_by_kind {
        let t = calibration.temperature(*kind);
        let top: Vec<(usize, f32)> = raw
            .iter()
            .map(|z| argmax(&softmax_with_temperature(z, t)))
            .collect();
        let in_scope_points: Vec<(f32, bool)> = top
            .iter()
            .zip(&closeness)
            .zip(&rows.labels)
            .filter_map(|((&(best, _), &c), label)| label.map(|l| (c, l == best)))
            .collect();
        if let Some(platt) = Platt::fit(&in_scope_points) {
            calibration.confidence.insert(*kind, platt);
        }
        tops.insert(*kind, top);
    }
    let fitted = model.clone().with_calibration(calibration.clone());
    let mut reports = Vec::new();
    for (kind, top) in tops {
        let points: Vec<(f32, Option<bool>)> = top
            .iter()
            .zip(&rows.vectors)
            .zip(&rows.labels)
            .map(|((&(best, score), v), label)| {
                (fitted.confidence(kind, v, score), label.map(|l| l == best))
            })
            .collect();
        let candidates: Vec<Scored> = points
            .iter()
            .map(|&(confidence, correct)| Scored {
                confidence,
                correct: correct == Some(true),
            })
            .collect();
        let in_scope_points: Vec<(f32, bool)> = points
            .iter()
            .filter_map(|&(c, correct)| correct.map(|ok| (c, ok)))
            .collect();
        let threshold = threshold_for_precision(&candidates, options.target_precision);
        if let Some(point) = threshold {
            calibration.thresholds.insert(kind, point);
        }
        reports.push(ScorerFitReport {
            scorer: kind,
            accuracy: share(
                in_scope_points.iter().filter(|(_, ok)| *ok).count(),
                in_scope_points.len(),
            ),
            ece: expected_calibration_error(&in_scope_points),
            temperature: calibration.temperature(kind),
            threshold,
        });
    }
    (calibration, reports)
}

fn share(part: usize, whole: usize) -> f64 {
    if whole == 0 {
        0.0
    } else {
        part as f64 / whole as f64
    }
}

fn argmax(p: &[f32]) -> (usize, f32) {
    p.iter()
        .copied()
        .enumerate()
        .fold((0, f32::NEG_INFINITY), |best, (i, v)| {
            if v > best.1 {
                (i, v)
            } else {
                best
            }
        })
}

fn accuracy_of(rows: &[(Vec<f32>, usize)]) -> f64 {
    share(
        rows.iter().filter(|(z, gold)| argmax(z).0 == *gold).count(),
        rows.len(),
    )
}

/// The `k` most similar reference rows of each query, by brute force (one matrix product per
/// chunk of queries): exact, and fast enough for calibration sets of thousands.
fn exact_neighbours(
    buckets: &[BucketId],
    reference: &FitRows<'_>,
    queries: &[&[f32]],
    k: usize,
) -> Vec<Vec<Neighbour>> {
    let dims = reference.vectors.first().map_or(0, |v| v.len());
    if dims == 0 || k == 0 {
        return vec![Vec::new(); queries.len()];
    }
    let flat: Vec<f32> = reference
        .vectors
        .iter()
        .flat_map(|v| v.iter().copied())
        .collect();
    let refs = ArrayView2::from_shape((reference.vectors.len(), dims), &flat)
        .expect("every reference row has `dims` values. This is a bug.");
    let ids: Vec<ArchetypeId> = (0..reference.vectors.len())
        .map(|i| ArchetypeId::new(&format!("row-{i}")))
        .collect();
    let mut out = Vec::with_capacity(queries.len());
    for chunk in queries.chunks(QUERY_CHUNK) {
        let q: Vec<f32> = chunk.iter().flat_map(|v| v.iter().copied()).collect();
        let q = Array2::from_shape_vec((chunk.len(), dims), q)
            .expect("every query has `dims` values. This is a bug.");
        let sims = q.dot(&refs.t());
        for row in sims.rows() {
            let mut order: Vec<usize> = (0..row.len()).collect();
            let kk = k.min(order.len());
            let by_sim = |a: &usize, b: &usize| row[*b].total_cmp(&row[*a]).then(a.cmp(b));
            if kk < order.len() {
                order.select_nth_unstable_by(kk - 1, by_sim);
                order.truncate(kk);
            }
            order.sort_by(by_sim);
            out.push(
                order
                    .into_iter()
                    .map(|i| Neighbour {
                        id: ids[i].clone(),
                        bucket: buckets[reference.labels[i]].clone(),
                        similarity: row[i],
                    })
                    .collect(),
            );
        }
    }
    out
}

#[cfg(test)]
mod tests;
