//! Bearer-token protection for write and admin endpoints.
//!
//! The token comes from `ROUTER_ADMIN_TOKEN` or a file (`--admin-token-file`). Without one the
//! protected endpoints are off and say how to turn them on. Tokens are compared as sha256
//! digests in constant time, so neither content nor length leaks through timing.

use axum::extract::{Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::caller::Caller;
use super::error::ApiError;
use super::AppState;

/// The configured admin token, kept only as its digest.
#[derive(Clone)]
pub struct AdminToken {
    digest: [u8; 32],
}

impl std::fmt::Debug for AdminToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AdminToken(<redacted>)")
    }
}

impl AdminToken {
    /// `None` for an empty token: an empty secret would protect nothing.
    pub fn new(token: &str) -> Option<Self> {
        let token = token.trim();
        (!token.is_empty()).then(|| Self {
            digest: Sha256::digest(token.as_bytes()).into(),
        })
    }

    fn matches(&self, offered: &str) -> bool {
        let offered: [u8; 32] = Sha256::digest(offered.as_bytes()).into();
        self.digest.ct_eq(&offered).into()
    }
}

/// Middleware: lets the request through only with `Authorization: Bearer <token>`, the admin
/// token or a tenant's (which acts on its own namespace only), and tells the handler which.
pub async fn require_admin(
    State(state): State<AppState>,
    mut request: Request,
    next: Next,
) -> Response {
    let offered = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    let tenant = offered.and_then(|o| {
        let core = state.core().ok()?;
        core.tenants.token_owner(o).map(str::to_owned)
    });
    let caller = match (&state.admin_token, offered) {
        (Some(token), Some(o)) if token.matches(o) => Caller::Admin,
        _ if tenant.is_some() => Caller::Tenant(tenant.unwrap_or_default()),
        (None, _) => return ApiError::AdminDisabled.into_response(),
        (Some(_), Some(_)) => return ApiError::Forbidden.into_response(),
        (Some(_), None) => return ApiError::Unauthorized.into_response(),
    };
    request.extensions_mut().insert(caller);
    next.run(request).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_only_the_exact_token() {
        let t = AdminToken::new("s3cret").unwrap();
        assert!(t.matches("s3cret"));
        assert!(!t.matches("s3cre"));
        assert!(!t.matches("s3cret "));
        assert!(AdminToken::new("  ").is_none());
        assert_eq!(format!("{t:?}"), "AdminToken(<redacted>)");
    }
}
