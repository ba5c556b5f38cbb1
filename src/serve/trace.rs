//! Request identity for traces and logs: `x-request-id` and W3C `traceparent` taken from the
//! request (or made up when absent or malformed), kept as a request extension for handlers
//! (the decision log), echoed on the response, and carried by one `request` span per request
//! (the stage spans of `pipeline` nest under it). With the `otlp` feature the span joins the
//! caller's trace and is exported (`serve::otlp`).

use axum::extract::{MatchedPath, Request};
use axum::http::{HeaderMap, HeaderValue};
use axum::middleware::Next;
use axum::response::Response;
use tracing::Instrument;

pub const REQUEST_ID_HEADER: &str = "x-request-id";
pub const TRACEPARENT_HEADER: &str = "traceparent";
/// Longest `x-request-id` kept; longer ones are replaced (a header is not a place to store data).
pub const MAX_REQUEST_ID_CHARS: usize = 128;

/// Who this request is, for the decision log and the response headers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestTrace {
    /// The caller's `x-request-id`, or a new ULID.
    pub request_id: String,
    /// Whether the caller sent `request_id` (a made-up one is not written as the decision's).
    pub request_id_given: bool,
    /// 32 lowercase hex digits: the caller's trace, or a new one.
    pub trace_id: String,
    /// 16 lowercase hex digits: this server's span, the parent of whatever the caller does next.
    pub span_id: String,
    /// The caller's span, when it sent a valid `traceparent`.
    pub parent_id: Option<String>,
    /// Trace flags (`01`: sampled).
    pub flags: String,
}

impl RequestTrace {
    pub fn from_headers(headers: &HeaderMap) -> Self {
        let given_id = headers
            .get(REQUEST_ID_HEADER)
            .and_then(|v| v.to_str().ok())
            .filter(|id| valid_request_id(id));
        let parent = headers
            .get(TRACEPARENT_HEADER)
            .and_then(|v| v.to_str().ok())
            .and_then(parse_traceparent);
        let (trace_id, parent_id, flags) = match parent {
            Some(p) => (p.trace_id, Some(p.parent_id), p.flags),
            None => (hex_id::<16>(), None, "01".to_owned()),
        };
        Self {
            request_id: given_id.map_or_else(|| ulid::Ulid::new().to_string(), str::to_owned),
            request_id_given: given_id.is_some(),
            trace_id,
            span_id: hex_id::<8>(),
            parent_id,
            flags,
        }
    }

    /// The `traceparent` this server answers with: the same trace, its own span.
    pub fn traceparent(&self) -> String {
        format!("00-{}-{}-{}", self.trace_id, self.span_id, self.flags)
    }
}

/// Visible ASCII only (no spaces or control characters), 1 to [`MAX_REQUEST_ID_CHARS`].
fn valid_request_id(id: &str) -> bool {
    (1..=MAX_REQUEST_ID_CHARS).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_graphic())
}

#[derive(Debug, PartialEq, Eq)]
struct Traceparent {
    trace_id: String,
    parent_id: String,
    flags: String,
}

/// `version-traceid-parentid-flags` (W3C Trace Context, level 1). A future version may append
/// fields after the flags; version `ff` and all-zero ids are invalid.
fn parse_traceparent(value: &str) -> Option<Traceparent> {
    let value = value.trim();
    let mut parts = value.split('-');
    let (version, trace_id, parent_id, flags) =
        (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
    let hex = |s: &str, len: usize| {
        s.len() == len
            && s.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    };
    let valid = hex(version, 2)
        && version != "ff"
        && (version != "00" || parts.next().is_none())
        && hex(trace_id, 32)
        && trace_id.bytes().any(|b| b != b'0')
        && hex(parent_id, 16)
        && parent_id.bytes().any(|b| b != b'0')
        && hex(flags, 2);
    valid.then(|| Traceparent {
        trace_id: trace_id.to_owned(),
        parent_id: parent_id.to_owned(),
        flags: flags.to_owned(),
    })
}

/// `N` random bytes as lowercase hex, never all zero (an invalid id in W3C Trace Context).
fn hex_id<const N: usize>() -> String {
    loop {
        let bytes: [u8; N] = rand::random();
        if bytes.iter().any(|&b| b != 0) {
            return hex::encode(bytes);
        }
    }
}

/// Middleware: identifies the request, runs it inside its `request` span and echoes the ids.
pub async fn trace_request(mut request: Request, next: Next) -> Response {
    #[cfg_attr(
        not(feature = "otlp"),
        expect(unused_mut, reason = "only otlp changes the ids")
    )]
    let mut trace = RequestTrace::from_headers(request.headers());
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or("unmatched", MatchedPath::as_str)
        .to_owned();
    let span = tracing::info_span!(
        "request",
        method = %request.method(),
        route = %route,
        request_id = %trace.request_id,
        trace_id = tracing::field::Empty,
        span_id = tracing::field::Empty,
        status = tracing::field::Empty,
    );
    #[cfg(feature = "otlp")]
    super::otlp::join_caller_trace(&span, &mut trace);
    span.record("trace_id", trace.trace_id.as_str());
    span.record("span_id", trace.span_id.as_str());
    request.extensions_mut().insert(trace.clone());
    let mut response = next.run(request).instrument(span.clone()).await;
    span.record("status", response.status().as_u16());
    let headers = response.headers_mut();
    for (name, value) in [
        (REQUEST_ID_HEADER, trace.request_id.clone()),
        (TRACEPARENT_HEADER, trace.traceparent()),
    ] {
        // Both are validated or generated ASCII, so they always make header values.
        if let Ok(value) = HeaderValue::from_str(&value) {
            headers.insert(name, value);
        }
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn traceparent_follows_w3c() {
        let ok =
            parse_traceparent("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01").unwrap();
        assert_eq!(ok.trace_id, "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(
            (ok.parent_id.as_str(), ok.flags.as_str()),
            ("00f067aa0ba902b7", "01")
        );
        // A future version may carry more fields; version 00 may not.
        assert!(
            parse_traceparent("01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-x")
                .is_some()
        );
        for bad in [
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-x",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01",
            "",
        ] {
            assert!(parse_traceparent(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn ids_are_taken_or_made() {
        let mut headers = HeaderMap::new();
        headers.insert(REQUEST_ID_HEADER, HeaderValue::from_static("r-42"));
        headers.insert(
            TRACEPARENT_HEADER,
            HeaderValue::from_static("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"),
        );
        let t = RequestTrace::from_headers(&headers);
        assert_eq!((t.request_id.as_str(), t.request_id_given), ("r-42", true));
        assert_eq!(t.parent_id.as_deref(), Some("00f067aa0ba902b7"));
        let answered = parse_traceparent(&t.traceparent()).unwrap();
        assert_eq!(answered.trace_id, "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_ne!(
            answered.parent_id, "00f067aa0ba902b7",
            "the server's own span"
        );

        headers.insert(REQUEST_ID_HEADER, HeaderValue::from_static("has space"));
        headers.insert(TRACEPARENT_HEADER, HeaderValue::from_static("garbage"));
        let made = RequestTrace::from_headers(&headers);
        assert!(
            !made.request_id_given && made.request_id.len() == 26,
            "a ULID"
        );
        assert!(made.parent_id.is_none() && parse_traceparent(&made.traceparent()).is_some());
        assert!(!valid_request_id(&"x".repeat(MAX_REQUEST_ID_CHARS + 1)));
    }
}
