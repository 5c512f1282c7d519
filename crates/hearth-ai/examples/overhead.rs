//! The AI client's overhead per call: calls per second and latency through `AiClient::complete`
//! (breaker, retry loop, deadline, JSON in and out, metrics) versus a bare hyper request to the
//! same local chat-completions server (the same connection pool, the body read but not parsed).
//!
//! ```text
//! cargo run --release -p hearth-ai --example overhead -- [calls] [concurrency]
//! ```

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stdout,
    reason = "a benchmark prints and fails loudly"
)]

use std::convert::Infallible;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;

use hearth_ai::{AiClient, ChatRequest, HttpProvider, Message, Role, https_client};

const ANSWER: &str = r#"{"id":"chatcmpl-1","object":"chat.completion","created":1700000000,"model":"bench","choices":[{"index":0,"message":{"role":"assistant","content":"A monad is a monoid in the category of endofunctors."},"finish_reason":"stop"}],"usage":{"prompt_tokens":24,"completion_tokens":12,"total_tokens":36}}"#;

async fn serve(listener: tokio::net::TcpListener) {
    loop {
        let (stream, _) = listener.accept().await.unwrap();
        tokio::spawn(async move {
            let service = service_fn(|request: Request<hyper::body::Incoming>| async move {
                let _ = request.into_body().collect().await;
                Ok::<_, Infallible>(
                    Response::builder()
                        .header("content-type", "application/json")
                        .body(Full::new(Bytes::from_static(ANSWER.as_bytes())))
                        .unwrap(),
                )
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

struct Run {
    per_sec: f64,
    p50: Duration,
    p99: Duration,
    mean: Duration,
}

async fn run<F, Fut>(calls: usize, concurrency: usize, call: F) -> Run
where
    F: Fn() -> Fut + Send + Sync + 'static,
    Fut: Future<Output = ()> + Send,
{
    let call = Arc::new(call);
    let started = Instant::now();
    let mut tasks = Vec::new();
    for worker in 0..concurrency {
        let call = Arc::clone(&call);
        let share = calls / concurrency + usize::from(worker < calls % concurrency);
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::with_capacity(share);
            for _ in 0..share {
                let t = Instant::now();
                call().await;
                latencies.push(t.elapsed());
            }
            latencies
        }));
    }
    let mut latencies = Vec::with_capacity(calls);
    for task in tasks {
        latencies.extend(task.await.unwrap());
    }
    let wall = started.elapsed();
    latencies.sort_unstable();
    let mean = latencies.iter().sum::<Duration>() / u32::try_from(latencies.len()).unwrap();
    Run {
        per_sec: calls as f64 / wall.as_secs_f64(),
        p50: latencies[latencies.len() / 2],
        p99: latencies[latencies.len() * 99 / 100],
        mean,
    }
}

fn main() {
    let mut args = std::env::args().skip(1);
    let calls: usize = args.next().map_or(20_000, |a| a.parse().unwrap());
    let concurrency: usize = args.next().map_or(1, |a| a.parse().unwrap());
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(serve(listener));

        let http = https_client().unwrap();
        let request = ChatRequest {
            messages: vec![
                Message::new(Role::System, "You are a patient, concise tutor."),
                Message::new(Role::User, "What is a monad, in one sentence?"),
            ],
            max_tokens: 128,
        };
        // The bare request sends the body the client would send.
        let body = Bytes::from(
            serde_json::to_vec(&serde_json::json!({
                "model": "bench", "messages": request.messages, "max_tokens": 128, "stream": false
            }))
            .unwrap(),
        );
        let uri: hyper::Uri = format!("http://{addr}/v1/chat/completions")
            .parse()
            .unwrap();
        let bare_http = http.clone();
        let bare = move || {
            let (http, uri, body) = (bare_http.clone(), uri.clone(), body.clone());
            async move {
                let request = Request::post(uri)
                    .header("content-type", "application/json")
                    .body(Full::new(body))
                    .unwrap();
                let response = http.request(request).await.unwrap();
                assert!(response.status().is_success());
                let _ = response.into_body().collect().await.unwrap();
            }
        };
        let client = AiClient::builder()
            .provider(
                HttpProvider::new(
                    "bench",
                    &format!("http://{addr}/v1"),
                    None,
                    "bench",
                    Duration::from_secs(5),
                    http,
                )
                .unwrap(),
            )
            .build();
        let guarded = move || {
            let (client, request) = (client.clone(), request.clone());
            async move {
                let answer = client.complete(&request).await.unwrap();
                assert_eq!(answer.usage.output_tokens, 12);
            }
        };

        // Warm both paths (connections, allocator), then measure alternately.
        let bare = Arc::new(bare);
        let guarded = Arc::new(guarded);
        {
            let (b, g) = (Arc::clone(&bare), Arc::clone(&guarded));
            run(2_000, concurrency, move || b()).await;
            run(2_000, concurrency, move || g()).await;
        }
        println!("{calls} calls, concurrency {concurrency}, loopback HTTP/1.1");
        println!(
            "{:<10} {:>10} {:>10} {:>10} {:>10}",
            "path", "calls/s", "mean µs", "p50 µs", "p99 µs"
        );
        let mut rows = Vec::new();
        for round in 0..2 {
            for (name, result) in [
                ("bare", {
                    let b = Arc::clone(&bare);
                    run(calls, concurrency, move || b()).await
                }),
                ("AiClient", {
                    let g = Arc::clone(&guarded);
                    run(calls, concurrency, move || g()).await
                }),
            ] {
                println!(
                    "{name:<10} {:>10.0} {:>10.1} {:>10.1} {:>10.1}   (round {})",
                    result.per_sec,
                    result.mean.as_secs_f64() * 1e6,
                    result.p50.as_secs_f64() * 1e6,
                    result.p99.as_secs_f64() * 1e6,
                    round + 1
                );
                rows.push((name, result));
            }
        }
        let mean_of = |which: &str| {
            let picked: Vec<&Run> = rows
                .iter()
                .filter(|(n, _)| *n == which)
                .map(|(_, r)| r)
                .collect();
            picked.iter().map(|r| r.mean.as_secs_f64()).sum::<f64>() / picked.len() as f64
        };
        println!(
            "added latency per call (mean of rounds): {:.1} µs",
            (mean_of("AiClient") - mean_of("bare")) * 1e6
        );
    });
}
