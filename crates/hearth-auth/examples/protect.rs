//! A tiny axum app protected by Hearth tokens. Run it, then try the printed `curl` line.
#![allow(clippy::print_stdout)]
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "examples fail loudly on what should not happen"
)]
use std::sync::Arc;

use axum::{Router, routing::get};
use hearth_auth::{AuthSettings, Authenticated, Authenticator, InProcessRevocations, Role};
use hearth_auth::{RequireAuthLayer, TokenService};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // Real services load these settings (HEARTH__AUTH__JWT_SECRET, …); the default is dev-only.
    let tokens = TokenService::new(&AuthSettings::default());
    let auth = Authenticator::new(tokens.clone(), Arc::new(InProcessRevocations::new()));
    let hello = get(|Authenticated(claims): Authenticated| async move {
        format!("hello, {} ({})\n", claims.name, claims.role)
    });
    let app = Router::new()
        .route("/hello", hello)
        .layer(RequireAuthLayer::new(auth));

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let token = tokens
        .issue_pair(uuid::Uuid::now_v7(), "alice", Role::Player)?
        .access_token;
    let url = format!("http://{}/hello", listener.local_addr()?);
    println!("curl -H 'Authorization: Bearer {token}' {url}");
    axum::serve(listener, app).await?;
    Ok(())
}
