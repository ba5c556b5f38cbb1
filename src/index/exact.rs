//! Exact brute-force cosine search: one matrix-vector product. The oracle for recall tests,
//! and as fast as HNSW up to about 10k vectors.

use ndarray::{Array2, ArrayView1};

use super::{Hit, IndexError, VectorSearch};
use crate::types::Embedding;

pub struct ExactIndex {
    /// One unit vector per row.
    vectors: Array2<f32>,
    keys: Vec<u64>,
}

impl ExactIndex {
    pub fn build(dims: usize, entries: &[(u64, &Embedding)]) -> Result<Self, IndexError> {
        let mut flat = Vec::with_capacity(entries.len() * dims);
        for (_, e) in entries {
            if e.dims() != dims {
                return Err(IndexError::Dimensions {
                    expected: dims,
                    actual: e.dims(),
                });
            }
            flat.extend_from_slice(e.as_slice());
        }
        let vectors = Array2::from_shape_vec((entries.len(), dims), flat)
            .map_err(|e| IndexError::Matrix(e.to_string()))?;
        Ok(Self {
            vectors,
            keys: entries.iter().map(|(k, _)| *k).collect(),
        })
    }
}

impl VectorSearch for ExactIndex {
    fn search(&self, query: &Embedding, k: usize) -> Result<Vec<Hit>, IndexError> {
        if query.dims() != self.vectors.ncols() {
            return Err(IndexError::Dimensions {
                expected: self.vectors.ncols(),
                actual: query.dims(),
            });
        }
        let scores = self.vectors.dot(&ArrayView1::from(query.as_slice()));
        let mut hits: Vec<Hit> = self
            .keys
            .iter()
            .zip(scores.iter())
            .map(|(&key, &similarity)| Hit { key, similarity })
            .collect();
        let k = k.min(hits.len());
        if k == 0 {
            return Ok(Vec::new());
        }
        // Partial selection, then sort only the k winners; ties broken by key for determinism.
        let by_score = |a: &Hit, b: &Hit| {
            b.similarity
                .total_cmp(&a.similarity)
                .then(a.key.cmp(&b.key))
        };
        hits.select_nth_unstable_by(k - 1, by_score);
        hits.truncate(k);
        hits.sort_by(by_score);
        Ok(hits)
    }

    fn len(&self) -> usize {
        self.keys.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_nearest_first() {
        let a = Embedding::normalized(vec![1.0, 0.0]);
        let b = Embedding::normalized(vec![0.0, 1.0]);
        let c = Embedding::normalized(vec![1.0, 1.0]);
        let index = ExactIndex::build(2, &[(1, &a), (2, &b), (3, &c)]).unwrap();
        let hits = index
            .search(&Embedding::normalized(vec![1.0, 0.1]), 2)
            .unwrap();
        assert_eq!(hits.iter().map(|h| h.key).collect::<Vec<_>>(), vec![1, 3]);
        assert!((hits[0].similarity - 0.995).abs() < 0.01);
    }

    #[test]
    fn wrong_dimensions_is_an_error() {
        let a = Embedding::normalized(vec![1.0, 0.0]);
        let index = ExactIndex::build(2, &[(1, &a)]).unwrap();
        let err = index.search(&Embedding::normalized(vec![1.0, 0.0, 0.0]), 1);
        assert!(matches!(err, Err(IndexError::Dimensions { .. })));
    }
}
