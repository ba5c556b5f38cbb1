//! The HTTP edge: axum routes, wire types, the one error → status mapping, metrics, admission,
//! start-up and graceful shutdown. Handlers parse, admit and map errors; the request path
//! itself is `pipeline`'s. Handlers take one snapshot per request.

pub mod admin;
pub mod admin_answers;
pub mod admin_uncertain;
pub mod admission;
pub mod answers;
pub mod auth;
pub mod caller;
pub mod callers;
pub mod conn_activity;
pub mod deadline;
pub mod decision_log;
pub mod error;
pub mod feedback;
pub mod feedback_replay;
pub mod feedback_sig;
pub mod handlers;
pub mod listen;
pub mod metrics;
pub mod openapi;
#[cfg(feature = "otlp")]
pub mod otlp;
pub mod run;
pub mod stats;
pub mod status;
pub mod trace;
pub mod ui;
pub mod wire;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use axum::extract::{MatchedPath, Request};
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::Router;
use metrics_exporter_prometheus::PrometheusHandle;

use crate::live::ReloadHandle;
use error::{ApiError, BodyLimit, BodyTimeoutMs};

pub use crate::pipeline::compose::{Core, CoreInfo, Limits, StatePaths};
pub use run::{run, EdgeSettings};

/// axum state. Cheap to clone; no globals, so tests can build many apps in one process.
#[derive(Clone)]
pub struct AppState {
    core: Arc<OnceLock<Core>>,
    /// What start-up is doing, for `/ready` while `core` is unset.
    phase: Arc<Mutex<String>>,
    /// Set by the first shutdown signal: `/ready` answers 503 "draining" from then on.
    draining: Arc<AtomicBool>,
    admission: Arc<admission::Admission>,
    limits: Limits,
    metrics: Option<PrometheusHandle>,
    /// The `router_build_info` labels last set (reset to 0 when the versions change).
    build_info: Arc<Mutex<Option<metrics::BuildLabels>>>,
    admin_token: Option<auth::AdminToken>,
    decision_log: decision_log::DecisionLog,
    timeouts: deadline::RequestTimeouts,
    /// `None`: the routing endpoints are open (no `--client-tokens`).
    client_tokens: Option<callers::ClientTokens>,
    /// Signs decisions and verifies feedback about them.
    signer: feedback_sig::DecisionSigner,
    feedback_limiter: callers::RateLimiter,
    /// One report per decision and target.
    feedback_replay: feedback_replay::ReplayGuard,
    /// The newest decisions, for `/admin/stats` and the operators' page.
    recent: stats::RecentDecisions,
}

impl AppState {
    /// A state whose core will be set when start-up finishes (see [`AppState::set_core`]).
    pub fn starting(limits: Limits, metrics: Option<PrometheusHandle>) -> Self {
        Self {
            core: Arc::new(OnceLock::new()),
            phase: Arc::new(Mutex::new("starting".to_owned())),
            draining: Arc::new(AtomicBool::new(false)),
            admission: Arc::new(admission::Admission::new(
                limits.max_in_flight,
                std::time::Duration::from_millis(limits.queue_budget_ms),
            )),
            limits,
            metrics,
            build_info: Arc::new(Mutex::new(None)),
            admin_token: None,
            decision_log: decision_log::DecisionLog::off(),
            timeouts: deadline::RequestTimeouts::default(),
            client_tokens: None,
            signer: feedback_sig::DecisionSigner::random(),
            feedback_limiter: callers::RateLimiter::new(
                callers::DEFAULT_FEEDBACK_RATE,
                callers::DEFAULT_FEEDBACK_BURST,
            ),
            feedback_replay: feedback_replay::ReplayGuard::default(),
            recent: stats::RecentDecisions::default(),
        }
    }

    /// Requires one of these client tokens on the routing endpoints.
    pub fn with_client_tokens(mut self, tokens: Option<callers::ClientTokens>) -> Self {
        self.client_tokens = tokens;
        self
    }

    /// Signs decisions with this key (else a random key of this process).
    pub fn with_signer(mut self, signer: feedback_sig::DecisionSigner) -> Self {
        self.signer = signer;
        self
    }

    /// Limits `POST /feedback` per caller.
    pub fn with_feedback_limiter(mut self, limiter: callers::RateLimiter) -> Self {
        self.feedback_limiter = limiter;
        self
    }

    /// Body and request time limits (the defaults unless set).
    pub fn with_timeouts(mut self, timeouts: deadline::RequestTimeouts) -> Self {
        self.timeouts = timeouts;
        self
    }

    /// Writes a decision-log line per decision (off unless set).
    pub fn with_decision_log(mut self, log: decision_log::DecisionLog) -> Self {
        self.decision_log = log;
        self
    }

    /// Turns the admin and write endpoints on, guarded by this token.
    pub fn with_admin_token(mut self, token: Option<auth::AdminToken>) -> Self {
        self.admin_token = token;
        self
    }

    /// A ready state (tests and embedding the router in another program).
    pub fn ready(core: Core, limits: Limits) -> Self {
        let state = Self::starting(limits, None);
        state.set_core(core);
        state
    }

    pub fn set_core(&self, core: Core) {
        if self.core.set(core).is_err() {
            tracing::warn!("the router core was already set; keeping the first");
        }
    }

    pub fn set_phase(&self, phase: impl Into<String>) {
        *self
            .phase
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = phase.into();
    }

    fn phase(&self) -> String {
        self.phase
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// From now on `/ready` answers 503 "draining"; requests are still served.
    pub fn start_draining(&self) {
        self.draining.store(true, Ordering::Relaxed);
    }

    fn is_draining(&self) -> bool {
        self.draining.load(Ordering::Relaxed)
    }

    fn core(&self) -> Result<&Core, ApiError> {
        self.core
            .get()
            .ok_or_else(|| ApiError::NotReady(self.phase()))
    }

    pub fn reloads(&self) -> Option<&ReloadHandle> {
        self.core.get().map(|c| &c.reloads)
    }
}

/// One routed endpoint: its method (lower case, as OpenAPI writes it) and path pattern.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Route {
    pub method: &'static str,
    pub path: &'static str,
    /// Behind the admin token.
    pub admin: bool,
    /// Behind the client tokens, when `--client-tokens` is set.
    pub client: bool,
}

/// Declares [`ROUTES`] and the routers built from it, from one list, so the table the
/// OpenAPI test reads cannot drift from what `build_app` serves.
macro_rules! routes {
    (admin { $($am:ident $ap:literal => $ah:path,)* }
     client { $($cm:ident $cp:literal => $ch:path,)* }
     public { $($pm:ident $pp:literal => $ph:path,)* }) => {
        /// Every route `build_app` serves.
        pub const ROUTES: &[Route] = &[
            $(Route { method: stringify!($am), path: $ap, admin: true, client: false },)*
            $(Route { method: stringify!($cm), path: $cp, admin: false, client: true },)*
            $(Route { method: stringify!($pm), path: $pp, admin: false, client: false },)*
        ];

        fn admin_routes() -> Router<AppState> {
            Router::new()$(.route($ap, axum::routing::$am($ah)))*
        }

        fn client_routes() -> Router<AppState> {
            Router::new()$(.route($cp, axum::routing::$cm($ch)))*
        }

        fn public_routes() -> Router<AppState> {
            Router::new()$(.route($pp, axum::routing::$pm($ph)))*
        }
    };
}

routes! {
    admin {
        post "/archetypes" => admin::add_archetypes,
        get "/archetypes" => admin::list_archetypes,
        delete "/archetypes/{id}" => admin::delete_archetype,
        post "/admin/reload" => admin::reload,
        post "/admin/rebuild" => admin::rebuild,
        post "/admin/fit" => admin::fit,
        get "/admin/uncertain" => admin_uncertain::uncertain,
        get "/admin/stats" => stats::stats,
    }
    client {
        post "/classify" => handlers::classify,
        post "/classify/batch" => handlers::classify_batch,
        post "/embed" => handlers::embed,
        post "/feedback" => feedback::feedback,
    }
    public {
        get "/health" => status::health,
        get "/health/targets" => status::target_health,
        get "/ready" => status::ready,
        get "/info" => status::info,
        get "/metrics" => status::metrics,
        get "/openapi.json" => openapi::openapi_json,
        get "/ui" => ui::page,
        get "/" => ui::root,
    }
}

/// All routes, with the body limit, time limits, metrics and tracing layers.
pub fn build_app(state: AppState) -> Router {
    let body_limit = state.limits.max_body_bytes;
    let timeouts = state.timeouts;
    let admin = admin_routes().route_layer(middleware::from_fn_with_state(
        state.clone(),
        auth::require_admin,
    ));
    let client = client_routes().route_layer(middleware::from_fn_with_state(
        state.clone(),
        callers::require_client,
    ));
    public_routes()
        .merge(client)
        .route_layer(middleware::from_fn_with_state(
            timeouts.request,
            deadline::deadline,
        ))
        .merge(admin)
        .fallback(handlers::not_found)
        .method_not_allowed_fallback(handlers::method_not_allowed)
        .layer(middleware::from_fn(count_requests))
        .layer(middleware::from_fn(trace::trace_request))
        .layer(axum::extract::DefaultBodyLimit::max(body_limit))
        .layer(axum::Extension(BodyLimit(body_limit)))
        .layer(tower_http::timeout::RequestBodyTimeoutLayer::new(
            timeouts.body_read,
        ))
        .layer(axum::Extension(BodyTimeoutMs(deadline::millis(
            timeouts.body_read,
        ))))
        .layer(tower_http::trace::TraceLayer::new_for_http().on_failure(log_failure))
        .with_state(state)
}

/// 5xx responses are logged at ERROR, except 503 (not ready during start-up, draining): an
/// expected answer to probes, logged at DEBUG.
fn log_failure(
    class: tower_http::classify::ServerErrorsFailureClass,
    latency: std::time::Duration,
    _span: &tracing::Span,
) {
    use tower_http::classify::ServerErrorsFailureClass;
    let latency_ms = latency.as_secs_f64() * 1e3;
    match class {
        ServerErrorsFailureClass::StatusCode(status)
            if status == axum::http::StatusCode::SERVICE_UNAVAILABLE =>
        {
            tracing::debug!(%status, latency_ms, "service unavailable (not ready or draining)");
        }
        other @ (ServerErrorsFailureClass::StatusCode(_) | ServerErrorsFailureClass::Error(_)) => {
            tracing::error!(classification = %other, latency_ms, "response failed");
        }
    }
}

/// `router_requests_total{route, status}` and `router_request_duration_seconds{route, status}`;
/// the route is the matched pattern, never the raw path.
async fn count_requests(request: Request, next: Next) -> Response {
    let started = std::time::Instant::now();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let response = next.run(request).await;
    let status = response.status().as_u16().to_string();
    ::metrics::histogram!(metrics::REQUEST_DURATION_SECONDS, "route" => route.clone(), "status" => status.clone())
        .record(started.elapsed().as_secs_f64());
    ::metrics::counter!(metrics::REQUESTS_TOTAL, "route" => route, "status" => status).increment(1);
    response
}
