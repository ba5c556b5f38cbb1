//! Out-of-scope detection from one scorer's verdicts: how well confidence separates in-scope
//! from out-of-scope rows (AUROC, overall and per kind), and what abstaining below a threshold
//! buys (in-scope precision and coverage, out-of-scope recall) at the lowest threshold that
//! reaches the target precision and at the threshold fitted on the training rows.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use super::judge::{Judged, Verdict};
use crate::scoring::calibrate::{auroc, threshold_for_precision, Scored};

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

/// `None` when there are no out-of-scope rows (or no in-scope ones): AUROC is undefined.
pub(super) fn oos_report(
    in_scope: &[Judged],
    out_of_scope: &[Judged],
    target_precision: f64,
) -> Option<OosReport> {
    let rows = Scoped::new(in_scope, out_of_scope);
    let positives: Vec<f32> = in_scope.iter().map(|(_, v)| v.confidence).collect();
    let negatives: Vec<f32> = out_of_scope.iter().map(|(_, v)| v.confidence).collect();
    let auroc_all = auroc(&positives, &negatives)?;
    let auroc_by_kind = rows
        .kinds
        .iter()
        .filter_map(|&k| {
            let negatives: Vec<f32> = rows.of_kind(k).iter().map(|v| v.confidence).collect();
            Some((k.to_owned(), auroc(&positives, &negatives)?))
        })
        .collect();
    let at_target_precision =
        threshold_for_precision(&rows.candidates(), target_precision).map(|op| {
            rows.point(
                &|v: &Verdict| v.confidence >= op.threshold,
                Some(op.threshold),
            )
        });
    let at_fitted_threshold = Some(rows.point(&|v: &Verdict| v.accepted_at_fitted, None));
    Some(OosReport {
        auroc: auroc_all,
        auroc_by_kind,
        at_target_precision,
        at_fitted_threshold,
    })
}

/// One scorer's judged rows split by scope, with the out-of-scope kinds among them.
struct Scoped<'a> {
    in_scope: &'a [Judged<'a>],
    out_of_scope: &'a [Judged<'a>],
    kinds: BTreeSet<&'a str>,
}

impl<'a> Scoped<'a> {
    fn new(in_scope: &'a [Judged<'a>], out_of_scope: &'a [Judged<'a>]) -> Self {
        let kinds = out_of_scope
            .iter()
            .filter_map(|(o, _)| o.oos_kind.as_deref())
            .collect();
        Self {
            in_scope,
            out_of_scope,
            kinds,
        }
    }

    /// The verdicts on out-of-scope rows of `kind`.
    fn of_kind(&self, kind: &str) -> Vec<&'a Verdict> {
        self.out_of_scope
            .iter()
            .filter(|(o, _)| o.oos_kind.as_deref() == Some(kind))
            .map(|(_, v)| v)
            .collect()
    }

    /// Every row as a threshold candidate: in-scope rows are correct when routed to their
    /// gold bucket, out-of-scope rows never are.
    fn candidates(&self) -> Vec<Scored> {
        self.in_scope
            .iter()
            .map(|(o, v)| Scored {
                confidence: v.confidence,
                correct: v.predicted == o.gold,
            })
            .chain(self.out_of_scope.iter().map(|(_, v)| Scored {
                confidence: v.confidence,
                correct: false,
            }))
            .collect()
    }

    /// Detection when the verdicts that pass `accepted` are kept and the others abstain.
    fn point(&self, accepted: &dyn Fn(&Verdict) -> bool, threshold: Option<f32>) -> OosPoint {
        let accepted_in: Vec<&Judged> = self.in_scope.iter().filter(|(_, v)| accepted(v)).collect();
        let accepted_oos = self
            .out_of_scope
            .iter()
            .filter(|(_, v)| accepted(v))
            .count();
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
        let all_oos: Vec<&Verdict> = self.out_of_scope.iter().map(|(_, v)| v).collect();
        OosPoint {
            threshold,
            in_scope_precision: ratio(correct, accepted_in.len() + accepted_oos),
            in_scope_coverage: ratio(accepted_in.len(), self.in_scope.len()),
            recall: recall_of(&all_oos),
            recall_by_kind: self
                .kinds
                .iter()
                .map(|&k| (k.to_owned(), recall_of(&self.of_kind(k))))
                .collect(),
        }
    }
}

fn ratio(part: usize, whole: usize) -> f64 {
    if whole == 0 {
        0.0
    } else {
        part as f64 / whole as f64
    }
}
