//! The texts one request needs retrieved (the routed turn first, then the earlier turns of its
//! conversation that the policy considers, newest first), each found in the retrieval cache
//! or filled in once the batcher (or this thread) has embedded and searched it.

use std::sync::Arc;

use super::conversation::Needed;
use super::retrieval_cache::RetrievalCache;
use super::snapshot::Snapshot;
use super::stages::{EarlierRetrieval, Retrieval};
use super::{CacheOutcome, PipelineError, CACHE_HITS_METRIC, CACHE_MISSES_METRIC};

struct Slot {
    needed: Needed,
    key: Option<String>,
    from_cache: bool,
    retrieved: Option<Result<Arc<Retrieval>, PipelineError>>,
}

pub(super) struct Plan {
    /// Never empty: slot 0 is the routed turn.
    slots: Vec<Slot>,
}

impl Plan {
    pub fn new(
        needed: Vec<Needed>,
        scope: Option<&str>,
        cache: &RetrievalCache,
        snapshot: &Arc<Snapshot>,
    ) -> Self {
        let slots = needed
            .into_iter()
            .map(|needed| {
                let key = cache.key(scope, &needed.text);
                let cached = key.as_deref().and_then(|k| cache.get(k, snapshot));
                if key.is_some() {
                    let metric = if cached.is_some() {
                        CACHE_HITS_METRIC
                    } else {
                        CACHE_MISSES_METRIC
                    };
                    ::metrics::counter!(metric).increment(1);
                }
                Slot {
                    needed,
                    key,
                    from_cache: cached.is_some(),
                    retrieved: cached.map(Ok),
                }
            })
            .collect();
        Self { slots }
    }

    pub fn has_misses(&self) -> bool {
        self.slots.iter().any(|s| s.retrieved.is_none())
    }

    /// Slots still to retrieve, with their texts.
    pub fn misses(&self) -> impl Iterator<Item = (usize, &str)> {
        self.slots
            .iter()
            .enumerate()
            .filter(|(_, s)| s.retrieved.is_none())
            .map(|(i, s)| (i, s.needed.text.as_str()))
    }

    /// Fills slot `i`, remembering a fresh retrieval in the cache.
    pub fn fill(
        &mut self,
        i: usize,
        retrieved: Result<Arc<Retrieval>, PipelineError>,
        cache: &RetrievalCache,
        snapshot: &Arc<Snapshot>,
    ) {
        let Some(slot) = self.slots.get_mut(i) else {
            return;
        };
        if let (Ok(r), Some(key)) = (&retrieved, slot.key.take()) {
            cache.insert(key, snapshot, r);
        }
        slot.retrieved = Some(retrieved);
    }

    /// Whether the routed turn's retrieval came from the cache.
    pub fn cache_outcome(&self) -> CacheOutcome {
        match self.slots.first() {
            Some(s) if s.from_cache => CacheOutcome::Hit,
            Some(_) | None => CacheOutcome::Miss,
        }
    }

    /// The routed turn's retrieval (its failure is the request's) and the earlier turns'
    /// (one that failed is left out of the context).
    pub fn into_retrievals(self) -> Result<(Arc<Retrieval>, Vec<EarlierRetrieval>), PipelineError> {
        let mut slots = self.slots.into_iter();
        let current = slots
            .next()
            .and_then(|s| s.retrieved)
            .unwrap_or(Err(PipelineError::WorkerStopped))?;
        let earlier = slots
            .filter_map(|s| {
                let turn = s.needed.turn?;
                let retrieval = s.retrieved?.ok()?;
                Some(EarlierRetrieval { turn, retrieval })
            })
            .collect();
        Ok((current, earlier))
    }
}
