//! Who may call the routing endpoints, and how often they may report outcomes.
//!
//! Client tokens (`--client-tokens FILE`: sha256 hex digests, one a line) guard `/classify`,
//! `/classify/batch`, `/embed` and `/feedback`; without the flag those stay open, as before.
//! The file holds digests, not tokens, so a leaked file grants nothing; offered tokens are
//! hashed and compared in constant time against every digest. `/feedback` is also rate
//! limited per caller (token bucket per client token, else per peer address), so even a caller
//! holding real decisions cannot flood a breaker.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use axum::extract::{ConnectInfo, Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::error::ApiError;
use super::AppState;

#[derive(Debug, thiserror::Error)]
pub enum CallerError {
    /// The operator's: the file named by the flag cannot be read.
    #[error("reading {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    /// The operator's: a line is not a sha256 hex digest.
    #[error("{path}:{line}: expected a sha256 hex digest (64 hex digits) of a client token; make one with `printf %s TOKEN | sha256sum`")]
    BadDigest { path: PathBuf, line: usize },
    /// The operator's: a file with no digest would lock every caller out.
    #[error("{path}: no token digest in the file")]
    Empty { path: PathBuf },
}

/// The accepted client tokens, as digests.
#[derive(Clone)]
pub struct ClientTokens {
    digests: Arc<[[u8; 32]]>,
}

impl std::fmt::Debug for ClientTokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ClientTokens({} digests)", self.digests.len())
    }
}

/// Which caller a request came from: a client token's digest prefix, or its peer address.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CallerId(pub String);

impl ClientTokens {
    /// Reads digests, one a line; blank lines and `#` comments are skipped.
    pub fn load(path: &Path) -> Result<Self, CallerError> {
        let text = std::fs::read_to_string(path).map_err(|source| CallerError::Read {
            path: path.to_owned(),
            source,
        })?;
        Self::parse(&text).map_err(|e| match e {
            Some(line) => CallerError::BadDigest {
                path: path.to_owned(),
                line,
            },
            None => CallerError::Empty {
                path: path.to_owned(),
            },
        })
    }

    /// The digests of `text`; `Err(Some(line))` names a bad line, `Err(None)` an empty file.
    fn parse(text: &str) -> Result<Self, Option<usize>> {
        let mut digests = Vec::new();
        for (i, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let mut digest = [0u8; 32];
            hex::decode_to_slice(line, &mut digest).map_err(|_| Some(i + 1))?;
            digests.push(digest);
        }
        if digests.is_empty() {
            return Err(None);
        }
        Ok(Self {
            digests: digests.into(),
        })
    }

    /// Tokens as they are (tests, embedding): each is hashed.
    pub fn from_tokens<'a>(tokens: impl IntoIterator<Item = &'a str>) -> Self {
        Self {
            digests: tokens
                .into_iter()
                .map(|t| Sha256::digest(t.as_bytes()).into())
                .collect(),
        }
    }

    /// The caller holding `offered`, if it is one of the tokens. Every digest is compared, so
    /// the time taken says nothing about which one matched or how close a guess was.
    fn identify(&self, offered: &str) -> Option<CallerId> {
        let offered: [u8; 32] = Sha256::digest(offered.as_bytes()).into();
        let mut found = None;
        for digest in self.digests.iter() {
            if bool::from(digest.ct_eq(&offered)) {
                found = Some(CallerId(format!("token:{}", hex::encode(&digest[..6]))));
            }
        }
        found
    }
}

/// Middleware of the routing endpoints: with client tokens set, lets a request through only
/// with `Authorization: Bearer <client token>`; records who called, for the rate limit.
pub async fn require_client(
    State(state): State<AppState>,
    mut request: Request,
    next: Next,
) -> Response {
    let caller = match &state.client_tokens {
        None => peer_caller(&request),
        Some(tokens) => {
            let offered = request
                .headers()
                .get(header::AUTHORIZATION)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.strip_prefix("Bearer "));
            match offered.map(|t| tokens.identify(t.trim())) {
                Some(Some(caller)) => caller,
                Some(None) => return ApiError::UnknownClientToken.into_response(),
                None => return ApiError::Unauthorized.into_response(),
            }
        }
    };
    request.extensions_mut().insert(caller);
    next.run(request).await
}

fn peer_caller(request: &Request) -> CallerId {
    let peer = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map_or_else(|| "unknown".to_owned(), |c| c.0.ip().to_string());
    CallerId(format!("peer:{peer}"))
}

/// Token buckets per caller: `rate` reports a second, `burst` at once.
#[derive(Debug, Clone)]
pub struct RateLimiter {
    rate: f64,
    burst: f64,
    buckets: Arc<Mutex<HashMap<CallerId, (f64, Instant)>>>,
}

/// `--feedback-rate` default: reports a second per caller, far above one caller's real failures.
pub const DEFAULT_FEEDBACK_RATE: f64 = 20.0;
/// `--feedback-burst` default.
pub const DEFAULT_FEEDBACK_BURST: u32 = 40;

/// Callers remembered at most; past it, full buckets (idle callers) are forgotten.
const MAX_CALLERS: usize = 10_000;

impl RateLimiter {
    pub fn new(rate_per_s: f64, burst: u32) -> Self {
        Self {
            rate: rate_per_s.max(0.0),
            burst: f64::from(burst.max(1)),
            buckets: Arc::new(Mutex::new(HashMap::new())),
        }
    }

    /// Takes one report from `caller`'s bucket; `Err(seconds)` until one is back.
    pub fn take(&self, caller: &CallerId, now: Instant) -> Result<(), u64> {
        let mut buckets = self
            .buckets
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if buckets.len() >= MAX_CALLERS && !buckets.contains_key(caller) {
            let (rate, burst) = (self.rate, self.burst);
            buckets.retain(|_, (tokens, at)| {
                *tokens + rate * now.saturating_duration_since(*at).as_secs_f64() < burst
            });
        }
        let (tokens, at) = buckets.entry(caller.clone()).or_insert((self.burst, now));
        *tokens = (*tokens + self.rate * now.saturating_duration_since(*at).as_secs_f64())
            .min(self.burst);
        *at = now;
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            Ok(())
        } else if self.rate > 0.0 {
            Err(((1.0 - *tokens) / self.rate).ceil().max(1.0) as u64)
        } else {
            Err(60)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn digests_file_is_strict_and_matches_only_its_tokens() {
        let digest = hex::encode(Sha256::digest(b"client-a"));
        let tokens = ClientTokens::parse(&format!("# fleet a\n\n{digest}\n")).unwrap();
        assert!(tokens.identify("client-a").is_some());
        assert!(tokens.identify("client-b").is_none());
        assert_eq!(ClientTokens::parse("nothex\n").unwrap_err(), Some(1));
        assert_eq!(ClientTokens::parse("# only a comment\n").unwrap_err(), None);
    }

    #[test]
    fn buckets_refill_at_the_rate_and_are_per_caller() {
        let limiter = RateLimiter::new(2.0, 3);
        let (a, b) = (CallerId("a".into()), CallerId("b".into()));
        let t0 = Instant::now();
        for _ in 0..3 {
            assert!(limiter.take(&a, t0).is_ok());
        }
        assert_eq!(limiter.take(&a, t0), Err(1));
        assert!(
            limiter.take(&b, t0).is_ok(),
            "another caller has its own bucket"
        );
        assert!(limiter.take(&a, t0 + Duration::from_millis(600)).is_ok());
    }
}
