//! Route handlers: parse, take one snapshot, admit, hand the request to the pipeline, map
//! errors once. Embedding for `/embed` runs in a blocking task behind the same admission.
//! The operations endpoints are in `status`.

use std::sync::OnceLock;
use std::time::Instant;

use axum::extract::State;
use axum::http::Uri;
use axum::response::IntoResponse;
use axum::{Extension, Json};
use tokio::sync::OwnedSemaphorePermit;

use super::answers::{BatchAnswer, BatchItem, EmbedAnswer, EmbedBatchAnswer, SignedDecision};
use super::callers::CallerId;
use super::decision_log::RequestNote;
use super::error::{ApiError, ApiJson, ErrorBody};
use super::trace::RequestTrace;
use super::wire::{ClassifyBatchRequest, ClassifyRequest, EmbedRequest, EmbedResponse};
use super::AppState;
use super::Core;
use crate::pipeline::{ClassifyInput, PipelineError, Served};

/// Takes an admission permit, waiting up to the queueing budget (`serve::admission`), and
/// notes when it was granted so the hold time can be observed afterwards.
async fn admit(
    state: &AppState,
    core: &Core,
    admitted_at: &OnceLock<Instant>,
) -> Result<OwnedSemaphorePermit, ApiError> {
    let model_wait = core.pipeline.backlog().expected_wait();
    match state.admission.admit(model_wait).await {
        Ok(permit) => {
            let _ = admitted_at.set(Instant::now());
            Ok(permit)
        }
        Err(refusal) => {
            ::metrics::counter!(super::metrics::OVERLOADED_TOTAL).increment(1);
            tracing::debug!(?refusal, "admission refused a request");
            Err(ApiError::Overloaded)
        }
    }
}

/// Feeds admission's estimate with how long this request held its permit (none on a hit).
fn observe_hold(state: &AppState, admitted_at: &OnceLock<Instant>) {
    if let Some(at) = admitted_at.get() {
        state.admission.observe_hold(at.elapsed());
    }
}

/// Runs CPU-bound work off the async threads; the permit is released when the work ends.
async fn run_blocking<T: Send + 'static>(
    permit: OwnedSemaphorePermit,
    work: impl FnOnce() -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(move || {
        let _permit = permit;
        work()
    })
    .await
    .map_err(|e| ApiError::Internal(format!("blocking task failed: {e}")))?
}

/// Counts the decision and queues its decision-log line (never waits for the writer).
fn log_decision(state: &AppState, core: &Core, served: &Served, note: RequestNote) {
    super::metrics::record_decision(&served.decision);
    state.recent.record(&served.decision);
    state
        .decision_log
        .record(&served.decision, note, served.cache, &core.info.model);
}

/// A request without `request_id` in its body takes the caller's `x-request-id` (never a
/// made-up one: the decision then says it has none).
fn take_request_id(input: &mut ClassifyInput, trace: Option<&RequestTrace>) {
    if input.request_id.is_none() {
        input.request_id = trace
            .filter(|t| t.request_id_given)
            .map(|t| t.request_id.clone());
    }
}

/// Whose retrieval-cache entries a request uses. Tenants never share entries (not even one
/// served from the shared namespace), and where client tokens tell callers apart each
/// caller's entries are its own, so `x-router-cache` (and a hit's speed) never tells one
/// caller what another sent. Without tokens, callers of one tenant are anonymous and share.
fn cache_scope(
    state: &AppState,
    caller: Option<&Extension<CallerId>>,
    tenant: Option<&str>,
) -> Option<String> {
    let caller = state
        .client_tokens
        .as_ref()
        .and(caller)
        .map(|Extension(c)| c.0.as_str());
    match (tenant, caller) {
        (None, None) => None,
        (tenant, caller) => Some(format!(
            "tenant:{}\u{1e}{}",
            tenant.unwrap_or(""),
            caller.unwrap_or("")
        )),
    }
}

/// `x-router-cache: hit | miss`: whether the decision's retrieval came from the cache.
const CACHE_HEADER: &str = "x-router-cache";

#[utoipa::path(post, path = "/classify", tag = "routing", request_body = ClassifyRequest,
    responses((status = 200, description = "The decision; header `x-router-cache: hit | miss`", body = SignedDecision),
        (status = 400, description = "invalid_json, invalid_request, empty_prompt", body = ErrorBody),
        (status = 401, description = "unauthorized: client tokens are set and none was given", body = ErrorBody),
        (status = 403, description = "unknown_client_token", body = ErrorBody),
        (status = 413, description = "payload_too_large", body = ErrorBody),
        (status = 415, description = "unsupported_media_type", body = ErrorBody),
        (status = 422, description = "unknown_field, no_eligible_target", body = ErrorBody),
        (status = 429, description = "overloaded (`Retry-After`)", body = ErrorBody),
        (status = 503, description = "not_ready, all_targets_open (`Retry-After`)", body = ErrorBody),
        (status = 500, description = "internal", body = ErrorBody)),
    security((), ("client_token" = [])))]
pub async fn classify(
    State(state): State<AppState>,
    trace: Option<Extension<RequestTrace>>,
    caller: Option<Extension<CallerId>>,
    ApiJson(request): ApiJson<ClassifyRequest>,
) -> Result<impl IntoResponse, ApiError> {
    let core = state.core()?;
    let mut input = request.into_input()?;
    input.cache_scope = cache_scope(&state, caller.as_ref(), input.context.tenant.as_deref());
    let trace = trace.map(|Extension(t)| t);
    take_request_id(&mut input, trace.as_ref());
    let note = state.decision_log.note(&input, trace.as_ref());
    let snapshot = core
        .live_for(input.context.tenant.as_deref())
        .map_err(ApiError::UnknownTenant)?
        .snapshot();
    let admitted_at = OnceLock::new();
    let served = core
        .pipeline
        .serve(snapshot, input, admit(&state, core, &admitted_at))
        .await?;
    observe_hold(&state, &admitted_at);
    log_decision(&state, core, &served, note);
    Ok((
        [(CACHE_HEADER, served.cache.as_str())],
        Json(SignedDecision::new(served.decision, &state.signer)),
    ))
}

/// `POST /classify/batch`: `{"decisions": [...]}` in request order; an item that fails holds
/// its own `{"error": {...}}` while the others are decided.
#[utoipa::path(post, path = "/classify/batch", tag = "routing", request_body = ClassifyBatchRequest,
    responses((status = 200, description = "One decision or error per request, in order", body = BatchAnswer),
        (status = 400, description = "invalid_json, invalid_request (empty or too large a batch)", body = ErrorBody),
        (status = 401, description = "unauthorized: client tokens are set and none was given", body = ErrorBody),
        (status = 403, description = "unknown_client_token", body = ErrorBody),
        (status = 413, description = "payload_too_large", body = ErrorBody),
        (status = 415, description = "unsupported_media_type", body = ErrorBody),
        (status = 422, description = "unknown_field", body = ErrorBody),
        (status = 429, description = "overloaded", body = ErrorBody),
        (status = 503, description = "not_ready", body = ErrorBody),
        (status = 500, description = "internal", body = ErrorBody)),
    security((), ("client_token" = [])))]
pub async fn classify_batch(
    State(state): State<AppState>,
    trace: Option<Extension<RequestTrace>>,
    caller: Option<Extension<CallerId>>,
    ApiJson(batch): ApiJson<ClassifyBatchRequest>,
) -> Result<Json<BatchAnswer>, ApiError> {
    let trace = trace.map(|Extension(t)| t);
    let core = state.core()?;
    check_batch_size(batch.requests.len(), state.limits.max_batch)?;
    let inputs = batch
        .requests
        .into_iter()
        .enumerate()
        .map(|(i, r)| {
            let mut input = r
                .into_input()
                .map_err(|e| ApiError::InvalidRequest(format!("requests[{i}]: {e}")))?;
            input.cache_scope =
                cache_scope(&state, caller.as_ref(), input.context.tenant.as_deref());
            Ok(input)
        })
        .collect::<Result<Vec<ClassifyInput>, ApiError>>()?;
    let notes: Vec<RequestNote> = inputs
        .iter()
        .map(|i| state.decision_log.note(i, trace.as_ref()))
        .collect();
    // One snapshot serves the whole batch, so one tenant's namespace.
    let tenant = inputs.first().and_then(|i| i.context.tenant.clone());
    if let Some(i) = inputs.iter().position(|i| i.context.tenant != tenant) {
        if !core.tenants.is_empty() {
            return Err(ApiError::InvalidRequest(format!(
                "requests[{i}]: a batch is routed for one tenant; requests[0] names another"
            )));
        }
    }
    let snapshot = core
        .live_for(tenant.as_deref())
        .map_err(ApiError::UnknownTenant)?
        .snapshot();
    let admitted_at = OnceLock::new();
    let results = core
        .pipeline
        .serve_many(snapshot, inputs, admit(&state, core, &admitted_at))
        .await?;
    observe_hold(&state, &admitted_at);
    let decisions = results
        .into_iter()
        .zip(notes)
        .map(|(result, note)| match result {
            Ok(served) => {
                log_decision(&state, core, &served, note);
                BatchItem::Decided(Box::new(SignedDecision::new(
                    served.decision,
                    &state.signer,
                )))
            }
            Err(e) => BatchItem::Failed(ApiError::from(e).body()),
        })
        .collect();
    Ok(Json(BatchAnswer { decisions }))
}

#[utoipa::path(post, path = "/embed", tag = "routing", request_body = EmbedRequest,
    responses((status = 200, description = "One vector for `text`, `embeddings` for `texts`", body = EmbedAnswer),
        (status = 400, description = "invalid_json, invalid_request, empty_prompt", body = ErrorBody),
        (status = 401, description = "unauthorized: client tokens are set and none was given", body = ErrorBody),
        (status = 403, description = "unknown_client_token", body = ErrorBody),
        (status = 413, description = "payload_too_large", body = ErrorBody),
        (status = 415, description = "unsupported_media_type", body = ErrorBody),
        (status = 422, description = "unknown_field", body = ErrorBody),
        (status = 429, description = "overloaded", body = ErrorBody),
        (status = 503, description = "not_ready", body = ErrorBody),
        (status = 500, description = "internal", body = ErrorBody)),
    security((), ("client_token" = [])))]
pub async fn embed(
    State(state): State<AppState>,
    ApiJson(request): ApiJson<EmbedRequest>,
) -> Result<Json<EmbedAnswer>, ApiError> {
    let core = state.core()?;
    let (texts, single) = match (request.text, request.texts) {
        (Some(text), None) => (vec![text], true),
        (None, Some(texts)) => (texts, false),
        (Some(_), Some(_)) | (None, None) => {
            return Err(ApiError::InvalidRequest(
                "give exactly one of `text` or `texts`".into(),
            ))
        }
    };
    check_batch_size(texts.len(), state.limits.max_batch)?;
    if let Some(i) = texts.iter().position(|t| t.trim().is_empty()) {
        return Err(if single {
            ApiError::EmptyPrompt
        } else {
            ApiError::InvalidRequest(format!("texts[{i}] is empty"))
        });
    }
    let admitted_at = OnceLock::new();
    let permit = admit(&state, core, &admitted_at).await?;
    let pipeline = core.pipeline.clone();
    let embedded = run_blocking(permit, move || {
        let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
        let out = if refs.len() == 1 {
            vec![pipeline.embedder().embed(refs[0])]
        } else {
            pipeline
                .embedder()
                .embed_batch(&refs)
                .map_or_else(|e| vec![Err(e)], |v| v.into_iter().map(Ok).collect())
        };
        out.into_iter()
            .map(|r| {
                r.map(|e| EmbedResponse {
                    tokens: e.tokens,
                    embedding: e.embedding.into_vec(),
                })
                .map_err(|e| ApiError::from(PipelineError::from(e)))
            })
            .collect::<Result<Vec<_>, _>>()
    })
    .await?;
    observe_hold(&state, &admitted_at);
    if !single {
        return Ok(Json(EmbedAnswer::Many(EmbedBatchAnswer {
            embeddings: embedded,
        })));
    }
    let one = embedded
        .into_iter()
        .next()
        .ok_or_else(|| ApiError::Internal("no embedding came back".into()))?;
    Ok(Json(EmbedAnswer::One(one)))
}

fn check_batch_size(n: usize, max: usize) -> Result<(), ApiError> {
    if n == 0 {
        return Err(ApiError::InvalidRequest("the batch is empty".into()));
    }
    if n > max {
        return Err(ApiError::InvalidRequest(format!(
            "the batch has {n} items; the limit is {max}"
        )));
    }
    Ok(())
}

pub async fn not_found(uri: Uri) -> ApiError {
    ApiError::NotFound(uri.path().to_owned())
}

pub async fn method_not_allowed() -> ApiError {
    ApiError::MethodNotAllowed
}
