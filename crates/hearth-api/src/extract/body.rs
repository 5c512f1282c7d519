//! Body and query extractors whose rejections speak the one problem+json format and name the
//! field.

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::header::CONTENT_TYPE;
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode};
use serde::de::DeserializeOwned;

use crate::error::{ApiError, FieldError};

/// A JSON body. Refuses a non-JSON content type (415), an oversized body (413), malformed JSON
/// (400, with line and column) and a body of the wrong shape (422, naming the field).
#[derive(Debug, Clone, Copy, Default)]
pub struct ApiJson<T>(pub T);

fn is_json(headers: &HeaderMap) -> bool {
    let Some(value) = headers.get(CONTENT_TYPE).and_then(|v| v.to_str().ok()) else {
        return false;
    };
    let essence = value
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    essence == "application/json"
        || (essence.starts_with("application/") && essence.ends_with("+json"))
}

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        if !is_json(request.headers()) {
            return Err(ApiError::UnsupportedMediaType);
        }
        let bytes = Bytes::from_request(request, state)
            .await
            .map_err(|rejection| {
                if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                    ApiError::PayloadTooLarge
                } else {
                    ApiError::BadRequest("the request body could not be read".into())
                }
            })?;
        parse_json(&bytes).map(ApiJson)
    }
}

/// Parses JSON, mapping serde's errors to field-naming API errors.
///
/// Every Hearth request body is an object; serde would also accept an array for a struct, so
/// anything else is refused up front.
pub(crate) fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let first = bytes.iter().find(|b| !b.is_ascii_whitespace());
    if first.is_some_and(|b| *b != b'{') {
        return Err(ApiError::Validation(
            vec![FieldError::new("", "the body must be a JSON object")],
            Default::default(),
        ));
    }
    let mut deserializer = serde_json::Deserializer::from_slice(bytes);
    let value = serde_path_to_error::deserialize(&mut deserializer).map_err(|error| {
        let path = error.path().to_string();
        let inner = error.into_inner();
        if inner.is_syntax() || inner.is_eof() || inner.is_io() {
            return ApiError::BadRequest(format!(
                "malformed JSON at line {} column {}",
                inner.line(),
                inner.column()
            ));
        }
        let (field, message) = field_and_message(&path, &strip_position(&inner.to_string()));
        ApiError::Validation(vec![FieldError::new(field, message)], Default::default())
    })?;
    deserializer
        .end()
        .map_err(|_| ApiError::BadRequest("trailing characters after the JSON value".into()))?;
    Ok(value)
}

/// serde_json appends " at line L column C"; the field path says more.
fn strip_position(message: &str) -> String {
    match message.rfind(" at line ") {
        Some(index) => message[..index].to_owned(),
        None => message.to_owned(),
    }
}

/// For "unknown field `x`" and "missing field `x`", serde reports the enclosing object's path;
/// the field itself is the useful name.
fn field_and_message(path: &str, message: &str) -> (String, String) {
    let named = ["unknown field `", "missing field `"]
        .iter()
        .find_map(|prefix| message.strip_prefix(prefix))
        .and_then(|rest| rest.split('`').next());
    match named {
        Some(name) => {
            // For an unknown field the path already ends at it; for a missing one it stops at
            // the enclosing object.
            let field = if path == "." || path.is_empty() {
                name.to_owned()
            } else if path == name || path.ends_with(&format!(".{name}")) {
                path.to_owned()
            } else {
                format!("{path}.{name}")
            };
            let message = if message.starts_with("unknown") {
                "is not a known field".to_owned()
            } else {
                "is required".to_owned()
            };
            (field, message)
        }
        None => {
            let field = if path == "." {
                String::new()
            } else {
                path.to_owned()
            };
            (field, message.to_owned())
        }
    }
}

/// Query parameters, refused with 422 naming the parameter.
#[derive(Debug, Clone, Copy, Default)]
pub struct ApiQuery<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let query = parts.uri.query().unwrap_or("");
        let deserializer =
            serde_urlencoded::Deserializer::new(form_urlencoded::parse(query.as_bytes()));
        serde_path_to_error::deserialize(deserializer)
            .map(ApiQuery)
            .map_err(|error| {
                let path = error.path().to_string();
                let (field, message) = field_and_message(&path, &error.into_inner().to_string());
                ApiError::Validation(vec![FieldError::new(field, message)], Default::default())
            })
    }
}

/// A JSON body that may be absent: an empty body is `None`; anything else is read as
/// [`ApiJson`] would.
#[derive(Debug, Clone, Default)]
pub struct OptionalJson<T>(pub Option<T>);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for OptionalJson<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        let has_body = request
            .headers()
            .get(axum::http::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .is_none_or(|v| v.trim() != "0");
        if !has_body || !request.headers().contains_key(CONTENT_TYPE) {
            let bytes = Bytes::from_request(request, state)
                .await
                .map_err(|_| ApiError::BadRequest("the request body could not be read".into()))?;
            if bytes.iter().all(u8::is_ascii_whitespace) {
                return Ok(Self(None));
            }
            return Err(ApiError::UnsupportedMediaType);
        }
        ApiJson::from_request(request, state)
            .await
            .map(|ApiJson(value)| Self(Some(value)))
    }
}

#[cfg(test)]
mod tests {
    use serde::Deserialize;

    use super::*;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Body {
        bet: i64,
        inner: Option<Inner>,
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Inner {
        amount: u32,
    }

    fn error_of(json: &str) -> (StatusCode, Vec<FieldError>) {
        match parse_json::<Body>(json.as_bytes()).unwrap_err() {
            ApiError::Validation(errors, _) => (StatusCode::UNPROCESSABLE_ENTITY, errors),
            ApiError::BadRequest(_) => (StatusCode::BAD_REQUEST, vec![]),
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn only_objects_are_accepted() {
        assert_eq!(error_of("[1]").0, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(error_of("1").0, StatusCode::UNPROCESSABLE_ENTITY);
        assert!(parse_json::<Body>(br#" {"bet": 1}"#).is_ok());
    }

    #[test]
    fn malformed_json_is_a_400() {
        assert_eq!(error_of("{\"bet\": ").0, StatusCode::BAD_REQUEST);
        assert_eq!(error_of("{\"bet\": 1} x").0, StatusCode::BAD_REQUEST);
    }

    #[test]
    fn the_offending_field_is_named() {
        let (_, errors) = error_of(r#"{"bet": "ten"}"#);
        assert_eq!(errors[0].field, "bet");
        assert!(
            errors[0].message.contains("invalid type"),
            "{}",
            errors[0].message
        );

        let (_, errors) = error_of(r#"{"bet": 1, "bonus": true}"#);
        assert_eq!(errors[0], FieldError::new("bonus", "is not a known field"));

        let (_, errors) = error_of(r#"{}"#);
        assert_eq!(errors[0], FieldError::new("bet", "is required"));

        let (_, errors) = error_of(r#"{"bet": 1, "inner": {"amount": -1}}"#);
        assert_eq!(errors[0].field, "inner.amount");
    }
}
