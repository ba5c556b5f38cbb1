//! The OpenAPI 3.1 document of the HTTP API, generated from the handlers' `#[utoipa::path]`
//! attributes and the wire types' `ToSchema` derives, served at `GET /openapi.json`.

use axum::Json;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{IntoResponses, Modify, OpenApi};

use super::error::ErrorBody;
use super::{admin, admin_uncertain, handlers, stats, status, ui};

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

/// `x-request-id` and `traceparent`: every route takes them (the trace middleware runs on all)
/// and every answer echoes them (`serve::trace`), so they are declared once for each path.
struct TraceHeaders;

impl Modify for TraceHeaders {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::path::{Operation, ParameterBuilder, ParameterIn};
        use utoipa::openapi::{HeaderBuilder, ObjectBuilder, RefOr, Required, Type};
        let string = || ObjectBuilder::new().schema_type(Type::String).build();
        let headers = [
            (
                super::trace::REQUEST_ID_HEADER,
                "The caller's request id (at most 128 visible ASCII characters), written to the \
                 decision log and taken as the decision's `request_id` when the body has none; \
                 without one (or with an invalid one) the server makes one up.",
                "The request id: the caller's, or the one the server made up.",
            ),
            (
                super::trace::TRACEPARENT_HEADER,
                "W3C Trace Context: a valid one makes this request's span a child of the \
                 caller's (exported over OTLP when `--otlp-endpoint` is set).",
                "The same trace with this server's span as the parent id.",
            ),
        ];
        for item in openapi.paths.paths.values_mut() {
            let parameters = item.parameters.get_or_insert_with(Vec::new);
            for (name, request, _) in headers {
                parameters.push(RefOr::T(
                    ParameterBuilder::new()
                        .name(name)
                        .parameter_in(ParameterIn::Header)
                        .required(Required::False)
                        .description(Some(request))
                        .schema(Some(string()))
                        .build(),
                ));
            }
            let operations: [&mut Option<Operation>; 4] = [
                &mut item.get,
                &mut item.post,
                &mut item.put,
                &mut item.delete,
            ];
            for operation in operations.into_iter().flatten() {
                for response in operation.responses.responses.values_mut() {
                    if let RefOr::T(response) = response {
                        for (name, _, answer) in headers {
                            response.headers.insert(
                                name.to_owned(),
                                RefOr::T(
                                    HeaderBuilder::new()
                                        .schema(Some(string()))
                                        .description(Some(answer))
                                        .build(),
                                ),
                            );
                        }
                    }
                }
            }
        }
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
        admin_uncertain::uncertain,
        stats::stats,
        openapi_json,
        ui::page,
        ui::root,
    ),
    components(schemas(ErrorBody)),
    modifiers(&AdminToken, &TraceHeaders),
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
