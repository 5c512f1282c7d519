//! `GET /v1/ws` with a real WebSocket client (tokio-tungstenite) on a loopback port:
//! authentication both ways, refusals, typed messages and their errors, and every close code.

use std::time::Duration;

use futures_util::{SinkExt as _, StreamExt as _};
use hearth_api::ws::WsSettings;
use hearth_test_support::{TestDb, sqlite_db};
use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;
use tokio_tungstenite::tungstenite::protocol::frame::Frame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::{Data, OpCode};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use crate::support::{TestApp, problem, spawn_ws, spawn_ws_with};

/// A client socket; the life tests share this module's helpers.
pub(crate) type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

const ORIGIN: &str = "https://play.example.com";

fn short() -> WsSettings {
    WsSettings {
        auth_timeout_secs: 1,
        allowed_origins: vec![ORIGIN.to_owned()],
        max_frame_bytes: 1024,
        max_message_bytes: 4096,
        ..WsSettings::defaults()
    }
}

async fn app(t: &TestDb) -> TestApp {
    spawn_ws(t, short()).await
}

fn ws_url(app: &TestApp, query: &str) -> String {
    format!("ws://{}/v1/ws{query}", app.addr)
}

async fn connect(app: &TestApp) -> Socket {
    let (socket, response) = tokio_tungstenite::connect_async(ws_url(app, ""))
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::SWITCHING_PROTOCOLS);
    socket
}

/// A socket authenticated by its first message; returns it and the user id the server said.
pub(crate) async fn authenticated(app: &TestApp, token: &str) -> (Socket, String) {
    let mut socket = connect(app).await;
    send(&mut socket, &json!({"type": "auth", "token": token})).await;
    let answer = next_json(&mut socket).await;
    assert_eq!(answer["type"], "authenticated", "{answer}");
    let user_id = answer["user_id"].as_str().unwrap().to_owned();
    (socket, user_id)
}

pub(crate) async fn send(socket: &mut Socket, message: &Value) {
    socket
        .send(Message::text(message.to_string()))
        .await
        .unwrap();
}

/// The next text message as JSON, skipping pings and pongs.
pub(crate) async fn next_json(socket: &mut Socket) -> Value {
    loop {
        let next = tokio::time::timeout(Duration::from_secs(10), socket.next())
            .await
            .expect("a message in time")
            .expect("the socket is open")
            .expect("a frame");
        match next {
            Message::Text(text) => return serde_json::from_str(&text).unwrap(),
            Message::Ping(_) | Message::Pong(_) => {}
            other => panic!("expected a text message, got {other:?}"),
        }
    }
}

/// Reads until the server's close frame; returns its code. Text messages before it fail.
async fn close_code(socket: &mut Socket) -> u16 {
    loop {
        let next = tokio::time::timeout(Duration::from_secs(5), socket.next())
            .await
            .expect("a close in time");
        match next {
            Some(Ok(Message::Close(Some(frame)))) => return frame.code.into(),
            Some(Ok(Message::Ping(_) | Message::Pong(_))) => {}
            other => panic!("expected a close frame, got {other:?}"),
        }
    }
}

/// `ping` still answered: the socket is open.
async fn still_open(socket: &mut Socket) {
    send(socket, &json!({"type": "ping"})).await;
    assert_eq!(next_json(socket).await, json!({"type": "pong"}));
}

async fn user_id_of(app: &TestApp, token: &str) -> String {
    let me: Value = app.get("/v1/me", Some(token)).await.json().await.unwrap();
    me["id"]
        .as_str()
        .or_else(|| me["user_id"].as_str())
        .unwrap()
        .to_owned()
}

#[tokio::test]
async fn a_socket_authenticated_by_its_first_message_answers_ping_with_pong() {
    let t = sqlite_db().await;
    let app = app(&t).await;
    let token = app.player("Socketeer").await;

    let (mut socket, user_id) = authenticated(&app, &token).await;

    assert_eq!(user_id, user_id_of(&app, &token).await);
    still_open(&mut socket).await;
    send(
        &mut socket,
        &json!({"type": "subscribe", "topics": ["big_wins", "leaderboard:net_won:weekly"]}),
    )
    .await;
    send(
        &mut socket,
        &json!({"type": "unsubscribe", "topics": ["big_wins"]}),
    )
    .await;
    // Neither is answered; the next answer is the pong.
    still_open(&mut socket).await;
}

#[tokio::test]
async fn a_cookie_from_an_allowed_origin_authenticates_at_once() {
    let t = sqlite_db().await;
    let app = app(&t).await;
    let token = app.player("Browser").await;
    let mut request = ws_url(&app, "").into_client_request().unwrap();
    request
        .headers_mut()
        .insert("cookie", format!("hearth_access={token}").parse().unwrap());
    request
        .headers_mut()
        .insert("origin", ORIGIN.parse().unwrap());

    let (mut socket, _) = tokio_tungstenite::connect_async(request).await.unwrap();

    let first = next_json(&mut socket).await;
    assert_eq!(first["type"], "authenticated");
    assert_eq!(first["user_id"], user_id_of(&app, &token).await.as_str());
    still_open(&mut socket).await;
}

#[tokio::test]
async fn a_cookie_upgrade_from_another_origin_is_refused_with_403_before_upgrading() {
    let t = sqlite_db().await;
    let app = app(&t).await;
    let token = app.player("Hijacked").await;
    for origin in [Some("https://evil.example.net"), None] {
        let mut request = app
            .client
            .get(app.url("/v1/ws"))
            .header("connection", "Upgrade")
            .header("upgrade", "websocket")
            .header("sec-websocket-version", "13")
            .header("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ==")
            .header("cookie", format!("hearth_access={token}"));
        if let Some(origin) = origin {
            request = request.header("origin", origin);
        }

        let response = request.send().await.unwrap();

        let body = problem(response, StatusCode::FORBIDDEN).await;
        assert!(
            body["detail"].as_str().unwrap().contains("origin"),
            "{body}"
        );
    }
}

#[tokio::test]
async fn a_token_in_the_url_does_not_authenticate_and_silence_times_out_with_1008() {
    let t = sqlite_db().await;
    let app = app(&t).await;
    let token = app.player("Urlish").await;
    for query in [format!("?token={token}"), format!("?access_token={token}")] {
        let (mut socket, _) = tokio_tungstenite::connect_async(ws_url(&app, &query))
            .await
            .unwrap();

        // No `authenticated`: the first thing that arrives is the close, after the timeout.
        assert_eq!(close_code(&mut socket).await, 1008);
    }
}

#[tokio::test]
async fn a_bad_revoked_or_missing_auth_message_closes_with_1008() {
    let t = sqlite_db().await;
    let app = app(&t).await;
    let revoked = app.player("Revoked").await;
    let logout = app
        .request(reqwest::Method::POST, "/v1/auth/logout", Some(&revoked))
        .send()
        .await
        .unwrap();
    assert_eq!(logout.status(), StatusCode::NO_CONTENT);
    let first_messages = [
        json!({"type": "auth", "token": "not-a-token"}),
        json!({"type": "auth", "token": revoked}),
        json!({"type": "ping"}),
        json!({"type": "auth", "token": revoked, "extra": true}),
    ];
    for first in first_messages {
        let mut socket = connect(&app).await;

        send(&mut socket, &first).await;

        assert_eq!(close_code(&mut socket).await, 1008, "{first}");
    }
}

#[tokio::test]
async fn bad_messages_get_error_codes_and_the_socket_stays_open() {
    let t = sqlite_db().await;
    let app = app(&t).await;
    let token = app.player("Clumsy").await;
    let (mut socket, _) = authenticated(&app, &token).await;
    let cases = [
        ("{not json", "invalid_message"),
        (r#"{"type":"ping","extra":1}"#, "invalid_message"),
        (
            r#"{"type":"subscribe","topics":["leaderboard:balance:daily"]}"#,
            "invalid_message",
        ),
        (
            r#"{"type":"subscribe","topics":["user:me"]}"#,
            "invalid_message",
        ),
        (r#"{"type":"auth","token":"again"}"#, "invalid_message"),
        (r#"{"type":"dance"}"#, "unknown_type"),
    ];
    for (text, code) in cases {
        socket.send(Message::text(text)).await.unwrap();

        let error = next_json(&mut socket).await;

        assert_eq!(error["type"], "error", "{text}");
        assert_eq!(error["code"], code, "{text}");
        assert!(error["message"].is_string(), "{error}");
        assert!(error.get("retry_after").is_none(), "{error}");
        still_open(&mut socket).await;
    }
}

#[tokio::test]
async fn messages_over_the_websocket_rule_are_refused_with_retry_after() {
    let t = sqlite_db().await;
    let mut app = spawn_ws_with(&t, short(), |settings| {
        settings.limits.rules.websocket = hearth_limits::RuleSettings {
            per_minute: Some(3),
            per_hour: None,
        };
    })
    .await;
    let token = app.player("Chatty").await;
    let (mut socket, _) = authenticated(&app, &token).await;
    for _ in 0..3 {
        still_open(&mut socket).await;
    }

    send(&mut socket, &json!({"type": "ping"})).await;

    let refused = next_json(&mut socket).await;
    assert_eq!(refused["code"], "rate_limited", "{refused}");
    assert!(refused["retry_after"].as_u64().unwrap() >= 1, "{refused}");
    // Still open: the next close is the shutdown's, not the limit's.
    let server = app.begin_shutdown();
    assert_eq!(close_code(&mut socket).await, 1001);
    server.await.unwrap().unwrap();
}

#[tokio::test]
async fn a_binary_frame_closes_with_1003() {
    let t = sqlite_db().await;
    let app = app(&t).await;
    let token = app.player("Binary").await;
    let (mut socket, _) = authenticated(&app, &token).await;

    socket
        .send(Message::binary(vec![1_u8, 2, 3]))
        .await
        .unwrap();

    assert_eq!(close_code(&mut socket).await, 1003);
}

#[tokio::test]
async fn a_frame_or_a_message_over_its_limit_closes_with_1009() {
    let t = sqlite_db().await;
    let app = app(&t).await;
    let token = app.player("Bulky").await;

    // One frame of 2 KiB, over the 1 KiB frame limit.
    let (mut socket, _) = authenticated(&app, &token).await;
    let big = format!(r#"{{"type":"ping","pad":"{}"}}"#, "x".repeat(2048));
    socket.send(Message::text(big)).await.unwrap();
    assert_eq!(close_code(&mut socket).await, 1009);

    // Five frames of 1000 bytes, each allowed, over the 4 KiB message limit together.
    let (mut socket, _) = authenticated(&app, &token).await;
    let chunk = "x".repeat(1000);
    let first = Frame::message(chunk.clone(), OpCode::Data(Data::Text), false);
    socket.send(Message::Frame(first)).await.unwrap();
    for i in 0..4 {
        let frame = Frame::message(chunk.clone(), OpCode::Data(Data::Continue), i == 3);
        if socket.send(Message::Frame(frame)).await.is_err() {
            break;
        }
    }
    assert_eq!(close_code(&mut socket).await, 1009);
}

/// Upgrades a raw TCP connection by hand, for frames no client library would send.
async fn raw_upgrade(app: &TestApp) -> TcpStream {
    let mut tcp = TcpStream::connect(app.addr).await.unwrap();
    let handshake = format!(
        "GET /v1/ws HTTP/1.1\r\nHost: {}\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
         Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
        app.addr
    );
    tcp.write_all(handshake.as_bytes()).await.unwrap();
    let mut head = Vec::new();
    let mut byte = [0_u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        tcp.read_exact(&mut byte).await.unwrap();
        head.push(byte[0]);
    }
    let head = String::from_utf8(head).unwrap();
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    tcp
}

/// Reads server frames (never masked, short) until a close frame; returns its code.
async fn raw_close_code(tcp: &mut TcpStream) -> u16 {
    tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            let mut header = [0_u8; 2];
            tcp.read_exact(&mut header).await.unwrap();
            let len = usize::from(header[1] & 0x7f);
            assert!(len < 126, "a short server frame");
            let mut payload = vec![0_u8; len];
            tcp.read_exact(&mut payload).await.unwrap();
            if header[0] & 0x0f == 0x8 {
                return u16::from_be_bytes([payload[0], payload[1]]);
            }
        }
    })
    .await
    .expect("a close frame in time")
}

/// A masked text frame, as a client must send it (mask of zeros: the payload reads as is).
fn masked(first_byte: u8, payload: &[u8]) -> Vec<u8> {
    let mut frame = vec![first_byte, 0x80 | u8::try_from(payload.len()).unwrap()];
    frame.extend_from_slice(&[0, 0, 0, 0]);
    frame.extend_from_slice(payload);
    frame
}

#[tokio::test]
async fn protocol_violations_close_with_1002() {
    let t = sqlite_db().await;
    let app = app(&t).await;
    let ping = br#"{"type":"ping"}"#;
    let unmasked = {
        let mut frame = vec![0x81, u8::try_from(ping.len()).unwrap()];
        frame.extend_from_slice(ping);
        frame
    };
    let cases = [
        ("an unmasked client frame", unmasked),
        ("reserved bits set", masked(0x81 | 0x40, ping)),
        (
            "invalid UTF-8 in a text frame",
            masked(0x81, &[0xff, 0xfe, 0x22]),
        ),
    ];
    for (what, frame) in cases {
        let mut tcp = raw_upgrade(&app).await;

        tcp.write_all(&frame).await.unwrap();

        assert_eq!(raw_close_code(&mut tcp).await, 1002, "{what}");
    }
}

#[tokio::test]
async fn shutdown_closes_every_socket_with_1001() {
    let t = sqlite_db().await;
    let mut app = app(&t).await;
    let token = app.player("Stayer").await;
    let (mut one, _) = authenticated(&app, &token).await;
    let mut two = connect(&app).await;

    let server = app.begin_shutdown();

    assert_eq!(close_code(&mut one).await, 1001);
    assert_eq!(close_code(&mut two).await, 1001);
    tokio::time::timeout(Duration::from_secs(5), server)
        .await
        .expect("the server stops once its sockets are closed")
        .unwrap()
        .unwrap();
}

#[tokio::test]
async fn a_client_that_never_answers_pings_is_closed_with_1001() {
    let t = sqlite_db().await;
    let app = spawn_ws(
        &t,
        WsSettings {
            ping_secs: 1,
            idle_timeout_secs: 2,
            ..short()
        },
    )
    .await;
    let token = app.player("Sleeper").await;
    let (mut socket, _) = authenticated(&app, &token).await;

    // A client answers pings only while it reads: this one does not, for longer than 2 s.
    tokio::time::sleep(Duration::from_millis(3500)).await;

    let mut pings = 0;
    let code = loop {
        match socket.next().await {
            Some(Ok(Message::Ping(_))) => pings += 1,
            Some(Ok(Message::Close(Some(frame)))) => break u16::from(frame.code),
            other => panic!("expected pings then a close, got {other:?}"),
        }
    };
    assert_eq!(code, 1001);
    assert!(pings >= 1, "pinged before closing");
}

#[tokio::test]
async fn a_client_that_answers_pings_stays_open_past_the_idle_timeout() {
    let t = sqlite_db().await;
    let app = spawn_ws(
        &t,
        WsSettings {
            ping_secs: 1,
            idle_timeout_secs: 2,
            ..short()
        },
    )
    .await;
    let token = app.player("Awake").await;
    let (mut socket, _) = authenticated(&app, &token).await;

    // Reading answers the pings (tungstenite replies with pongs as it reads).
    let until = tokio::time::Instant::now() + Duration::from_millis(3500);
    while let Ok(next) = tokio::time::timeout_at(until, socket.next()).await {
        assert!(
            matches!(next, Some(Ok(Message::Ping(_)))),
            "only pings while quiet: {next:?}"
        );
    }

    still_open(&mut socket).await;
}

#[tokio::test]
async fn a_client_that_does_not_read_is_disconnected_with_1008_too_slow() {
    let t = sqlite_db().await;
    let app = spawn_ws(
        &t,
        WsSettings {
            send_queue: 4,
            ..WsSettings::defaults()
        },
    )
    .await;
    let token = app.player("Laggard").await;
    // A small receive buffer that does not grow, so unread answers back up quickly.
    let tcp = tokio::net::TcpSocket::new_v4().unwrap();
    tcp.set_recv_buffer_size(4096).unwrap();
    let tcp = tcp.connect(app.addr).await.unwrap();
    let (mut socket, _) = tokio_tungstenite::client_async(ws_url(&app, ""), tcp)
        .await
        .unwrap();
    socket
        .send(Message::text(
            json!({"type": "auth", "token": token}).to_string(),
        ))
        .await
        .unwrap();
    // Each message earns an error of about 8 KiB (it names the unknown field); none is read.
    let noisy = format!(r#"{{"type":"ping","{}":1}}"#, "x".repeat(8000));
    for _ in 0..1000 {
        if socket.send(Message::text(noisy.clone())).await.is_err() {
            break;
        }
    }

    let mut answers = 0;
    let close = loop {
        let next = tokio::time::timeout(Duration::from_secs(10), socket.next())
            .await
            .expect("a close in time");
        match next {
            Some(Ok(Message::Text(_) | Message::Ping(_))) => answers += 1,
            Some(Ok(Message::Close(Some(frame)))) => break frame,
            other => panic!("expected answers then a close, got {other:?}"),
        }
    };
    assert_eq!(u16::from(close.code), 1008);
    assert_eq!(close.reason.as_str(), "too slow");
    assert!(answers < 1000, "closed before every message was answered");
}

#[tokio::test]
async fn sockets_are_counted_in_the_ws_metrics() {
    let t = sqlite_db().await;
    let app = app(&t).await;
    let token = app.player("Counted").await;
    let (mut socket, _) = authenticated(&app, &token).await;
    still_open(&mut socket).await;
    socket.send(Message::binary(vec![0_u8])).await.unwrap();
    assert_eq!(close_code(&mut socket).await, 1003);

    let text = app.get("/metrics", None).await.text().await.unwrap();

    for needle in [
        "hearth_ws_connections",
        r#"hearth_ws_messages_total{direction="in",type="ping"}"#,
        r#"hearth_ws_messages_total{direction="out",type="pong"}"#,
        r#"hearth_ws_messages_total{direction="out",type="authenticated"}"#,
        r#"hearth_ws_closes_total{code="1003"}"#,
    ] {
        assert!(text.contains(needle), "{needle} missing from /metrics");
    }
}

#[tokio::test]
async fn on_shutdown_sockets_get_1001_while_an_in_flight_request_still_finishes() {
    let t = sqlite_db().await;
    let mut app = crate::support::spawn_custom(
        &t,
        |_| {},
        |state| {
            let slow = axum::Router::new().route(
                "/work",
                axum::routing::get(|| async {
                    tokio::time::sleep(Duration::from_millis(800)).await;
                    "done"
                }),
            );
            Some(hearth_api::router(state.clone()).merge(hearth_api::with_stack(slow, state)))
        },
    )
    .await;
    let token = app.player("Drained").await;
    let (mut socket, _) = authenticated(&app, &token).await;
    let in_flight = {
        let (client, url) = (app.client.clone(), app.url("/work"));
        tokio::spawn(async move { client.get(url).send().await })
    };
    tokio::time::sleep(Duration::from_millis(150)).await;

    let server = app.begin_shutdown();

    assert_eq!(close_code(&mut socket).await, 1001);
    let response = in_flight.await.unwrap().expect("the request completes");
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.text().await.unwrap(), "done");
    tokio::time::timeout(Duration::from_secs(5), server)
        .await
        .expect("server stops")
        .unwrap()
        .unwrap();
}

#[tokio::test]
async fn a_revoked_cookie_from_an_allowed_origin_closes_with_1008() {
    let t = sqlite_db().await;
    let app = app(&t).await;
    let token = app.player("Cookieless").await;
    let logout = app
        .request(reqwest::Method::POST, "/v1/auth/logout", Some(&token))
        .send()
        .await
        .unwrap();
    assert_eq!(logout.status(), StatusCode::NO_CONTENT);
    let mut request = ws_url(&app, "").into_client_request().unwrap();
    request
        .headers_mut()
        .insert("cookie", format!("hearth_access={token}").parse().unwrap());
    request
        .headers_mut()
        .insert("origin", ORIGIN.parse().unwrap());

    let (mut socket, _) = tokio_tungstenite::connect_async(request).await.unwrap();

    assert_eq!(close_code(&mut socket).await, 1008);
}

#[tokio::test]
async fn a_request_that_is_not_an_upgrade_is_refused_with_a_problem() {
    let t = sqlite_db().await;
    let app = app(&t).await;

    let response = app.get("/v1/ws", None).await;

    let status = response.status();
    assert!(status.is_client_error(), "{status}");
    problem(response, status).await;
}

// ---- Pushes from the hub -------------------------------------------------------------------

/// Logs `token` out over HTTP.
async fn logout(app: &TestApp, token: &str) {
    let response = app
        .request(reqwest::Method::POST, "/v1/auth/logout", Some(token))
        .send()
        .await
        .unwrap();
    assert!(response.status().is_success(), "{}", response.status());
}

/// Spins on `spinner` until `socket` gets its `wallet` push (a gateway's Redis subscription
/// may still be starting): returns the push and the balance the spin answered.
async fn spin_until_pushed(spinner: &TestApp, token: &str, socket: &mut Socket) -> (Value, i64) {
    for _ in 0..10 {
        let spun: Value = spinner.spin(token, 10).await.json().await.unwrap();
        let balance = spun["balance"].as_i64().unwrap();
        let pushed = tokio::time::timeout(Duration::from_secs(1), next_json(socket)).await;
        if let Ok(push) = pushed {
            return (push, balance);
        }
    }
    panic!("no wallet push after ten spins");
}

#[tokio::test]
async fn a_round_pushes_the_new_balance_and_a_logout_closes_the_socket_with_1008() {
    let t = sqlite_db().await;
    let app = app(&t).await;
    let token = app.player("Pushed").await;
    let (mut socket, _) = authenticated(&app, &token).await;

    let (push, balance) = spin_until_pushed(&app, &token, &mut socket).await;
    assert_eq!(push["type"], "wallet", "{push}");
    assert_eq!(push["balance"], balance, "{push}");
    assert_eq!(push["kind"], "round", "{push}");

    logout(&app, &token).await;
    let closed = tokio::time::timeout(Duration::from_secs(1), close_code(&mut socket))
        .await
        .expect("the socket closes within a second of the logout");
    assert_eq!(closed, 1008);

    // The writer records the push once the frame is handed to the socket; the client has read
    // it, so the sample is there (the histogram is process-wide, hence "at least").
    let pushes = metric_value(&app, "hearth_ws_push_latency_seconds_count").await;
    assert!(
        pushes >= 1.0,
        "hearth_ws_push_latency_seconds_count {pushes}"
    );
}

/// The value of the unlabelled sample `name` on `app`'s `/metrics`; panics when it is absent.
async fn metric_value(app: &TestApp, name: &str) -> f64 {
    let text = app.get("/metrics", None).await.text().await.unwrap();
    text.lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(' '))
        .unwrap_or_else(|| panic!("{name} missing from /metrics:\n{text}"))
        .parse()
        .unwrap()
}

#[tokio::test]
async fn a_user_active_by_http_and_one_by_socket_are_two_active_users() {
    let t = sqlite_db().await;
    let app = app(&t).await;
    let by_http = app.player("ActiveHttp").await;
    let by_socket = app.player("ActiveSocket").await;
    // Registering and logging in do not authenticate a request.
    assert_eq!(metric_value(&app, "hearth_active_users").await, 0.0);

    for _ in 0..3 {
        assert!(
            app.get("/v1/wallet", Some(&by_http))
                .await
                .status()
                .is_success()
        );
    }
    let (mut socket, _) = authenticated(&app, &by_socket).await;
    still_open(&mut socket).await;

    assert_eq!(metric_value(&app, "hearth_active_users").await, 2.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn across_two_gateways_sharing_redis_pushes_and_logouts_reach_the_other_gateway() {
    let Some(redis) = hearth_test_support::service_url(hearth_test_support::REDIS_URL_VAR, "Redis")
    else {
        return;
    };
    let t = sqlite_db().await;
    let prefix = format!("hearth-test:{}:", uuid::Uuid::new_v4().simple());
    let shared = |s: &mut hearth_api::Settings| {
        s.redis.url = Some(secrecy::SecretString::from(redis.clone()));
        s.redis.key_prefix = prefix.clone();
    };
    let a = spawn_ws_with(&t, short(), shared).await;
    let b = spawn_ws_with(&t, short(), shared).await;
    let token = a.player("Roamer").await;
    let (mut socket, _) = authenticated(&b, &token).await;

    let (push, balance) = spin_until_pushed(&a, &token, &mut socket).await;
    assert_eq!(push["type"], "wallet", "{push}");
    assert_eq!(push["balance"], balance, "{push}");

    logout(&a, &token).await;
    let closed = tokio::time::timeout(Duration::from_secs(1), close_code(&mut socket))
        .await
        .expect("the socket on the other gateway closes within a second of the logout");
    assert_eq!(closed, 1008);
}

/// Reads until a `leaderboard` push listing `user_id` with `score`, skipping `wallet` pushes
/// (and earlier tops); returns it.
async fn leaderboard_push_with(socket: &mut Socket, user_id: &str, score: i64) -> Value {
    loop {
        let message = next_json(socket).await;
        match message["type"].as_str() {
            Some("wallet") => {}
            Some("leaderboard") => {
                let listed = message["entries"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|entry| entry["user_id"] == user_id && entry["score"] == score);
                if listed {
                    return message;
                }
            }
            _ => panic!("unexpected {message}"),
        }
    }
}

#[tokio::test]
async fn a_subscribed_leaderboard_is_pushed_after_a_spin_changes_it() {
    let t = sqlite_db().await;
    let app = app(&t).await;
    let token = app.player("Climber").await;
    let (mut socket, user_id) = authenticated(&app, &token).await;
    send(
        &mut socket,
        &json!({"type": "subscribe", "topics": ["leaderboard:balance:all_time"]}),
    )
    .await;
    // Messages are handled in order: the pong means the subscription is in place.
    still_open(&mut socket).await;

    let spun: Value = app.spin(&token, 10).await.json().await.unwrap();
    let balance = spun["balance"].as_i64().unwrap();

    let push = leaderboard_push_with(&mut socket, &user_id, balance).await;
    assert_eq!(push["board"], "balance", "{push}");
    assert_eq!(push["period"], "all_time", "{push}");
    let entry = &push["entries"][0];
    assert_eq!(
        (&entry["rank"], &entry["user_id"], &entry["score"]),
        (&json!(1), &json!(user_id), &json!(balance)),
        "{push}"
    );
    assert!(entry["username"].is_string(), "{push}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_spin_on_one_gateway_reaches_a_leaderboard_subscriber_on_the_other_once() {
    let Some(redis) = hearth_test_support::service_url(hearth_test_support::REDIS_URL_VAR, "Redis")
    else {
        return;
    };
    let t = sqlite_db().await;
    let prefix = format!("hearth-test:{}:", uuid::Uuid::new_v4().simple());
    let shared = |s: &mut hearth_api::Settings| {
        s.redis.url = Some(secrecy::SecretString::from(redis.clone()));
        s.redis.key_prefix = prefix.clone();
    };
    let a = spawn_ws_with(&t, short(), shared).await;
    let b = spawn_ws_with(&t, short(), shared).await;
    let token = a.player("Distant").await;
    let (mut socket, user_id) = authenticated(&b, &token).await;
    send(
        &mut socket,
        &json!({"type": "subscribe", "topics": ["leaderboard:balance:all_time"]}),
    )
    .await;
    still_open(&mut socket).await;

    let spun: Value = a.spin(&token, 10).await.json().await.unwrap();
    let balance = spun["balance"].as_i64().unwrap();

    leaderboard_push_with(&mut socket, &user_id, balance).await;
    // Gateway A has no subscriber and B computes its own pushes: no second copy follows.
    let mut extra = None;
    let quiet = tokio::time::timeout(Duration::from_millis(2_500), async {
        loop {
            let message = next_json(&mut socket).await;
            if message["type"] == "leaderboard" {
                extra = Some(message);
                break;
            }
        }
    })
    .await;
    assert!(quiet.is_err(), "a second leaderboard push: {extra:?}");
}

/// A big win on gateway `a` reaches `big_wins` watchers on `a` and on `b` (the same gateway
/// in process): spins on `a` until a round wins, with any win counted as big.
async fn a_big_win_reaches_every_watcher(a: &TestApp, b: &TestApp) {
    let player = a.player("Lucky").await;
    let mut watchers = Vec::new();
    for (app, name) in [(a, "WatcherA"), (b, "WatcherB")] {
        let token = app.player(name).await;
        let (mut socket, _) = authenticated(app, &token).await;
        send(
            &mut socket,
            &json!({"type": "subscribe", "topics": ["big_wins"]}),
        )
        .await;
        still_open(&mut socket).await;
        watchers.push(socket);
    }
    // The watchers' own wallets do not move, so nothing else is pushed to them.
    let mut win = None;
    for _ in 0..200 {
        let spun: Value = a.spin(&player, 10).await.json().await.unwrap();
        if spun["win"].as_i64().unwrap() > 0 {
            win = Some(spun);
            break;
        }
    }
    let win = win.expect("a winning spin within 200");
    for socket in &mut watchers {
        let push = next_json(socket).await;
        assert_eq!(push["type"], "big_win", "{push}");
        assert_eq!(push["username"], "Lucky", "{push}");
        assert_eq!(push["win"], win["win"], "{push}");
        assert_eq!(push["bet"], 10, "{push}");
    }
}

/// Any winning spin is a big win, so the tests need no luck.
fn every_win_is_big(s: &mut hearth_api::Settings) {
    s.realtime.big_win_multiplier = 1;
}

#[tokio::test]
async fn a_big_win_reaches_big_wins_subscribers_on_the_in_process_hub() {
    let t = sqlite_db().await;
    let app = spawn_ws_with(&t, short(), every_win_is_big).await;
    a_big_win_reaches_every_watcher(&app, &app).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_big_win_on_one_gateway_reaches_big_wins_subscribers_on_both() {
    let Some(redis) = hearth_test_support::service_url(hearth_test_support::REDIS_URL_VAR, "Redis")
    else {
        return;
    };
    let t = sqlite_db().await;
    let prefix = format!("hearth-test:{}:", uuid::Uuid::new_v4().simple());
    let shared = |s: &mut hearth_api::Settings| {
        s.redis.url = Some(secrecy::SecretString::from(redis.clone()));
        s.redis.key_prefix = prefix.clone();
        every_win_is_big(s);
    };
    let a = spawn_ws_with(&t, short(), shared).await;
    let b = spawn_ws_with(&t, short(), shared).await;
    a_big_win_reaches_every_watcher(&a, &b).await;
}
