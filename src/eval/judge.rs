//! Judging one row: search a fitted bundle once, then take every requested scorer's verdict
//! (predicted bucket, confidence, whether it clears the fitted threshold, latency). The
//! verdicts are all that `report` and `oos` read.

use std::collections::BTreeMap;
use std::time::Instant;

use super::{EvalError, EvalOptions};
use crate::pipeline::bundle::Bundle;
use crate::scoring::{ScoringModel, TOP_MEAN_K};
use crate::store::LabeledRow;
use crate::types::{elapsed_micros, BucketId, Embedding, Neighbour, ScorerKind};

/// Label given to out-of-scope rows without an `oos` kind column.
const OOS_KIND_DEFAULT: &str = "oos";

/// One scorer's verdict on one test row.
#[derive(Debug, Clone)]
pub(super) struct Verdict {
    pub(super) predicted: String,
    pub(super) confidence: f32,
    /// Confidence reached the threshold fitted on the training rows.
    pub(super) accepted_at_fitted: bool,
    pub(super) latency_ms: f64,
}

/// One test row and every scorer's verdict.
#[derive(Debug, Clone)]
pub(super) struct Outcome {
    pub(super) gold: String,
    /// `Some(kind)` for an out-of-scope row.
    pub(super) oos_kind: Option<String>,
    pub(super) verdicts: BTreeMap<ScorerKind, Verdict>,
}

/// One row as one scorer judged it.
pub(super) type Judged<'a> = (&'a Outcome, Verdict);

/// Milliseconds since `start`, at the microsecond resolution the router reports.
pub(super) fn millis_since(start: Instant) -> f64 {
    elapsed_micros(start) as f64 / 1000.0
}

/// Every requested scorer's verdict on one embedded row; `embed_ms` is what embedding it
/// took (0 when it was embedded in a batch).
pub(super) fn judge(
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
    let searched_ms = embed_ms + millis_since(start);
    // The kNN vote sees k neighbours, top-mean its own 5.
    let considered = &neighbours[..neighbours.len().min(options.k)];
    let verdicts = options
        .scorers
        .iter()
        .map(|&kind| {
            let verdict = verdict(&index.scoring, kind, query, considered, searched_ms);
            (kind, verdict)
        })
        .collect();
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

/// One scorer's verdict on `considered` neighbours; its latency adds the scoring time to
/// `searched_ms` (embed + search).
fn verdict(
    scoring: &ScoringModel,
    kind: ScorerKind,
    query: &Embedding,
    considered: &[Neighbour],
    searched_ms: f64,
) -> Verdict {
    let start = Instant::now();
    let scores = scoring.score(kind, query.as_slice(), considered);
    let latency_ms = searched_ms + millis_since(start);
    let (predicted, confidence) = scores.as_ref().map_or_else(
        || ("(none)".to_owned(), 0.0),
        |s| (s.bucket().to_string(), s.confidence()),
    );
    // The same fitted threshold `decide` resolves "fitted" to.
    let threshold = scoring.fitted_threshold(kind).unwrap_or(0.0);
    Verdict {
        predicted,
        confidence,
        accepted_at_fitted: confidence >= threshold,
        latency_ms,
    }
}
