//! The operators' page (`GET /ui`, and `GET /`): one self-contained HTML file (HTML, CSS and
//! vanilla JS, no build step, no external assets) compiled into the binary. It polls the
//! router's own endpoints (`/ready`, `/info`, `/health/targets`, and with the admin token
//! typed into it `/admin/stats` and `/admin/uncertain`) and labels uncertain decisions through
//! `POST /archetypes`. It holds no state on the server side.

use axum::http::header;
use axum::response::IntoResponse;

/// The page, as shipped.
pub const PAGE: &str = include_str!("ui.html");

/// Only this origin's endpoints and the page's own inline script and style: a prompt shown on
/// the page can never load or send anything elsewhere.
const CSP: &str = "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; \
    connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

fn serve_page() -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CONTENT_SECURITY_POLICY, CSP),
            (header::CACHE_CONTROL, "no-cache"),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
        PAGE,
    )
}

/// `GET /ui`: the operators' page.
#[utoipa::path(get, path = "/ui", tag = "operations",
    responses((status = 200, description = "The operators' page (self-contained HTML)", body = String, content_type = "text/html")))]
pub async fn page() -> impl IntoResponse {
    serve_page()
}

/// `GET /`: the same page, so a browser pointed at the service finds it.
#[utoipa::path(get, path = "/", tag = "operations",
    responses((status = 200, description = "The operators' page (same as /ui)", body = String, content_type = "text/html")))]
pub async fn root() -> impl IntoResponse {
    serve_page()
}

#[cfg(test)]
mod tests {
    use super::PAGE;

    #[test]
    fn the_page_is_self_contained() {
        assert!(PAGE.starts_with("<!doctype html>"));
        for external in ["http://", "https://", "src=\"//", "<link"] {
            assert!(!PAGE.contains(external), "the page refers to {external}");
        }
        // Untrusted text (prompts) must never be parsed as HTML.
        assert!(!PAGE.contains("innerHTML"));
        for endpoint in [
            "/admin/stats",
            "/admin/uncertain",
            "/archetypes",
            "/health/targets",
            "/ready",
            "/info",
        ] {
            assert!(PAGE.contains(endpoint), "the page does not use {endpoint}");
        }
    }
}
