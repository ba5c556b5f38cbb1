//! Running an evaluation: embed the rows, build a bundle on the training rows and fit its
//! scorers, then judge each test row. One split (`evaluate`), rows already embedded
//! (`evaluate_embedded`), or k-fold cross-validation (`cross_validate`). This is the only
//! part of `eval` that calls the embedder or builds bundles; the metrics come from `report`.

use std::collections::BTreeMap;
use std::time::Instant;

use super::judge::{judge, millis_since};
use super::report::reports;
use super::{EvalError, EvalOptions, EvalPhase, EvalReport};
use crate::embed::Embedder;
use crate::index::IndexEntry;
use crate::pipeline::bundle::Bundle;
use crate::pipeline::indexer::{embed_all, fit_index, text_sha256};
use crate::scoring::FitOptions;
use crate::store::{ExampleSet, LabeledRow};
use crate::types::{ArchetypeId, BucketId, Embedding};

/// Trains on `train`, classifies each test row one at a time (as served), and scores.
pub fn evaluate(
    embedder: &dyn Embedder,
    train: &[LabeledRow],
    test: &[LabeledRow],
    options: &EvalOptions,
    progress: &dyn Fn(EvalPhase, usize, usize),
) -> Result<Vec<EvalReport>, EvalError> {
    let vectors = embed_rows(embedder, train, progress)?;
    let index = fitted_index(embedder, train, &vectors, options)?;
    let mut outcomes = Vec::with_capacity(test.len());
    for (i, row) in test.iter().enumerate() {
        let start = Instant::now();
        let embedded = embedder.embed(&row.text)?;
        let embed_ms = millis_since(start);
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
    let vectors = embed_rows(embedder, rows, progress)?;
    let fold_of = stratified_folds(rows, folds);
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

/// Each row's fold: the n-th row of a label goes to fold `n mod folds`.
fn stratified_folds(rows: &[LabeledRow], folds: usize) -> Vec<usize> {
    let mut seen: BTreeMap<&str, usize> = BTreeMap::new();
    rows.iter()
        .map(|r| {
            let n = seen.entry(r.label.as_str()).or_insert(0);
            *n += 1;
            (*n - 1) % folds
        })
        .collect()
}

/// The rows' texts embedded in batches, reported as the training phase.
fn embed_rows(
    embedder: &dyn Embedder,
    rows: &[LabeledRow],
    progress: &dyn Fn(EvalPhase, usize, usize),
) -> Result<Vec<Embedding>, EvalError> {
    let texts: Vec<&str> = rows.iter().map(|r| r.text.as_str()).collect();
    Ok(embed_all(embedder, &texts, &|done, total| {
        progress(EvalPhase::Train, done, total)
    })?)
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
            id: ArchetypeId::new(&format!("row-{i}")),
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
