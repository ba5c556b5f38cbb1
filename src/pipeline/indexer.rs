//! Examples + embedder → bundle (index + fitted scoring). Used by `router train`, by `serve`
//! when no valid bundle is on disk, by the reloader, and by `eval`.

use std::collections::HashMap;

use super::bundle::{bundle_exists, Bundle, BundleError};
use crate::embed::{EmbedError, Embedder};
use crate::index::{HnswParams, IndexEntry};
use crate::scoring::{fit_rows, fit_scoring, CalibrationRows, FitOptions, FitReport, ScoringError};
use crate::store::{ExampleSet, VectorCache};
use crate::types::Embedding;

/// Texts per forward pass when indexing: large enough to amortise per-call overhead, small
/// enough that padding to the longest text of a batch stays cheap (batches are length-sorted).
pub const INDEX_BATCH_SIZE: usize = 32;
/// `router_index_vectors_total{source}`: vectors placed in built indexes, by where they came
/// from (`previous_index`, `shared_store`, `model`): how much of a rebuild ran the model.
pub const INDEX_VECTORS_METRIC: &str = "router_index_vectors_total";

#[derive(Debug, thiserror::Error)]
pub enum IndexerError {
    #[error(transparent)]
    Embed(#[from] EmbedError),
    #[error(transparent)]
    Bundle(#[from] BundleError),
    #[error(transparent)]
    Scoring(#[from] ScoringError),
}

/// Where vectors embedded before come from, so only texts found in neither run through the
/// model. The default reuses nothing.
#[derive(Clone, Copy, Default)]
pub struct Reuse<'a> {
    /// The index being replaced (same model): its texts keep their vectors.
    pub previous: Option<&'a Bundle>,
    /// Vectors other replicas embedded (the shared store); fresh vectors are added to it.
    pub cache: Option<&'a dyn VectorCache>,
}

impl<'a> Reuse<'a> {
    /// Reuses the vectors of `previous` only.
    pub fn previous(previous: &'a Bundle) -> Self {
        Self {
            previous: Some(previous),
            cache: None,
        }
    }

    /// Adds a vector cache to look in after `previous`.
    pub fn with_cache(self, cache: Option<&'a dyn VectorCache>) -> Self {
        Self { cache, ..self }
    }
}

/// Embeds many texts in length-sorted batches; results are in input order.
/// `progress(done, total)` is called after every batch.
pub fn embed_all(
    embedder: &dyn Embedder,
    texts: &[&str],
    progress: &dyn Fn(usize, usize),
) -> Result<Vec<Embedding>, EmbedError> {
    let mut order: Vec<usize> = (0..texts.len()).collect();
    // Similar lengths together: a batch pads to its longest text.
    order.sort_by_key(|&i| texts[i].len());
    let mut out: Vec<Option<Embedding>> = vec![None; texts.len()];
    let mut done = 0;
    for chunk in order.chunks(INDEX_BATCH_SIZE) {
        let batch: Vec<&str> = chunk.iter().map(|&i| texts[i]).collect();
        for (&i, embedded) in chunk.iter().zip(embedder.embed_batch(&batch)?) {
            out[i] = Some(embedded.embedding);
        }
        done += chunk.len();
        progress(done, texts.len());
    }
    Ok(out
        .into_iter()
        .map(|e| e.expect("every position is filled by exactly one batch. This is a bug."))
        .collect())
}

/// Builds an in-memory index of `examples`. Save it with [`Bundle::save`].
pub fn build_index(
    examples: &ExampleSet,
    embedder: &dyn Embedder,
    hnsw: HnswParams,
    progress: &dyn Fn(usize, usize),
) -> Result<Bundle, IndexerError> {
    rebuild_index(examples, embedder, hnsw, Reuse::default(), progress)
}

/// Like [`build_index`], but texts whose vectors `reuse` finds keep them: only new or edited
/// examples are embedded, so adding a few archetypes takes milliseconds.
pub fn rebuild_index(
    examples: &ExampleSet,
    embedder: &dyn Embedder,
    hnsw: HnswParams,
    reuse: Reuse<'_>,
    progress: &dyn Fn(usize, usize),
) -> Result<Bundle, IndexerError> {
    let fit = FitOptions::default();
    Ok(rebuild_index_fitted(examples, embedder, hnsw, reuse, &fit, progress)?.0)
}

/// [`rebuild_index`] with the scorers fitted by `fit`; returns the fit report too.
pub fn rebuild_index_fitted(
    examples: &ExampleSet,
    embedder: &dyn Embedder,
    hnsw: HnswParams,
    reuse: Reuse<'_>,
    fit: &FitOptions,
    progress: &dyn Fn(usize, usize),
) -> Result<(Bundle, FitReport), IndexerError> {
    let index = embed_index(examples, embedder, hnsw, reuse, progress)?;
    fit_index(index, fit, None)
}

/// The index of `examples` with unfitted scorers (kNN and centroids only): for callers that
/// fit it themselves, e.g. on their own calibration rows.
pub fn embed_index(
    examples: &ExampleSet,
    embedder: &dyn Embedder,
    hnsw: HnswParams,
    reuse: Reuse<'_>,
    progress: &dyn Fn(usize, usize),
) -> Result<Bundle, IndexerError> {
    let model = embedder.fingerprint();
    let hashes: Vec<String> = examples
        .examples()
        .iter()
        .map(|e| text_sha256(&e.text))
        .collect();
    let mut known: HashMap<String, Embedding> = reuse
        .previous
        .filter(|p| &p.manifest().model == model)
        .map(|p| p.index.vectors_by_text())
        .unwrap_or_default()
        .into_iter()
        .map(|(hash, vector)| (hash.to_owned(), vector))
        .collect();
    let unknown = |known: &HashMap<String, Embedding>| -> Vec<usize> {
        (0..hashes.len())
            .filter(|&i| !known.contains_key(hashes[i].as_str()))
            .collect()
    };
    let mut missing = unknown(&known);
    let from_previous = hashes.len() - missing.len();
    if let (Some(cache), false) = (reuse.cache, missing.is_empty()) {
        let wanted: Vec<&str> = missing.iter().map(|&i| hashes[i].as_str()).collect();
        known.extend(cache.recall(model, &wanted));
        missing = unknown(&known);
    }
    let texts: Vec<&str> = missing
        .iter()
        .map(|&i| examples.examples()[i].text.as_str())
        .collect();
    let fresh = embed_all(embedder, &texts, progress)?;
    if let Some(cache) = reuse.cache {
        let remembered: Vec<(&str, &Embedding)> = missing
            .iter()
            .map(|&i| hashes[i].as_str())
            .zip(&fresh)
            .collect();
        cache.remember(model, &remembered);
    }
    let from_store = hashes.len() - from_previous - missing.len();
    for (source, count) in [
        ("previous_index", from_previous),
        ("shared_store", from_store),
        ("model", missing.len()),
    ] {
        metrics::counter!(INDEX_VECTORS_METRIC, "source" => source).increment(count as u64);
    }
    tracing::debug!(
        from_previous,
        from_store,
        embedded = missing.len(),
        "index vectors gathered"
    );
    let mut fresh = fresh.into_iter();
    let mut embedded: Vec<Option<Embedding>> = hashes
        .iter()
        .map(|h| known.get(h.as_str()).cloned())
        .collect();
    for &i in &missing {
        embedded[i] = fresh.next();
    }
    let entries: Vec<IndexEntry> = examples
        .examples()
        .iter()
        .zip(hashes)
        .zip(embedded)
        .map(|((e, text_sha256), embedding)| IndexEntry {
            id: e.id.clone(),
            bucket: e.bucket.clone(),
            text_sha256,
            embedding: embedding
                .expect("every example has a reused or fresh vector. This is a bug."),
        })
        .collect();
    Ok(Bundle::build(
        &entries,
        embedder.dims(),
        embedder.fingerprint().clone(),
        examples.content_sha256(),
        hnsw,
    )?)
}

/// Fits the index's scorers (head, temperatures, combined weight, thresholds) on its own
/// vectors; calibrated on `calibrate_on` when given, else on a held-out fifth.
pub fn fit_index(
    index: Bundle,
    options: &FitOptions,
    calibrate_on: Option<&CalibrationRows<'_>>,
) -> Result<(Bundle, FitReport), IndexerError> {
    let labeled = index.index.labeled_vectors();
    let (buckets, rows) = fit_rows(&labeled);
    let (scoring, report) = fit_scoring(buckets, index.dims(), &rows, calibrate_on, options)?;
    tracing::debug!(
        rows = report.rows_trained,
        seconds = report.seconds,
        "scorers fitted"
    );
    Ok((index.with_scoring(scoring), report))
}

/// The index version a bundle of `examples` embedded by `model` has, or will have once the
/// reloader has built it (what a write answers before the rebuild).
pub fn version_of(examples: &ExampleSet, model: &crate::types::ModelFingerprint) -> String {
    super::bundle::index_version(model, &examples.content_sha256())
}

/// The hash that identifies a text's vector across rebuilds.
pub fn text_sha256(text: &str) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(text.as_bytes()))
}

/// Where an index came from when the service starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IndexOrigin {
    /// A valid bundle on disk built from the same examples and model.
    Loaded,
    /// Built now (no bundle, a stale one, or one that failed verification) and saved.
    Built,
}

/// The bundle in `bundle_dir` if it is valid and was built from exactly `examples` by this
/// model; otherwise a fresh index built from `examples` and saved there for the next start.
/// Why an existing bundle was not used is logged, never silently ignored.
pub fn load_or_build(
    bundle_dir: &std::path::Path,
    examples: &ExampleSet,
    embedder: &dyn Embedder,
    hnsw: HnswParams,
    cache: Option<&dyn VectorCache>,
    progress: &dyn Fn(usize, usize),
) -> Result<(Bundle, IndexOrigin), IndexerError> {
    // A saved bundle of older archetypes still lends its vectors: only new texts are embedded.
    let mut previous = None;
    if bundle_exists(bundle_dir) {
        match Bundle::load(bundle_dir, embedder.fingerprint()) {
            Ok(index)
                if index.manifest().examples_sha256 == examples.content_sha256()
                    && index.manifest().hnsw.builds_like(&hnsw) =>
            {
                return Ok((index, IndexOrigin::Loaded));
            }
            Ok(index) if index.manifest().examples_sha256 == examples.content_sha256() => {
                tracing::info!(dir = %bundle_dir.display(), "index settings changed since the bundle was built; rebuilding from its vectors");
                previous = Some(index);
            }
            Ok(index) => {
                tracing::info!(dir = %bundle_dir.display(), "archetypes changed since the bundle was built; rebuilding");
                previous = Some(index);
            }
            Err(e) => {
                tracing::warn!(error = %e, "refusing the saved index bundle; rebuilding it from the archetypes")
            }
        }
    }
    let reuse = Reuse {
        previous: previous.as_ref(),
        cache,
    };
    let mut index = rebuild_index(examples, embedder, hnsw, reuse, progress)?;
    index.save(bundle_dir)?;
    Ok((index, IndexOrigin::Built))
}
