//! The request limits the service enforces (`--max-in-flight`, `--queue-budget-ms`, ...).

/// Request limits. Defaults suit two cores; each is a flag with an env var.
#[derive(Debug, Clone, Copy, serde::Serialize, utoipa::ToSchema)]
pub struct Limits {
    /// Requests admitted at once (queued for the model or in it): a bound on memory; more
    /// wait up to `queue_budget_ms` for a slot.
    pub max_in_flight: usize,
    /// Longest a request waits for the model, in ms: refused at once with 429 when the texts
    /// queued ahead of it would take longer (or no slot comes free within it).
    pub queue_budget_ms: u64,
    /// Largest request body in bytes.
    pub max_body_bytes: usize,
    /// Largest `/classify/batch` or `/embed` batch.
    pub max_batch: usize,
    /// Weight budget of the retrieval cache in bytes (0 turns it off).
    pub cache_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            // As many as one forward pass takes (64 texts); below it, admission by waiting
            // time decides.
            max_in_flight: 64,
            queue_budget_ms: 20,
            max_body_bytes: 4 * 1024 * 1024,
            max_batch: 64,
            cache_bytes: super::retrieval_cache::DEFAULT_CACHE_BYTES,
        }
    }
}
