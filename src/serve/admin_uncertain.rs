//! `GET /admin/uncertain`: the decisions the router was unsure of, newest first, for labeling.
//! With a shared store the fleet's queue answers (every replica's items); when it cannot,
//! this replica's own queue does, and the page says why.

use axum::extract::{Query, State};
use axum::{Extension, Json};
use serde::Deserialize;
use utoipa::IntoParams;

use super::admin::{DEFAULT_PAGE, MAX_PAGE};
use super::admin_answers::{UncertainPage, UncertainSource};
use super::caller::Caller;
use super::error::ApiError;
use super::openapi::AdminErrors;
use super::AppState;

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct UncertainQuery {
    pub limit: Option<usize>,
    /// Only this tenant's items (a tenant's token: always its own).
    #[serde(default)]
    pub tenant: Option<String>,
}

/// The newest decisions the router was unsure of, newest first, for labeling.
#[utoipa::path(get, path = "/admin/uncertain", security(("admin_token" = [])), tag = "admin", params(UncertainQuery),
    responses((status = 200, description = "The newest uncertain decisions, newest first", body = UncertainPage),
        (status = 400, description = "A malformed query string (plain text)"), AdminErrors))]
pub async fn uncertain(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Query(query): Query<UncertainQuery>,
) -> Result<Json<UncertainPage>, ApiError> {
    let core = state.core()?;
    let limit = query.limit.unwrap_or(DEFAULT_PAGE).clamp(1, MAX_PAGE);
    let tenant = caller.namespace(query.tenant.as_deref(), &core.tenants)?;
    let queue = core.pipeline.uncertain();
    let (local, seen) = queue.newest(queue.capacity().max(1));
    let mut page = UncertainPage {
        items: local,
        held: queue.len(),
        capacity: queue.capacity(),
        seen,
        source: UncertainSource::Replica,
        store_error: None,
        uncertain_margin: core.live.snapshot().policy.matching.uncertain_margin,
    };
    // With a shared store the fleet's queue answers; when it cannot, this replica's does,
    // and the page says why.
    if let Some(shared) = queue.shared() {
        match shared.newest(tenant.as_deref(), limit).await {
            Ok(rows) => {
                page.items = rows
                    .items
                    .iter()
                    .filter_map(|json| serde_json::from_str(json).ok())
                    .collect();
                page.held = usize::try_from(rows.held).unwrap_or(usize::MAX);
                page.source = UncertainSource::SharedStore;
            }
            Err(e) => page.store_error = Some(e.to_string()),
        }
    }
    // A tenant's token sees its own items only; the admin sees all unless it names one.
    page.items.retain(|i| {
        caller.may_see(i.tenant.as_deref()) && (tenant.is_none() || i.tenant == tenant)
    });
    page.items.truncate(limit);
    Ok(Json(page))
}
