//! The head's weights on disk (safetensors): the scoring stage owns its own file format; the
//! bundle decides where the file goes and checks its hash.

use std::collections::HashMap;
use std::path::Path;

use candle_core::{Device, Tensor};

use super::{LinearHead, ScoringError};
use crate::types::{BucketId, Embedding};

use super::FitRows;

/// Writes the head's weight (`classes × dims`) and bias as safetensors.
pub fn save_head(head: &LinearHead, path: &Path) -> Result<(), ScoringError> {
    let fail = |e: candle_core::Error| ScoringError::HeadFile {
        path: path.display().to_string(),
        message: e.to_string(),
    };
    let device = Device::Cpu;
    let weight =
        Tensor::from_slice(head.weight(), (head.classes(), head.dims()), &device).map_err(fail)?;
    let bias = Tensor::from_slice(head.bias(), head.classes(), &device).map_err(fail)?;
    let tensors = HashMap::from([("weight".to_owned(), weight), ("bias".to_owned(), bias)]);
    candle_core::safetensors::save(&tensors, path).map_err(fail)
}

/// Reads a head of `classes × dims` written by [`save_head`].
pub fn load_head(path: &Path, dims: usize, classes: usize) -> Result<LinearHead, ScoringError> {
    let fail = |message: String| ScoringError::HeadFile {
        path: path.display().to_string(),
        message,
    };
    let tensors = candle_core::safetensors::load(path, &Device::Cpu)
        .map_err(|e| fail(format!("unreadable: {e}")))?;
    let read = |name: &str| -> Result<Vec<f32>, ScoringError> {
        tensors
            .get(name)
            .ok_or_else(|| fail(format!("no `{name}` tensor")))?
            .flatten_all()
            .and_then(|t| t.to_vec1::<f32>())
            .map_err(|e| fail(format!("`{name}` is not f32: {e}")))
    };
    LinearHead::from_parts(dims, classes, read("weight")?, read("bias")?)
        .ok_or_else(|| fail(format!("does not hold a {classes} × {dims} head")))
}

/// The sorted bucket order of `labeled` and its rows as bucket positions: what the scorers
/// are built and fitted from.
pub fn fit_rows(labeled: &[(BucketId, Embedding)]) -> (Vec<BucketId>, FitRows<'_>) {
    let mut buckets: Vec<BucketId> = labeled.iter().map(|(b, _)| b.clone()).collect();
    buckets.sort();
    buckets.dedup();
    let mut rows = FitRows::default();
    for (bucket, v) in labeled {
        if let Ok(i) = buckets.binary_search(bucket) {
            rows.vectors.push(v.as_slice());
            rows.labels.push(i);
        }
    }
    (buckets, rows)
}
