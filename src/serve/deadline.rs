//! Per-request time limits: a body that stops arriving (`--body-read-timeout-ms`, between two
//! chunks of it) and a request not answered in time (`--request-timeout-ms`, from its head
//! to its answer, the body's reading included). The connection-level limits (header, idle,
//! count) are `serve::listen`'s.

use std::time::Duration;

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::error::ApiError;

/// Requests answered 503 `deadline_exceeded`.
pub const DEADLINE_EXCEEDED_TOTAL: &str = "router_deadline_exceeded_total";

#[derive(Debug, Clone, Copy)]
pub struct RequestTimeouts {
    /// Longest wait for the next chunk of a request body (408 `body_timeout`).
    pub body_read: Duration,
    /// Longest a public route takes from its head to its answer (503 `deadline_exceeded`).
    /// Admin routes (a refit, a reload) are exempt: they are few, trusted and may be slow.
    pub request: Duration,
}

impl Default for RequestTimeouts {
    fn default() -> Self {
        Self {
            body_read: Duration::from_secs(10),
            request: Duration::from_secs(30),
        }
    }
}

pub fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// Middleware: answers 503 `deadline_exceeded` when the request is not answered in `limit`.
/// Work already handed to the model finishes under its admission permit, so the CPU stays
/// bounded; only the answer is given up.
pub async fn deadline(State(limit): State<Duration>, request: Request, next: Next) -> Response {
    match tokio::time::timeout(limit, next.run(request)).await {
        Ok(response) => response,
        Err(_) => {
            ::metrics::counter!(DEADLINE_EXCEEDED_TOTAL).increment(1);
            ApiError::DeadlineExceeded { ms: millis(limit) }.into_response()
        }
    }
}
