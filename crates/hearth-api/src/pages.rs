//! The browser pages: `/play`, the player demo, and `/admin`, the operators' console.
//!
//! Every file is compiled into the binary (`include_bytes!` from `crates/hearth-api/assets`),
//! so a gateway needs nothing on disk and no CDN. Each page is one HTML document that loads
//! external ES modules and one stylesheet from under its own path; there is no inline script
//! or style, so the pages run under a strict policy: scripts, styles and images from the
//! gateway only, and requests (`connect-src`) to the gateway only.
//!
//! Both pages talk to the JSON API in browser mode (cookies and CSRF), exactly as any other
//! client: the page for players uses public routes only, the console the admin routes. This
//! module only serves files; it knows nothing about what the scripts do.
//!
//! Caching: every answer carries a weak `ETag` (the first 128 bits of the file's SHA-256;
//! weak because the compression layer may gzip the body)
//! and `Cache-Control: no-cache`, so a browser revalidates each time and gets `304 Not
//! Modified` until a new build changes the file. A deployment therefore never leaves a
//! browser on a stale script, and names need no version.
//!
//! The console's files are hidden (404) from addresses outside `admin.allowed_ips` when that
//! list is set, as the admin routes are.

use std::sync::LazyLock;

use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use sha2::{Digest as _, Sha256};

use crate::error::ApiError;
use crate::limits::ClientIp;
use crate::state::AppState;

/// The policy of an HTML page. It differs from the API's `default-src 'none'` only in what a
/// page needs: its own scripts, stylesheet and icon, and calls to the same origin.
/// `form-action 'none'`: forms are handled by script, never submitted by the browser.
pub(crate) const PAGE_CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
     img-src 'self'; connect-src 'self'; form-action 'none'; base-uri 'none'; \
     frame-ancestors 'none'";

/// Which page a file belongs to: files are served only under their page's path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Page {
    Play,
    Admin,
}

/// One file served to browsers.
struct Asset {
    /// The page it is served under.
    page: Page,
    /// The name after `/play/` or `/admin/`; `""` for the page itself.
    name: &'static str,
    content_type: &'static str,
    body: &'static [u8],
}

const HTML: &str = "text/html; charset=utf-8";
const JS: &str = "text/javascript; charset=utf-8";
const CSS: &str = "text/css; charset=utf-8";
const SVG: &str = "image/svg+xml";

macro_rules! asset {
    ($page:expr, $name:literal, $file:literal, $type:expr) => {
        Asset {
            page: $page,
            name: $name,
            content_type: $type,
            body: include_bytes!(concat!("../assets/", $file)),
        }
    };
}

/// Every file, by page. Shared files (the stylesheet, the API client, the icon) are listed
/// under both pages, so each page stays within its own path.
const ASSETS: &[Asset] = &[
    asset!(Page::Play, "", "play.html", HTML),
    asset!(Page::Play, "play.js", "play.js", JS),
    asset!(Page::Play, "fair.js", "fair.js", JS),
    asset!(Page::Play, "hearth.js", "hearth.js", JS),
    asset!(Page::Play, "hearth.css", "hearth.css", CSS),
    asset!(Page::Play, "icon.svg", "icon.svg", SVG),
    asset!(Page::Admin, "", "admin.html", HTML),
    asset!(Page::Admin, "admin.js", "admin.js", JS),
    asset!(Page::Admin, "chart.js", "chart.js", JS),
    asset!(Page::Admin, "hearth.js", "hearth.js", JS),
    asset!(Page::Admin, "hearth.css", "hearth.css", CSS),
    asset!(Page::Admin, "icon.svg", "icon.svg", SVG),
];

/// Each asset's `ETag`, in the order of [`ASSETS`], computed once.
static ETAGS: LazyLock<Vec<HeaderValue>> = LazyLock::new(|| {
    ASSETS
        .iter()
        .map(|asset| {
            let digest = Sha256::digest(asset.body);
            let hex: String = digest[..16].iter().map(|b| format!("{b:02x}")).collect();
            // Weak: the compression layer may gzip the body, and a strong tag names one
            // byte sequence. Hex digits and quotes are always a valid header value.
            HeaderValue::from_str(&format!("W/\"{hex}\""))
                .unwrap_or(HeaderValue::from_static("W/\"\""))
        })
        .collect()
});

/// `GET /play`: the player demo.
#[utoipa::path(
    get, path = "/play", tag = "pages",
    description = "The player demo page.",
    responses(
        (status = 200, description = "The file, with its ETag.", body = String, content_type = "text/html"),
        (status = 304, description = "Not modified since the ETag sent in `If-None-Match`."),
        (status = 404, description = "No such file."),
    )
)]
pub(crate) async fn play(headers: HeaderMap) -> Response {
    serve(Page::Play, "", &headers)
}

/// `GET /play/{file}`: a file of the player demo.
#[utoipa::path(
    get, path = "/play/{file}", tag = "pages",
    description = "A file of the player demo.",
    params(("file" = String, Path, description = "The file's name.")),
    responses(
        (status = 200, description = "The file, with its ETag.", body = String, content((String = "text/javascript"), (String = "text/css"), (String = "image/svg+xml"), (String = "text/html"))),
        (status = 304, description = "Not modified since the ETag sent in `If-None-Match`."),
        (status = 404, description = "No such file."),
    )
)]
pub(crate) async fn play_file(Path(name): Path<String>, headers: HeaderMap) -> Response {
    serve(Page::Play, &name, &headers)
}

/// `GET /admin`: the operators' console.
#[utoipa::path(
    get, path = "/admin", tag = "pages",
    description = "The operators' console page (hidden off the admin allowlist).",
    responses(
        (status = 200, description = "The file, with its ETag.", body = String, content_type = "text/html"),
        (status = 304, description = "Not modified since the ETag sent in `If-None-Match`."),
        (status = 404, description = "No such file."),
    )
)]
pub(crate) async fn admin(
    State(state): State<AppState>,
    client: Option<axum::Extension<ClientIp>>,
    headers: HeaderMap,
) -> Response {
    if !admin_address(&state, client.as_deref()) {
        return hidden();
    }
    serve(Page::Admin, "", &headers)
}

/// `GET /admin/{file}`: a file of the operators' console.
#[utoipa::path(
    get, path = "/admin/{file}", tag = "pages",
    description = "A file of the operators' console (hidden off the admin allowlist).",
    params(("file" = String, Path, description = "The file's name.")),
    responses(
        (status = 200, description = "The file, with its ETag.", body = String, content((String = "text/javascript"), (String = "text/css"), (String = "image/svg+xml"), (String = "text/html"))),
        (status = 304, description = "Not modified since the ETag sent in `If-None-Match`."),
        (status = 404, description = "No such file."),
    )
)]
pub(crate) async fn admin_file(
    State(state): State<AppState>,
    client: Option<axum::Extension<ClientIp>>,
    Path(name): Path<String>,
    headers: HeaderMap,
) -> Response {
    if !admin_address(&state, client.as_deref()) {
        return hidden();
    }
    serve(Page::Admin, &name, &headers)
}

/// Whether the client may see the console: any address when `admin.allowed_ips` is empty,
/// otherwise only one on the list (the same rule as the admin routes).
fn admin_address(state: &AppState, client: Option<&ClientIp>) -> bool {
    let allowed = &state.settings.admin.allowed_ips;
    allowed.is_empty()
        || client.is_some_and(|client| allowed.iter().any(|cidr| cidr.contains(client.ip)))
}

fn hidden() -> Response {
    ApiError::NotFound("no resource at this path").into_response()
}

/// The file `name` of `page`, or 304 when the browser's copy is current, or 404.
fn serve(page: Page, name: &str, headers: &HeaderMap) -> Response {
    let Some((index, asset)) = ASSETS
        .iter()
        .enumerate()
        .find(|(_, asset)| asset.page == page && asset.name == name)
    else {
        return ApiError::NotFound("no such file").into_response();
    };
    let Some(etag) = ETAGS.get(index).cloned() else {
        return ApiError::NotFound("no such file").into_response();
    };
    let fresh = headers
        .get(header::IF_NONE_MATCH)
        .is_some_and(|given| if_none_match(given.as_bytes(), etag.as_bytes()));
    let mut response = if fresh {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        (
            [(
                header::CONTENT_TYPE,
                HeaderValue::from_static(asset.content_type),
            )],
            asset.body,
        )
            .into_response()
    };
    let response_headers = response.headers_mut();
    response_headers.insert(header::ETAG, etag);
    response_headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    if asset.content_type == HTML {
        // Set here, so the edge layer's API policy (`default-src 'none'`) does not replace it.
        response_headers.insert(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(PAGE_CSP),
        );
    }
    response
}

/// Whether an `If-None-Match` value names `etag`: `*`, or a comma-separated list of tags,
/// weak ones included (RFC 9110 uses the weak comparison for `If-None-Match`).
fn if_none_match(given: &[u8], etag: &[u8]) -> bool {
    let Ok(given) = std::str::from_utf8(given) else {
        return false;
    };
    let Ok(etag) = std::str::from_utf8(etag) else {
        return false;
    };
    let etag = etag.strip_prefix("W/").unwrap_or(etag);
    given
        .split(',')
        .map(str::trim)
        .any(|tag| tag == "*" || tag.strip_prefix("W/").unwrap_or(tag) == etag)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn if_none_match_accepts_the_tag_in_a_list_weak_or_strong_and_the_star() {
        let tag = b"W/\"abc\"";
        assert!(if_none_match(b"\"abc\"", tag));
        assert!(if_none_match(b"\"x\", W/\"abc\"", tag));
        assert!(if_none_match(b"*", tag));
        assert!(!if_none_match(b"\"abd\"", tag));
        assert!(!if_none_match(b"abc", tag));
    }

    #[test]
    fn every_page_has_its_document_and_no_name_is_listed_twice() {
        for page in [Page::Play, Page::Admin] {
            let names: Vec<&str> = ASSETS
                .iter()
                .filter(|a| a.page == page)
                .map(|a| a.name)
                .collect();
            assert!(names.contains(&""), "{page:?} has no document");
            let mut unique = names.clone();
            unique.sort_unstable();
            unique.dedup();
            assert_eq!(unique.len(), names.len(), "{page:?} lists a name twice");
        }
    }

    #[test]
    fn no_document_holds_an_inline_script_or_style() {
        // The policy forbids them; the browser would refuse them silently.
        for asset in ASSETS.iter().filter(|a| a.content_type == HTML) {
            let text = String::from_utf8_lossy(asset.body);
            for (index, _) in text.match_indices("<script") {
                let tag = &text[index..text[index..].find('>').map_or(text.len(), |e| index + e)];
                assert!(
                    tag.contains("src="),
                    "inline script in {:?}: {tag}",
                    asset.page
                );
            }
            assert!(!text.contains("<style"), "inline style in {:?}", asset.page);
            assert!(
                !text.contains("style="),
                "style attribute in {:?}",
                asset.page
            );
            let handler = text.split(" on").skip(1).find(|rest| {
                let name_len = rest.bytes().take_while(u8::is_ascii_lowercase).count();
                name_len > 0 && rest.as_bytes().get(name_len) == Some(&b'=')
            });
            assert!(handler.is_none(), "an inline handler in {:?}", asset.page);
        }
    }
}
