//! How well an approximate search agrees with exact search: the measure behind the HNSW
//! parameters (tests, `router bench-index`).

use super::{IndexError, VectorSearch};
use crate::types::Embedding;

/// Mean share of the exact top-`k` that `approx` also returns for each query.
pub fn recall_at_k(
    approx: &dyn VectorSearch,
    exact: &dyn VectorSearch,
    queries: &[Embedding],
    k: usize,
) -> Result<f64, IndexError> {
    let mut found = 0usize;
    let mut wanted = 0usize;
    for q in queries {
        let truth = exact.search(q, k)?;
        let got = approx.search(q, k)?;
        found += truth
            .iter()
            .filter(|t| got.iter().any(|g| g.key == t.key))
            .count();
        wanted += truth.len();
    }
    Ok(if wanted == 0 {
        1.0
    } else {
        found as f64 / wanted as f64
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::index::ExactIndex;

    #[test]
    fn an_index_agrees_with_itself() {
        let vs: Vec<Embedding> = (0..30)
            .map(|i| Embedding::normalized(vec![1.0, i as f32, (i % 4) as f32]))
            .collect();
        let entries: Vec<(u64, &Embedding)> =
            vs.iter().enumerate().map(|(i, v)| (i as u64, v)).collect();
        let exact = ExactIndex::build(3, &entries).unwrap();
        assert_eq!(recall_at_k(&exact, &exact, &vs, 5).unwrap(), 1.0);
    }
}
