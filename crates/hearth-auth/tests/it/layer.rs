//! `RequireAuthLayer` protecting a real axum app on a loopback port.

use std::sync::Arc;

use axum::Router;
use axum::routing::get;
use hearth_auth::{
    AuthSettings, Authenticated, Authenticator, InProcessRevocations, RequireAuthLayer, Role,
    TokenService,
};
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
