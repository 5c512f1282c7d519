//! `RequireAuthLayer` protecting a real axum app on a loopback port, and answering as
//! `Authenticator::authenticate_request` (which the gateway's extractor runs) decides.

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::http::Request;
use axum::routing::get;
use hearth_auth::{
    ACCESS_COOKIE, AuthSettings, Authenticated, Authenticator, CSRF_HEADER, InProcessRevocations,
    RequestAuthError, RequireAuthLayer, Role, TokenService,
};
use tower::ServiceExt as _;
use uuid::Uuid;

async fn serve(app: Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    url
}

#[tokio::test]
async fn the_layer_admits_valid_tokens_and_refuses_the_rest_with_problem_json() {
    let tokens = TokenService::new(&AuthSettings::default());
    let auth = Authenticator::new(tokens.clone(), Arc::new(InProcessRevocations::new()));
    let app = Router::new()
        .route(
            "/who",
            get(|Authenticated(claims): Authenticated| async move { claims.name }),
        )
        .layer(RequireAuthLayer::new(auth.clone()));
    let url = serve(app).await;
    let client = reqwest::Client::new();
    let pair = tokens
        .issue_pair(Uuid::now_v7(), "alice", Role::Player)
        .unwrap();

    let ok = client
        .get(format!("{url}/who"))
        .bearer_auth(&pair.access_token)
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 200);
    assert_eq!(ok.text().await.unwrap(), "alice");

    let refresh_as_access = client
        .get(format!("{url}/who"))
        .bearer_auth(&pair.refresh_token)
        .send()
        .await
        .unwrap();
    let missing = client.get(format!("{url}/who")).send().await.unwrap();
    for response in [refresh_as_access, missing] {
        assert_eq!(response.status(), 401);
        assert_eq!(
            response.headers()["content-type"],
            "application/problem+json"
        );
        assert_eq!(response.headers()["www-authenticate"], "Bearer");
        let body: serde_json::Value = response.json().await.unwrap();
        assert_eq!(body["type"], "urn:hearth:problem:unauthorized");
        assert_eq!(body["status"], 401);
    }

    // Revocation takes effect on the next request.
    let claims = tokens
        .verify(&pair.access_token, hearth_auth::TokenType::Access)
        .unwrap();
    auth.revocations()
        .revoke_token(claims.jti, claims.exp)
        .await
        .unwrap();
    let after = client
        .get(format!("{url}/who"))
        .bearer_auth(&pair.access_token)
        .send()
        .await
        .unwrap();
    assert_eq!(after.status(), 401);
}

#[tokio::test]
async fn the_extractor_without_the_layer_refuses() {
    let app = Router::new().route(
        "/who",
        get(|Authenticated(claims): Authenticated| async move { claims.name }),
    );
    let url = serve(app).await;
    let response = reqwest::get(format!("{url}/who")).await.unwrap();
    assert_eq!(response.status(), 401);
}

/// The status the layer answers an outcome of `authenticate_request` with.
fn status_of(outcome: &Result<hearth_auth::Claims, RequestAuthError>) -> u16 {
    match outcome {
        Ok(_) => 200,
        Err(RequestAuthError::Missing(_) | RequestAuthError::Token(_)) => 401,
        Err(RequestAuthError::Csrf) => 403,
        Err(RequestAuthError::Store(_)) => 503,
    }
}

#[tokio::test]
async fn the_layer_authenticates_as_the_gateway_does_cookie_sessions_included() {
    let tokens = TokenService::new(&AuthSettings::default());
    let auth = Authenticator::new(tokens.clone(), Arc::new(InProcessRevocations::new()));
    let app = Router::new()
        .route(
            "/who",
            get(|Authenticated(claims): Authenticated| async move { claims.name })
                .post(|Authenticated(claims): Authenticated| async move { claims.name }),
        )
        .layer(RequireAuthLayer::new(auth.clone()));
    let pair = tokens
        .issue_pair(Uuid::now_v7(), "alice", Role::Player)
        .unwrap();
    let access = pair.access_token.as_str();
    let session_cookie = format!("theme=dark; {ACCESS_COOKIE}={access}");
    let csrf = tokens.csrf_token(pair.family);
    let other_csrf = tokens.csrf_token(Uuid::now_v7());
    let refresh_cookie = format!("{ACCESS_COOKIE}={}", pair.refresh_token);
    let bearer = format!("Bearer {access}");

    #[rustfmt::skip]
    let cases: Vec<(&str, Vec<(&str, &str)>, u16)> = vec![
        ("GET",  vec![("authorization", bearer.as_str())], 200),
        ("POST", vec![("authorization", bearer.as_str())], 200),
        ("GET",  vec![], 401),
        ("GET",  vec![("authorization", "Basic YWxpY2U6"), ("cookie", session_cookie.as_str())], 401),
        ("GET",  vec![("cookie", session_cookie.as_str())], 200),
        ("POST", vec![("cookie", session_cookie.as_str())], 403),
        ("POST", vec![("cookie", session_cookie.as_str()), (CSRF_HEADER, csrf.as_str())], 200),
        ("POST", vec![("cookie", session_cookie.as_str()), (CSRF_HEADER, other_csrf.as_str())], 403),
        ("GET",  vec![("cookie", refresh_cookie.as_str())], 401),
    ];
    for (method, headers, expected) in cases {
        let mut request = Request::builder().method(method).uri("/who");
        for (name, value) in &headers {
            request = request.header(*name, *value);
        }
        let request = request.body(Body::empty()).unwrap();
        let outcome = auth
            .authenticate_request(request.method(), request.headers(), None)
            .await;
        assert_eq!(
            status_of(&outcome),
            expected,
            "{method} {headers:?}: {outcome:?}"
        );
        let response = app.clone().oneshot(request).await.unwrap();
        assert_eq!(response.status().as_u16(), expected, "{method} {headers:?}");
        let body = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .unwrap();
        match outcome {
            Ok(claims) => assert_eq!(&body[..], claims.name.as_bytes()),
            Err(error) => {
                let problem: serde_json::Value = serde_json::from_slice(&body).unwrap();
                assert_eq!(problem["status"], expected);
                if let RequestAuthError::Missing(missing) = error {
                    // The same sentence the gateway answers with.
                    assert_eq!(problem["detail"], missing.to_string());
                }
            }
        }
    }
}
