//! The OpenAPI 3.1 document, generated from the code.
//!
//! Every handler carries a `#[utoipa::path]` annotation (its method, path, parameters, body and
//! the answers particular to it), and `app::api_routes` registers the handlers with
//! `utoipa_axum::routes!`, which builds the axum route and the document's path from the same
//! annotation: a route cannot be served without being documented, or documented at a path it
//! is not served on. The request types derive [`utoipa::ToSchema`].
//!
//! What every route shares is added here once, by [`Conventions`], from the same rules the
//! middleware applies, so annotations state only what is particular to a route:
//!
//! - every answer under `/v1` carries the `RateLimit-*` headers, and any `/v1` route may
//!   answer 429 (rate limit, lockout or anomaly block);
//! - any route may answer 503 (a dependency is down) and 500 (a bug: quote the request id);
//! - a route with a JSON body may answer 400, 413, 415 and 422; one with query parameters 422;
//! - a route with `security` may answer 401, and, when it changes state, accepts the session
//!   cookie only with the `X-CSRF-Token` header (403 without);
//! - every `POST` under `/v1/games` takes the optional `Idempotency-Key` header (422 when it
//!   is malformed or reused with another request) and may answer `Idempotent-Replayed: true`.
//!
//! Served as JSON at `GET /openapi.json`, rendered by a small page at `GET /docs` (its script and
//! style are files served from here, so the strict CSP needs only `'self'`), and printed by
//! `hearth-gateway openapi`.

pub(crate) mod page;
pub(crate) mod schemas;

use std::sync::LazyLock;

use utoipa::Modify;
use utoipa::openapi::header::HeaderBuilder;
use utoipa::openapi::path::{HttpMethod, Operation, ParameterBuilder, ParameterIn};
use utoipa::openapi::response::ResponseBuilder;
use utoipa::openapi::schema::{ObjectBuilder, Type};
use utoipa::openapi::security::{
    ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme,
};
use utoipa::openapi::{Components, ContentBuilder, OpenApi, Ref, RefOr, Required, Response};

/// The media type of error bodies, as the document names it.
const PROBLEM: &str = crate::error::PROBLEM_JSON;

/// The document's fixed parts: title, version, tags and the shared schemas.
#[derive(utoipa::OpenApi)]
#[openapi(
    info(
        title = "Hearth",
        description = "The Hearth game backend: accounts, wallets, provably fair games, \
                       leaderboards, campaigns and AI chat. Errors are RFC 9457 \
                       `application/problem+json`; see `docs/api.md` for the prose.",
        license(name = "Apache-2.0", identifier = "Apache-2.0"),
    ),
    components(schemas(
        crate::error::FieldError,
        schemas::Problem,
    )),
    tags(
        (name = "auth", description = "Accounts, sessions, tokens and second factors"),
        (name = "wallet", description = "The caller's wallet, ledger and stats"),
        (name = "games", description = "Provably fair rounds; every POST takes Idempotency-Key"),
        (name = "fairness", description = "Seeds, commitments and round verification"),
        (name = "leaderboards", description = "Public top-player boards"),
        (name = "campaigns", description = "Tabletop campaigns and their records"),
        (name = "ai", description = "AI chat"),
        (name = "life", description = "The life simulation's read routes (its commands go over the WebSocket)"),
        (name = "pages", description = "The player demo and the operators' console, built into the binary"),
        (name = "admin", description = "Operators only: anyone else gets 404"),
        (name = "realtime", description = "The WebSocket"),
        (name = "operations", description = "Health, metrics and this document"),
    )
)]
pub(crate) struct ApiDoc;

/// The whole document: [`ApiDoc`], the paths `app::api_routes` registers, and
/// [`Conventions`].
pub fn document() -> OpenApi {
    let (_router, mut doc) = crate::app::api_routes().split_for_parts();
    Conventions.modify(&mut doc);
    doc
}

/// The document as pretty JSON, made once.
pub(crate) static JSON: LazyLock<Result<String, String>> =
    LazyLock::new(|| document().to_pretty_json().map_err(|e| e.to_string()));

/// Adds what every route shares (see the module docs); each rule mirrors a middleware or an
/// extractor, named where it is applied.
pub(crate) struct Conventions;

impl Modify for Conventions {
    fn modify(&self, doc: &mut OpenApi) {
        let components = doc.components.get_or_insert_with(Components::new);
        add_components(components);
        for (path, item) in &mut doc.paths.paths {
            let operations = [
                (HttpMethod::Get, item.get.as_mut()),
                (HttpMethod::Put, item.put.as_mut()),
                (HttpMethod::Post, item.post.as_mut()),
                (HttpMethod::Delete, item.delete.as_mut()),
                (HttpMethod::Patch, item.patch.as_mut()),
            ];
            for (method, operation) in operations {
                if let Some(operation) = operation {
                    conventions(path, &method, operation);
                }
            }
        }
        unique_operation_ids(doc);
    }
}

/// Operation ids default to the handler's name, which repeats across modules (`list`, `get`):
/// a repeated one gets the path's fixed segments appended (`list_campaigns_sessions`), so SDK
/// generators see one name per operation.
fn unique_operation_ids(doc: &mut OpenApi) {
    let mut seen = std::collections::BTreeMap::<String, usize>::new();
    for item in doc.paths.paths.values() {
        for operation in [&item.get, &item.put, &item.post, &item.delete, &item.patch]
            .into_iter()
            .flatten()
        {
            if let Some(id) = &operation.operation_id {
                *seen.entry(id.clone()).or_default() += 1;
            }
        }
    }
    for (path, item) in &mut doc.paths.paths {
        let suffix: Vec<&str> = path
            .split('/')
            .filter(|s| !s.is_empty() && *s != "v1" && !s.starts_with('{'))
            .collect();
        for operation in [
            &mut item.get,
            &mut item.put,
            &mut item.post,
            &mut item.delete,
            &mut item.patch,
        ]
        .into_iter()
        .flatten()
        {
            if let Some(id) = &mut operation.operation_id
                && seen.get(id.as_str()).is_some_and(|n| *n > 1)
            {
                *id = format!("{id}_{}", suffix.join("_").replace(['-', '.'], "_"));
            }
        }
    }
}

fn reference(kind: &str, name: &str) -> Ref {
    Ref::new(format!("#/components/{kind}/{name}"))
}

fn problem_response(description: &str) -> RefOr<Response> {
    problem_builder(description).build().into()
}

/// A problem+json answer; under `/v1` it carries the rate-limit headers too.
fn problem_builder(description: &str) -> ResponseBuilder {
    let mut builder = ResponseBuilder::new().description(description).content(
        PROBLEM,
        ContentBuilder::new()
            .schema(Some(Ref::from_schema_name("Problem")))
            .build(),
    );
    for name in ["RateLimit-Limit", "RateLimit-Remaining", "RateLimit-Reset"] {
        builder = builder.header_ref(name, reference("headers", name));
    }
    builder
}

fn integer_header(description: &str) -> utoipa::openapi::header::Header {
    HeaderBuilder::new()
        .schema(Some(
            ObjectBuilder::new()
                .schema_type(Type::Integer)
                .minimum(Some(0)),
        ))
        .description(Some(description))
        .build()
}

/// The shared responses, headers and security schemes.
fn add_components(components: &mut Components) {
    let headers = [
        (
            "RateLimit-Limit",
            "The quota of the rule these numbers describe (the tightest one, or the refusing one).",
        ),
        (
            "RateLimit-Remaining",
            "Requests that rule would still allow right now.",
        ),
        (
            "RateLimit-Reset",
            "Seconds until that rule's whole quota is available again.",
        ),
        ("Retry-After", "Seconds to wait before retrying."),
    ];
    for (name, description) in headers {
        components
            .headers
            .insert(name.to_owned(), integer_header(description).into());
    }
    let responses = [
        (
            "BadRequest",
            "400: malformed JSON, or trailing characters after it.",
        ),
        (
            "Unauthorized",
            "401: missing, malformed, expired, revoked or forged credentials (`WWW-Authenticate: Bearer`).",
        ),
        (
            "Forbidden",
            "403 `urn:hearth:problem:csrf`: a cookie-authenticated request that changes state without `X-CSRF-Token`.",
        ),
        (
            "NotFound",
            "404: no such resource (also for one that belongs to someone else).",
        ),
        (
            "Conflict",
            "409: the request conflicts with the resource's state.",
        ),
        (
            "PayloadTooLarge",
            "413: the body is over the configured limit.",
        ),
        ("UnsupportedMediaType", "415: the body is not sent as JSON."),
        (
            "Validation",
            "422: a field, query parameter or header is invalid; `errors` names each one.",
        ),
        (
            "Internal",
            "500: an unexpected failure; the detail is generic, quote `request_id`.",
        ),
    ];
    for (name, description) in responses {
        components
            .responses
            .insert(name.to_owned(), problem_response(description));
    }
    components.responses.insert(
        "TooManyRequests".to_owned(),
        problem_builder(
            "429: a rate limit (`rule` names it), a login lockout \
             (`urn:hearth:problem:locked`) or an anomaly block refused the request.",
        )
        .header_ref("Retry-After", reference("headers", "Retry-After"))
        .build()
        .into(),
    );
    components.responses.insert(
        "Unavailable".to_owned(),
        problem_builder(
            "503: a dependency (database, Redis, rate limiter) is unavailable, or the request \
             outlived the server's timeout; retry shortly.",
        )
        .header_ref("Retry-After", reference("headers", "Retry-After"))
        .build()
        .into(),
    );
    components.security_schemes.insert(
        "bearer".to_owned(),
        SecurityScheme::Http(
            HttpBuilder::new()
                .scheme(HttpAuthScheme::Bearer)
                .bearer_format("JWT")
                .description(Some(
                    "The access token from `POST /v1/auth/login` (15 minutes; refresh at \
                     `POST /v1/auth/refresh`).",
                ))
                .build(),
        )
        .into(),
    );
    components.security_schemes.insert(
        "cookie".to_owned(),
        SecurityScheme::ApiKey(ApiKey::Cookie(ApiKeyValue::with_description(
            "hearth_access",
            "Browser mode: the `HttpOnly` access cookie set by a login with `cookies: true`.",
        )))
        .into(),
    );
    components.security_schemes.insert(
        "csrf".to_owned(),
        SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(
            "X-CSRF-Token",
            "Browser mode: the session's CSRF token from login, required with the cookie on \
             every request that changes state.",
        )))
        .into(),
    );
}

/// Applies the shared rules to one operation.
fn conventions(path: &str, method: &HttpMethod, operation: &mut Operation) {
    let changes_state = !matches!(method, HttpMethod::Get | HttpMethod::Head);
    fn add(operation: &mut Operation, status: &str, name: &str) {
        operation
            .responses
            .responses
            .entry(status.to_owned())
            .or_insert_with(|| RefOr::Ref(reference("responses", name)));
    }
    if operation.request_body.is_some() {
        add(operation, "400", "BadRequest");
        add(operation, "413", "PayloadTooLarge");
        add(operation, "415", "UnsupportedMediaType");
        add(operation, "422", "Validation");
    }
    let has_query = operation
        .parameters
        .iter()
        .flatten()
        .any(|p| matches!(p, RefOr::T(p) if p.parameter_in == ParameterIn::Query));
    if has_query {
        add(operation, "422", "Validation");
    }
    if operation.security.is_some() {
        add(operation, "401", "Unauthorized");
        if changes_state {
            // `Authenticator::authenticate_request`: a cookie session must show its CSRF token
            // on any request that changes state.
            add(operation, "403", "Forbidden");
            let cookie = SecurityRequirement::new("cookie", Vec::<String>::new());
            for requirement in operation.security.iter_mut().flatten() {
                if *requirement == cookie {
                    *requirement = cookie.clone().add("csrf", Vec::<String>::new());
                }
            }
        }
    }
    // `Edge` turns every error into problem+json, whatever the handler wrote: a 4xx or 5xx an
    // annotation declares gets that body, keeping its own description.
    for (status, response) in operation.responses.responses.iter_mut() {
        if let RefOr::T(response) = response
            && (status.starts_with('4') || status.starts_with('5'))
        {
            response.content.clear();
            response.content.insert(
                PROBLEM.to_owned(),
                ContentBuilder::new()
                    .schema(Some(Ref::from_schema_name("Problem")))
                    .build()
                    .into(),
            );
        }
    }
    let v1 = path.starts_with("/v1/");
    if v1 {
        // `limits::route_table`: every `/v1` path pays the `ip` rule at least.
        add(operation, "429", "TooManyRequests");
    }
    add(operation, "500", "Internal");
    add(operation, "503", "Unavailable");
    if v1 && matches!(method, HttpMethod::Post) && path.starts_with("/v1/games/") {
        // `IdempotencyKey`, taken by every handler that moves coins.
        add(operation, "422", "Validation");
        let parameter = ParameterBuilder::new()
            .name("Idempotency-Key")
            .parameter_in(ParameterIn::Header)
            .required(Required::False)
            .description(Some(
                "A retry with the same key and body replays the stored answer \
                 (`Idempotent-Replayed: true`) instead of playing again; the same key with \
                 another body is a 422. 1 to 255 visible ASCII characters, scoped to the user.",
            ))
            .schema(Some(
                ObjectBuilder::new()
                    .schema_type(Type::String)
                    .min_length(Some(1))
                    .max_length(Some(255))
                    .pattern(Some("^[!-~]+$")),
            ))
            .build();
        operation
            .parameters
            .get_or_insert_with(Vec::new)
            .push(parameter.into());
        if let Some(RefOr::T(ok)) = operation.responses.responses.get_mut("200") {
            ok.headers.insert(
                "Idempotent-Replayed".to_owned(),
                HeaderBuilder::new()
                    .schema(Some(
                        ObjectBuilder::new()
                            .schema_type(Type::String)
                            .enum_values(Some(["true"])),
                    ))
                    .description(Some("`true` on an answer replayed for a repeated key."))
                    .build()
                    .into(),
            );
        }
    }
    if v1 {
        // `Guard` writes the rule's numbers on every `/v1` answer it lets through; a 429 from
        // an anomaly block and a 503 from the limiter carry none, hence optional.
        for response in operation.responses.responses.values_mut() {
            if let RefOr::T(response) = response {
                for name in ["RateLimit-Limit", "RateLimit-Remaining", "RateLimit-Reset"] {
                    response
                        .headers
                        .entry(name.to_owned())
                        .or_insert_with(|| RefOr::Ref(reference("headers", name)));
                }
            }
        }
    }
}
