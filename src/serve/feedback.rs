//! `POST /feedback`: a caller reports what a target did, and the target's breaker learns it.
//! Only reports about decisions the router issued count: the report carries the decision id
//! and the `feedback_token` the decision gave for that target (`serve::feedback_sig`), and
//! each caller is rate limited (`serve::callers`), so nobody can open a breaker by forging
//! or flooding reports; and each decision and target is reported once
//! (`serve::feedback_replay`), so nobody can replay one genuine report either.

use axum::extract::State;
use axum::{Extension, Json};
use utoipa::ToSchema;

use super::answers::FeedbackAnswer;
use super::callers::CallerId;
use super::error::{ApiError, ApiJson, ErrorBody};
use super::feedback_replay::{Refusal, MAX_REPORT_AGE};
use super::AppState;

/// `POST /feedback`: an outcome a caller saw from a target, fed to that target's breaker.
#[derive(Debug, serde::Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Feedback {
    pub target: String,
    pub outcome: crate::decide::ReportedOutcome,
    #[serde(default)]
    pub latency_ms: Option<u64>,
    #[serde(default)]
    pub retry_after_s: Option<u64>,
    /// The decision the report is about (`decision_id` of its answer).
    #[serde(default)]
    pub decision_id: Option<String>,
    /// `feedback_tokens[target]` of that decision's answer.
    #[serde(default)]
    pub feedback_token: Option<String>,
}

#[utoipa::path(post, path = "/feedback", tag = "routing", request_body = Feedback,
    responses((status = 200, description = "The target's breaker state after the report", body = FeedbackAnswer),
        (status = 400, description = "invalid_json, invalid_request", body = ErrorBody),
        (status = 413, description = "payload_too_large", body = ErrorBody),
        (status = 415, description = "unsupported_media_type", body = ErrorBody),
        (status = 401, description = "unauthorized: client tokens are set and none was given", body = ErrorBody),
        (status = 403, description = "unknown_client_token; unverified_feedback: no decision_id and feedback_token, or a token the router did not issue for this decision and target, or a second report for the same decision and target, or a decision older than 15 minutes", body = ErrorBody),
        (status = 422, description = "unknown_field, unknown_target", body = ErrorBody),
        (status = 429, description = "feedback_rate_limited (`Retry-After`)", body = ErrorBody),
        (status = 503, description = "not_ready", body = ErrorBody)),
    security((), ("client_token" = [])))]
pub async fn feedback(
    State(state): State<AppState>,
    caller: Option<Extension<CallerId>>,
    ApiJson(feedback): ApiJson<Feedback>,
) -> Result<Json<FeedbackAnswer>, ApiError> {
    let core = state.core()?;
    let caller = caller.map_or_else(|| CallerId("unknown".into()), |Extension(c)| c);
    state
        .feedback_limiter
        .take(&caller, std::time::Instant::now())
        .map_err(|retry_after_s| ApiError::FeedbackRateLimited { retry_after_s })?;
    let snapshot = declaring_snapshot(core, &feedback.target)?;
    let decision_id = verify(&state, &feedback)?;
    state
        .feedback_replay
        .admit(decision_id, &feedback.target, std::time::SystemTime::now())
        .map_err(|refusal| {
            ::metrics::counter!(UNVERIFIED_FEEDBACK_TOTAL).increment(1);
            ApiError::UnverifiedFeedback(match refusal {
                Refusal::Replayed => format!(
                    "decision `{decision_id}` already has a report for target `{}`: one report per decision and target",
                    feedback.target
                ),
                Refusal::Stale => format!(
                    "decision `{decision_id}` is older than {} minutes: report outcomes when the call ends",
                    MAX_REPORT_AGE.as_secs() / 60
                ),
            })
        })?;
    let report = crate::decide::OutcomeReport {
        outcome: feedback.outcome,
        latency_ms: feedback.latency_ms,
        retry_after_s: feedback.retry_after_s,
    };
    // A short critical section on the board's mutex; the hot path never takes it.
    let transition = core.pipeline.health().record(
        &feedback.target,
        &report,
        &snapshot.policy.health,
        std::time::Instant::now(),
    );
    super::metrics::record_transition(&feedback.target, &transition);
    if transition.from != transition.to {
        tracing::warn!(target = %feedback.target, from = ?transition.from, to = ?transition.to, decision_id = feedback.decision_id.as_deref().unwrap_or(""), "breaker changed state");
    }
    Ok(Json(FeedbackAnswer {
        target: feedback.target,
        state: transition.to,
    }))
}

/// The snapshot whose policy declares `target`: the shared one, else a tenant's own (a
/// tenant with its own policy decides for its own targets). Breakers live on the one board
/// every namespace shares, since a provider's health is the same for all of them; a target
/// declared by several policies takes the shared policy's health settings, else the first
/// tenant's by name.
fn declaring_snapshot(
    core: &super::Core,
    target: &str,
) -> Result<std::sync::Arc<crate::pipeline::Snapshot>, ApiError> {
    let snapshots =
        std::iter::once(core.live.snapshot()).chain(core.tenants.iter().map(|t| t.live.snapshot()));
    let mut known = std::collections::BTreeSet::new();
    for snapshot in snapshots {
        if snapshot.policy.target(target).is_some() {
            return Ok(snapshot);
        }
        known.extend(snapshot.policy.targets.keys().cloned());
    }
    let known: Vec<String> = known.into_iter().collect();
    Err(ApiError::UnknownTarget(format!(
        "unknown target `{target}` (targets: {})",
        known.join(", ")
    )))
}

/// Refuses a report without a token the router issued for its decision and target; the
/// verified decision id otherwise.
fn verify<'f>(state: &AppState, feedback: &'f Feedback) -> Result<&'f str, ApiError> {
    let (Some(id), Some(token)) = (&feedback.decision_id, &feedback.feedback_token) else {
        return Err(ApiError::UnverifiedFeedback(
            "give `decision_id` and `feedback_token` (the decision's `feedback_tokens[target]`)"
                .into(),
        ));
    };
    if state.signer.verify(id, &feedback.target, token) {
        Ok(id)
    } else {
        ::metrics::counter!(UNVERIFIED_FEEDBACK_TOTAL).increment(1);
        Err(ApiError::UnverifiedFeedback(format!(
            "the router issued no decision `{id}` naming target `{}` with this feedback_token",
            feedback.target
        )))
    }
}

/// Reports refused as unverified (forged, for another target, or signed by another key).
pub const UNVERIFIED_FEEDBACK_TOTAL: &str = "router_feedback_unverified_total";
