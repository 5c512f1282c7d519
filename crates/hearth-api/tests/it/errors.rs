//! Bad input gets a precise 4xx in the one problem+json format, naming the field.

use hearth_test_support::sqlite_db;
use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::support::{problem, spawn_app, spawn_app_with};

#[tokio::test]
async fn an_unknown_route_is_a_problem_json_404() {
    let t = sqlite_db().await;
    let app = spawn_app(&t).await;
    let body = problem(
        app.get("/v1/nothing/here", None).await,
        StatusCode::NOT_FOUND,
    )
    .await;
    assert_eq!(body["type"], "urn:hearth:problem:not-found");
    app.stop().await.unwrap();
}

#[tokio::test]
async fn a_wrong_method_is_a_problem_json_405_with_allow() {
    let t = sqlite_db().await;
    let app = spawn_app(&t).await;
    let response = app
        .request(Method::DELETE, "/v1/wallet", None)
        .send()
        .await
        .unwrap();
    assert!(response.headers().get("allow").is_some());
    problem(response, StatusCode::METHOD_NOT_ALLOWED).await;
    app.stop().await.unwrap();
}

#[tokio::test]
async fn malformed_json_is_a_400_with_its_position() {
    let t = sqlite_db().await;
    let app = spawn_app(&t).await;
    let response = app
        .request(Method::POST, "/v1/auth/login", None)
        .header("content-type", "application/json")
        .body("{\"login\": \"a\", ")
        .send()
        .await
        .unwrap();
    let body = problem(response, StatusCode::BAD_REQUEST).await;
    assert!(
        body["detail"].as_str().unwrap().contains("line 1"),
        "{body}"
    );
    app.stop().await.unwrap();
}

#[tokio::test]
async fn unknown_missing_and_mistyped_fields_are_named() {
    let t = sqlite_db().await;
    let app = spawn_app(&t).await;
    let token = app.player("Fields").await;
    let cases = [
        (
            json!({"bet": 10, "boost": 2}),
            "boost",
            "is not a known field",
        ),
        (json!({}), "bet", "is required"),
        (json!({"bet": "ten"}), "bet", "invalid type"),
        (json!({"bet": 1.5}), "bet", "invalid type"),
        (
            json!({"bet": 3}),
            "bet",
            "must be one of 1, 2, 5, 10, 20, 50, 100",
        ),
        (json!({"bet": -10}), "bet", "must be one of"),
    ];
    for (request, field, message) in cases {
        let response = app
            .post("/v1/games/slots/spin", Some(&token), &request)
            .await;
        let body = problem(response, StatusCode::UNPROCESSABLE_ENTITY).await;
        assert_eq!(body["errors"][0]["field"], field, "{request} → {body}");
        let got = body["errors"][0]["message"].as_str().unwrap();
        assert!(
            got.contains(message),
            "{request}: {got:?} lacks {message:?}"
        );
    }
    // None of the refused spins moved money.
    let wallet: serde_json::Value = app
        .get("/v1/wallet", Some(&token))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(wallet["balance"], 1_000);
    app.stop().await.unwrap();
}

#[tokio::test]
async fn a_body_that_is_not_json_is_a_415() {
    let t = sqlite_db().await;
    let app = spawn_app(&t).await;
    for content_type in [
        None,
        Some("text/plain"),
        Some("application/x-www-form-urlencoded"),
    ] {
        let mut request = app
            .request(Method::POST, "/v1/auth/login", None)
            .body("login=a&password=b");
        if let Some(content_type) = content_type {
            request = request.header("content-type", content_type);
        }
        problem(
            request.send().await.unwrap(),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
        )
        .await;
    }
    app.stop().await.unwrap();
}

#[tokio::test]
async fn an_oversized_body_is_a_413_declared_or_streamed() {
    let t = sqlite_db().await;
    let app = spawn_app_with(&t, |s| s.server.body_limit_bytes = 1024).await;
    let big = json!({ "login": "x".repeat(4096), "password": "y" });
    problem(
        app.post("/v1/auth/login", None, &big).await,
        StatusCode::PAYLOAD_TOO_LARGE,
    )
    .await;

    // Without Content-Length the limit applies while reading.
    let chunks = futures_util::stream::iter(
        (0..8).map(|_| Ok::<_, std::io::Error>(bytes::Bytes::from(vec![b' '; 512]))),
    );
    let response = app
        .request(Method::POST, "/v1/auth/login", None)
        .header("content-type", "application/json")
        .body(reqwest::Body::wrap_stream(chunks))
        .send()
        .await
        .unwrap();
    problem(response, StatusCode::PAYLOAD_TOO_LARGE).await;
    app.stop().await.unwrap();
}

#[tokio::test]
async fn registration_names_every_invalid_field_and_scores_the_password() {
    let t = sqlite_db().await;
    let app = spawn_app(&t).await;
    let response = app
        .post(
            "/v1/auth/register",
            None,
            &json!({"username": "a b", "email": "nope", "password": "short"}),
        )
        .await;
    let body = problem(response, StatusCode::UNPROCESSABLE_ENTITY).await;
    let fields: Vec<&str> = body["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["field"].as_str().unwrap())
        .collect();
    assert_eq!(fields, ["username", "email", "password"]);
    assert!(body["password_strength"]["score"].as_u64().unwrap() < 50);
    assert!(
        !body["password_strength"]["feedback"]
            .as_array()
            .unwrap()
            .is_empty()
    );

    let long = format!("Aa1!{}", "x".repeat(69));
    assert_eq!(long.len(), 73);
    let response = app
        .post(
            "/v1/auth/register",
            None,
            &json!({"username": "longpw", "email": "l@example.com", "password": long}),
        )
        .await;
    let body = problem(response, StatusCode::UNPROCESSABLE_ENTITY).await;
    assert!(
        body["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("72 bytes"),
        "{body}"
    );
    app.stop().await.unwrap();
}

#[tokio::test]
async fn a_taken_username_or_email_is_a_409_naming_the_field() {
    let t = sqlite_db().await;
    let app = spawn_app(&t).await;
    assert_eq!(app.register("Taken").await.status(), StatusCode::CREATED);
    let same_name = json!({"username": "TAKEN", "email": "new@example.com", "password": crate::support::PASSWORD});
    let body = problem(
        app.post("/v1/auth/register", None, &same_name).await,
        StatusCode::CONFLICT,
    )
    .await;
    assert_eq!(body["errors"][0]["field"], "username");
    let same_email = json!({"username": "Other", "email": "TAKEN@example.com", "password": crate::support::PASSWORD});
    let body = problem(
        app.post("/v1/auth/register", None, &same_email).await,
        StatusCode::CONFLICT,
    )
    .await;
    assert_eq!(body["errors"][0]["field"], "email");
    app.stop().await.unwrap();
}

#[tokio::test]
async fn wrong_passwords_and_unknown_users_get_the_same_answer() {
    let t = sqlite_db().await;
    let app = spawn_app(&t).await;
    assert_eq!(app.register("Known").await.status(), StatusCode::CREATED);
    let wrong = app
        .post(
            "/v1/auth/login",
            None,
            &json!({"login": "Known", "password": "Wrong-pass1"}),
        )
        .await;
    let wrong = problem(wrong, StatusCode::UNAUTHORIZED).await;
    let unknown = app
        .post(
            "/v1/auth/login",
            None,
            &json!({"login": "Ghost", "password": "Wrong-pass1"}),
        )
        .await;
    let unknown = problem(unknown, StatusCode::UNAUTHORIZED).await;
    for key in ["type", "title", "status", "detail"] {
        assert_eq!(wrong[key], unknown[key], "{key} differs");
    }
    app.stop().await.unwrap();
}

#[tokio::test]
async fn protected_routes_refuse_missing_malformed_and_forged_tokens() {
    let t = sqlite_db().await;
    let app = spawn_app(&t).await;
    let token = app.player("Guarded").await;
    let refresh: serde_json::Value = app.login("Guarded").await.json().await.unwrap();
    let forged = format!("{}x", &token[..token.len() - 1]);
    let refresh_token = refresh["refresh_token"].as_str().unwrap();
    for path in ["/v1/me", "/v1/wallet", "/v1/wallet/transactions"] {
        let response = app.get(path, None).await;
        assert_eq!(response.headers()["www-authenticate"], "Bearer");
        problem(response, StatusCode::UNAUTHORIZED).await;
        for bad in ["not-a-jwt", forged.as_str(), refresh_token] {
            problem(app.get(path, Some(bad)).await, StatusCode::UNAUTHORIZED).await;
        }
        let basic = app
            .request(Method::GET, path, None)
            .header("authorization", "Basic YTpi")
            .send()
            .await
            .unwrap();
        problem(basic, StatusCode::UNAUTHORIZED).await;
    }
    app.stop().await.unwrap();
}

#[tokio::test]
async fn bad_pagination_parameters_are_named() {
    let t = sqlite_db().await;
    let app = spawn_app(&t).await;
    let token = app.player("Pages").await;
    for (query, field) in [
        ("limit=0", "limit"),
        ("limit=101", "limit"),
        ("limit=abc", "limit"),
        ("cursor=bogus", "cursor"),
        ("sort=asc", "sort"),
    ] {
        let response = app
            .get(&format!("/v1/wallet/transactions?{query}"), Some(&token))
            .await;
        let body = problem(response, StatusCode::UNPROCESSABLE_ENTITY).await;
        assert_eq!(body["errors"][0]["field"], field, "{query}: {body}");
    }
    app.stop().await.unwrap();
}

#[tokio::test]
async fn a_bet_above_the_balance_is_a_422_that_moves_nothing() {
    let t = sqlite_db().await;
    let app = spawn_app_with(&t, |s| s.wallet.starting_balance = 5).await;
    let token = app.player("Poor").await;
    let body = problem(app.spin(&token, 10).await, StatusCode::UNPROCESSABLE_ENTITY).await;
    assert_eq!(body["type"], "urn:hearth:problem:insufficient-balance");
    assert_eq!(
        (body["needed"].as_i64(), body["available"].as_i64()),
        (Some(10), Some(5))
    );
    let wallet: serde_json::Value = app
        .get("/v1/wallet", Some(&token))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(wallet["balance"], 5);
    app.stop().await.unwrap();
}
