//! A bounded load run against a running gateway: registers players, then spins the slots from
//! many concurrent tasks for a fixed time and prints one summary line.
//!
//! ```text
//! cargo run --release -p hearth-api --example load -- \
//!     --base http://127.0.0.1:8080 --users 50 --concurrency 32 --seconds 15 [--hot]
//! ```
//! `--hot` sends every spin to one player (the single-wallet worst case). `--login` logs in
//! instead of spinning (bcrypt-bound) while a prober times `GET /health/live` every 10 ms, and
//! reports both. The gateway needs a
//! starting balance large enough for the run and rate limits above the load (see
//! docs/benchmarks.md). Only loopback targets belong here.
#![allow(clippy::print_stdout)]
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "examples fail loudly on what should not happen"
)]

use std::time::{Duration, Instant};

use serde_json::{Value, json};

struct Args {
    base: String,
    users: usize,
    concurrency: usize,
    seconds: u64,
    hot: bool,
    login: bool,
}

fn args() -> Args {
    let mut args = Args {
        base: "http://127.0.0.1:8080".into(),
        users: 50,
        concurrency: 32,
        seconds: 15,
        hot: false,
        login: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().expect("a value after the flag");
        match flag.as_str() {
            "--base" => args.base = value(),
            "--users" => args.users = value().parse().expect("a number"),
            "--concurrency" => args.concurrency = value().parse().expect("a number"),
            "--seconds" => args.seconds = value().parse::<u64>().expect("a number").min(60),
            "--hot" => args.hot = true,
            "--login" => args.login = true,
            other => panic!("unknown flag {other}"),
        }
    }
    args
}

#[tokio::main]
async fn main() {
    let args = args();
    assert!(
        args.base.starts_with("http://127.") || args.base.starts_with("http://localhost"),
        "load runs target loopback only"
    );
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(args.concurrency)
        .build()
        .unwrap();
    let run = uuid::Uuid::new_v4().simple().to_string();
    let password = "Tr0ub4dor&3x";
    let mut tokens = Vec::new();
    for i in 0..args.users {
        let name = format!("load{}_{i}", &run[..8]);
        let name = name.as_str();
        let body =
            json!({"username": name, "email": format!("{name}@example.com"), "password": password});
        let response = client
            .post(format!("{}/v1/auth/register", args.base))
            .json(&body)
            .send()
            .await
            .unwrap();
        assert!(
            response.status().is_success(),
            "register: {}",
            response.status()
        );
        let login: Value = client
            .post(format!("{}/v1/auth/login", args.base))
            .json(&json!({"login": name, "password": password}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        tokens.push(login["access_token"].as_str().unwrap().to_owned());
    }

    let names: Vec<String> = (0..args.users)
        .map(|i| format!("load{}_{i}", &run[..8]))
        .collect();
    let deadline = Instant::now() + Duration::from_secs(args.seconds);
    let started = Instant::now();
    let prober = args.login.then(|| {
        let (client, url) = (client.clone(), format!("{}/health/live", args.base));
        tokio::spawn(async move {
            let mut latencies = Vec::new();
            while Instant::now() < deadline {
                let sent = Instant::now();
                if let Ok(r) = client.get(&url).send().await {
                    let _ = r.bytes().await;
                    latencies.push(sent.elapsed());
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            latencies
        })
    });
    let tasks: Vec<_> = (0..args.concurrency)
        .map(|worker| {
            let path = if args.login {
                "/v1/auth/login"
            } else {
                "/v1/games/slots/spin"
            };
            let (client, tokens, names, url) = (
                client.clone(),
                tokens.clone(),
                names.clone(),
                format!("{}{path}", args.base),
            );
            let (hot, login) = (args.hot, args.login);
            tokio::spawn(async move {
                let mut latencies = Vec::new();
                let mut errors = 0u64;
                let mut n = worker;
                while Instant::now() < deadline {
                    let token = if hot {
                        &tokens[0]
                    } else {
                        &tokens[n % tokens.len()]
                    };
                    n += 1;
                    let sent = Instant::now();
                    let request = if login {
                        let name = &names[n % names.len()];
                        client
                            .post(&url)
                            .json(&json!({"login": name, "password": password}))
                    } else {
                        client
                            .post(&url)
                            .bearer_auth(token)
                            .json(&json!({"bet": 1}))
                    };
                    let response = request.send().await;
                    match response {
                        Ok(r) if r.status().is_success() => {
                            let _ = r.bytes().await;
                            latencies.push(sent.elapsed());
                        }
                        _ => errors += 1,
                    }
                }
                (latencies, errors)
            })
        })
        .collect();
    let mut latencies = Vec::new();
    let mut errors = 0;
    for task in tasks {
        let (mut l, e) = task.await.unwrap();
        latencies.append(&mut l);
        errors += e;
    }
    let elapsed = started.elapsed().as_secs_f64();
    latencies.sort_unstable();
    let pct = |latencies: &[Duration], p: f64| {
        latencies
            .get(((latencies.len() as f64 * p) as usize).min(latencies.len().saturating_sub(1)))
            .map_or(0.0, |d| d.as_secs_f64() * 1000.0)
    };
    if let Some(prober) = prober {
        let mut health = prober.await.unwrap();
        health.sort_unstable();
        println!(
            "logins={} errors={errors} seconds={elapsed:.1} logins_per_s={:.2} login_p50_ms={:.0} login_p99_ms={:.0} health_probes={} health_p50_ms={:.2} health_p99_ms={:.2} concurrency={}",
            latencies.len(),
            latencies.len() as f64 / elapsed,
            pct(&latencies, 0.50),
            pct(&latencies, 0.99),
            health.len(),
            pct(&health, 0.50),
            pct(&health, 0.99),
            args.concurrency
        );
        return;
    }
    println!(
        "spins={} errors={errors} seconds={elapsed:.1} spins_per_s={:.0} p50_ms={:.2} p95_ms={:.2} p99_ms={:.2} users={} concurrency={} hot={}",
        latencies.len(),
        latencies.len() as f64 / elapsed,
        pct(&latencies, 0.50),
        pct(&latencies, 0.95),
        pct(&latencies, 0.99),
        args.users,
        args.concurrency,
        args.hot
    );
}
