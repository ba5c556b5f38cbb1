//! Replaying the change log over the shipped files: how every replica arrives at the same
//! namespaces from the same changes.

use std::collections::BTreeMap;
use std::path::Path;

use super::{ExampleSet, JournalEntry, StoreError, Strictness};
use crate::types::ArchetypeId;

/// The shipped files with `entries` replayed over them: the shared namespace and the
/// tenants' own.
pub(super) fn replay(
    shipped_dir: &Path,
    entries: &[JournalEntry],
) -> Result<(ExampleSet, BTreeMap<String, ExampleSet>), StoreError> {
    let mut examples = ExampleSet::load(shipped_dir, Strictness::Archetypes)?;
    let mut tenants = BTreeMap::new();
    for entry in entries {
        apply(&mut examples, &mut tenants, entry.clone());
    }
    Ok((examples, tenants))
}

/// Replays one entry into its namespace; entries made moot by a later edit of the shipped
/// files are skipped.
pub(super) fn apply(
    shared: &mut ExampleSet,
    tenants: &mut BTreeMap<String, ExampleSet>,
    entry: JournalEntry,
) {
    let namespace = match entry.tenant() {
        None => shared,
        Some(t) => tenants.entry(t.to_owned()).or_default(),
    };
    match entry {
        JournalEntry::Add {
            id, bucket, text, ..
        } => {
            if let Err(e) = namespace.insert(Some(&id), &bucket, &text, Strictness::Archetypes) {
                tracing::warn!(id, error = %e, "logged addition no longer applies; skipped");
            }
        }
        JournalEntry::Delete { id, .. } => {
            namespace.remove(&ArchetypeId::new(&id));
        }
    }
}
