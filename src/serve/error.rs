//! The one place errors become HTTP responses: an exhaustive match, stable `code`s, internal
//! details logged and never sent. Our own JSON extractor makes malformed bodies get our body.

use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRequest, Request};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::de::DeserializeOwned;
use serde::Serialize;
use utoipa::ToSchema;

use crate::decide::DecideError;
use crate::embed::EmbedError;
use crate::pipeline::PipelineError;

/// Seconds a client should wait before retrying an overloaded or starting service.
const RETRY_AFTER_SECONDS: &str = "1";

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    InvalidJson(String),
    #[error("{0}")]
    UnknownField(String),
    #[error("{0}")]
    InvalidRequest(String),
    #[error("the prompt is empty")]
    EmptyPrompt,
    #[error("request body is larger than the limit of {limit} bytes")]
    PayloadTooLarge { limit: usize },
    #[error("expected `Content-Type: application/json`")]
    UnsupportedMediaType,
    #[error("no route for {0}")]
    NotFound(String),
    #[error("method not allowed on this route")]
    MethodNotAllowed,
    #[error("missing `Authorization: Bearer <token>`")]
    Unauthorized,
    #[error("the admin token does not match")]
    Forbidden,
    /// `--client-tokens` is set and the bearer token is none of them.
    #[error("the client token is not one of --client-tokens")]
    UnknownClientToken,
    /// A report without a token the router issued for its decision and target.
    #[error("feedback refused: {0}")]
    UnverifiedFeedback(String),
    /// This caller's `POST /feedback` bucket is empty (`--feedback-rate`, `--feedback-burst`).
    #[error("too many feedback reports from this caller; retry in {retry_after_s} s")]
    FeedbackRateLimited { retry_after_s: u64 },
    #[error(
        "admin endpoints are off: set ROUTER_ADMIN_TOKEN (or --admin-token-file) to turn them on"
    )]
    AdminDisabled,
    #[error("{0}")]
    UnknownBucket(String),
    #[error("{0}")]
    InvalidExample(String),
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    UnknownTarget(String),
    #[error("reload refused, the last good state keeps serving: {0}")]
    ReloadFailed(String),
    /// Refused at admission: the request would queue for the model past its budget, or no
    /// request slot came free within it.
    #[error("the router is at capacity; retry shortly")]
    Overloaded,
    #[error("the router is starting: {0}")]
    NotReady(String),
    /// The client sent no body bytes for `--body-read-timeout-ms` (a slow or stalled client).
    #[error("no request body bytes arrived for {ms} ms")]
    BodyTimeout { ms: u64 },
    /// The request was not answered within `--request-timeout-ms`.
    #[error("the request was not answered within its deadline of {ms} ms")]
    DeadlineExceeded { ms: u64 },
    /// `--max-connections` are open; written on the socket before closing it.
    #[error("too many open connections; retry shortly")]
    TooManyConnections,
    /// No target of the chosen bucket can serve the request (capabilities, size, rules).
    #[error("{0}")]
    NoEligibleTarget(String),
    /// Every eligible target is cooling down and the policy says reject.
    #[error("{message}")]
    AllTargetsOpen { message: String, retry_after_s: u64 },
    /// The request names a tenant the tenants file does not declare.
    #[error("{0}")]
    UnknownTenant(String),
    /// The shared archetype store is unreachable: nothing was written; retry later.
    #[error("{0}")]
    StoreUnavailable(String),
    /// Details go to the log, not to the client.
    #[error("internal error")]
    Internal(String),
}

impl ApiError {
    pub fn status(&self) -> StatusCode {
        match self {
            Self::InvalidJson(_) | Self::InvalidRequest(_) | Self::EmptyPrompt => {
                StatusCode::BAD_REQUEST
            }
            Self::UnknownField(_) => StatusCode::UNPROCESSABLE_ENTITY,
            Self::PayloadTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            Self::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::Unauthorized => StatusCode::UNAUTHORIZED,
            Self::Forbidden
            | Self::AdminDisabled
            | Self::UnknownClientToken
            | Self::UnverifiedFeedback(_) => StatusCode::FORBIDDEN,
            Self::FeedbackRateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            Self::UnknownBucket(_) | Self::InvalidExample(_) | Self::ReloadFailed(_) => {
                StatusCode::UNPROCESSABLE_ENTITY
            }
            Self::Conflict(_) => StatusCode::CONFLICT,
            Self::UnknownTarget(_) | Self::UnknownTenant(_) => StatusCode::UNPROCESSABLE_ENTITY,
            Self::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Self::Overloaded => StatusCode::TOO_MANY_REQUESTS,
            Self::NotReady(_)
            | Self::AllTargetsOpen { .. }
            | Self::DeadlineExceeded { .. }
            | Self::TooManyConnections
            | Self::StoreUnavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            Self::BodyTimeout { .. } => StatusCode::REQUEST_TIMEOUT,
            Self::NoEligibleTarget(_) => StatusCode::UNPROCESSABLE_ENTITY,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// Stable machine-readable code; clients match on it, so never rename one.
    pub fn code(&self) -> &'static str {
        match self {
            Self::InvalidJson(_) => "invalid_json",
            Self::UnknownField(_) => "unknown_field",
            Self::InvalidRequest(_) => "invalid_request",
            Self::EmptyPrompt => "empty_prompt",
            Self::PayloadTooLarge { .. } => "payload_too_large",
            Self::UnsupportedMediaType => "unsupported_media_type",
            Self::NotFound(_) => "not_found",
            Self::Unauthorized => "unauthorized",
            Self::Forbidden => "forbidden",
            Self::UnknownClientToken => "unknown_client_token",
            Self::UnverifiedFeedback(_) => "unverified_feedback",
            Self::FeedbackRateLimited { .. } => "feedback_rate_limited",
            Self::AdminDisabled => "admin_disabled",
            Self::UnknownBucket(_) => "unknown_bucket",
            Self::InvalidExample(_) => "invalid_example",
            Self::Conflict(_) => "conflict",
            Self::UnknownTarget(_) => "unknown_target",
            Self::UnknownTenant(_) => "unknown_tenant",
            Self::ReloadFailed(_) => "reload_failed",
            Self::MethodNotAllowed => "method_not_allowed",
            Self::Overloaded => "overloaded",
            Self::NotReady(_) => "not_ready",
            Self::StoreUnavailable(_) => "store_unavailable",
            Self::BodyTimeout { .. } => "body_timeout",
            Self::DeadlineExceeded { .. } => "deadline_exceeded",
            Self::TooManyConnections => "too_many_connections",
            Self::NoEligibleTarget(_) => "no_eligible_target",
            Self::AllTargetsOpen { .. } => "all_targets_open",
            Self::Internal(_) => "internal",
        }
    }

    /// Maps an axum JSON rejection; `limit` is the configured body limit.
    pub fn from_json_rejection(
        rejection: &JsonRejection,
        limit: usize,
        body_timeout: Option<BodyTimeoutMs>,
    ) -> Self {
        if let Some(BodyTimeoutMs(ms)) = body_timeout {
            if is_body_timeout(rejection) {
                return Self::BodyTimeout { ms };
            }
        }
        let text = rejection.body_text();
        match rejection.status() {
            StatusCode::PAYLOAD_TOO_LARGE => Self::PayloadTooLarge { limit },
            StatusCode::UNSUPPORTED_MEDIA_TYPE => Self::UnsupportedMediaType,
            StatusCode::UNPROCESSABLE_ENTITY if text.contains("unknown field") => {
                Self::UnknownField(text)
            }
            StatusCode::UNPROCESSABLE_ENTITY => Self::InvalidRequest(text),
            _ => Self::InvalidJson(text),
        }
    }
}

impl From<PipelineError> for ApiError {
    fn from(e: PipelineError) -> Self {
        match e {
            PipelineError::Embed(EmbedError::EmptyText) => Self::EmptyPrompt,
            PipelineError::Decide(e @ DecideError::NoEligibleTarget { .. }) => {
                Self::NoEligibleTarget(e.to_string())
            }
            PipelineError::Decide(DecideError::AllTargetsOpen {
                bucket,
                targets,
                retry_after,
            }) => {
                // Whole seconds, rounded up: retrying earlier would only find it still open.
                let retry_after_s = retry_after
                    .as_secs()
                    .saturating_add(u64::from(retry_after.subsec_nanos() > 0))
                    .max(1);
                let e = DecideError::AllTargetsOpen {
                    bucket,
                    targets,
                    retry_after,
                };
                Self::AllTargetsOpen {
                    message: e.to_string(),
                    retry_after_s,
                }
            }
            other @ (PipelineError::Embed(_)
            | PipelineError::Index(_)
            | PipelineError::WorkerStopped
            | PipelineError::Decide(DecideError::UnknownBucket { .. })) => {
                Self::Internal(other.to_string())
            }
        }
    }
}

/// Every `code` an error body can carry (the OpenAPI document lists them; a unit test
/// checks each variant's code is here).
pub const ERROR_CODES: [&str; 29] = [
    "invalid_json",
    "unknown_field",
    "invalid_request",
    "empty_prompt",
    "payload_too_large",
    "unsupported_media_type",
    "not_found",
    "unauthorized",
    "forbidden",
    "unknown_client_token",
    "unverified_feedback",
    "feedback_rate_limited",
    "admin_disabled",
    "unknown_bucket",
    "invalid_example",
    "conflict",
    "unknown_target",
    "unknown_tenant",
    "reload_failed",
    "method_not_allowed",
    "overloaded",
    "not_ready",
    "store_unavailable",
    "body_timeout",
    "deadline_exceeded",
    "too_many_connections",
    "no_eligible_target",
    "all_targets_open",
    "internal",
];

/// The JSON body of every error: `{"error": {"code", "message"}}` (also one failed batch item).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ErrorDetail {
    /// Stable and machine-readable: clients match on it.
    #[schema(schema_with = error_code_schema)]
    pub code: &'static str,
    /// For people; may change between versions.
    pub message: String,
}

fn error_code_schema() -> utoipa::openapi::schema::Object {
    utoipa::openapi::schema::ObjectBuilder::new()
        .schema_type(utoipa::openapi::schema::Type::String)
        .enum_values(Some(ERROR_CODES))
        .build()
}

impl ApiError {
    /// The JSON error object: `{"error": {"code", "message"}}` (also one failed batch item).
    pub fn body(&self) -> ErrorBody {
        ErrorBody {
            error: ErrorDetail {
                code: self.code(),
                message: self.to_string(),
            },
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        if let Self::Internal(detail) = &self {
            tracing::error!(error = %detail, "internal error");
        }
        let body = Json(self.body());
        let mut response = (status, body).into_response();
        match &self {
            Self::Overloaded
            | Self::NotReady(_)
            | Self::DeadlineExceeded { .. }
            | Self::TooManyConnections
            | Self::StoreUnavailable(_) => {
                response.headers_mut().insert(
                    header::RETRY_AFTER,
                    HeaderValue::from_static(RETRY_AFTER_SECONDS),
                );
            }
            Self::AllTargetsOpen { retry_after_s, .. }
            | Self::FeedbackRateLimited { retry_after_s } => {
                response
                    .headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from(*retry_after_s));
            }
            Self::Unauthorized => {
                response
                    .headers_mut()
                    .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            }
            Self::InvalidJson(_)
            | Self::UnknownField(_)
            | Self::InvalidRequest(_)
            | Self::EmptyPrompt
            | Self::PayloadTooLarge { .. }
            | Self::UnsupportedMediaType
            | Self::NotFound(_)
            | Self::MethodNotAllowed
            | Self::NoEligibleTarget(_)
            | Self::Forbidden
            | Self::AdminDisabled
            | Self::UnknownClientToken
            | Self::UnverifiedFeedback(_)
            | Self::UnknownBucket(_)
            | Self::InvalidExample(_)
            | Self::Conflict(_)
            | Self::UnknownTarget(_)
            | Self::UnknownTenant(_)
            | Self::ReloadFailed(_)
            | Self::BodyTimeout { .. }
            | Self::Internal(_) => {}
        }
        response
    }
}

/// Whether reading the body failed because `tower_http`'s body timeout fired.
fn is_body_timeout(rejection: &JsonRejection) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(rejection);
    while let Some(e) = source {
        if e.is::<tower_http::timeout::TimeoutError>() {
            return true;
        }
        source = e.source();
    }
    false
}

/// The body read timeout in force, in request extensions so a rejection can cite it.
#[derive(Debug, Clone, Copy)]
pub struct BodyTimeoutMs(pub u64);

/// `Json<T>` whose rejections are [`ApiError`]s.
pub struct ApiJson<T>(pub T);

/// The body limit in force, put in request extensions by the router so rejections can cite it.
#[derive(Debug, Clone, Copy)]
pub struct BodyLimit(pub usize);

impl<S, T> FromRequest<S> for ApiJson<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let limit = req.extensions().get::<BodyLimit>().map_or(0, |l| l.0);
        let body_timeout = req.extensions().get::<BodyTimeoutMs>().copied();
        match Json::<T>::from_request(req, state).await {
            Ok(Json(value)) => Ok(Self(value)),
            Err(rejection) => Err(ApiError::from_json_rejection(
                &rejection,
                limit,
                body_timeout,
            )),
        }
    }
}

#[cfg(test)]
#[path = "error_tests.rs"]
mod tests;
