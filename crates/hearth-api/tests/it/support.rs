//! `spawn_app`: the real application on port 0, and a client for it.

use std::net::SocketAddr;

use axum::Router;
use hearth_api::{App, AppState, Settings};
use hearth_limits::{RuleSettings, RuleTable};
use hearth_test_support::TestDb;
use reqwest::{Method, RequestBuilder, Response, StatusCode};
use secrecy::SecretString;
use serde_json::{Value, json};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

pub const PASSWORD: &str = "Tr0ub4dor&3x";

pub struct TestApp {
    pub addr: SocketAddr,
    pub client: reqwest::Client,
    pub state: AppState,
    shutdown: Option<oneshot::Sender<()>>,
    server: Option<JoinHandle<std::io::Result<()>>>,
}

/// Settings for tests: cheap bcrypt, a test secret, the given database.
pub fn test_settings(t: &TestDb) -> Settings {
    let mut settings = Settings {
        database: t.settings.clone(),
        ..Settings::default()
    };
    settings.auth.bcrypt_cost = 4;
    // Suites about money and errors are not about limits: give them room. The limits suite
    // restores the defaults.
    let generous = RuleSettings {
        per_minute: Some(1_000_000),
        per_hour: None,
    };
    settings.limits.rules = RuleTable {
        ip: generous,
        user: generous,
        login: generous,
        signup: generous,
        game: generous,
        ai: generous,
        websocket: generous,
    };
    settings.auth.jwt_secret =
        SecretString::from("integration-test-secret-0123456789abcdef".to_owned());
    settings
}

pub async fn spawn_app(t: &TestDb) -> TestApp {
    spawn_app_with(t, |_| {}).await
}

pub async fn spawn_app_with(t: &TestDb, tweak: impl FnOnce(&mut Settings)) -> TestApp {
    spawn_custom(t, tweak, |_| None).await
}

/// Spawns the app; `extra` may return routes (already wrapped by the caller) to serve instead.
pub async fn spawn_custom(
    t: &TestDb,
    tweak: impl FnOnce(&mut Settings),
    extra: impl FnOnce(AppState) -> Option<Router>,
) -> TestApp {
    let mut settings = test_settings(t);
    tweak(&mut settings);
    let mut app = hearth_api::build_with(t.db.clone(), settings)
        .await
        .unwrap();
    if let Some(router) = extra(app.state.clone()) {
        app = App {
            router,
            state: app.state,
        };
    }
    serve(app).await
}

/// Spawns the app with the WebSocket's settings `ws` (short timeouts, allowed origins).
pub async fn spawn_ws(t: &TestDb, ws: hearth_api::ws::WsSettings) -> TestApp {
    spawn_ws_with(t, ws, |_| {}).await
}

/// As [`spawn_ws`], with settings tweaked.
pub async fn spawn_ws_with(
    t: &TestDb,
    ws: hearth_api::ws::WsSettings,
    tweak: impl FnOnce(&mut Settings),
) -> TestApp {
    let mut settings = test_settings(t);
    tweak(&mut settings);
    let app = hearth_api::build_with(t.db.clone(), settings)
        .await
        .unwrap();
    serve(hearth_api::with_hearth_ws(app.state.hearth.clone(), ws)).await
}

/// Spawns the app on a connection pool of its own to `t`'s database, with fresh in-process
/// stores: a gateway restarted (stopping an app closes its pool, so a restart needs a new one).
pub async fn spawn_restarted(t: &TestDb) -> TestApp {
    let db = hearth_storage::connect(&t.settings).await.unwrap();
    let app = hearth_api::build_with(db, test_settings(t)).await.unwrap();
    serve(app).await
}

/// As [`spawn_ws_with`], on a connection pool of its own to `t`'s database: a second
/// gateway that can be stopped (which closes its pool) while the other serves on.
pub async fn spawn_ws_gateway(
    t: &TestDb,
    ws: hearth_api::ws::WsSettings,
    tweak: impl FnOnce(&mut Settings),
) -> TestApp {
    let db = hearth_storage::connect(&t.settings).await.unwrap();
    let mut settings = test_settings(t);
    tweak(&mut settings);
    let app = hearth_api::build_with(db, settings).await.unwrap();
    serve(hearth_api::with_hearth_ws(app.state.hearth.clone(), ws)).await
}

async fn serve(app: App) -> TestApp {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = oneshot::channel::<()>();
    let state = app.state.clone();
    let server = tokio::spawn(hearth_api::serve(listener, app, async move {
        let _ = rx.await;
    }));
    TestApp {
        addr,
        client: reqwest::Client::builder().build().unwrap(),
        state,
        shutdown: Some(tx),
        server: Some(server),
    }
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub fn request(&self, method: Method, path: &str, token: Option<&str>) -> RequestBuilder {
        let builder = self.client.request(method, self.url(path));
        match token {
            Some(token) => builder.bearer_auth(token),
            None => builder,
        }
    }

    pub async fn get(&self, path: &str, token: Option<&str>) -> Response {
        self.request(Method::GET, path, token).send().await.unwrap()
    }

    pub async fn post(&self, path: &str, token: Option<&str>, body: &Value) -> Response {
        self.request(Method::POST, path, token)
            .json(body)
            .send()
            .await
            .unwrap()
    }

    pub async fn register(&self, username: &str) -> Response {
        let body = json!({
            "username": username,
            "email": format!("{}@example.com", username.to_lowercase()),
            "password": PASSWORD,
        });
        self.post("/v1/auth/register", None, &body).await
    }

    pub async fn login(&self, login: &str) -> Response {
        self.post(
            "/v1/auth/login",
            None,
            &json!({ "login": login, "password": PASSWORD }),
        )
        .await
    }

    /// Registers and logs in; returns the access token.
    pub async fn player(&self, username: &str) -> String {
        assert_eq!(self.register(username).await.status(), StatusCode::CREATED);
        let tokens: Value = self.login(username).await.json().await.unwrap();
        tokens["access_token"].as_str().unwrap().to_owned()
    }

    pub async fn spin(&self, token: &str, bet: i64) -> Response {
        self.post("/v1/games/slots/spin", Some(token), &json!({ "bet": bet }))
            .await
    }

    /// Stops the server gracefully and waits for it.
    pub async fn stop(mut self) -> std::io::Result<()> {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        self.server.take().unwrap().await.unwrap()
    }

    /// Starts a graceful shutdown without waiting for it.
    pub fn begin_shutdown(&mut self) -> JoinHandle<std::io::Result<()>> {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        self.server.take().unwrap()
    }
}

/// Reads a problem+json response and checks the parts every error must have.
pub async fn problem(response: Response, status: StatusCode) -> Value {
    assert_eq!(response.status(), status);
    let content_type = response.headers()["content-type"]
        .to_str()
        .unwrap()
        .to_owned();
    assert_eq!(content_type, "application/problem+json");
    let header_id = response.headers()["x-request-id"]
        .to_str()
        .unwrap()
        .to_owned();
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["status"], status.as_u16());
    assert!(
        body["type"]
            .as_str()
            .unwrap()
            .starts_with("urn:hearth:problem:"),
        "{body}"
    );
    assert!(
        body["title"].is_string() && body["detail"].is_string(),
        "{body}"
    );
    assert_eq!(
        body["request_id"], header_id,
        "the body's request id is the header's"
    );
    body
}
