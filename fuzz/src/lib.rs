//! The fuzz targets, as plain functions over bytes: each parses what a client or an operator
//! could hand the router (a `/classify` body, a policy file, archetype JSONL, an index
//! manifest) through the library's public parse functions and checks what a successful parse
//! promises. A panic is a finding: either the parser panicked, or it accepted something that
//! breaks the invariant asserted here. The binaries in `src/bin` feed these to AFL++.
//!
//! Only public paths of `semantic_router` are used, and as few as possible: the fuzz crate
//! must keep building while the library's insides move.

use semantic_router::store::{ExampleSet, Strictness};
use semantic_router::decide::{Policy, Threshold};
use semantic_router::pipeline::bundle::BundleManifest;
use semantic_router::serve::wire::{ClassifyBatchRequest, ClassifyRequest, Content};
use semantic_router::store::JournalEntry;
use semantic_router::types::ArchetypeId;

/// Primary plus at most two fallbacks (README, "The routing policy").
const MAX_TARGETS: usize = 3;

/// Characters that render as nothing, written out independently of the router's own list:
/// a prompt made only of these, whitespace and control characters must be refused as empty.
fn invisible(c: char) -> bool {
    c.is_whitespace()
        || c.is_control()
        || matches!(c, '\u{AD}' | '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}'
            | '\u{2060}'..='\u{2064}' | '\u{2066}'..='\u{2069}' | '\u{FE00}'..='\u{FE0F}' | '\u{FEFF}')
}

/// A `/classify` or `/classify/batch` body, parsed as axum's `Json` does (serde_json over the
/// raw bytes), then turned into the pipeline's input.
pub fn classify_request(data: &[u8]) {
    if let Ok(request) = serde_json::from_slice::<ClassifyRequest>(data) {
        check_request(request);
    }
    if let Ok(batch) = serde_json::from_slice::<ClassifyBatchRequest>(data) {
        for request in batch.requests {
            check_request(request);
        }
    }
}

fn check_request(request: ClassifyRequest) {
    let routed = request.routed_text();
    let message_bytes: usize = request
        .messages
        .iter()
        .flatten()
        .map(|m| match &m.content {
            None => 0,
            Some(Content::Text(t)) => t.len(),
            Some(Content::Parts(parts)) => parts
                .iter()
                .filter_map(|p| p.text.as_ref())
                .map(String::len)
                .sum(),
        })
        .sum();
    match (routed, request.into_input()) {
        (Ok(text), Ok(input)) => {
            assert_eq!(text, input.text, "into_input routes what routed_text says");
            assert!(
                !input.text.chars().all(invisible),
                "a routed prompt has a visible character: {:?}",
                input.text
            );
            assert!(
                input.other_text_bytes <= message_bytes,
                "other_text_bytes is bounded"
            );
        }
        (Err(a), Err(b)) => assert_eq!(a.code(), b.code(), "the same refusal either way"),
        (a, b) => panic!(
            "routed_text and into_input disagree: {a:?} vs {:?}",
            b.map(|i| i.text)
        ),
    }
}

/// A policy file: TOML syntax, shape and every cross-field rule.
pub fn policy(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return; // `Policy::load` reads a String: invalid UTF-8 is an I/O error before parsing.
    };
    let Ok(policy) = Policy::parse(text, "fuzz.toml") else {
        return;
    };
    assert!(
        policy.buckets.contains_key(&policy.default_bucket),
        "the default bucket exists"
    );
    let unit = |t: Threshold| match t {
        Threshold::Fixed(v) => (0.0..=1.0).contains(&v),
        Threshold::Fitted => true,
    };
    assert!(
        unit(policy.matching.min_confidence),
        "min_confidence in [0, 1]"
    );
    assert!((1..=100).contains(&policy.matching.k), "k in 1..=100");
    assert!(
        (-1.0..=1.0).contains(&policy.matching.min_similarity),
        "min_similarity in [-1, 1]"
    );
    for (name, bucket) in &policy.buckets {
        let n = bucket.targets.len();
        assert!(
            (1..=MAX_TARGETS).contains(&n),
            "{name}: 1..={MAX_TARGETS} targets, not {n}"
        );
        for (i, t) in bucket.targets.iter().enumerate() {
            assert!(
                bucket.targets[..i].iter().all(|u| u.name != t.name),
                "{name}: target {} repeated",
                t.name
            );
            assert!(
                policy.targets.contains_key(&t.name),
                "{name}: {} is declared",
                t.name
            );
            assert!(
                t.price_in_per_mtok.is_finite() && t.price_in_per_mtok >= 0.0,
                "{}: a finite price",
                t.name
            );
        }
        assert!(
            unit(bucket.min_confidence),
            "{name}: min_confidence in [0, 1]"
        );
    }
    let again = Policy::parse(text, "fuzz.toml").expect("a policy that parsed once parses again");
    assert_eq!(policy, again, "parsing is deterministic");
}

/// Archetype JSONL (strict, as the shipped files are read, and lenient, as data sets are), then
/// the same lines replayed as archetype-journal entries over the result.
pub fn archetypes(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return; // read with `read_to_string`: invalid UTF-8 never reaches the parser.
    };
    let mut strict = ExampleSet::default();
    let strict_ok = strict
        .extend_from_jsonl(text, "fuzz.jsonl", Strictness::Archetypes)
        .is_ok();
    let mut lenient = ExampleSet::default();
    let lenient_ok = lenient
        .extend_from_jsonl(text, "fuzz.jsonl", Strictness::Dataset)
        .is_ok();
    check_set(&strict);
    check_set(&lenient);
    if strict_ok {
        assert!(
            lenient_ok,
            "what the strict reader accepts, the lenient one accepts"
        );
        assert_eq!(
            strict.examples(),
            lenient.examples(),
            "and reads the same way"
        );
        assert_eq!(strict.content_sha256(), lenient.content_sha256());
    }
    // The journal replay of the store: an addition that no longer applies is skipped.
    let mut set = strict;
    for line in text.lines() {
        match serde_json::from_str::<JournalEntry>(line) {
            Ok(JournalEntry::Add { id, bucket, text, .. }) => {
                let _ = set.insert(Some(&id), &bucket, &text, Strictness::Archetypes);
            }
            Ok(JournalEntry::Delete { id, .. }) => {
                let id = ArchetypeId::new(&id);
                if let Some(removed) = set.remove(&id) {
                    assert!(set.get(&id).is_none(), "a removed id is gone");
                    assert!(set.find_text(&removed.text).is_none(), "and so is its text");
                }
            }
            Err(_) => {}
        }
        check_set(&set);
    }
}

/// Every example is findable by its id and its text, and none is empty.
fn check_set(set: &ExampleSet) {
    assert_eq!(set.len(), set.examples().len());
    let counted: usize = set.counts().values().sum();
    assert_eq!(counted, set.len(), "counts cover every example");
    for e in set.examples() {
        assert!(!e.text.trim().is_empty(), "an example has text");
        assert!(
            !e.bucket.as_str().trim().is_empty(),
            "an example has a bucket"
        );
        assert_eq!(set.get(&e.id), Some(e), "found by id");
        assert_eq!(set.find_text(&e.text), Some(e), "found by text");
    }
}

/// An index bundle's `manifest.json`: what parses must write back and parse to the same thing.
pub fn manifest(data: &[u8]) {
    let Ok(manifest) = serde_json::from_slice::<BundleManifest>(data) else {
        return;
    };
    let written = serde_json::to_string(&manifest).expect("a parsed manifest serialises");
    let reread: BundleManifest = serde_json::from_str(&written)
        .unwrap_or_else(|e| panic!("a manifest we wrote does not parse back: {e}\n{written}"));
    let rewritten = serde_json::to_string(&reread).expect("serialises");
    assert_eq!(written, rewritten, "a manifest round-trips");
    assert_eq!(manifest.version(), reread.version());
}
