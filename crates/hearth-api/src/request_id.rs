//! The request id: accepted from `x-request-id` when well-formed, otherwise created, echoed on
//! the response, and available to error rendering for the whole request.

use std::sync::Arc;

use axum::extract::Request;
use axum::http::{HeaderName, HeaderValue};

/// The header carrying the request id both ways.
pub static X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

tokio::task_local! {
    static REQUEST_ID: Arc<str>;
}

/// The current request's id, or an empty string outside a request.
pub fn current() -> String {
    REQUEST_ID.try_with(|id| id.to_string()).unwrap_or_default()
}

/// The request id as seen by handlers and spans, stored in request extensions. Shared, not
/// copied, with the scope [`current`] reads.
#[derive(Debug, Clone)]
pub struct RequestId(pub Arc<str>);

impl RequestId {
    /// The id.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Incoming ids are kept only if short and plain, so they are safe in logs and headers.
fn acceptable(value: &HeaderValue) -> Option<&str> {
    let text = value.to_str().ok()?;
    let ok = (1..=128).contains(&text.len())
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(&b));
    ok.then_some(text)
}

/// Settles the request's id: a well-formed incoming `x-request-id` is kept, anything else is
/// replaced by a new UUIDv7. The id goes into the request's extensions ([`RequestId`]); an
/// incoming header that was not kept is removed, so the request's `x-request-id`, when it has
/// one, is the settled id. The id is returned with its header value, for the response.
pub(crate) fn settle(request: &mut Request) -> (Arc<str>, HeaderValue) {
    let incoming = request.headers().get(&X_REQUEST_ID);
    let kept = incoming.and_then(|value| Some((Arc::from(acceptable(value)?), value.clone())));
    let (id, header) = match kept {
        Some(kept) => kept,
        None => {
            if incoming.is_some() {
                request.headers_mut().remove(&X_REQUEST_ID);
            }
            let mut buffer = uuid::Uuid::encode_buffer();
            let text = new_id(&mut buffer);
            #[allow(clippy::expect_used, reason = "a hyphenated UUID is plain ASCII")]
            let header = HeaderValue::from_str(text).expect("request ids are plain ASCII");
            (Arc::from(&*text), header)
        }
    };
    request.extensions_mut().insert(RequestId(Arc::clone(&id)));
    (id, header)
}

/// A UUIDv7: time-ordered, its low 74 bits random. Without a counter shared between threads
/// (`Uuid::now_v7` keeps one, so that ids made in the same millisecond sort in order), which
/// every worker thread would contend for on every request; ids in one millisecond need only
/// be distinct, not ordered. Written into `buffer` (`Uuid::encode_buffer()`), not allocated.
fn new_id(buffer: &mut [u8]) -> &mut str {
    let now = uuid::Timestamp::now(uuid::NoContext);
    uuid::Uuid::new_v7(now).hyphenated().encode_lower(buffer)
}

/// Runs `f` with `id` as the [`current`] request id: around each poll of a request's future.
pub(crate) fn sync_scope<R>(id: Arc<str>, f: impl FnOnce() -> R) -> R {
    REQUEST_ID.sync_scope(id, f)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_ids_are_distinct_time_ordered_uuids() {
        let ids: Vec<String> = (0..1000)
            .map(|_| new_id(&mut uuid::Uuid::encode_buffer()).to_owned())
            .collect();
        let mut unique = ids.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(unique.len(), ids.len());
        for id in &ids {
            let parsed = uuid::Uuid::parse_str(id).unwrap();
            assert_eq!(parsed.get_version_num(), 7, "{id}");
            assert_eq!(id, &parsed.hyphenated().to_string());
        }
        let first = uuid::Uuid::parse_str(&ids[0])
            .unwrap()
            .get_timestamp()
            .unwrap();
        let last = uuid::Uuid::parse_str(&ids[999])
            .unwrap()
            .get_timestamp()
            .unwrap();
        assert!(first.to_unix() <= last.to_unix());
    }
}
