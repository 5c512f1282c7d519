//! Campaign page reads per second with and without the read cache on PostgreSQL, and list
//! latency at 100 000 children, through the real gateway on a loopback port.
//!
//! ```text
//! HEARTH_TEST_DATABASE_URL=postgres://postgres@127.0.0.1:5432/test \
//!     cargo run --release -p hearth-api --example campaigns_bench -- \
//!     [--concurrency 16] [--seconds 10] [--redis redis://127.0.0.1:6379]
//! ```
//! Each run uses a fresh schema (dropped at the end). The gateway and the load generator share
//! the machine, so the figures are for comparing the two modes on one host, not capacity.
#![allow(clippy::print_stdout)]
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "examples fail loudly on what should not happen"
)]

use std::time::{Duration, Instant};

use hearth_api::Settings;
use hearth_limits::{RuleSettings, RuleTable};
use secrecy::SecretString;
use serde_json::{Value, json};

struct Args {
    concurrency: usize,
    seconds: u64,
    redis: Option<String>,
}

fn args() -> Args {
    let mut args = Args {
        concurrency: 16,
        seconds: 10,
        redis: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().expect("a value after the flag");
        match flag.as_str() {
            "--concurrency" => args.concurrency = value().parse().expect("a number"),
            "--seconds" => args.seconds = value().parse::<u64>().expect("a number").min(60),
            "--redis" => args.redis = Some(value()),
            other => panic!("unknown flag {other}"),
        }
    }
    args
}

fn settings(t: &hearth_test_support::TestDb, cache: bool, redis: Option<&str>) -> Settings {
    let mut settings = Settings {
        database: t.settings.clone(),
        ..Settings::default()
    };
    settings.auth.bcrypt_cost = 4;
    settings.auth.jwt_secret =
        SecretString::from("bench-secret-0123456789abcdef0123456789".to_owned());
    let generous = RuleSettings {
        per_minute: Some(100_000_000),
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
    settings.log.level = "warn".into();
    settings.campaigns.cache = cache;
    settings.campaigns.max_children_per_campaign = 200_000;
    if let Some(url) = redis {
        settings.redis.url = Some(SecretString::from(url.to_owned()));
        settings.redis.key_prefix = format!("hearth-bench:{}:", uuid::Uuid::new_v4().simple());
    }
    settings
}

struct Server {
    base: String,
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
}

async fn start(t: &hearth_test_support::TestDb, settings: Settings) -> Server {
    let db = hearth_storage::connect(&t.settings).await.unwrap();
    let app = hearth_api::build_with(db, settings).await.unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let (stop, rx) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(hearth_api::serve(listener, app, async move {
        let _ = rx.await;
    }));
    Server { base, stop, task }
}

async fn token(client: &reqwest::Client, base: &str, name: &str) -> String {
    let password = "Tr0ub4dor&3x";
    let body =
        json!({"username": name, "email": format!("{name}@example.com"), "password": password});
    client
        .post(format!("{base}/v1/auth/register"))
        .json(&body)
        .send()
        .await
        .unwrap();
    let tokens: Value = client
        .post(format!("{base}/v1/auth/login"))
        .json(&json!({"login": name, "password": password}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    tokens["access_token"].as_str().unwrap().to_owned()
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[index].as_secs_f64() * 1000.0
}

/// GETs `path` from `concurrency` tasks for `seconds`; returns requests/s, p50 and p99 (ms).
async fn hammer(
    client: &reqwest::Client,
    url: String,
    token: &str,
    concurrency: usize,
    seconds: u64,
) -> (f64, f64, f64) {
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..concurrency {
        let (client, url, token) = (client.clone(), url.clone(), token.to_owned());
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            while Instant::now() < deadline {
                let start = Instant::now();
                let response = client.get(&url).bearer_auth(&token).send().await.unwrap();
                assert_eq!(response.status(), 200);
                response.bytes().await.unwrap();
                latencies.push(start.elapsed());
            }
            latencies
        }));
    }
    let mut all = Vec::new();
    for task in tasks {
        all.extend(task.await.unwrap());
    }
    let elapsed = started.elapsed().as_secs_f64();
    all.sort();
    (
        all.len() as f64 / elapsed,
        percentile(&all, 0.5),
        percentile(&all, 0.99),
    )
}

#[tokio::main]
async fn main() {
    let args = args();
    let t = hearth_test_support::postgres_db()
        .await
        .expect("set HEARTH_TEST_DATABASE_URL to a PostgreSQL database");
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(args.concurrency)
        .build()
        .unwrap();

    // One campaign with a page of 20 NPCs (the page read) and a player who reads it.
    let server = start(&t, settings(&t, false, None)).await;
    let gm = token(&client, &server.base, "benchgm").await;
    let player = token(&client, &server.base, "benchplayer").await;
    let campaign: Value = client
        .post(format!("{}/v1/campaigns", server.base))
        .bearer_auth(&gm)
        .json(&json!({"name": "Bench"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = campaign["id"].as_str().unwrap().to_owned();
    client
        .post(format!("{}/v1/campaigns/{id}/members", server.base))
        .bearer_auth(&gm)
        .json(&json!({"username": "benchplayer", "role": "player"}))
        .send()
        .await
        .unwrap();
    for i in 0..20 {
        let body = json!({"name": format!("NPC {i}"), "description": "<p>A face in the crowd.</p>", "tags": ["crowd"], "stats": {"hp": i}});
        client
            .post(format!("{}/v1/campaigns/{id}/npcs", server.base))
            .bearer_auth(&gm)
            .json(&body)
            .send()
            .await
            .unwrap();
    }
    let _ = server.stop.send(());
    server.task.await.unwrap().unwrap();

    let modes: Vec<(&str, bool, Option<&str>)> = match &args.redis {
        Some(url) => vec![
            ("no cache", false, None),
            ("in-process cache", true, None),
            ("Redis cache", true, Some(url.as_str())),
        ],
        None => vec![("no cache", false, None), ("in-process cache", true, None)],
    };
    println!(
        "page reads (GET /v1/campaigns/{{id}}/npcs?limit=20 as a player), {} tasks, {} s each:",
        args.concurrency, args.seconds
    );
    for (name, cache, redis) in modes {
        let server = start(&t, settings(&t, cache, redis)).await;
        let url = format!("{}/v1/campaigns/{id}/npcs?limit=20", server.base);
        // Warm-up: connections, the first page into the cache.
        hammer(&client, url.clone(), &player, args.concurrency, 1).await;
        let (rps, p50, p99) = hammer(&client, url, &player, args.concurrency, args.seconds).await;
        println!("  {name:<17} {rps:>8.0} req/s   p50 {p50:>6.2} ms   p99 {p99:>6.2} ms");
        let _ = server.stop.send(());
        server.task.await.unwrap().unwrap();
    }

    // 100 000 NPCs in the campaign (half gm_only), seeded in SQL, then pages read uncached.
    hearth_test_support::seed_npcs(&t, uuid::Uuid::parse_str(&id).unwrap(), 100_000).await;
    let server = start(&t, settings(&t, false, None)).await;
    println!("list latency at 100 020 NPCs, uncached, sequential requests:");
    for (who, token, limit) in [("gm", &gm, 20), ("gm", &gm, 100), ("player", &player, 20)] {
        let mut latencies = Vec::new();
        let mut cursor: Option<String> = None;
        // 200 consecutive pages, then the same again from the start.
        for _ in 0..2 {
            for _ in 0..200 {
                let url = match &cursor {
                    Some(c) => format!(
                        "{}/v1/campaigns/{id}/npcs?limit={limit}&cursor={c}",
                        server.base
                    ),
                    None => format!("{}/v1/campaigns/{id}/npcs?limit={limit}", server.base),
                };
                let start = Instant::now();
                let page: Value = client
                    .get(&url)
                    .bearer_auth(token)
                    .send()
                    .await
                    .unwrap()
                    .json()
                    .await
                    .unwrap();
                latencies.push(start.elapsed());
                cursor = page["next_cursor"].as_str().map(str::to_owned);
            }
            cursor = None;
        }
        latencies.sort();
        println!(
            "  {who:<6} limit {limit:>3}: p50 {:>6.2} ms   p99 {:>6.2} ms   ({} pages)",
            percentile(&latencies, 0.5),
            percentile(&latencies, 0.99),
            latencies.len()
        );
    }
    let _ = server.stop.send(());
    server.task.await.unwrap().unwrap();
    t.cleanup().await;
}
