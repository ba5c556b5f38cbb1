//! Exact-match cache of retrievals (embedding + neighbours), so a repeated prompt skips the
//! model and the index. It caches no decisions: those are made fresh for every request.
//!
//! What is cached and why it stays correct:
//! - Only the [`Retrieval`] is cached: it depends on the routed text and the snapshot's
//!   index (and the policy's `k`), nothing else. The decide step (request context, rules,
//!   provider health, canary) runs fresh for every request, so health changes and context
//!   fields need no key, and per-request fields (ids, timings) are always new.
//! - Entries remember the snapshot they were computed with (a `Weak`, which also keeps its
//!   address from being reused) and only match that same snapshot: every swap (policy reload,
//!   index rebuild) invalidates them all at once; stale entries age out by weight.
//! - The key is the routed text with runs of ASCII space, tab, CR and LF collapsed to one space
//!   and trimmed at both ends. The tokenizer maps exactly these characters to a space and
//!   splits on them (BERT's clean-text and whitespace pre-tokenizer), so two texts with the
//!   same key give the same token ids, hence the same embedding. Other characters (Unicode
//!   spaces, control characters, case) are left alone: collapsing them is not always neutral.
//!   The whole prompt's byte length, which `prompt_tokens` uses, comes from the request itself.
//! - Texts longer than [`MAX_KEY_BYTES`] are not cached: their token count is extrapolated
//!   from a byte window, which whitespace changes would shift.
//!
//! Bounded by weight (key bytes + vector + neighbours) with `quick_cache`, a concurrent
//! sharded cache whose lookups take no global lock.

use std::sync::{Arc, Weak};

use quick_cache::sync::Cache;
use quick_cache::Weighter;

use super::snapshot::Snapshot;
use super::stages::Retrieval;

/// Longest routed text that is cached (the embedder tokenizes a 16 KiB window exactly).
pub const MAX_KEY_BYTES: usize = 16 * 1024;

/// Default weight budget in bytes.
pub const DEFAULT_CACHE_BYTES: usize = 32 * 1024 * 1024;

/// Bytes an entry holds besides its key and vector (neighbour list, bookkeeping).
const ENTRY_OVERHEAD_BYTES: u64 = 512;

#[derive(Clone)]
struct Entry {
    snapshot: Weak<Snapshot>,
    retrieval: Arc<Retrieval>,
}

#[derive(Clone)]
struct ByBytes;

impl Weighter<String, Entry> for ByBytes {
    fn weight(&self, key: &String, entry: &Entry) -> u64 {
        let vector = entry.retrieval.embedded.embedding.dims() * std::mem::size_of::<f32>();
        key.len() as u64 + vector as u64 + ENTRY_OVERHEAD_BYTES
    }
}

/// A bounded, concurrent cache of [`Retrieval`] results. Capacity 0 turns it off.
pub struct RetrievalCache {
    inner: Option<Cache<String, Entry, ByBytes>>,
}

impl RetrievalCache {
    pub fn new(capacity_bytes: usize) -> Self {
        let inner = (capacity_bytes > 0).then(|| {
            // quick_cache sizes its tables from an item estimate; ~2.5 KB per short entry.
            let items = (capacity_bytes / 2560).max(16);
            Cache::with_weighter(items, capacity_bytes as u64, ByBytes)
        });
        Self { inner }
    }

    /// The cache key of a routed text, or `None` when it is not cacheable. With a `scope`
    /// (the caller's identity) the entry is that caller's alone: a hit then tells a caller
    /// only that it sent the same text before, never that somebody else did.
    pub fn key(&self, scope: Option<&str>, text: &str) -> Option<String> {
        self.inner.as_ref()?;
        (text.len() <= MAX_KEY_BYTES).then(|| match scope {
            // Scopes hold no U+001F, so the first one in a key ends its scope: two callers'
            // keys never collide.
            Some(scope) => format!("{scope}\u{1f}{}", normalise(text)),
            None => normalise(text),
        })
    }

    /// The cached retrieval of `key` under exactly this snapshot.
    pub fn get(&self, key: &str, snapshot: &Arc<Snapshot>) -> Option<Arc<Retrieval>> {
        let entry = self.inner.as_ref()?.get(key)?;
        let hit = std::ptr::eq(entry.snapshot.as_ptr(), Arc::as_ptr(snapshot));
        hit.then_some(entry.retrieval)
    }

    /// Remembers a fresh result; its timings are zeroed so a hit reports no model or index work.
    pub fn insert(&self, key: String, snapshot: &Arc<Snapshot>, retrieval: &Retrieval) {
        let Some(cache) = &self.inner else { return };
        let mut retrieval = retrieval.clone();
        retrieval.embedded.tokenize_us = 0;
        retrieval.embedded.forward_us = 0;
        retrieval.search_us = 0;
        cache.insert(
            key,
            Entry {
                snapshot: Arc::downgrade(snapshot),
                retrieval: Arc::new(retrieval),
            },
        );
    }
}

/// Collapses runs of ASCII space, tab, CR and LF into one space and trims them at both ends.
pub fn normalise(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for word in text
        .split([' ', '\t', '\r', '\n'])
        .filter(|w| !w.is_empty())
    {
        if !out.is_empty() {
            out.push(' ');
        }
        out.push_str(word);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalise_collapses_only_tokenizer_whitespace() {
        assert_eq!(normalise("  Hello \t\n world\r\n"), "Hello world");
        assert_eq!(normalise("a b"), "a b");
        // Case, Unicode spaces and control characters are not ours to fold.
        assert_eq!(normalise("A\u{a0}b"), "A\u{a0}b");
        assert_eq!(normalise("a\u{85}b"), "a\u{85}b");
        assert_eq!(normalise("a\u{c}b"), "a\u{c}b");
    }

    #[test]
    fn off_cache_has_no_keys() {
        let cache = RetrievalCache::new(0);
        assert_eq!(cache.key(None, "hello"), None);
        assert_eq!(
            RetrievalCache::new(1 << 20).key(None, " hello "),
            Some("hello".into())
        );
        assert_eq!(
            RetrievalCache::new(1 << 20).key(None, &"x".repeat(MAX_KEY_BYTES + 1)),
            None
        );
    }
}
