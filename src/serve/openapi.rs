//! The OpenAPI 3.1 document of the HTTP API, generated from the handlers' `#[utoipa::path]`
//! attributes and the wire types' `ToSchema` derives, served at `GET /openapi.json`.

use axum::Json;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{IntoResponses, Modify, OpenApi};

use super::error::ErrorBody;
use super::{admin, handlers, stats, status, ui};

/// The errors every admin endpoint can answer, besides its own.
#[derive(Debug, IntoResponses)]
pub enum AdminErrors {
    /// unauthorized: no `Authorization: Bearer <token>` (`WWW-Authenticate: Bearer`).
    #[response(status = 401)]
    Unauthorized(ErrorBody),
    /// forbidden (the token does not match), admin_disabled (no admin token is set).
    #[response(status = 403)]
    Forbidden(ErrorBody),
    /// not_ready (`Retry-After`).
    #[response(status = 503)]
    NotReady(ErrorBody),
}

/// The admin endpoints' bearer token (`ROUTER_ADMIN_TOKEN` or `--admin-token-file`).
struct AdminToken;

impl Modify for AdminToken {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "admin_token",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
        // The routing endpoints' optional client tokens (`--client-tokens`).
        components.add_security_scheme(
            "client_token",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "semantic-router",
        description = "Embeds a prompt, matches labeled task archetypes, and decides which model should answer. \
            Every error is `{\"error\": {\"code\", \"message\"}}`; `code` is stable (see ErrorDetail)."
    ),
    paths(
        handlers::classify,
        handlers::classify_batch,
        handlers::embed,
        super::feedback::feedback,
        status::health,
        status::target_health,
        status::ready,
        status::info,
        status::metrics,
        admin::add_archetypes,
        admin::list_archetypes,
        admin::delete_archetype,
        admin::reload,
        admin::rebuild,
        admin::fit,
        admin::uncertain,
        stats::stats,
        openapi_json,
        ui::page,
        ui::root,
    ),
    components(schemas(ErrorBody)),
    modifiers(&AdminToken),
    tags(
        (name = "routing", description = "Classify, embed, report outcomes"),
        (name = "operations", description = "Health, readiness, information, metrics, this document, the operators' page"),
        (name = "admin", description = "Archetypes, reload, rebuild, fit, uncertain decisions, decision statistics (admin token)")
    )
)]
pub struct ApiDoc;

/// The document as served.
pub fn document() -> utoipa::openapi::OpenApi {
    ApiDoc::openapi()
}

/// `GET /openapi.json`.
#[utoipa::path(get, path = "/openapi.json", tag = "operations",
    responses((status = 200, description = "This OpenAPI 3.1 document", content_type = "application/json")))]
pub async fn openapi_json() -> Json<utoipa::openapi::OpenApi> {
    Json(document())
}
