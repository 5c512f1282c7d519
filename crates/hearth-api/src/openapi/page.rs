//! `GET /openapi.json` and the page at `GET /docs` that renders it.
//!
//! The page is three small files compiled into the binary: HTML, a script and a style sheet,
//! with no CDN and no inline script, so its own CSP allows only `'self'`.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::error::ApiError;

const HTML: &str = include_str!("assets/docs.html");
const SCRIPT: &str = include_str!("assets/docs.js");
const STYLE: &str = include_str!("assets/docs.css");

/// The page may load its script, style and the document from this origin, nothing else.
const PAGE_CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
                        connect-src 'self'; img-src 'self' data:; base-uri 'none'; \
                        form-action 'none'; frame-ancestors 'none'";

fn asset(content_type: &'static str, body: &'static str) -> Response {
    let mut response = (StatusCode::OK, body).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(PAGE_CSP),
    );
    response
}

/// `GET /openapi.json`: the OpenAPI 3.1 document.
#[utoipa::path(
    get, path = "/openapi.json", tag = "operations",
    responses((status = 200, description = "This document (OpenAPI 3.1).", body = Object))
)]
pub(crate) async fn document() -> Result<Response, ApiError> {
    match &*super::JSON {
        Ok(json) => {
            let mut response = (StatusCode::OK, json.clone()).into_response();
            response.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
            Ok(response)
        }
        Err(error) => Err(ApiError::internal(anyhow::anyhow!(
            "serialising the OpenAPI document: {error}"
        ))),
    }
}

/// `GET /docs`: a browsable rendering of the document.
#[utoipa::path(
    get, path = "/docs", tag = "operations",
    responses((status = 200, description = "The API reference page.", content_type = "text/html", body = String))
)]
pub(crate) async fn page() -> Response {
    asset("text/html; charset=utf-8", HTML)
}

/// `GET /docs/docs.js`: the page's script.
#[utoipa::path(
    get, path = "/docs/docs.js", tag = "operations",
    responses((status = 200, description = "The reference page's script.", content_type = "text/javascript", body = String))
)]
pub(crate) async fn script() -> Response {
    asset("text/javascript; charset=utf-8", SCRIPT)
}

/// `GET /docs/docs.css`: the page's style sheet.
#[utoipa::path(
    get, path = "/docs/docs.css", tag = "operations",
    responses((status = 200, description = "The reference page's style sheet.", content_type = "text/css", body = String))
)]
pub(crate) async fn style() -> Response {
    asset("text/css; charset=utf-8", STYLE)
}
