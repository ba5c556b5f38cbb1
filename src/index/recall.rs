//! How well an approximate search agrees with exact search: the measure behind the HNSW
//! parameters (tests, `router bench-index`, the search benchmark), and the vectors it is
//! measured on.

use std::io::BufRead;
use std::path::Path;

use super::{IndexError, VectorSearch};
use crate::types::Embedding;

/// Reads embeddings from JSONL with an `embedding` array per line (what `router embed`
/// writes), so real vectors are embedded once and measured many times.
pub fn read_embeddings(path: &Path) -> Result<Vec<Embedding>, IndexError> {
    #[derive(serde::Deserialize)]
    struct Row {
        embedding: Vec<f32>,
    }
    let io = |source| IndexError::Io {
        path: path.display().to_string(),
        source,
    };
    let file = std::fs::File::open(path).map_err(io)?;
    let mut vectors = Vec::new();
    for (i, line) in std::io::BufReader::new(file).lines().enumerate() {
        let line = line.map_err(io)?;
        if line.trim().is_empty() {
            continue;
        }
        let row: Row = serde_json::from_str(&line).map_err(|e| IndexError::VectorFile {
            path: path.display().to_string(),
            line: i + 1,
            message: format!("no `embedding` array: {e}"),
        })?;
        vectors.push(Embedding::normalized(row.embedding));
    }
    Ok(vectors)
}

/// Fisher-Yates with a fixed xorshift seed: the same order on every run.
pub fn shuffle<T>(items: &mut [T]) {
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    for i in (1..items.len()).rev() {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        let j = (state % (i as u64 + 1)) as usize;
        items.swap(i, j);
    }
}

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
