//! `/play` and `/admin` over HTTP: the pages and their files with the right types, the page
//! policy (and the API's policy everywhere else), `ETag` revalidation, 404 for unknown files
//! and for one page's files under the other, every file a page references served, and the
//! console hidden from addresses off the admin allowlist.

use reqwest::StatusCode;
use reqwest::header::{CACHE_CONTROL, CONTENT_SECURITY_POLICY, CONTENT_TYPE, ETAG, IF_NONE_MATCH};

use crate::support::{problem, spawn_app, spawn_app_with};

fn header(response: &reqwest::Response, name: reqwest::header::HeaderName) -> String {
    response
        .headers()
        .get(&name)
        .unwrap_or_else(|| panic!("{} has no {name}", response.url()))
        .to_str()
        .unwrap()
        .to_owned()
}

#[tokio::test]
async fn the_pages_come_with_their_policy_and_their_files_with_their_types() {
    let t = hearth_test_support::sqlite_db().await;
    let app = spawn_app(&t).await;

    for page in ["/play", "/admin"] {
        let response = app.get(page, None).await;
        assert_eq!(response.status(), StatusCode::OK, "{page}");
        assert_eq!(header(&response, CONTENT_TYPE), "text/html; charset=utf-8");
        let csp = header(&response, CONTENT_SECURITY_POLICY);
        for directive in [
            "default-src 'none'",
            "script-src 'self'",
            "style-src 'self'",
            "connect-src 'self'",
            "frame-ancestors 'none'",
        ] {
            assert!(csp.contains(directive), "{page}: {csp} lacks {directive}");
        }
        assert!(!csp.contains("unsafe"), "{page}: {csp}");
        assert_eq!(header(&response, CACHE_CONTROL), "no-cache");
        assert_eq!(response.headers()["x-content-type-options"], "nosniff");
        assert_eq!(response.headers()["x-frame-options"], "DENY");
        let html = response.text().await.unwrap();

        // Every file the page names is served under the page's path, with its type.
        let mut referenced = 0;
        for attribute in ["src=\"", "href=\""] {
            for (index, _) in html.match_indices(attribute) {
                let start = index + attribute.len();
                let end = start + html[start..].find('"').unwrap();
                let path = &html[start..end];
                if path.starts_with('#') {
                    continue;
                }
                assert!(path.starts_with(&format!("{page}/")), "{page} names {path}");
                let file = app.get(path, None).await;
                assert_eq!(file.status(), StatusCode::OK, "{path}");
                let expected = match path.rsplit('.').next() {
                    Some("js") => "text/javascript; charset=utf-8",
                    Some("css") => "text/css; charset=utf-8",
                    Some("svg") => "image/svg+xml",
                    other => panic!("{path}: unexpected extension {other:?}"),
                };
                assert_eq!(header(&file, CONTENT_TYPE), expected, "{path}");
                referenced += 1;
            }
        }
        assert!(
            referenced >= 3,
            "{page} names its script, stylesheet and icon"
        );
    }

    // The modules a page's script imports.
    for path in [
        "/play/fair.js",
        "/play/hearth.js",
        "/admin/chart.js",
        "/admin/hearth.js",
    ] {
        let file = app.get(path, None).await;
        assert_eq!(file.status(), StatusCode::OK, "{path}");
        assert_eq!(
            header(&file, CONTENT_TYPE),
            "text/javascript; charset=utf-8"
        );
    }

    // The API keeps its own policy: no page is served from there.
    let api = app.get("/health/live", None).await;
    assert_eq!(
        header(&api, CONTENT_SECURITY_POLICY),
        "default-src 'none'; frame-ancestors 'none'"
    );
    assert_eq!(header(&api, CACHE_CONTROL), "no-store");

    app.stop().await.unwrap();
    t.cleanup().await;
}

#[tokio::test]
async fn a_file_revalidates_with_its_etag_and_unknown_files_are_404() {
    let t = hearth_test_support::sqlite_db().await;
    let app = spawn_app(&t).await;

    let first = app.get("/play/play.js", None).await;
    let etag = header(&first, ETAG);
    assert!(
        etag.starts_with("W/\"") && etag.ends_with('"') && etag.len() == 36,
        "{etag}"
    );
    let body = first.bytes().await.unwrap();
    assert!(!body.is_empty());

    let again = app
        .client
        .get(app.url("/play/play.js"))
        .header(IF_NONE_MATCH, &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), StatusCode::NOT_MODIFIED);
    assert_eq!(header(&again, ETAG), etag);
    assert!(again.bytes().await.unwrap().is_empty());

    let stale = app
        .client
        .get(app.url("/play/play.js"))
        .header(IF_NONE_MATCH, "\"0000\"")
        .send()
        .await
        .unwrap();
    assert_eq!(stale.status(), StatusCode::OK);
    assert_eq!(stale.bytes().await.unwrap(), body);

    // Files differ, and so do their tags; a shared file has one tag under both pages.
    let other = header(&app.get("/play/fair.js", None).await, ETAG);
    assert_ne!(other, etag);
    assert_eq!(
        header(&app.get("/play/hearth.js", None).await, ETAG),
        header(&app.get("/admin/hearth.js", None).await, ETAG)
    );

    for path in [
        "/play/nope.js",
        "/play/admin.js",
        "/admin/play.js",
        "/admin/fair.js",
        "/play/play.html",
        "/play/",
        "/admin/%2e%2e%2fCargo.toml",
    ] {
        let body = problem(app.get(path, None).await, StatusCode::NOT_FOUND).await;
        assert_eq!(body["type"], "urn:hearth:problem:not-found", "{path}");
    }

    app.stop().await.unwrap();
    t.cleanup().await;
}

#[tokio::test]
async fn the_console_is_hidden_from_addresses_off_the_admin_allowlist() {
    let t = hearth_test_support::sqlite_db().await;
    let app = spawn_app_with(&t, |s| {
        s.admin.allowed_ips = vec!["10.0.0.0/8".parse().unwrap()];
    })
    .await;
    for path in ["/admin", "/admin/admin.js", "/admin/hearth.css"] {
        problem(app.get(path, None).await, StatusCode::NOT_FOUND).await;
    }
    // The player's page is for everyone.
    assert_eq!(app.get("/play", None).await.status(), StatusCode::OK);
    app.stop().await.unwrap();
    t.cleanup().await;

    let t = hearth_test_support::sqlite_db().await;
    let app = spawn_app_with(&t, |s| {
        s.admin.allowed_ips = vec!["127.0.0.0/8".parse().unwrap()];
    })
    .await;
    assert_eq!(app.get("/admin", None).await.status(), StatusCode::OK);
    assert_eq!(
        app.get("/admin/admin.js", None).await.status(),
        StatusCode::OK
    );
    app.stop().await.unwrap();
    t.cleanup().await;
}
