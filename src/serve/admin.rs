//! Archetype management and admin endpoints (all behind the admin token):
//! `POST /archetypes`, `DELETE /archetypes/{id}`, `GET /archetypes`, `POST /admin/reload`,
//! `POST /admin/rebuild`, `POST /admin/fit` (`GET /admin/uncertain` is in `admin_uncertain`).
//! Changes are durable before the answer; the index catches up in the background through the
//! one reloader, and the answer names the index version that will contain them.

use std::collections::BTreeSet;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::{Extension, Json};
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};

use super::caller::Caller;
use super::error::{ApiError, ApiJson, ErrorBody};
use super::openapi::AdminErrors;
use super::AppState;
use crate::live::{ReloadKind, Reloaded};
use crate::pipeline::indexer::version_of;
use crate::store::{NewExample, StoreError};
use crate::types::{ArchetypeId, BucketId};

pub use super::admin_answers::{
    Accepted, ArchetypeItem, ArchetypePage, Deleted, FitAnswer, Queued, ReloadAnswer,
};

/// Most examples accepted in one `POST /archetypes`.
const MAX_EXAMPLES_PER_REQUEST: usize = 1000;
pub(super) const DEFAULT_PAGE: usize = 100;
pub(super) const MAX_PAGE: usize = 1000;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AddArchetypes {
    pub examples: Vec<NewExample>,
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::UnknownBucket { .. } => Self::UnknownBucket(e.to_string()),
            StoreError::Invalid { .. } => Self::InvalidExample(e.to_string()),
            StoreError::Conflict { .. } => Self::Conflict(e.to_string()),
            StoreError::NotFound(_) => Self::NotFound(e.to_string()),
            StoreError::Tenant(_) => Self::InvalidRequest(e.to_string()),
            StoreError::Unavailable(_) => Self::StoreUnavailable(e.to_string()),
            StoreError::Archetypes(_)
            | StoreError::Journal { .. }
            | StoreError::Io { .. }
            | StoreError::BadUrl { .. }
            | StoreError::Database(_) => Self::Internal(e.to_string()),
        }
    }
}

#[utoipa::path(post, path = "/archetypes", security(("admin_token" = [])), tag = "admin", request_body = AddArchetypes,
    responses((status = 202, description = "Durable; the index catches up in the background", body = Accepted),
        (status = 400, description = "invalid_json, invalid_request (1 to 1000 examples)", body = ErrorBody),
        (status = 422, description = "unknown_field, unknown_bucket, invalid_example", body = ErrorBody),
        (status = 409, description = "conflict: the id is taken by another text", body = ErrorBody), AdminErrors))]
pub async fn add_archetypes(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    ApiJson(mut body): ApiJson<AddArchetypes>,
) -> Result<(StatusCode, Json<Accepted>), ApiError> {
    let core = state.core()?;
    if body.examples.is_empty() || body.examples.len() > MAX_EXAMPLES_PER_REQUEST {
        return Err(ApiError::InvalidRequest(format!(
            "send 1 to {MAX_EXAMPLES_PER_REQUEST} examples; got {}",
            body.examples.len()
        )));
    }
    let tenant = caller.namespace(body.examples[0].tenant.as_deref(), &core.tenants)?;
    for e in &mut body.examples {
        if e.tenant.is_none() {
            e.tenant.clone_from(&tenant);
        }
    }
    let live = core
        .live_for(tenant.as_deref())
        .map_err(ApiError::UnknownTenant)?;
    let buckets: BTreeSet<BucketId> = live.snapshot().policy.buckets.keys().cloned().collect();
    let replace = tenant
        .as_deref()
        .and_then(|t| core.tenants.get(t))
        .is_some_and(|t| t.config.replace);
    let store = core.store.clone();
    let model = core.info.model.clone();
    // Journal append + fsync (or a database commit) is blocking: off the async threads.
    let (added, unbuilt) = tokio::task::spawn_blocking(move || {
        let mut store = store
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let added = store.add(&body.examples, &buckets).map(|outcomes| {
            let version = version_of(&store.effective(tenant.as_deref(), replace), &model);
            (outcomes, version)
        });
        // Asked even when the call failed: its sync may have applied other replicas' changes.
        (added, store.take_unbuilt())
    })
    .await
    .map_err(|e| ApiError::Internal(e.to_string()))?;
    if unbuilt {
        core.reloads.send(ReloadKind::Rebuild);
    }
    let (outcomes, version) = added?;
    Ok((
        StatusCode::ACCEPTED,
        Json(Accepted {
            accepted: outcomes,
            durable: true,
            index_version: version,
            current_index_version: live.versions().index_version,
        }),
    ))
}

#[utoipa::path(delete, path = "/archetypes/{id}", security(("admin_token" = [])), tag = "admin",
    params(("id" = String, Path, description = "The archetype's id"), TenantQuery),
    responses((status = 200, description = "Deleted; the index catches up in the background", body = Deleted),
        (status = 404, description = "not_found", body = ErrorBody), AdminErrors))]
pub async fn delete_archetype(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    Query(q): Query<TenantQuery>,
) -> Result<Json<Deleted>, ApiError> {
    let core = state.core()?;
    let tenant = caller.namespace(q.tenant.as_deref(), &core.tenants)?;
    let replace = tenant
        .as_deref()
        .and_then(|t| core.tenants.get(t))
        .is_some_and(|t| t.config.replace);
    let store = core.store.clone();
    let model = core.info.model.clone();
    let (deleted, unbuilt) = tokio::task::spawn_blocking(move || {
        let mut store = store
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let deleted = store
            .delete(&ArchetypeId::new(&id), tenant.as_deref())
            .map(|removed| {
                let version = version_of(&store.effective(tenant.as_deref(), replace), &model);
                (removed, version)
            });
        (deleted, store.take_unbuilt())
    })
    .await
    .map_err(|e| ApiError::Internal(e.to_string()))?;
    if unbuilt {
        core.reloads.send(ReloadKind::Rebuild);
    }
    let (removed, version) = deleted?;
    Ok(Json(Deleted {
        deleted: removed.id,
        bucket: removed.bucket,
        index_version: version,
    }))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct TenantQuery {
    /// The tenant's namespace (a tenant's token: its own, the default).
    #[serde(default)]
    pub tenant: Option<String>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    /// The tenant whose own examples to list (absent: the shared namespace).
    #[serde(default)]
    pub tenant: Option<String>,
    #[serde(default)]
    pub bucket: Option<String>,
    /// Return ids strictly after this one (ids are listed in order).
    #[serde(default)]
    pub after: Option<String>,
    #[serde(default)]
    pub limit: Option<usize>,
}

#[utoipa::path(get, path = "/archetypes", security(("admin_token" = [])), tag = "admin", params(ListQuery),
    responses((status = 200, description = "One page, in id order", body = ArchetypePage),
        (status = 400, description = "A malformed query string (plain text)"), AdminErrors))]
pub async fn list_archetypes(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Query(q): Query<ListQuery>,
) -> Result<Json<ArchetypePage>, ApiError> {
    let core = state.core()?;
    let tenant = caller.namespace(q.tenant.as_deref(), &core.tenants)?;
    let limit = q.limit.unwrap_or(DEFAULT_PAGE).clamp(1, MAX_PAGE);
    let store = core.store.clone();
    // The store's lock is also held across journal fsyncs: never wait for it on an async thread.
    let page = tokio::task::spawn_blocking(move || {
        let store = store
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let own;
        let namespace = match &tenant {
            None => store.examples(),
            Some(t) => {
                own = store.tenant_examples(t);
                &own
            }
        };
        let mut matching: Vec<_> = namespace
            .examples()
            .iter()
            .filter(|e| q.bucket.as_deref().is_none_or(|b| e.bucket.as_str() == b))
            .filter(|e| q.after.as_deref().is_none_or(|a| e.id.as_str() > a))
            .collect();
        matching.sort_by(|a, b| a.id.cmp(&b.id));
        let archetypes = matching
            .iter()
            .take(limit)
            .map(|e| ArchetypeItem {
                id: e.id.clone(),
                bucket: e.bucket.clone(),
                text: e.text.clone(),
            })
            .collect();
        let next_after = (matching.len() > limit).then(|| matching[limit - 1].id.clone());
        ArchetypePage {
            archetypes,
            next_after,
            total: matching.len(),
        }
    })
    .await
    .map_err(|e| ApiError::Internal(e.to_string()))?;
    Ok(Json(page))
}

#[derive(Debug, Deserialize, Default, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReloadBody {
    /// `policy`, `archetypes` or `all` (default).
    #[serde(default)]
    pub what: Option<String>,
}

/// Re-reads files through the reloader and answers with the outcome.
#[utoipa::path(post, path = "/admin/reload", security(("admin_token" = [])), tag = "admin", request_body = Option<ReloadBody>,
    responses((status = 200, description = "What each reload did", body = ReloadAnswer),
        (status = 400, description = "invalid_json, invalid_request", body = ErrorBody),
        (status = 422, description = "reload_failed: the last good state keeps serving", body = ErrorBody), AdminErrors))]
pub async fn reload(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    body: axum::body::Bytes,
) -> Result<Json<ReloadAnswer>, ApiError> {
    caller.require_admin()?;
    let core = state.core()?;
    // The body is optional: an empty POST reloads everything.
    let body: ReloadBody = if body.iter().all(u8::is_ascii_whitespace) {
        ReloadBody::default()
    } else {
        serde_json::from_slice(&body).map_err(|e| ApiError::InvalidJson(e.to_string()))?
    };
    let what = body.what.unwrap_or_else(|| "all".to_owned());
    let kinds: &[ReloadKind] = match what.as_str() {
        "policy" => &[ReloadKind::Policy],
        "archetypes" => &[ReloadKind::Archetypes],
        "all" => &[ReloadKind::Policy, ReloadKind::Archetypes],
        other => {
            return Err(ApiError::InvalidRequest(format!(
                "`what` must be policy, archetypes or all, not `{other}`"
            )))
        }
    };
    let mut summaries = Vec::new();
    for kind in kinds {
        summaries.push(
            core.reloads
                .request(*kind)
                .await
                .map_err(|e| ApiError::ReloadFailed(e.to_string()))?
                .to_string(),
        );
    }
    let versions = core.live.versions();
    Ok(Json(ReloadAnswer {
        reloaded: summaries,
        policy_version: versions.policy_version,
        index_version: versions.index_version,
    }))
}

/// Queues an index rebuild from the archetype store.
#[utoipa::path(post, path = "/admin/rebuild", security(("admin_token" = [])), tag = "admin",
    responses((status = 202, description = "Rebuild queued", body = Queued), AdminErrors))]
pub async fn rebuild(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
) -> Result<(StatusCode, Json<Queued>), ApiError> {
    caller.require_admin()?;
    let core = state.core()?;
    core.reloads.send(ReloadKind::Rebuild);
    Ok((StatusCode::ACCEPTED, Json(Queued { queued: "rebuild" })))
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FitBody {
    /// In-scope precision the abstain thresholds aim for (kept for later rebuilds).
    pub target_precision: Option<f64>,
    /// Answer with this tenant's versions (every namespace is refitted).
    #[serde(default)]
    pub tenant: Option<String>,
}

/// Refits the scorers on the live archetypes and swaps the result in; answers with the fit
/// report (per scorer: held-out accuracy, ECE, temperature, threshold).
#[utoipa::path(post, path = "/admin/fit", security(("admin_token" = [])), tag = "admin", request_body = Option<FitBody>,
    responses((status = 200, description = "The fit report per scorer", body = FitAnswer),
        (status = 400, description = "invalid_json, invalid_request", body = ErrorBody),
        (status = 422, description = "reload_failed", body = ErrorBody), AdminErrors))]
pub async fn fit(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    body: axum::body::Bytes,
) -> Result<Json<FitAnswer>, ApiError> {
    let core = state.core()?;
    let body: FitBody = if body.iter().all(u8::is_ascii_whitespace) {
        FitBody::default()
    } else {
        serde_json::from_slice(&body).map_err(|e| ApiError::InvalidJson(e.to_string()))?
    };
    let tenant = caller.namespace(body.tenant.as_deref(), &core.tenants)?;
    if let Some(p) = body.target_precision {
        if !(p > 0.0 && p <= 1.0) {
            return Err(ApiError::InvalidRequest(format!(
                "`target_precision` must be in (0, 1], not {p}"
            )));
        }
    }
    let done = core
        .reloads
        .fit(body.target_precision)
        .await
        .map_err(|e| ApiError::ReloadFailed(e.to_string()))?;
    let fit = match done {
        Reloaded::Fitted { fit, .. } => Some(fit),
        Reloaded::Policy(_)
        | Reloaded::IndexUnchanged { .. }
        | Reloaded::Index(_)
        | Reloaded::NothingToDo => None,
    };
    let snapshot = core
        .live_for(tenant.as_deref())
        .map_err(ApiError::UnknownTenant)?
        .snapshot();
    Ok(Json(FitAnswer {
        fit,
        policy_version: snapshot.policy.version.clone(),
        index_version: snapshot.bundle.version().to_owned(),
        scorer: snapshot.scorer(),
    }))
}
