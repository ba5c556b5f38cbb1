//! The checks an offered batch passes before anything is made durable: every example against
//! a scratch copy of its namespace, so a batch with one bad item changes nothing.

use std::collections::BTreeSet;

use super::examples::normalize_for_dedup;
use super::shared::Pending;
use super::{AddOutcome, ExampleSet, JournalEntry, NewExample, StoreError, Strictness};
use crate::types::BucketId;

/// The checks of `add` on a scratch copy of the namespace: the outcomes and the changes to
/// make durable.
pub(super) fn validate(
    mut scratch: ExampleSet,
    offered: &[NewExample],
    buckets: &BTreeSet<BucketId>,
    tenant: Option<&str>,
) -> Result<(Vec<AddOutcome>, Vec<Pending>), StoreError> {
    let known = || {
        buckets
            .iter()
            .map(BucketId::as_str)
            .collect::<Vec<_>>()
            .join(", ")
    };
    let mut outcomes = Vec::with_capacity(offered.len());
    let mut pending = Vec::new();
    for (index, e) in offered.iter().enumerate() {
        let bucket = BucketId::new(e.bucket.trim());
        if !buckets.contains(&bucket) {
            return Err(StoreError::UnknownBucket {
                index,
                bucket: e.bucket.clone(),
                known: known(),
            });
        }
        if let Some(existing) = scratch.find_text(&e.text) {
            if existing.bucket == bucket {
                outcomes.push(AddOutcome {
                    id: existing.id.clone(),
                    bucket,
                    created: false,
                });
                continue;
            }
            return Err(StoreError::Conflict {
                index,
                existing_id: existing.id.clone(),
                existing_bucket: existing.bucket.clone(),
            });
        }
        scratch
            .insert(
                e.id.as_deref(),
                bucket.as_str(),
                &e.text,
                Strictness::Archetypes,
            )
            .map_err(|source| StoreError::Invalid { index, source })?;
        let added = scratch
            .find_text(&e.text)
            .expect("an inserted text can be found. This is a bug.");
        pending.push(Pending {
            index,
            entry: JournalEntry::Add {
                id: added.id.to_string(),
                bucket: added.bucket.to_string(),
                text: added.text.clone(),
                tenant: tenant.map(str::to_owned),
            },
            text_key: Some(normalize_for_dedup(&added.text)),
        });
        outcomes.push(AddOutcome {
            id: added.id.clone(),
            bucket,
            created: true,
        });
    }
    Ok((outcomes, pending))
}

/// The one tenant of a batch (`None`: shared); a batch for several is refused.
pub(super) fn one_tenant(offered: &[NewExample]) -> Result<Option<String>, StoreError> {
    let first = offered.first().and_then(|e| e.tenant.clone());
    match offered.iter().position(|e| e.tenant != first) {
        None => Ok(first.filter(|t| !t.trim().is_empty())),
        Some(i) => Err(StoreError::Tenant(format!(
            "examples[{i}]: one request adds examples for one tenant; examples[0] is for {}",
            first.as_deref().unwrap_or("the shared namespace")
        ))),
    }
}
