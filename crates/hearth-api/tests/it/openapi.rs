//! The OpenAPI document against the router that serves it: every documented operation is
//! served, every path the router knows is documented with exactly the methods it serves, the
//! document holds together as OpenAPI 3.1, and `/openapi.json` and `/docs` serve it.
//!
//! The served set comes from the router: `app::api_routes` registers every route through
//! `utoipa_axum::routes!`, which takes each path and method from the handler's annotation, and
//! [`the_router_is_built_only_through_documented_routes`] keeps any other way out of `app.rs`.
//! The probes then check the result over real HTTP, so a path template axum would read
//! differently from the document fails here too.

use std::collections::{BTreeMap, BTreeSet};

use hearth_test_support::sqlite_db;
use reqwest::{Method, StatusCode};
use serde_json::Value;

use crate::support::spawn_app;

const METHODS: [&str; 5] = ["get", "put", "post", "delete", "patch"];

fn document() -> Value {
    serde_json::to_value(hearth_api::openapi::document()).unwrap()
}

/// Documented operations: path → methods.
fn operations(doc: &Value) -> BTreeMap<String, BTreeSet<&'static str>> {
    doc["paths"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(path, item)| {
            let methods = METHODS
                .into_iter()
                .filter(|m| item.get(*m).is_some())
                .collect();
            (path.clone(), methods)
        })
        .collect()
}

/// A concrete path for a template: every `{param}` becomes a value the route parses (so the
/// probe reaches the handler, not a 404 from a malformed id), yet names nothing that exists.
fn concrete(template: &str) -> String {
    template
        .split('/')
        .map(|segment| {
            if segment.starts_with('{') {
                if template.starts_with("/v1/leaderboards/") {
                    "balance"
                } else {
                    "01890000-0000-7000-8000-000000000000"
                }
            } else {
                segment
            }
        })
        .collect::<Vec<_>>()
        .join("/")
}

/// Whether an answer came from the router's fallback (no route) rather than a handler.
async fn from_fallback(response: reqwest::Response) -> bool {
    if response.status() != StatusCode::NOT_FOUND {
        return false;
    }
    let body: Value = response.json().await.unwrap_or(Value::Null);
    body["detail"] == "no resource at this path"
}

#[tokio::test]
async fn every_documented_operation_is_served_and_every_other_method_is_refused() {
    let t = sqlite_db().await;
    let app = spawn_app(&t).await;
    let doc = document();
    let operations = operations(&doc);
    assert!(operations.len() > 40, "{} paths", operations.len());
    for (template, methods) in &operations {
        let path = concrete(template);
        for method in METHODS {
            let verb = Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
            let response = app.request(verb, &path, None).send().await.unwrap();
            let status = response.status();
            if methods.contains(method) {
                assert_ne!(
                    status,
                    StatusCode::METHOD_NOT_ALLOWED,
                    "{method} {template} is documented but not served"
                );
                assert!(
                    !from_fallback(response).await,
                    "{method} {template} is documented but no route serves it"
                );
            } else {
                assert_eq!(
                    status,
                    StatusCode::METHOD_NOT_ALLOWED,
                    "{method} {template} is served but not documented (or answers {status})"
                );
            }
        }
    }
    app.stop().await.unwrap();
}

#[test]
fn the_router_is_built_only_through_documented_routes() {
    // `routes!` is the only way a route enters `api_routes`; a plain `.route`, `.nest` or
    // `.merge` would serve a path the document does not know.
    let source = include_str!("../../src/app.rs");
    for forbidden in [
        ".route(",
        ".nest(",
        ".merge(",
        ".route_service(",
        ".nest_service(",
    ] {
        assert!(
            !source.contains(forbidden),
            "app.rs adds a route with `{forbidden}`: use `.routes(routes!(handler))` so it is documented"
        );
    }
    assert!(source.contains(".fallback(not_found)"));
}

#[tokio::test]
async fn an_unknown_path_reaches_the_fallback() {
    // The other half of the probe above: it tells a handler from the fallback by this answer.
    let t = sqlite_db().await;
    let app = spawn_app(&t).await;
    let response = app.get("/v1/not-a-route", None).await;
    assert!(from_fallback(response).await);
    app.stop().await.unwrap();
}

/// Follows a local `$ref` (`#/components/...`).
fn follow<'a>(doc: &'a Value, reference: &str) -> Option<&'a Value> {
    let pointer = reference.strip_prefix('#')?;
    doc.pointer(pointer)
}

fn collect_refs(value: &Value, out: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            if let Some(Value::String(r)) = map.get("$ref") {
                out.push(r.clone());
            }
            map.values().for_each(|v| collect_refs(v, out));
        }
        Value::Array(items) => items.iter().for_each(|v| collect_refs(v, out)),
        _ => {}
    }
}

#[test]
fn the_document_holds_together_as_openapi_3_1() {
    let doc = document();
    assert_eq!(doc["openapi"], "3.1.0");
    assert!(doc["info"]["title"].is_string() && doc["info"]["version"].is_string());

    // Every reference resolves.
    let mut refs = Vec::new();
    collect_refs(&doc, &mut refs);
    assert!(!refs.is_empty());
    for reference in &refs {
        assert!(
            follow(&doc, reference).is_some(),
            "{reference} does not resolve"
        );
    }

    let schemes = doc["components"]["securitySchemes"].as_object().unwrap();
    assert_eq!(schemes["bearer"]["scheme"], "bearer");
    assert_eq!(schemes["cookie"]["in"], "cookie");
    assert_eq!(schemes["csrf"]["in"], "header");

    let mut operation_ids = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        let template_params: BTreeSet<&str> = path
            .split('/')
            .filter_map(|s| s.strip_prefix('{')?.strip_suffix('}'))
            .collect();
        for method in METHODS {
            let Some(op) = item.get(method) else { continue };
            let name = format!("{method} {path}");
            if let Some(id) = op["operationId"].as_str() {
                assert!(
                    operation_ids.insert(id.to_owned()),
                    "{name}: operationId {id} repeats"
                );
            }
            // Each path parameter is declared once, required, and nothing else is in `path`.
            let declared: BTreeSet<&str> = op["parameters"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|p| p["in"] == "path")
                .map(|p| {
                    assert_eq!(p["required"], true, "{name}: path parameter not required");
                    p["name"].as_str().unwrap()
                })
                .collect();
            assert_eq!(declared, template_params, "{name}: path parameters");

            let responses = op["responses"].as_object().unwrap();
            assert!(
                responses
                    .keys()
                    .any(|s| s.starts_with('2') || s.as_str() == "101"),
                "{name}: no success response"
            );
            for (status, response) in responses {
                let response = match response["$ref"].as_str() {
                    Some(r) => follow(&doc, r).unwrap(),
                    None => response,
                };
                assert!(response["description"].is_string(), "{name} {status}");
                if status.starts_with('4') || status.starts_with('5') {
                    assert!(
                        response["content"]["application/problem+json"]["schema"]["$ref"]
                            == "#/components/schemas/Problem",
                        "{name} {status}: errors are problem+json"
                    );
                }
            }
            assert!(responses.contains_key("500"), "{name}: no 500");
            assert!(responses.contains_key("503"), "{name}: no 503");
            if path.starts_with("/v1/") {
                assert!(responses.contains_key("429"), "{name}: no 429");
            }
            if op.get("requestBody").is_some() {
                for status in ["400", "413", "415", "422"] {
                    assert!(responses.contains_key(status), "{name}: no {status}");
                }
            }
            if op.get("security").is_some() {
                assert!(responses.contains_key("401"), "{name}: no 401");
            }
        }
    }
}

#[test]
fn the_conventions_reach_the_routes_they_describe() {
    let doc = document();
    // Game routes take Idempotency-Key; other POSTs do not.
    let slots = &doc["paths"]["/v1/games/slots/spin"]["post"];
    let names: Vec<&str> = slots["parameters"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert!(names.contains(&"Idempotency-Key"), "{names:?}");
    assert!(slots["responses"]["200"]["headers"]["Idempotent-Replayed"].is_object());
    assert!(
        doc["paths"]["/v1/auth/login"]["post"]["parameters"]
            .as_array()
            .is_none_or(|p| p.iter().all(|p| p["name"] != "Idempotency-Key"))
    );

    // Rate-limit headers on `/v1` answers, not on health probes.
    assert_eq!(
        slots["responses"]["200"]["headers"]["RateLimit-Remaining"]["$ref"],
        "#/components/headers/RateLimit-Remaining"
    );
    let live = &doc["paths"]["/health/live"]["get"];
    assert!(live["responses"]["200"]["headers"]["RateLimit-Remaining"].is_null());
    assert!(live["responses"]["429"].is_null());

    // Cookie sessions need the CSRF header on requests that change state, not on reads.
    assert_eq!(
        slots["security"],
        serde_json::json!([{"bearer": []}, {"cookie": [], "csrf": []}])
    );
    assert_eq!(
        doc["paths"]["/v1/wallet"]["get"]["security"],
        serde_json::json!([{"bearer": []}, {"cookie": []}])
    );

    // Request types are schemas that refuse unknown fields, as the server does.
    let register = &doc["components"]["schemas"]["RegisterRequest"];
    assert_eq!(register["additionalProperties"], false);
    assert_eq!(
        register["required"],
        serde_json::json!(["username", "email", "password"])
    );
}

#[tokio::test]
async fn the_document_and_its_page_are_served() {
    let t = sqlite_db().await;
    let app = spawn_app(&t).await;

    let response = app.get("/openapi.json", None).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["content-type"], "application/json");
    let served: Value = response.json().await.unwrap();
    assert_eq!(served, document());

    let page = app.get("/docs", None).await;
    assert_eq!(page.status(), StatusCode::OK);
    assert!(
        page.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    let csp = page.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        csp.contains("script-src 'self'") && !csp.contains("unsafe-inline"),
        "{csp}"
    );
    let html = page.text().await.unwrap();
    assert!(html.contains(r#"<script src="/docs/docs.js""#));
    assert!(!html.contains("<script>"), "no inline script");
    assert!(!html.contains("https://"), "no asset from another origin");

    let script = app.get("/docs/docs.js", None).await;
    assert_eq!(script.status(), StatusCode::OK);
    assert!(
        script.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/javascript")
    );
    assert!(script.text().await.unwrap().contains("/openapi.json"));
    let style = app.get("/docs/docs.css", None).await;
    assert_eq!(style.status(), StatusCode::OK);
    app.stop().await.unwrap();
}
