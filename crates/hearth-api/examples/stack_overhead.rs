//! What the full middleware stack costs: one handler served twice on loopback, bare and
//! behind `hearth_api::with_stack` (request id, compression, problem+json, the request span
//! with OpenTelemetry ids, the JSON access log, HTTP metrics, security headers, the rate
//! limiter, timeout, body limits, panic recovery), loaded alternately by the same client in the
//! same run. Prints each round and the median of the rounds' throughput ratios.
//!
//! ```text
//! cargo run --release -p hearth-api --example stack_overhead -- \
//!     [--seconds 1] [--concurrency 32] [--rounds 15] [--log-level info]
//! ```
//! A round loads bare and full back to back, for `--seconds` each, taking turns at which goes
//! first, and its figure is the ratio of the two. Shared hosts change speed from one second to
//! the next (bare rates here moved between 40k and 77k req/s in one minute), so short rounds
//! paired this way, and the median of their ratios, keep that drift out of the figure where
//! long rounds and a ratio of medians did not.
//! `--log-level off` leaves spans and log lines out, to tell their cost from the layers'.
//! `ONLY=bare` or `ONLY=full` in the environment loads one router only, for a profiler.
//! `ONLY=in-process` calls both routers in this process without sockets or a client, taking
//! turns for `--rounds` rounds of `--seconds`, and prints nanoseconds per request: the server
//! side's own cost. The fastest round of each is the steadiest figure on a shared host, steady
//! enough to tell a change of a few tens of nanoseconds. `TASKS=2` calls from two tasks at
//! once (threads sharing the stack's state); `ROUTER=full` calls the full stack only, for a
//! profiler.
//! The log lines are JSON, formatted in full and written to a sink, so the logging cost is in
//! the figure but the terminal is not. Client and server share the machine, as they do in
//! every figure in docs/benchmarks.md.
#![allow(clippy::print_stdout)]
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "examples fail loudly on what should not happen"
)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use axum::Router;
use axum::routing::get;
use hearth_limits::{RuleSettings, RuleTable};
use hearth_observability::{LogFormat, LogSettings, Service, TelemetrySettings};

// The allocator the gateway binary ships with, so the figure is the shipped one.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

struct Args {
    seconds: f64,
    concurrency: usize,
    rounds: usize,
    level: String,
}

fn args() -> Args {
    let mut args = Args {
        seconds: 1.0,
        concurrency: 32,
        rounds: 15,
        level: "info".into(),
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().expect("a value after the flag");
        match flag.as_str() {
            "--seconds" => {
                args.seconds = value().parse::<f64>().expect("a number").clamp(0.1, 60.0)
            }
            "--concurrency" => args.concurrency = value().parse().expect("a number"),
            "--rounds" => args.rounds = value().parse().expect("a number"),
            "--log-level" => args.level = value(),
            other => panic!("unknown flag {other}"),
        }
    }
    args
}

async fn hello() -> &'static str {
    "hello"
}

async fn serve(router: Router) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let service = router.into_make_service_with_connect_info::<SocketAddr>();
    tokio::spawn(async move { axum::serve(listener, service).await.unwrap() });
    addr
}

/// This process's CPU time so far (user and system, all threads) in clock ticks, on Linux.
fn cpu_ticks() -> Option<u64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // The fields after the command name, which is in parentheses and may hold spaces.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    Some(fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?)
}

/// What one `load` measured.
struct Load {
    /// Requests per second.
    rate: f64,
    /// This process's CPU time (client and server) per request, in µs, where `/proc` tells.
    cpu_us: Option<f64>,
}

/// What `concurrency` keep-alive clients get from `url` in `seconds`.
async fn load(url: &str, concurrency: usize, seconds: f64) -> Load {
    let ticks = cpu_ticks();
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(concurrency)
        .build()
        .unwrap();
    let done = Arc::new(AtomicU64::new(0));
    let deadline = Instant::now() + Duration::from_secs_f64(seconds);
    let started = Instant::now();
    let tasks: Vec<_> = (0..concurrency)
        .map(|_| {
            let (client, done, url) = (client.clone(), done.clone(), url.to_owned());
            tokio::spawn(async move {
                while Instant::now() < deadline {
                    let response = client.get(&url).send().await.unwrap();
                    assert!(response.status().is_success(), "{}", response.status());
                    response.bytes().await.unwrap();
                    done.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    #[allow(clippy::cast_precision_loss)]
    let done = done.load(Ordering::Relaxed).max(1) as f64;
    let cpu_us = match (ticks, cpu_ticks()) {
        // `/proc` counts in USER_HZ ticks, 10 ms each on Linux.
        #[allow(clippy::cast_precision_loss)]
        (Some(a), Some(b)) => Some((b - a) as f64 * 10_000.0 / done),
        _ => None,
    };
    Load {
        rate: done / started.elapsed().as_secs_f64(),
        cpu_us,
    }
}

/// `ONLY=in-process`: rounds of `bare` and `full` taking turns, called in this process.
async fn in_process_rounds(args: &Args, route: &'static str, bare: Router, full: Router) {
    let tasks = std::env::var("TASKS").map_or(1, |t| t.parse().expect("a number"));
    if std::env::var("ROUTER").as_deref() == Ok("full") {
        let ns = in_process(full, route, args.seconds, tasks).await;
        println!("full stack {ns:.0} ns");
        return;
    }
    let mut costs = Vec::new();
    let mut fastest = (f64::MAX, f64::MAX);
    for round in 1..=args.rounds {
        let (b, f) = if round % 2 == 1 {
            let b = in_process(bare.clone(), route, args.seconds, tasks).await;
            (
                b,
                in_process(full.clone(), route, args.seconds, tasks).await,
            )
        } else {
            let f = in_process(full.clone(), route, args.seconds, tasks).await;
            (
                in_process(bare.clone(), route, args.seconds, tasks).await,
                f,
            )
        };
        println!(
            "round {round}: bare {b:.0} ns, full stack {f:.0} ns, the stack {:.0} ns",
            f - b
        );
        costs.push(f - b);
        fastest = (fastest.0.min(b), fastest.1.min(f));
    }
    println!(
        "median: the stack costs {:.0} ns per request; fastest rounds: bare {:.0} ns, full stack {:.0} ns, the stack {:.0} ns",
        median(costs),
        fastest.0,
        fastest.1,
        fastest.1 - fastest.0
    );
}

/// Nanoseconds per request through `router` for each of `tasks` tasks calling at once without
/// sockets (on this runtime's worker threads): the server side's own cost, steady enough to
/// tell small changes apart, and with more than one task, what threads sharing its state cost.
async fn in_process(router: Router, route: &'static str, seconds: f64, tasks: u32) -> f64 {
    let deadline = Instant::now() + Duration::from_secs_f64(seconds);
    let started = Instant::now();
    let runs: Vec<_> = (0..tasks)
        .map(|_| tokio::spawn(in_process_task(router.clone(), route, deadline)))
        .collect();
    let mut done = 0_u32;
    for run in runs {
        done += run.await.unwrap();
    }
    started.elapsed().as_secs_f64() * f64::from(tasks) * 1e9 / f64::from(done)
}

async fn in_process_task(mut router: Router, route: &str, deadline: Instant) -> u32 {
    use tower::{Service as _, ServiceExt};

    let peer: SocketAddr = "127.0.0.1:40000".parse().unwrap();
    let mut done = 0_u32;
    while Instant::now() < deadline {
        for _ in 0..256 {
            let mut request = axum::http::Request::get(route)
                .header("host", "127.0.0.1")
                .header("accept", "*/*")
                .body(axum::body::Body::empty())
                .unwrap();
            request
                .extensions_mut()
                .insert(axum::extract::ConnectInfo(peer));
            let response = ServiceExt::<axum::extract::Request>::ready(&mut router)
                .await
                .unwrap()
                .call(request)
                .await
                .unwrap();
            assert!(response.status().is_success());
            axum::body::to_bytes(response.into_body(), 1024)
                .await
                .unwrap();
        }
        done += 256;
    }
    done
}

/// A CPU figure for a round line.
fn cpu(load: &Load) -> String {
    load.cpu_us
        .map_or_else(|| "CPU n/a".to_owned(), |us| format!("{us:.1} µs CPU each"))
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

#[tokio::main]
async fn main() {
    let args = args();
    let log = LogSettings {
        format: Some(LogFormat::Json),
        level: args.level.clone(),
    };
    let service = Service {
        name: "stack-overhead",
        version: env!("CARGO_PKG_VERSION"),
        production: true,
    };
    let (dispatch, _guard) =
        hearth_observability::dispatch(&log, &TelemetrySettings::default(), service, std::io::sink)
            .unwrap();
    tracing::dispatcher::set_global_default(dispatch).unwrap();

    let dir = tempfile::tempdir().unwrap();
    let mut settings = hearth_api::Settings::default();
    settings.database.url = format!("sqlite://{}", dir.path().join("bench.db").display()).into();
    // The limiter runs on every request but never refuses one.
    let open = RuleSettings {
        per_minute: Some(1_000_000_000),
        per_hour: None,
    };
    settings.limits.rules = RuleTable {
        ip: open,
        user: open,
        login: open,
        signup: open,
        game: open,
        ai: open,
        websocket: open,
    };
    let app = hearth_api::build(settings).await.unwrap();

    let route = "/v1/bench";
    let bare = serve(Router::new().route(route, get(hello))).await;
    let full = serve(hearth_api::with_stack(
        Router::new().route(route, get(hello)),
        app.state.clone(),
    ))
    .await;
    let (bare_url, full_url) = (
        format!("http://{bare}{route}"),
        format!("http://{full}{route}"),
    );
    if std::env::var("ONLY").as_deref() == Ok("in-process") {
        let (bare, full) = (
            Router::new().route(route, get(hello)).with_state(()),
            hearth_api::with_stack(Router::new().route(route, get(hello)), app.state.clone())
                .with_state(()),
        );
        in_process_rounds(&args, route, bare, full).await;
        return;
    }
    if let Ok(only) = std::env::var("ONLY") {
        let url = if only == "bare" { &bare_url } else { &full_url };
        let rate = load(url, args.concurrency, args.seconds).await.rate;
        println!("{only}: {rate:.0} req/s");
        return;
    }
    // Warm both: connections, allocator, metric handles.
    load(&bare_url, args.concurrency, 1.0).await;
    load(&full_url, args.concurrency, 1.0).await;

    let (mut bare_rates, mut full_rates, mut ratios) = (Vec::new(), Vec::new(), Vec::new());
    for round in 1..=args.rounds {
        let bare = load(&bare_url, args.concurrency, args.seconds);
        let full = load(&full_url, args.concurrency, args.seconds);
        let (bare, full) = if round % 2 == 1 {
            let bare = bare.await;
            (bare, full.await)
        } else {
            let full = full.await;
            (bare.await, full)
        };
        let (b, f) = (bare.rate, full.rate);
        println!(
            "round {round}: bare {b:.0} req/s ({}), full stack {f:.0} req/s ({}), ratio {:.3}",
            cpu(&bare),
            cpu(&full),
            f / b
        );
        bare_rates.push(b);
        full_rates.push(f);
        ratios.push(f / b);
    }
    let (b, f, kept) = (median(bare_rates), median(full_rates), median(ratios));
    println!(
        "median: bare {b:.0} req/s, full stack {f:.0} req/s; the stack keeps {:.1} % of bare throughput (costs {:.1} %)",
        100.0 * kept,
        100.0 * (1.0 - kept)
    );
}
