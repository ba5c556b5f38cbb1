//! The status and code of every `ApiError`, and what its response carries.

use super::*;

#[test]
fn status_and_code_table() {
    let table = [
        (ApiError::InvalidJson(String::new()), 400, "invalid_json"),
        (ApiError::UnknownField(String::new()), 422, "unknown_field"),
        (
            ApiError::InvalidRequest(String::new()),
            400,
            "invalid_request",
        ),
        (ApiError::EmptyPrompt, 400, "empty_prompt"),
        (
            ApiError::PayloadTooLarge { limit: 1 },
            413,
            "payload_too_large",
        ),
        (
            ApiError::UnsupportedMediaType,
            415,
            "unsupported_media_type",
        ),
        (ApiError::NotFound(String::new()), 404, "not_found"),
        (ApiError::Unauthorized, 401, "unauthorized"),
        (ApiError::Forbidden, 403, "forbidden"),
        (ApiError::UnknownClientToken, 403, "unknown_client_token"),
        (
            ApiError::UnverifiedFeedback(String::new()),
            403,
            "unverified_feedback",
        ),
        (
            ApiError::FeedbackRateLimited { retry_after_s: 2 },
            429,
            "feedback_rate_limited",
        ),
        (ApiError::AdminDisabled, 403, "admin_disabled"),
        (
            ApiError::UnknownBucket(String::new()),
            422,
            "unknown_bucket",
        ),
        (
            ApiError::InvalidExample(String::new()),
            422,
            "invalid_example",
        ),
        (ApiError::Conflict(String::new()), 409, "conflict"),
        (
            ApiError::UnknownTenant(String::new()),
            422,
            "unknown_tenant",
        ),
        (
            ApiError::StoreUnavailable(String::new()),
            503,
            "store_unavailable",
        ),
        (
            ApiError::UnknownTarget(String::new()),
            422,
            "unknown_target",
        ),
        (ApiError::ReloadFailed(String::new()), 422, "reload_failed"),
        (ApiError::MethodNotAllowed, 405, "method_not_allowed"),
        (ApiError::Overloaded, 429, "overloaded"),
        (ApiError::NotReady(String::new()), 503, "not_ready"),
        (ApiError::BodyTimeout { ms: 1 }, 408, "body_timeout"),
        (
            ApiError::DeadlineExceeded { ms: 1 },
            503,
            "deadline_exceeded",
        ),
        (ApiError::TooManyConnections, 503, "too_many_connections"),
        (ApiError::Internal(String::new()), 500, "internal"),
        (
            ApiError::NoEligibleTarget(String::new()),
            422,
            "no_eligible_target",
        ),
        (
            ApiError::AllTargetsOpen {
                message: String::new(),
                retry_after_s: 7,
            },
            503,
            "all_targets_open",
        ),
    ];
    let mut documented: Vec<&str> = ERROR_CODES.to_vec();
    for (error, status, code) in table {
        assert_eq!(error.status().as_u16(), status, "{code}");
        assert_eq!(error.code(), code);
        assert!(
            documented.contains(&code),
            "{code} is missing from ERROR_CODES"
        );
        documented.retain(|c| *c != code);
    }
    assert!(
        documented.is_empty(),
        "ERROR_CODES lists codes no variant has: {documented:?}"
    );
}

#[test]
fn overload_and_an_unreachable_store_say_when_to_retry() {
    for e in [
        ApiError::Overloaded,
        ApiError::StoreUnavailable("down".into()),
    ] {
        let response = e.into_response();
        assert_eq!(response.headers()[header::RETRY_AFTER], "1");
    }
}

#[test]
fn decide_errors_map_to_their_statuses() {
    use crate::types::BucketId;
    let e = ApiError::from(PipelineError::Decide(DecideError::NoEligibleTarget {
        bucket: BucketId::new("code"),
        why: "request needs vision; dropped mid-a".into(),
    }));
    assert_eq!(e.code(), "no_eligible_target");
    assert!(e.to_string().contains("vision"), "{e}");
    let e = ApiError::from(PipelineError::Decide(DecideError::AllTargetsOpen {
        bucket: BucketId::new("code"),
        targets: vec!["mid-a".into()],
        retry_after: std::time::Duration::from_millis(2500),
    }));
    assert_eq!(e.status().as_u16(), 503);
    assert_eq!(e.into_response().headers()[header::RETRY_AFTER], "3");
}

#[test]
fn internal_details_stay_out_of_the_body() {
    let e = ApiError::Internal("secret path /etc/x".into());
    assert_eq!(e.to_string(), "internal error");
}
