//! The fleet's embedding cache (`router_vectors`): each vector a replica computes while
//! building an index is kept here, keyed by the model that made it and the text's sha256, so
//! a replica that starts later (or a tenant rebuilt elsewhere) reads vectors instead of
//! running the model again. A cold start of many tenants is then bounded by fitting their
//! heads, not by embedding their texts.
//!
//! Best effort by design: the cache never decides anything. A failed read embeds locally, a
//! failed write is logged; neither fails a rebuild. Vectors are stored as little-endian f32,
//! as the model produced them (read back, they are normalised again, as every `Embedding` is).

use std::collections::HashMap;

use deadpool_postgres::Pool;

use super::{database, unavailable, CALL_DEADLINE};
use crate::store::{StoreError, VectorCache};
use crate::types::{Embedding, ModelFingerprint};

/// Rows per statement: bounds one round trip's size (384-d vectors are 1.5 KB).
const ROWS_PER_CALL: usize = 1_000;

/// The shared store's vector table; cheap to clone.
#[derive(Clone)]
pub struct SharedVectors {
    pool: Pool,
    runtime: tokio::runtime::Handle,
}

impl SharedVectors {
    pub(super) fn new(pool: Pool, runtime: tokio::runtime::Handle) -> Self {
        Self { pool, runtime }
    }

    /// Runs `work` with the call deadline. Must be called off the async threads (rebuilds
    /// run on the reloader's blocking thread and at start-up).
    fn call<T>(
        &self,
        work: impl std::future::Future<Output = Result<T, StoreError>>,
    ) -> Result<T, StoreError> {
        self.runtime
            .block_on(tokio::time::timeout(CALL_DEADLINE * 6, work))
            .unwrap_or_else(|_| Err(StoreError::Unavailable("vector cache timed out".into())))
    }

    fn read(&self, model: &str, hashes: &[&str]) -> Result<HashMap<String, Embedding>, StoreError> {
        self.call(async {
            let client = self.pool.get().await.map_err(unavailable)?;
            let mut found = HashMap::with_capacity(hashes.len());
            for chunk in hashes.chunks(ROWS_PER_CALL) {
                let rows = client
                    .query(
                        "SELECT text_sha256, vector FROM router_vectors
                         WHERE model = $1 AND text_sha256 = ANY($2)",
                        &[&model, &chunk],
                    )
                    .await
                    .map_err(database)?;
                for row in rows {
                    let bytes: &[u8] = row.get(1);
                    if let Some(vector) = decode(bytes) {
                        found.insert(row.get(0), vector);
                    }
                }
            }
            Ok(found)
        })
    }

    fn write(&self, model: &str, vectors: &[(&str, &Embedding)]) -> Result<(), StoreError> {
        self.call(async {
            let client = self.pool.get().await.map_err(unavailable)?;
            for chunk in vectors.chunks(ROWS_PER_CALL) {
                let hashes: Vec<&str> = chunk.iter().map(|(h, _)| *h).collect();
                let encoded: Vec<Vec<u8>> = chunk.iter().map(|(_, v)| encode(v)).collect();
                client
                    .execute(
                        "INSERT INTO router_vectors (model, text_sha256, vector)
                         SELECT $1, h, v FROM unnest($2::text[], $3::bytea[]) AS t(h, v)
                         ON CONFLICT DO NOTHING",
                        &[&model, &hashes, &encoded],
                    )
                    .await
                    .map_err(database)?;
            }
            Ok(())
        })
    }
}

impl VectorCache for SharedVectors {
    fn recall(&self, model: &ModelFingerprint, text_sha256: &[&str]) -> HashMap<String, Embedding> {
        if text_sha256.is_empty() {
            return HashMap::new();
        }
        self.read(&model_key(model), text_sha256)
            .unwrap_or_else(|e| {
                tracing::warn!(error = %e, "shared vector cache not read; embedding locally");
                HashMap::new()
            })
    }

    fn remember(&self, model: &ModelFingerprint, vectors: &[(&str, &Embedding)]) {
        if vectors.is_empty() {
            return;
        }
        if let Err(e) = self.write(&model_key(model), vectors) {
            tracing::warn!(error = %e, vectors = vectors.len(), "shared vector cache not written");
        }
    }
}

/// One key per set of weights and routing window: vectors of another model never mix in.
pub fn model_key(model: &ModelFingerprint) -> String {
    format!(
        "{}@{}#{}#{}",
        model.id,
        model.revision,
        model.sha256,
        model.window.as_deref().unwrap_or("")
    )
}

fn encode(vector: &Embedding) -> Vec<u8> {
    vector
        .as_slice()
        .iter()
        .flat_map(|v| v.to_le_bytes())
        .collect()
}

/// The stored bytes as a vector; `None` for a row no router wrote (a length not a multiple
/// of 4, or empty).
fn decode(bytes: &[u8]) -> Option<Embedding> {
    if bytes.is_empty() || !bytes.len().is_multiple_of(4) {
        return None;
    }
    let values = bytes
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect();
    Some(Embedding::normalized(values))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vectors_round_trip_exactly_and_foreign_bytes_are_refused() {
        let vector = Embedding::normalized(vec![0.6, -0.8, 0.0]);
        let back = decode(&encode(&vector)).unwrap();
        for (a, b) in back.as_slice().iter().zip(vector.as_slice()) {
            assert!((a - b).abs() < 1e-6, "{a} against {b}");
        }
        assert!(decode(&[1, 2, 3]).is_none());
        assert!(decode(&[]).is_none());
    }

    #[test]
    fn another_window_is_another_model() {
        let mut model = ModelFingerprint {
            id: "m".into(),
            revision: "r".into(),
            sha256: "s".into(),
            window: None,
        };
        let plain = model_key(&model);
        model.window = Some("head94+tail32".into());
        assert_ne!(plain, model_key(&model));
    }
}
