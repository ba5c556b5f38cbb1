//! Operations endpoints: liveness, readiness, what is served (`/info`), the Prometheus
//! scrape and the breakers' states. None of them touches the request path.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::Json;

use super::answers::{
    BuildInfo, HealthAnswer, IndexInfo, InfoAnswer, PolicyInfo, ReadyAnswer, TargetsAnswer,
    TenantInfo,
};
use super::error::{ApiError, ErrorBody};
use super::AppState;

/// Liveness: the process answers.
#[utoipa::path(get, path = "/health", tag = "operations",
    responses((status = 200, description = "The process answers", body = HealthAnswer)))]
pub async fn health() -> Json<HealthAnswer> {
    Json(HealthAnswer { status: "ok" })
}

/// Readiness: the model is warm and a snapshot is loaded. Carries the last reload error.
/// After a shutdown signal it answers 503 "draining" so load balancers stop sending.
#[utoipa::path(get, path = "/ready", tag = "operations",
    responses((status = 200, description = "Ready", body = ReadyAnswer),
        (status = 503, description = "Draining or starting", body = ReadyAnswer)))]
pub async fn ready(State(state): State<AppState>) -> (StatusCode, Json<ReadyAnswer>) {
    if state.is_draining() {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(ReadyAnswer::Draining {
                ready: false,
                reason: "draining",
            }),
        );
    }
    match state.core() {
        Ok(core) => {
            let snapshot = core.live.snapshot();
            (
                StatusCode::OK,
                Json(ReadyAnswer::Ready {
                    ready: true,
                    policy_version: snapshot.policy.version.clone(),
                    index_version: snapshot.bundle.version().to_owned(),
                    last_reload_error: core.live.last_error(),
                    reload: core.reloads.status(),
                }),
            )
        }
        Err(_) => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(ReadyAnswer::Starting {
                ready: false,
                phase: state.phase(),
            }),
        ),
    }
}

/// Model fingerprint, index and policy versions, build information.
#[utoipa::path(get, path = "/info", tag = "operations",
    responses((status = 200, description = "Model, index, policy, build and limits", body = InfoAnswer),
        (status = 503, description = "not_ready", body = ErrorBody)))]
pub async fn info(State(state): State<AppState>) -> Result<Json<InfoAnswer>, ApiError> {
    let core = state.core()?;
    let snapshot = core.live.snapshot();
    let manifest = snapshot.bundle.manifest();
    Ok(Json(InfoAnswer {
        model: core.info.model.clone(),
        device: core.info.device,
        index: IndexInfo {
            version: snapshot.bundle.version().to_owned(),
            size: snapshot.bundle.len(),
            dims: manifest.dims,
            counts: manifest.counts.clone(),
            built_at: manifest.built_at,
            examples_sha256: manifest.examples_sha256.clone(),
            hnsw: manifest.hnsw,
        },
        policy: PolicyInfo {
            version: snapshot.policy.version.clone(),
            default_bucket: snapshot.policy.default_bucket.clone(),
            buckets: snapshot.policy.buckets.keys().cloned().collect(),
        },
        build: BuildInfo {
            version: env!("CARGO_PKG_VERSION"),
            profile: if cfg!(debug_assertions) {
                "debug"
            } else {
                "release"
            },
        },
        limits: state.limits,
        store: core.store_health.status(),
        tenants: core
            .tenants
            .iter()
            .map(|tenant| {
                let snapshot = tenant.live.snapshot();
                let info = TenantInfo {
                    index_version: snapshot.bundle.version().to_owned(),
                    index_size: snapshot.bundle.len(),
                    policy_version: snapshot.policy.version.clone(),
                    replace: tenant.config.replace,
                    last_reload_error: tenant.live.last_error(),
                };
                (tenant.config.name.clone(), info)
            })
            .collect(),
    }))
}

#[utoipa::path(get, path = "/metrics", tag = "operations",
    responses((status = 200, description = "Prometheus text exposition", body = String,
        content_type = "text/plain; version=0.0.4")))]
pub async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    if let Ok(core) = state.core() {
        super::metrics::refresh(core, &state.build_info);
    }
    let body = state
        .metrics
        .as_ref()
        .map(|h| h.render())
        .unwrap_or_default();
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4",
        )],
        body,
    )
}

/// `GET /health/targets`: every breaker's state and window.
#[utoipa::path(get, path = "/health/targets", tag = "operations",
    responses((status = 200, description = "Every breaker's state and window", body = TargetsAnswer),
        (status = 503, description = "not_ready", body = ErrorBody)))]
pub async fn target_health(State(state): State<AppState>) -> Result<Json<TargetsAnswer>, ApiError> {
    let core = state.core()?;
    let targets = core.pipeline.health().report(std::time::Instant::now());
    Ok(Json(TargetsAnswer { targets }))
}
