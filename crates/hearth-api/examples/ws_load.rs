//! WebSocket load against a running gateway's `GET /v1/ws` (loopback only): many
//! authenticated sockets held idle, `ping`→`pong` throughput, and the latency of one
//! broadcast to many sockets. Prints one summary line per run (broadcast: one per repeat,
//! then a summary). `crates/hearth-api/examples/ws_bench.sh` drives it and the anchor.
//!
//! ```text
//! cargo build --release -p hearth-api --example ws_load
//! target/release/examples/ws_load [--base http://127.0.0.1:8090] [--sources 8]
//!     [--concurrency 256] [--hold 20] idle 100000
//! target/release/examples/ws_load [--base …] echo 100 10
//! target/release/examples/ws_load [--base …] --redis redis://127.0.0.1:6379
//!     [--prefix hearth:] [--repeat 10] broadcast 10000
//! ```
//!
//! - Every socket authenticates as a real client does: an access token (one user, registered
//!   and logged in over HTTP at the start; bcrypt makes a user per socket too slow) sent in the
//!   `auth` message, and the socket counts only once `authenticated` came back.
//! - `--sources K` spreads the client sockets over source addresses 127.0.0.1 … 127.0.0.K,
//!   binding each socket before it connects: one source address has about 28,000 ephemeral
//!   ports (`net.ipv4.ip_local_port_range`), so 100,000 sockets need at least four.
//! - `idle N`: opens N sockets (`--concurrency` handshakes at a time), prints `opened=…` once
//!   every one is authenticated, then holds them for `--hold` seconds, answering the server's
//!   pings as any client must (or the server closes them after its idle timeout), and prints
//!   how many were still open.
//! - `echo C SECS`: C sockets, each sending `{"type":"ping"}` and waiting for
//!   `{"type":"pong"}` before the next (closed loop, one in flight per socket), for SECS
//!   seconds: messages per second and round-trip p50/p99. Every message passes the server's
//!   parsing into a typed message and its per-socket rate limiter; an answer other than
//!   `pong` (a `rate_limited` error) is counted as `refused`, not as a message.
//! - `broadcast N`: N sockets subscribe to `big_wins` (and wait for a `pong` after the
//!   `subscribe`, so the subscription is in place: a socket handles its messages in order).
//!   Then, `--repeat` times, one `big_win` is published through `hearth_realtime::RedisHub`
//!   (the gateway's own publisher: `PUBLISH {prefix}rt:big_wins` in the hub's envelope), as
//!   a round settled on another gateway would; the gateway must run on the same Redis and
//!   prefix. Each socket's latency is from just before the publish to the frame's arrival in
//!   its client task (so it includes the client reading N frames on the same two cores):
//!   p50, p99 and max per repeat, and how many sockets missed it.
#![allow(clippy::print_stdout)]
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "examples fail loudly on what should not happen"
)]

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use futures_util::{SinkExt as _, StreamExt as _};
use hearth_realtime::{Hub as _, RedisHub, topics};
use serde_json::{Value, json};
use tokio::net::{TcpSocket, TcpStream};
use tokio::sync::{Barrier, Semaphore, mpsc};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

// The client's allocator does not matter to the server's figures; mimalloc keeps the client's
// own CPU per frame low on the shared cores.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

type Ws = WebSocketStream<TcpStream>;

/// The client's read buffer per socket. tungstenite's default (128 KiB, zero-filled) would put
/// 12 GiB into the client at 100,000 sockets.
const CLIENT_READ_BUFFER: usize = 4 * 1024;

enum Mode {
    Idle(usize),
    Echo(usize, u64),
    Broadcast(usize),
}

struct Args {
    base: String,
    sources: u8,
    concurrency: usize,
    hold: u64,
    redis: Option<String>,
    prefix: String,
    repeat: usize,
    mode: Mode,
}

fn args() -> Args {
    let mut args = Args {
        base: "http://127.0.0.1:8090".into(),
        sources: 1,
        concurrency: 256,
        hold: 20,
        redis: None,
        prefix: "hearth:".into(),
        repeat: 10,
        mode: Mode::Idle(0),
    };
    let mut positional = Vec::new();
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().expect("a value after the flag");
        match flag.as_str() {
            "--base" => args.base = value(),
            "--sources" => args.sources = value().parse().expect("1 to 254"),
            "--concurrency" => args.concurrency = value().parse().expect("a number"),
            "--hold" => args.hold = value().parse().expect("seconds"),
            "--redis" => args.redis = Some(value()),
            "--prefix" => args.prefix = value(),
            "--repeat" => args.repeat = value().parse().expect("a number"),
            other if other.starts_with("--") => panic!("unknown flag {other}"),
            other => positional.push(other.to_owned()),
        }
    }
    let number = |i: usize| -> u64 {
        positional
            .get(i)
            .expect("usage: ws_load [flags] idle N | echo C SECS | broadcast N")
            .parse()
            .expect("a number")
    };
    args.mode = match positional.first().map(String::as_str) {
        Some("idle") => Mode::Idle(number(1) as usize),
        Some("echo") => Mode::Echo(number(1) as usize, number(2).min(120)),
        Some("broadcast") => Mode::Broadcast(number(1) as usize),
        _ => panic!("usage: ws_load [flags] idle N | echo C SECS | broadcast N"),
    };
    assert!(args.sources >= 1 && args.sources < 255, "--sources 1..254");
    assert!(args.concurrency >= 1, "--concurrency at least 1");
    args
}

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// Registers one player and logs in: the access token every socket uses.
async fn token(base: &str) -> String {
    let client = reqwest::Client::new();
    let run = uuid::Uuid::new_v4().simple().to_string();
    let name = format!("wsbench{}", &run[..8]);
    let password = "Tr0ub4dor&3x";
    let body =
        json!({"username": name, "email": format!("{name}@example.com"), "password": password});
    let response = client
        .post(format!("{base}/v1/auth/register"))
        .json(&body)
        .send()
        .await
        .expect("the gateway answers");
    assert!(
        response.status().is_success(),
        "register: {} {}",
        response.status(),
        response.text().await.unwrap_or_default()
    );
    let login: Value = client
        .post(format!("{base}/v1/auth/login"))
        .json(&json!({"login": name, "password": password}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    login["access_token"]
        .as_str()
        .expect("an access token")
        .to_owned()
}

/// Where sockets connect, and as whom.
struct Target {
    server: SocketAddr,
    url: String,
    auth: String,
    sources: u8,
}

impl Target {
    fn new(base: &str, token: &str, sources: u8) -> Self {
        let authority = base.strip_prefix("http://").expect("an http:// base");
        let authority = authority.trim_end_matches('/');
        Self {
            server: authority.parse().expect("--base http://IP:PORT"),
            url: format!("ws://{authority}/v1/ws"),
            auth: json!({"type": "auth", "token": token}).to_string(),
            sources,
        }
    }

    /// Socket `i`: from source 127.0.0.(1 + i mod sources), upgraded and authenticated.
    async fn open(&self, i: usize) -> Result<Ws, String> {
        let source = Ipv4Addr::new(127, 0, 0, 1 + (i % usize::from(self.sources)) as u8);
        let socket = TcpSocket::new_v4().map_err(|e| format!("socket: {e}"))?;
        socket
            .bind(SocketAddr::new(source.into(), 0))
            .map_err(|e| format!("bind {source}: {e}"))?;
        let tcp = socket
            .connect(self.server)
            .await
            .map_err(|e| format!("connect from {source}: {e}"))?;
        tcp.set_nodelay(true).map_err(|e| e.to_string())?;
        let config = WebSocketConfig::default().read_buffer_size(CLIENT_READ_BUFFER);
        let (mut ws, _) =
            tokio_tungstenite::client_async_with_config(self.url.as_str(), tcp, Some(config))
                .await
                .map_err(|e| format!("upgrade: {e}"))?;
        ws.send(Message::text(self.auth.clone()))
            .await
            .map_err(|e| format!("auth: {e}"))?;
        match next_text(&mut ws).await {
            Some(text) if text.contains(r#""type":"authenticated""#) => Ok(ws),
            Some(text) => Err(format!("auth answered {text}")),
            None => Err("closed before authenticated".to_owned()),
        }
    }
}

/// The next text frame; `None` once the socket ends. Reading also answers the server's pings.
async fn next_text(ws: &mut Ws) -> Option<String> {
    loop {
        match ws.next().await? {
            Ok(Message::Text(text)) => return Some(text.as_str().to_owned()),
            Ok(Message::Close(_)) => return None,
            Ok(_) => {}
            Err(_) => return None,
        }
    }
}

fn percentile(sorted: &[u64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let at = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[at] as f64 / 1000.0
}

/// Counts and remembers the first error of many tasks.
#[derive(Default)]
struct Tally {
    opened: AtomicUsize,
    failed: AtomicUsize,
    open_now: AtomicUsize,
    first_error: std::sync::Mutex<Option<String>>,
}

impl Tally {
    fn fail(&self, error: String) {
        self.failed.fetch_add(1, Ordering::Relaxed);
        self.first_error
            .lock()
            .unwrap()
            .get_or_insert(error.clone());
    }

    fn first_error(&self) -> String {
        self.first_error
            .lock()
            .unwrap()
            .clone()
            .unwrap_or_else(|| "none".into())
    }
}

async fn idle(target: Arc<Target>, n: usize, concurrency: usize, hold: u64) {
    let started = Instant::now();
    let tally = Arc::new(Tally::default());
    let gate = Arc::new(Semaphore::new(concurrency));
    for i in 0..n {
        let (target, tally, gate) = (target.clone(), tally.clone(), gate.clone());
        tokio::spawn(async move {
            let permit = gate.acquire_owned().await.unwrap();
            let opened = target.open(i).await;
            drop(permit);
            match opened {
                Ok(mut ws) => {
                    tally.open_now.fetch_add(1, Ordering::Relaxed);
                    tally.opened.fetch_add(1, Ordering::Relaxed);
                    // Held by reading: tungstenite answers the server's pings while reading.
                    while next_text(&mut ws).await.is_some() {}
                    tally.open_now.fetch_sub(1, Ordering::Relaxed);
                }
                Err(error) => tally.fail(error),
            }
        });
    }
    let mut last_report = Instant::now();
    while tally.opened.load(Ordering::Relaxed) + tally.failed.load(Ordering::Relaxed) < n {
        tokio::time::sleep(Duration::from_millis(50)).await;
        if last_report.elapsed() >= Duration::from_secs(5) {
            eprintln!(
                "[{:.0}s] opened {} failed {}",
                started.elapsed().as_secs_f64(),
                tally.opened.load(Ordering::Relaxed),
                tally.failed.load(Ordering::Relaxed)
            );
            last_report = Instant::now();
        }
    }
    let secs = started.elapsed().as_secs_f64();
    let opened = tally.opened.load(Ordering::Relaxed);
    println!(
        "opened={opened} failed={} secs={secs:.2} per_s={:.0} sources={} client_rss_kib={} first_error={:?}",
        tally.failed.load(Ordering::Relaxed),
        opened as f64 / secs,
        target.sources,
        rss_kib(),
        tally.first_error()
    );
    tokio::time::sleep(Duration::from_secs(hold)).await;
    println!(
        "held_secs={hold} still_open={}",
        tally.open_now.load(Ordering::Relaxed)
    );
}

async fn echo(target: Arc<Target>, connections: usize, secs: u64) {
    let barrier = Arc::new(Barrier::new(connections + 1));
    let mut tasks = Vec::with_capacity(connections);
    for i in 0..connections {
        let (target, barrier) = (target.clone(), barrier.clone());
        tasks.push(tokio::spawn(async move {
            let opened = target.open(i).await;
            barrier.wait().await;
            let mut ws = opened.expect("an authenticated socket");
            let ping = Message::text(r#"{"type":"ping"}"#);
            let deadline = Instant::now() + Duration::from_secs(secs);
            let mut rtt_us: Vec<u64> = Vec::with_capacity(1 << 16);
            let mut refused = 0u64;
            loop {
                let sent = Instant::now();
                if ws.send(ping.clone()).await.is_err() {
                    break;
                }
                let Some(answer) = next_text(&mut ws).await else {
                    break;
                };
                let now = Instant::now();
                if answer == r#"{"type":"pong"}"# {
                    rtt_us.push((now - sent).as_micros() as u64);
                } else {
                    refused += 1;
                }
                if now >= deadline {
                    break;
                }
            }
            let _ = ws.close(None).await;
            (rtt_us, refused)
        }));
    }
    barrier.wait().await;
    let started = Instant::now();
    let mut rtts = Vec::new();
    let mut refused = 0;
    for task in tasks {
        let (mut r, f) = task.await.unwrap();
        rtts.append(&mut r);
        refused += f;
    }
    let secs = started.elapsed().as_secs_f64();
    rtts.sort_unstable();
    println!(
        "echo conns={connections} secs={secs:.2} msgs={} msgs_per_s={:.0} rtt_p50_ms={:.3} rtt_p99_ms={:.3} refused={refused}",
        rtts.len(),
        rtts.len() as f64 / secs,
        percentile(&rtts, 0.50),
        percentile(&rtts, 0.99)
    );
}

async fn broadcast(target: Arc<Target>, args: &Args, n: usize) {
    let url = args.redis.as_deref().expect("broadcast needs --redis URL");
    assert!(
        url.starts_with("redis://127.") || url.starts_with("redis://localhost"),
        "loopback Redis only"
    );
    let client = redis::Client::open(url).expect("a Redis URL");
    let conn = redis::aio::ConnectionManager::new(client.clone())
        .await
        .expect("Redis answers");
    let hub = RedisHub::new(conn, client, args.prefix.clone());

    let started = Instant::now();
    let tally = Arc::new(Tally::default());
    let gate = Arc::new(Semaphore::new(args.concurrency));
    // (repeat, arrival) from every socket.
    let (arrivals, mut arrived) = mpsc::unbounded_channel::<(u64, Instant)>();
    let subscribe = Message::text(r#"{"type":"subscribe","topics":["big_wins"]}"#);
    let ping = Message::text(r#"{"type":"ping"}"#);
    for i in 0..n {
        let (target, tally, gate, arrivals) = (
            target.clone(),
            tally.clone(),
            gate.clone(),
            arrivals.clone(),
        );
        let (subscribe, ping) = (subscribe.clone(), ping.clone());
        tokio::spawn(async move {
            let permit = gate.acquire_owned().await.unwrap();
            let opened = async {
                let mut ws = target.open(i).await?;
                ws.send(subscribe).await.map_err(|e| e.to_string())?;
                ws.send(ping).await.map_err(|e| e.to_string())?;
                match next_text(&mut ws).await {
                    Some(text) if text == r#"{"type":"pong"}"# => Ok(ws),
                    other => Err(format!("subscribe answered {other:?}")),
                }
            }
            .await;
            drop(permit);
            let mut ws = match opened {
                Ok(ws) => ws,
                Err(error) => return tally.fail(error),
            };
            tally.opened.fetch_add(1, Ordering::Relaxed);
            while let Some(text) = next_text(&mut ws).await {
                let now = Instant::now();
                let Ok(message) = serde_json::from_str::<Value>(&text) else {
                    continue;
                };
                if message["type"] == "big_win"
                    && let Some(seq) = message["win"].as_u64()
                {
                    let _ = arrivals.send((seq, now));
                }
            }
        });
    }
    drop(arrivals);
    while tally.opened.load(Ordering::Relaxed) + tally.failed.load(Ordering::Relaxed) < n {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let subscribed = tally.opened.load(Ordering::Relaxed);
    println!(
        "subscribed={subscribed} failed={} secs={:.2} first_error={:?}",
        tally.failed.load(Ordering::Relaxed),
        started.elapsed().as_secs_f64(),
        tally.first_error()
    );
    assert!(subscribed > 0, "no socket subscribed");
    // Let the opening settle (the server's first pings, the client's tasks parking).
    tokio::time::sleep(Duration::from_secs(2)).await;

    let (mut p50s, mut p99s, mut maxes) = (Vec::new(), Vec::new(), Vec::new());
    let mut all = Vec::new();
    for repeat in 0..args.repeat {
        // The win tells the repeats apart.
        let seq = 1_000_000 + repeat as u64;
        let payload = json!({"type": "big_win", "username": "wsbench", "game": "slots", "bet": 1, "win": seq})
            .to_string();
        let published = Instant::now();
        hub.publish(topics::BIG_WINS, &payload)
            .await
            .expect("Redis takes the publish");
        let mut latencies_us = Vec::with_capacity(subscribed);
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while latencies_us.len() < subscribed {
            match tokio::time::timeout_at(deadline, arrived.recv()).await {
                Ok(Some((s, at))) if s == seq => {
                    latencies_us.push(at.saturating_duration_since(published).as_micros() as u64);
                }
                Ok(Some(_)) => {}
                Ok(None) | Err(_) => break,
            }
        }
        latencies_us.sort_unstable();
        let (p50, p99) = (
            percentile(&latencies_us, 0.50),
            percentile(&latencies_us, 0.99),
        );
        let max = latencies_us.last().map_or(f64::NAN, |&m| m as f64 / 1000.0);
        println!(
            "broadcast repeat={repeat} sockets={subscribed} received={} missed={} p50_ms={p50:.2} p99_ms={p99:.2} max_ms={max:.2}",
            latencies_us.len(),
            subscribed - latencies_us.len()
        );
        p50s.push((p50 * 1000.0) as u64);
        p99s.push((p99 * 1000.0) as u64);
        maxes.push((max * 1000.0) as u64);
        all.extend(latencies_us);
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    p50s.sort_unstable();
    p99s.sort_unstable();
    maxes.sort_unstable();
    all.sort_unstable();
    println!(
        "broadcast sockets={subscribed} repeats={} p50_ms_median={:.2} p99_ms_median={:.2} p99_ms_worst={:.2} max_ms_median={:.2} all_p99_ms={:.2} missed_total={}",
        args.repeat,
        percentile(&p50s, 0.5),
        percentile(&p99s, 0.5),
        p99s.last().map_or(f64::NAN, |&m| m as f64 / 1000.0),
        percentile(&maxes, 0.5),
        percentile(&all, 0.99),
        subscribed * args.repeat - all.len()
    );
}

#[tokio::main]
async fn main() {
    let args = args();
    assert!(
        args.base.starts_with("http://127."),
        "load runs target loopback only"
    );
    let token = token(&args.base).await;
    let target = Arc::new(Target::new(&args.base, &token, args.sources));
    match args.mode {
        Mode::Idle(n) => idle(target, n, args.concurrency, args.hold).await,
        Mode::Echo(c, secs) => echo(target, c, secs).await,
        Mode::Broadcast(n) => broadcast(target, &args, n).await,
    }
}
