//! Typed JSON answers of the admin endpoints (`serve::admin`); each derives its OpenAPI
//! schema, so `/openapi.json` describes exactly what is serialised.

use std::sync::Arc;

use serde::Serialize;
use utoipa::ToSchema;

use crate::pipeline::uncertain::UncertainItem;
use crate::scoring::FitReport;
use crate::store::AddOutcome;
use crate::types::{ArchetypeId, BucketId, ScorerKind};

/// `202` of `POST /archetypes`.
#[derive(Debug, Serialize, ToSchema)]
pub struct Accepted {
    pub accepted: Vec<AddOutcome>,
    /// Always true: the answer comes after the journal's fsync.
    pub durable: bool,
    /// The index version that will contain the examples.
    pub index_version: String,
    pub current_index_version: String,
}

/// `DELETE /archetypes/{id}`.
#[derive(Debug, Serialize, ToSchema)]
pub struct Deleted {
    pub deleted: ArchetypeId,
    pub bucket: BucketId,
    pub index_version: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ArchetypeItem {
    pub id: ArchetypeId,
    pub bucket: BucketId,
    pub text: String,
}

/// `GET /archetypes`: one page, in id order.
#[derive(Debug, Serialize, ToSchema)]
pub struct ArchetypePage {
    pub archetypes: Vec<ArchetypeItem>,
    /// Pass as `after` for the next page; `None` on the last.
    pub next_after: Option<ArchetypeId>,
    pub total: usize,
}

/// `POST /admin/reload`.
#[derive(Debug, Serialize, ToSchema)]
pub struct ReloadAnswer {
    /// What each reload did, in words.
    pub reloaded: Vec<String>,
    pub policy_version: String,
    pub index_version: String,
}

/// `POST /admin/rebuild`.
#[derive(Debug, Serialize, ToSchema)]
pub struct Queued {
    /// `rebuild`.
    #[schema(value_type = String)]
    pub queued: &'static str,
}

/// `POST /admin/fit`.
#[derive(Debug, Serialize, ToSchema)]
pub struct FitAnswer {
    pub fit: Option<Arc<FitReport>>,
    pub policy_version: String,
    pub index_version: String,
    pub scorer: ScorerKind,
}

/// `GET /admin/uncertain`.
#[derive(Debug, Serialize, ToSchema)]
pub struct UncertainPage {
    pub items: Vec<UncertainItem>,
    /// Items held where `source` says.
    pub held: usize,
    pub capacity: usize,
    /// Uncertain decisions this replica has made since it started.
    pub seen: u64,
    pub source: UncertainSource,
    /// Why the shared store's queue did not answer (this replica's own items are shown).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub store_error: Option<String>,
    pub uncertain_margin: f32,
}

/// Whose items a page shows.
#[derive(Debug, Clone, Copy, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum UncertainSource {
    /// This replica's in-memory queue (no shared store, or it did not answer).
    Replica,
    /// The fleet's queue in the shared store: every replica's items.
    SharedStore,
}
