//! The life simulation end to end, with a real WebSocket client: start, speed up, events,
//! questions and answers, conversation lines from a local chat-completions server (and the
//! catalogue's fallback line when it is down), pause, the read routes, graceful shutdown, and
//! a life moving to a second gateway on the same PostgreSQL and Redis.

use std::time::Duration;

use hearth_ai::ProviderSettings;
use hearth_api::ws::WsSettings;
use hearth_test_support::{TestDb, sqlite_db};
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::support::{TestApp, problem, spawn_ws_gateway};
use crate::ws::{Socket, authenticated, next_json, send};

#[path = "../../../hearth-ai/tests/it/support.rs"]
#[allow(dead_code, unreachable_pub)]
mod chat_server;

/// A catalogue that gets to the point: a question on day 2, a conversation on day 3, and an
/// event every day.
const CATALOGUE: &str = r#"{
  "format": 1,
  "name": "e2e",
  "categories": ["school", "relationships"],
  "start": { "relationships": { "mother": 80 } },
  "characters": [{ "id": "mother", "name": "Mum", "persona": "Warm and curious." }],
  "events": [
    { "name": "treat", "description": "It is a special day.", "priority": "high",
      "category": "school", "once": true, "when": { "stat": "age_days", "at_least": 2 },
      "question": { "prompt": "Cake or ice cream?", "choices": [
        { "id": "cake", "label": "Cake", "effect": { "happiness": 5 } },
        { "id": "ice_cream", "label": "Ice cream", "effect": { "happiness": 1 } } ] } },
    { "name": "mum_calls", "description": "Mum calls.", "priority": "normal",
      "category": "relationships", "once": true, "when": { "stat": "age_days", "at_least": 3 },
      "conversation": { "character": "mother", "topic": "Mum asks how your day was.",
                        "fallback": "Mum says: the line from the catalogue." } },
    { "name": "speech", "description": "You are asked to give a speech.", "priority": "normal",
      "category": "school", "once": true, "when": { "stat": "age_days", "at_least": 4 },
      "question": { "prompt": "Say a few words.", "free_text": {
        "rules": [{ "keywords": ["thank"], "effect": { "happiness": 3 } }],
        "otherwise": {} } } },
    { "name": "a_day", "description": "Another day.", "priority": "low",
      "category": "school", "cooldown_days": 1 }
  ]
}"#;

const LINE: &str = "Hello dear, did you eat something green today?";

struct Catalogue(tempfile::TempDir);

impl Catalogue {
    fn write() -> Self {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("catalogue.json"), CATALOGUE).unwrap();
        Self(dir)
    }

    fn path(&self) -> std::path::PathBuf {
        self.0.path().join("catalogue.json")
    }
}

fn provider(base_url: String) -> ProviderSettings {
    serde_json::from_value(json!({
        "name": "scripted",
        "base_url": base_url,
        "api_key": "sk-test-life",
        "model": "m",
        "timeout_secs": 2,
    }))
    .unwrap()
}

/// A chat-completions address nothing listens on.
fn closed_url() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    format!("http://{}/v1", listener.local_addr().unwrap())
}

/// Short session timings, the test catalogue, and `ai` pointed at `ai_url`.
fn life_settings(
    catalogue: &Catalogue,
    ai_url: String,
) -> impl Fn(&mut hearth_api::Settings) + Clone {
    let path = catalogue.path();
    move |s: &mut hearth_api::Settings| {
        s.life.catalogue = Some(path.clone());
        s.life.lease_secs = 2;
        s.life.save_interval_secs = 1;
        s.life.idle_timeout_secs = 2;
        s.life.state_push_millis = 100;
        s.ai.providers = vec![provider(ai_url.clone())];
        s.ai.max_attempts = 1;
    }
}

async fn connect(app: &TestApp, token: &str) -> Socket {
    authenticated(app, token).await.0
}

async fn until(socket: &mut Socket, wanted: impl Fn(&Value) -> bool) -> Value {
    loop {
        let message = next_json(socket).await;
        if wanted(&message) {
            return message;
        }
    }
}

fn of_type<'a>(kind: &'a str) -> impl Fn(&Value) -> bool + 'a {
    move |m| m["type"] == kind
}

async fn life(app: &TestApp, token: &str) -> Value {
    let response = app.get("/v1/life", Some(token)).await;
    assert_eq!(response.status(), StatusCode::OK);
    response.json().await.unwrap()
}

/// Polls `GET /v1/life` until `wanted` holds (a save landing, a take-over); returns it.
async fn life_until(app: &TestApp, token: &str, wanted: impl Fn(&Value) -> bool) -> Value {
    for _ in 0..100 {
        let life = life(app, token).await;
        if wanted(&life) {
            return life;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("GET /v1/life never showed what was expected");
}

fn ws() -> WsSettings {
    WsSettings::defaults()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_life_ticks_asks_answers_talks_through_the_ai_and_pauses() {
    let t = sqlite_db().await;
    let catalogue = Catalogue::write();
    let server = chat_server::ScriptedServer::start().await;
    server.always(chat_server::Reply::ok(LINE));
    let app = spawn_ws_gateway(&t, ws(), life_settings(&catalogue, server.base_url())).await;
    let token = app.player("Lifer").await;
    let mut socket = connect(&app, &token).await;

    // No life yet: the read routes say so.
    problem(
        app.get("/v1/life", Some(&token)).await,
        StatusCode::NOT_FOUND,
    )
    .await;

    send(&mut socket, &json!({"type": "life.start"})).await;
    let state = until(&mut socket, of_type("life.state")).await;
    assert_eq!(state["status"], "running", "{state}");
    assert_eq!(state["generation"], 1, "{state}");
    assert_eq!(state["ticks_per_minute"], 60, "{state}");

    send(
        &mut socket,
        &json!({"type": "life.speed", "ticks_per_minute": 5000}),
    )
    .await;
    let question = until(&mut socket, of_type("life.question")).await;
    assert_eq!(question["question_id"], "treat", "{question}");
    assert_eq!(question["day"], 2, "{question}");
    assert_eq!(
        question["answer_with"]["choices"][0]["id"], "cake",
        "{question}"
    );

    // The conversation's line comes from the chat-completions server, under the budget.
    let line = until(&mut socket, |m| {
        m["type"] == "life.event" && m["kind"] == "line"
    })
    .await;
    assert_eq!(line["text"], LINE, "{line}");
    assert_eq!(line["fallback"], false, "{line}");
    assert_eq!(line["character"], "mother", "{line}");
    assert_eq!(line["event"], "mum_calls", "{line}");
    let asked = &server.requests()[0];
    assert_eq!(asked.path, "/v1/chat/completions");
    assert!(
        asked
            .body
            .to_string()
            .contains("Mum asks how your day was."),
        "{}",
        asked.body
    );

    // Invalid commands get the socket's error message; the socket stays open.
    for (bad, mentions) in [
        (
            json!({"type": "life.answer", "question_id": "nope", "choice": "cake"}),
            "nope",
        ),
        (
            json!({"type": "life.answer", "question_id": "treat", "choice": "pie"}),
            "pie",
        ),
        (
            json!({"type": "life.answer", "question_id": "treat", "text": "cake"}),
            "choices",
        ),
        (
            json!({"type": "life.answer", "question_id": "treat", "choice": "cake", "text": "x"}),
            "exactly one",
        ),
        (
            json!({"type": "life.speed", "ticks_per_minute": 5001}),
            "ticks_per_minute",
        ),
        (
            json!({"type": "life.speed", "ticks_per_minute": 0}),
            "ticks_per_minute",
        ),
        (json!({"type": "life.pause", "extra": 1}), "extra"),
    ] {
        send(&mut socket, &bad).await;
        let error = until(&mut socket, of_type("error")).await;
        assert_eq!(error["code"], "invalid_message", "{bad} -> {error}");
        assert!(
            error["message"].as_str().unwrap().contains(mentions),
            "{bad} -> {error}"
        );
    }

    send(
        &mut socket,
        &json!({"type": "life.answer", "question_id": "treat", "choice": "cake"}),
    )
    .await;
    let answered = until(&mut socket, |m| {
        m["type"] == "life.event" && m["kind"] == "answer"
    })
    .await;
    assert_eq!(answered["choice"], "cake", "{answered}");

    // The free-text question: at most 10,000 characters, markup stripped.
    life_until(&app, &token, |l| {
        l["questions"]
            .as_array()
            .unwrap()
            .iter()
            .any(|q| q["question_id"] == "speech")
    })
    .await;
    send(
        &mut socket,
        &json!({"type": "life.answer", "question_id": "speech", "text": "a".repeat(10_001)}),
    )
    .await;
    let too_long = until(&mut socket, of_type("error")).await;
    assert_eq!(too_long["code"], "invalid_message", "{too_long}");
    assert!(
        too_long["message"].as_str().unwrap().contains("10000"),
        "{too_long}"
    );
    send(
        &mut socket,
        &json!({"type": "life.answer", "question_id": "speech",
                "text": "<b>Thank</b> you all<script>alert(1)</script>"}),
    )
    .await;
    let spoken = until(&mut socket, |m| {
        m["type"] == "life.event" && m["kind"] == "answer" && m["event"] == "speech"
    })
    .await;
    assert_eq!(spoken["text"], "Thank you all", "{spoken}");

    send(&mut socket, &json!({"type": "life.pause"})).await;
    let paused = until(&mut socket, |m| {
        m["type"] == "life.state" && m["status"] == "paused"
    })
    .await;
    assert!(
        paused["questions"].as_array().unwrap().is_empty(),
        "{paused}"
    );
    let day = paused["age_days"].as_u64().unwrap();
    assert!(day >= 3, "{paused}");
    tokio::time::sleep(Duration::from_millis(300)).await;
    let read = life(&app, &token).await;
    assert_eq!(read["status"], "paused", "{read}");
    assert_eq!(read["age_days"], day, "a paused life does not tick: {read}");

    // The history, in keyset pages, oldest first.
    let first: Value = app
        .get("/v1/life/history?limit=2", Some(&token))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(first["items"].as_array().unwrap().len(), 2, "{first}");
    assert_eq!(first["items"][0]["day"], 1, "{first}");
    let cursor = first["next_cursor"].as_str().unwrap();
    let second: Value = app
        .get(
            &format!("/v1/life/history?limit=200&cursor={cursor}"),
            Some(&token),
        )
        .await
        .json()
        .await
        .unwrap();
    let rest = second["items"].as_array().unwrap();
    assert!(
        rest.iter()
            .any(|e| e["kind"] == "answer" && e["choice"] == "cake")
    );
    assert!(
        rest.iter()
            .any(|e| e["kind"] == "line" && e["text"] == LINE)
    );
    assert!(second["next_cursor"].is_null(), "{second}");
    let bad = problem(
        app.get("/v1/life/history?cursor=not-a-cursor", Some(&token))
            .await,
        StatusCode::BAD_REQUEST,
    )
    .await;
    assert!(bad.to_string().contains("cursor"), "{bad}");

    // Another player has no life.
    let other = app.player("Bystander").await;
    problem(
        app.get("/v1/life", Some(&other)).await,
        StatusCode::NOT_FOUND,
    )
    .await;
    problem(
        app.get("/v1/life/history", Some(&other)).await,
        StatusCode::NOT_FOUND,
    )
    .await;

    // The metrics saw it (the registry is the process's, shared with other tests, so only
    // what this life alone guarantees is checked).
    let metrics = app.get("/metrics", None).await.text().await.unwrap();
    let value = |name: &str| -> f64 {
        metrics
            .lines()
            .find_map(|line| line.strip_prefix(name)?.strip_prefix(' '))
            .unwrap_or_else(|| panic!("{name} missing from /metrics"))
            .parse()
            .unwrap()
    };
    assert!(value("hearth_life_ticks_total") >= 3.0);
    assert!(value("hearth_life_events_total{category=\"relationships\"}") >= 1.0);
    // Gauges are set by every manager in the process (each test's gateway has one), so only
    // their presence is checked here.
    assert!(metrics.contains("hearth_life_live"));
    assert!(metrics.contains("hearth_life_questions_pending"));
    assert!(metrics.contains("hearth_life_save_seconds_count"));

    // Stop ends it; restart begins the next generation.
    send(&mut socket, &json!({"type": "life.stop"})).await;
    let ended = until(&mut socket, of_type("life.ended")).await;
    assert_eq!(ended["cause"], "stopped", "{ended}");
    send(&mut socket, &json!({"type": "life.resume"})).await;
    let refused = until(&mut socket, of_type("error")).await;
    assert_eq!(refused["code"], "invalid_message", "{refused}");
    send(&mut socket, &json!({"type": "life.restart"})).await;
    let reborn = until(&mut socket, |m| {
        m["type"] == "life.state" && m["generation"] == 2
    })
    .await;
    assert_eq!(reborn["status"], "running", "{reborn}");
    assert_eq!(reborn["ticks_per_minute"], 5000, "{reborn}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_the_chat_server_down_the_character_says_the_catalogues_fallback_line() {
    let t = sqlite_db().await;
    let catalogue = Catalogue::write();
    let app = spawn_ws_gateway(&t, ws(), life_settings(&catalogue, closed_url())).await;
    let token = app.player("Unlucky").await;
    let mut socket = connect(&app, &token).await;
    send(&mut socket, &json!({"type": "life.start"})).await;
    send(
        &mut socket,
        &json!({"type": "life.speed", "ticks_per_minute": 5000}),
    )
    .await;

    let line = until(&mut socket, |m| {
        m["type"] == "life.event" && m["kind"] == "line"
    })
    .await;
    assert_eq!(
        line["text"], "Mum says: the line from the catalogue.",
        "{line}"
    );
    assert_eq!(line["fallback"], true, "{line}");
    // And the life went on meanwhile.
    let later = until(&mut socket, |m| {
        m["type"] == "life.event" && m["day"].as_u64().is_some_and(|d| d > 10)
    })
    .await;
    assert_eq!(later["event"], "a_day", "{later}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graceful_shutdown_saves_the_lives_and_another_gateway_carries_on() {
    let t = sqlite_db().await;
    let catalogue = Catalogue::write();
    let settings = life_settings(&catalogue, closed_url());
    let app = spawn_ws_gateway(&t, ws(), settings.clone()).await;
    let token = app.player("Sleeper").await;
    let mut socket = connect(&app, &token).await;
    send(&mut socket, &json!({"type": "life.start"})).await;
    send(
        &mut socket,
        &json!({"type": "life.speed", "ticks_per_minute": 5000}),
    )
    .await;
    let seen = until(&mut socket, |m| {
        m["type"] == "life.event" && m["day"].as_u64().is_some_and(|d| d >= 20)
    })
    .await;
    let owner = app.state.lives.owner();
    app.stop().await.unwrap();

    let db = hearth_storage::connect(&t.settings).await.unwrap();
    let user = db
        .find_credentials("Sleeper")
        .await
        .unwrap()
        .unwrap()
        .user
        .id;
    let saved = db.life(user).await.unwrap().unwrap();
    assert_eq!(saved.owner, None, "released at shutdown, not left to lapse");
    assert!(
        u64::from(saved.day) >= seen["day"].as_u64().unwrap(),
        "saved day {} is before the last day pushed {seen}",
        saved.day
    );
    assert_ne!(owner, uuid::Uuid::nil());

    let next = spawn_ws_gateway(&t, ws(), settings).await;
    let read = life(&next, &token).await;
    assert_eq!(read["age_days"], saved.day, "{read}");
    let mut socket = connect(&next, &token).await;
    let event = until(&mut socket, of_type("life.event")).await;
    assert!(
        event["day"].as_u64().unwrap() > u64::from(saved.day),
        "the next gateway goes on from the saved day: {event}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paused_life_resumes_from_its_saved_day_on_a_second_gateway_and_survives_the_first() {
    let Some(redis) = hearth_test_support::service_url(hearth_test_support::REDIS_URL_VAR, "Redis")
    else {
        return;
    };
    let Some(t) = hearth_test_support::postgres_db().await else {
        return;
    };
    run_two_gateways(&t, redis).await;
    t.cleanup().await;
}

async fn run_two_gateways(t: &TestDb, redis: String) {
    let catalogue = Catalogue::write();
    let server = chat_server::ScriptedServer::start().await;
    server.always(chat_server::Reply::ok(LINE));
    let prefix = format!("hearth-test:{}:", uuid::Uuid::new_v4().simple());
    let base = life_settings(&catalogue, server.base_url());
    let shared = move |s: &mut hearth_api::Settings| {
        base(s);
        s.redis.url = Some(secrecy::SecretString::from(redis.clone()));
        s.redis.key_prefix = prefix.clone();
    };
    let a = spawn_ws_gateway(t, ws(), shared.clone()).await;
    let b = spawn_ws_gateway(t, ws(), shared).await;
    let token = a.player("Traveller").await;

    // On gateway A: start, speed up, events, a question answered, a line, then pause.
    let mut socket = connect(&a, &token).await;
    send(&mut socket, &json!({"type": "life.start"})).await;
    send(
        &mut socket,
        &json!({"type": "life.speed", "ticks_per_minute": 5000}),
    )
    .await;
    let question = until(&mut socket, of_type("life.question")).await;
    send(
        &mut socket,
        &json!({"type": "life.answer", "question_id": question["question_id"], "choice": "ice_cream"}),
    )
    .await;
    until(&mut socket, |m| {
        m["type"] == "life.event" && m["kind"] == "line"
    })
    .await;
    until(&mut socket, |m| {
        m["type"] == "life.event" && m["day"].as_u64().is_some_and(|d| d >= 8)
    })
    .await;
    send(&mut socket, &json!({"type": "life.pause"})).await;
    let paused = until(&mut socket, |m| {
        m["type"] == "life.state" && m["status"] == "paused"
    })
    .await;
    let day = paused["age_days"].as_u64().unwrap();
    socket.close(None).await.unwrap();
    drop(socket);

    // Gateway B reads the saved day, and its socket resumes the life from there.
    let saved = life_until(&b, &token, |l| l["status"] == "paused").await;
    assert_eq!(saved["age_days"], day, "{saved}");
    assert_eq!(saved["stats"]["happiness"], paused["stats"]["happiness"]);
    let mut socket = connect(&b, &token).await;
    let shown = until(&mut socket, of_type("life.state")).await;
    assert_eq!(shown["age_days"], day, "{shown}");
    send(&mut socket, &json!({"type": "life.resume"})).await;
    let next = until(&mut socket, of_type("life.event")).await;
    assert_eq!(
        next["day"].as_u64().unwrap(),
        day + 1,
        "resumed from the saved day: {next}"
    );
    // Gateway A still holds the lease, past its idle timeout (2 s) with no socket of its own:
    // B's socket keeps the player present. B forwarded the command to A over Redis, and A's
    // pushes crossed back to B's socket.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        (a.state.lives.live(), b.state.lives.live()),
        (1, 0),
        "one driver: gateway A"
    );

    // Gateway A goes away: B drives the life within a lease period, and it goes on.
    a.stop().await.unwrap();
    let before = life(&b, &token).await["age_days"].as_u64().unwrap();
    let driven = life_until(&b, &token, |l| {
        l["age_days"].as_u64().is_some_and(|d| d > before + 50)
    })
    .await;
    assert_eq!(driven["status"], "running", "{driven}");
    assert_eq!(b.state.lives.live(), 1, "gateway B drives the life now");
    // Pushes from gateway B reach the socket: the days go on past the take-over.
    let event = until(&mut socket, |m| {
        m["type"] == "life.event" && m["day"].as_u64().is_some_and(|d| d > before + 50)
    })
    .await;
    assert_eq!(event["event"], "a_day", "{event}");
}
