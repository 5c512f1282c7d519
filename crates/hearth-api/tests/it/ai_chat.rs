//! The AI chat over HTTP: conversations owned by their user, answers whole and streamed,
//! pages, spending, and every refusal (bad input 422, others 404, spent budgets 429/503 with
//! `Retry-After`, no provider 503) in the problem+json format.

use hearth_ai::ProviderSettings;
use hearth_test_support::{TestDb, backend_suite};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::support::{TestApp, problem, spawn_app, spawn_app_with};

backend_suite!(
    a_conversation_answers_stores_and_pages_its_messages,
    another_users_conversation_is_not_found,
    bad_messages_are_refused_with_422_naming_the_field,
    an_answer_streams_as_server_sent_events_and_is_stored,
    a_spent_user_budget_is_429_and_a_spent_global_budget_503,
    no_provider_answering_is_503_and_stores_nothing,
    the_ai_rule_refuses_with_429_and_rate_limit_headers,
    health_details_show_each_providers_breaker,
);

async fn start(app: &TestApp, token: &str) -> String {
    let response = app
        .post("/v1/ai/conversations", Some(token), &json!({}))
        .await;
    assert_eq!(response.status(), StatusCode::CREATED);
    let location = response.headers()["location"].to_str().unwrap().to_owned();
    let body: Value = response.json().await.unwrap();
    let id = body["id"].as_str().unwrap().to_owned();
    assert_eq!(location, format!("/v1/ai/conversations/{id}/messages"));
    assert!(body["created_at"].is_string());
    id
}

async fn say(app: &TestApp, token: &str, id: &str, content: &Value) -> reqwest::Response {
    app.post(
        &format!("/v1/ai/conversations/{id}/messages"),
        Some(token),
        &json!({ "content": content }),
    )
    .await
}

async fn a_conversation_answers_stores_and_pages_its_messages(t: &TestDb) {
    let app = spawn_app(t).await;
    let token = app.player("Learner").await;
    let id = start(&app, &token).await;

    let first = say(
        &app,
        &token,
        &id,
        &json!("<b>Hello</b> &amp; welcome, tutor"),
    )
    .await;
    assert_eq!(first.status(), StatusCode::CREATED);
    let first: Value = first.json().await.unwrap();
    assert_eq!(first["question"]["content"], "Hello & welcome, tutor");
    assert_eq!(first["question"]["role"], "user");
    assert_eq!(first["message"]["role"], "assistant");
    assert_eq!(first["message"]["provider"], "local");
    assert!(!first["message"]["content"].as_str().unwrap().is_empty());
    let usage = &first["usage"];
    assert!(usage["input_tokens"].as_u64().unwrap() > 0);
    assert!(usage["output_tokens"].as_u64().unwrap() > 0);
    let first_cost = usage["cost_micros"].as_u64().unwrap();
    assert!(first_cost > 0);

    let second: Value = say(&app, &token, &id, &json!("What is a closure?"))
        .await
        .json()
        .await
        .unwrap();
    assert!(
        second["usage"]["input_tokens"].as_u64() > usage["input_tokens"].as_u64(),
        "the history goes with the second call"
    );

    let url = format!("/v1/ai/conversations/{id}/messages?limit=3");
    let page: Value = app.get(&url, Some(&token)).await.json().await.unwrap();
    let roles: Vec<&str> = page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["role"].as_str().unwrap())
        .collect();
    assert_eq!(roles, ["user", "assistant", "user"]);
    let cursor = page["next_cursor"].as_str().unwrap();
    let rest: Value = app
        .get(&format!("{url}&cursor={cursor}"), Some(&token))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(rest["items"].as_array().unwrap().len(), 1);
    assert_eq!(rest["items"][0]["content"], second["message"]["content"]);
    assert!(rest["next_cursor"].is_null());

    let spent: Value = app
        .get("/v1/ai/usage", Some(&token))
        .await
        .json()
        .await
        .unwrap();
    let total = first_cost + second["usage"]["cost_micros"].as_u64().unwrap();
    assert_eq!(spent["spent_today"], total);
    assert_eq!(spent["daily_budget"], 5_000_000);
    assert_eq!(spent["remaining_today"], 5_000_000 - total);
    assert_eq!(spent["unit"], "micros");
    assert!(spent["resets_at"].as_str().unwrap().ends_with('Z'));
}

async fn another_users_conversation_is_not_found(t: &TestDb) {
    let app = spawn_app(t).await;
    let alice = app.player("Alice").await;
    let mallory = app.player("Mallory").await;
    let id = start(&app, &alice).await;
    say(&app, &alice, &id, &json!("my secret question?")).await;
    let path = format!("/v1/ai/conversations/{id}/messages");

    problem(app.get(&path, Some(&mallory)).await, StatusCode::NOT_FOUND).await;
    problem(
        say(&app, &mallory, &id, &json!("hi")).await,
        StatusCode::NOT_FOUND,
    )
    .await;
    let unknown = format!("/v1/ai/conversations/{}/messages", uuid::Uuid::now_v7());
    problem(app.get(&unknown, Some(&alice)).await, StatusCode::NOT_FOUND).await;
    problem(
        app.get("/v1/ai/conversations/not-a-uuid/messages", Some(&alice))
            .await,
        StatusCode::NOT_FOUND,
    )
    .await;
    problem(app.get(&path, None).await, StatusCode::UNAUTHORIZED).await;
    // Mallory's attempts cost Alice's conversation nothing and Mallory no budget.
    let page: Value = app.get(&path, Some(&alice)).await.json().await.unwrap();
    assert_eq!(page["items"].as_array().unwrap().len(), 2);
    let spent: Value = app
        .get("/v1/ai/usage", Some(&mallory))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(spent["spent_today"], 0);
}

async fn bad_messages_are_refused_with_422_naming_the_field(t: &TestDb) {
    let app = spawn_app(t).await;
    let token = app.player("Sloppy").await;
    let id = start(&app, &token).await;
    let path = format!("/v1/ai/conversations/{id}/messages");

    for (body, field, needle) in [
        (json!({ "content": "" }), "content", "must contain text"),
        (
            json!({ "content": "  <p> </p> <!-- x --> " }),
            "content",
            "must contain text",
        ),
        (
            json!({ "content": "x".repeat(10_001) }),
            "content",
            "at most 10000",
        ),
        (json!({ "content": 5 }), "content", "invalid type"),
        (json!({ "content": null }), "content", "invalid type"),
        (json!({}), "content", "is required"),
        (
            json!({ "content": "hi", "model": "gpt-5" }),
            "model",
            "is not a known field",
        ),
    ] {
        let response = app.post(&path, Some(&token), &body).await;
        let problem = problem(response, StatusCode::UNPROCESSABLE_ENTITY).await;
        assert_eq!(problem["errors"][0]["field"], field, "{body}");
        assert!(
            problem["errors"][0]["message"]
                .as_str()
                .unwrap()
                .contains(needle),
            "{body}: {problem}"
        );
    }
    // Exactly the limit is fine, counted in characters, not bytes.
    let at_limit = say(&app, &token, &id, &json!("é".repeat(10_000))).await;
    assert_eq!(at_limit.status(), StatusCode::CREATED);

    let not_json = app
        .request(Method::POST, &path, Some(&token))
        .header("content-type", "text/plain")
        .body("hello")
        .send()
        .await
        .unwrap();
    problem(not_json, StatusCode::UNSUPPORTED_MEDIA_TYPE).await;
    for query in [
        "cursor=nope",
        "limit=0",
        "limit=101",
        "limit=x",
        "color=red",
    ] {
        problem(
            app.get(&format!("{path}?{query}"), Some(&token)).await,
            StatusCode::UNPROCESSABLE_ENTITY,
        )
        .await;
    }
    // Nothing refused was stored.
    let page: Value = app.get(&path, Some(&token)).await.json().await.unwrap();
    assert_eq!(page["items"].as_array().unwrap().len(), 2);
}

/// Splits an event stream into (event, data) pairs.
fn events(text: &str) -> Vec<(String, Value)> {
    text.split("\n\n")
        .filter(|block| !block.trim().is_empty())
        .map(|block| {
            let mut event = String::new();
            let mut data = String::new();
            for line in block.lines() {
                if let Some(name) = line.strip_prefix("event: ") {
                    event = name.to_owned();
                } else if let Some(value) = line.strip_prefix("data: ") {
                    data.push_str(value);
                }
            }
            (event, serde_json::from_str(&data).unwrap())
        })
        .collect()
}

async fn an_answer_streams_as_server_sent_events_and_is_stored(t: &TestDb) {
    let app = spawn_app(t).await;
    let token = app.player("Streamer").await;
    let id = start(&app, &token).await;
    let path = format!("/v1/ai/conversations/{id}/messages");

    let response = app
        .request(Method::POST, &path, Some(&token))
        .header("accept", "text/event-stream")
        .json(&json!({ "content": "Tell me about borrowing in Rust, please" }))
        .send()
        .await
        .unwrap();

    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["content-type"], "text/event-stream");
    assert_eq!(response.headers()["cache-control"], "no-cache");
    let events = events(&response.text().await.unwrap());
    let (last, deltas) = events.split_last().unwrap();
    assert!(deltas.len() > 2, "{events:?}");
    assert!(deltas.iter().all(|(name, _)| name == "delta"));
    let text: String = deltas
        .iter()
        .map(|(_, data)| data["content"].as_str().unwrap())
        .collect();
    assert_eq!(last.0, "done");
    assert_eq!(last.1["message"]["content"], text.as_str());
    assert!(last.1["usage"]["cost_micros"].as_u64().unwrap() > 0);

    let page: Value = app.get(&path, Some(&token)).await.json().await.unwrap();
    assert_eq!(page["items"][1]["content"], text.as_str());
    let spent: Value = app
        .get("/v1/ai/usage", Some(&token))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(spent["spent_today"], last.1["usage"]["cost_micros"]);

    // Refusals come before the stream, as problems.
    let refused = app
        .request(Method::POST, &path, Some(&token))
        .header("accept", "text/event-stream")
        .json(&json!({ "content": "" }))
        .send()
        .await
        .unwrap();
    problem(refused, StatusCode::UNPROCESSABLE_ENTITY).await;
}

async fn a_spent_user_budget_is_429_and_a_spent_global_budget_503(t: &TestDb) {
    let user_app = spawn_app_with(t, |s| s.limits.budgets.user_daily = 1).await;
    let token = user_app.player("Spender").await;
    let id = start(&user_app, &token).await;
    let response = say(&user_app, &token, &id, &json!("hello?")).await;
    let retry_after: u64 = response.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=86_400).contains(&retry_after), "{retry_after}");
    let body = problem(response, StatusCode::TOO_MANY_REQUESTS).await;
    assert_eq!(body["budget"], "user");

    let global_app = spawn_app_with(t, |s| s.limits.budgets.global_hourly = 1).await;
    let other = global_app.player("Another").await;
    let id = start(&global_app, &other).await;
    let response = say(&global_app, &other, &id, &json!("hello?")).await;
    let retry_after: u64 = response.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=3_600).contains(&retry_after), "{retry_after}");
    let body = problem(response, StatusCode::SERVICE_UNAVAILABLE).await;
    assert_eq!(body["budget"], "global");
    // Nothing was stored.
    let page: Value = global_app
        .get(&format!("/v1/ai/conversations/{id}/messages"), Some(&other))
        .await
        .json()
        .await
        .unwrap();
    assert!(page["items"].as_array().unwrap().is_empty());
}

fn unreachable_provider(name: &str) -> ProviderSettings {
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap()
    };
    serde_json::from_value(json!({
        "name": name,
        "base_url": format!("http://{closed}/v1"),
        "api_key": "sk-test-canary",
        "model": "m",
        "timeout_secs": 1,
    }))
    .unwrap()
}

async fn no_provider_answering_is_503_and_stores_nothing(t: &TestDb) {
    let app = spawn_app_with(t, |s| {
        s.ai.providers = vec![unreachable_provider("nowhere")];
        s.ai.max_attempts = 2;
        s.ai.backoff_base_ms = 1;
    })
    .await;
    let token = app.player("Unlucky").await;
    let id = start(&app, &token).await;

    let response = say(&app, &token, &id, &json!("anyone there?")).await;

    assert!(response.headers().contains_key("retry-after"));
    problem(response, StatusCode::SERVICE_UNAVAILABLE).await;
    let page: Value = app
        .get(&format!("/v1/ai/conversations/{id}/messages"), Some(&token))
        .await
        .json()
        .await
        .unwrap();
    assert!(page["items"].as_array().unwrap().is_empty());
    let spent: Value = app
        .get("/v1/ai/usage", Some(&token))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(spent["spent_today"], 0, "the reservation was released");
}

async fn the_ai_rule_refuses_with_429_and_rate_limit_headers(t: &TestDb) {
    let app = spawn_app_with(t, |s| s.limits.rules.ai.per_minute = Some(2)).await;
    let token = app.player("Chatty").await;
    let id = start(&app, &token).await;
    for _ in 0..2 {
        assert_eq!(
            say(&app, &token, &id, &json!("hi")).await.status(),
            StatusCode::CREATED
        );
    }
    let response = say(&app, &token, &id, &json!("hi")).await;
    assert!(response.headers().contains_key("retry-after"));
    let body = problem(response, StatusCode::TOO_MANY_REQUESTS).await;
    assert_eq!(body["rule"], "ai.minute");
}

async fn health_details_show_each_providers_breaker(t: &TestDb) {
    // Metrics are process-wide and suites run in parallel: a name of this test's own.
    let watched = format!(
        "nowhere-{}",
        &uuid::Uuid::new_v4().simple().to_string()[..8]
    );
    let name = watched.clone();
    let app = spawn_app_with(t, move |s| {
        let mut local: ProviderSettings = serde_json::from_value(json!({
            "name": "embedded", "base_url": "local",
        }))
        .unwrap();
        local.timeout_secs = 5;
        s.ai.providers = vec![unreachable_provider(&name), local];
        s.ai.max_attempts = 1;
        s.ai.breaker.failures = 1;
    })
    .await;
    let token = app.player("Watcher").await;
    let id = start(&app, &token).await;
    // The first provider fails, opens its breaker, and the second answers.
    let answered: Value = say(&app, &token, &id, &json!("hello"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(answered["message"]["provider"], "embedded");

    app.register("Root").await;
    t.db.set_role("root", "admin").await.unwrap();
    let admin: Value = app.login("root").await.json().await.unwrap();
    let admin = admin["access_token"].as_str().unwrap();
    let details: Value = app
        .get("/health/details", Some(admin))
        .await
        .json()
        .await
        .unwrap();
    let providers = &details["ai"]["providers"];
    assert_eq!(providers[0]["name"], watched.as_str());
    assert_eq!(providers[0]["breaker"], "open");
    assert_eq!(providers[0]["total_failures"], 1);
    assert!(providers[0]["probe_in_secs"].as_f64().unwrap() > 0.0);
    assert_eq!(providers[1]["name"], "embedded");
    assert_eq!(providers[1]["breaker"], "closed");
    assert_eq!(details["ai"]["budgets"]["backend"], "in-process");
    assert!(
        !details.to_string().contains("canary"),
        "the key never shows"
    );

    let metrics = app.get("/metrics", None).await.text().await.unwrap();
    let gauge = format!("hearth_ai_breaker_state{{provider=\"{watched}\"}} 1");
    assert!(metrics.contains(&gauge), "breaker gauge");
    assert!(metrics.contains("hearth_ai_calls_total{"), "calls counter");
    assert!(metrics.contains("hearth_ai_spend_total{"), "spend counter");
}
