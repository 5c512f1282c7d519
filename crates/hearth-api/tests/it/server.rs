//! The HTTP server over raw TCP: the header read timeout, the idle timeout, the header cap
//! and shutdown with idle and half-open connections.

use std::time::Duration;

use hearth_api::Settings;
use hearth_test_support::sqlite_db;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::Instant;

use crate::support::{TestApp, spawn_app_with};

const LIVE: &[u8] = b"GET /health/live HTTP/1.1\r\nHost: hearth\r\n\r\n";

async fn spawn(tweak: impl FnOnce(&mut Settings)) -> (TestApp, hearth_test_support::TestDb) {
    let t = sqlite_db().await;
    let app = spawn_app_with(&t, tweak).await;
    (app, t)
}

/// Reads one response: its status and body (by `Content-Length`). Nothing may follow it.
async fn read_response(stream: &mut TcpStream) -> (u16, String) {
    read_responses(stream, 1).await.remove(0)
}

/// How long a read waits for the server's next bytes before the test fails, well under the
/// default idle timeout, so that a missing answer fails here and says so.
const ANSWER_WAIT: Duration = Duration::from_secs(15);

/// Reads `count` responses in order, with the bytes one read returns past a response kept for
/// the next: the answers to pipelined requests may arrive in one segment.
async fn read_responses(stream: &mut TcpStream, count: usize) -> Vec<(u16, String)> {
    let mut buf = Vec::new();
    let mut responses = Vec::with_capacity(count);
    while responses.len() < count {
        let head_end = loop {
            if let Some(at) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break at + 4;
            }
            read_more(stream, &mut buf, "before a whole head").await;
        };
        let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
        let status: u16 = head[9..12].parse().unwrap();
        let length: usize = head
            .lines()
            .find_map(|line| {
                let (name, value) = line.split_once(':')?;
                name.eq_ignore_ascii_case("content-length")
                    .then(|| value.trim().parse().unwrap())
            })
            .unwrap_or(0);
        while buf.len() < head_end + length {
            read_more(stream, &mut buf, "mid-body").await;
        }
        let body = String::from_utf8_lossy(&buf[head_end..head_end + length]).to_string();
        responses.push((status, body));
        buf.drain(..head_end + length);
    }
    assert!(
        buf.is_empty(),
        "bytes past the last expected response: {}",
        String::from_utf8_lossy(&buf)
    );
    responses
}

/// Appends the next bytes the server sends; fails if it closes or stays silent.
async fn read_more(stream: &mut TcpStream, buf: &mut Vec<u8>, waiting_for: &str) {
    let mut chunk = [0u8; 4096];
    let n = tokio::time::timeout(ANSWER_WAIT, stream.read(&mut chunk))
        .await
        .unwrap_or_else(|_| {
            panic!(
                "no bytes within {ANSWER_WAIT:?} ({waiting_for}); so far: {}",
                String::from_utf8_lossy(buf)
            )
        })
        .unwrap();
    assert!(
        n > 0,
        "closed {waiting_for}; so far: {}",
        String::from_utf8_lossy(buf)
    );
    buf.extend_from_slice(&chunk[..n]);
}

/// How long until the server closes the connection (EOF or reset), at most `limit`.
async fn closed_after(stream: &mut TcpStream, limit: Duration) -> Option<Duration> {
    let start = Instant::now();
    let mut chunk = [0u8; 1024];
    tokio::time::timeout(limit, async {
        loop {
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    })
    .await
    .ok()
    .map(|()| start.elapsed())
}

#[tokio::test]
async fn a_connection_that_sends_half_a_header_block_is_closed_after_the_header_read_timeout() {
    let (app, _t) = spawn(|s| {
        s.server.header_read_timeout_secs = 1;
        s.server.idle_timeout_secs = 30;
    })
    .await;
    let mut half = TcpStream::connect(app.addr).await.unwrap();
    half.write_all(b"GET /health/live HTTP/1.1\r\nHost: hear")
        .await
        .unwrap();
    let mut silent = TcpStream::connect(app.addr).await.unwrap();
    let closed = closed_after(&mut half, Duration::from_secs(5)).await;
    let closed = closed.expect("the half-open connection is closed");
    assert!(
        closed >= Duration::from_millis(800),
        "not before the timeout: {closed:?}"
    );
    let silent_closed = closed_after(&mut silent, Duration::from_secs(2)).await;
    assert!(
        silent_closed.is_some(),
        "a connection that sends nothing is closed too"
    );
    app.stop().await.unwrap();
}

#[tokio::test]
async fn an_idle_keep_alive_connection_is_closed_after_the_idle_timeout_not_the_header_one() {
    let (app, _t) = spawn(|s| {
        s.server.header_read_timeout_secs = 1;
        s.server.idle_timeout_secs = 3;
    })
    .await;
    let mut stream = TcpStream::connect(app.addr).await.unwrap();
    stream.write_all(LIVE).await.unwrap();
    assert_eq!(read_response(&mut stream).await.0, 200);
    // Idle for longer than the header read timeout: still open, and kept alive.
    tokio::time::sleep(Duration::from_millis(1_600)).await;
    stream.write_all(LIVE).await.unwrap();
    assert_eq!(read_response(&mut stream).await.0, 200);
    let idle = closed_after(&mut stream, Duration::from_secs(8))
        .await
        .expect("the idle connection is closed");
    // The idle clock starts when the answer is written, a moment before it is read here.
    assert!(
        (Duration::from_millis(2_500)..Duration::from_millis(6_000)).contains(&idle),
        "closed after the idle timeout: {idle:?}"
    );
    app.stop().await.unwrap();
}

#[tokio::test]
async fn a_header_block_over_the_cap_gets_431_and_the_connection_is_not_kept() {
    let (app, _t) = spawn(|_| {}).await;
    // Under the 32 KiB default: served.
    let mut stream = TcpStream::connect(app.addr).await.unwrap();
    let fits = format!(
        "GET /health/live HTTP/1.1\r\nHost: hearth\r\nX-Filler: {}\r\n\r\n",
        "a".repeat(20 * 1024)
    );
    stream.write_all(fits.as_bytes()).await.unwrap();
    assert_eq!(read_response(&mut stream).await.0, 200);

    let mut stream = TcpStream::connect(app.addr).await.unwrap();
    let too_big = format!(
        "GET /health/live HTTP/1.1\r\nHost: hearth\r\nX-Filler: {}\r\n\r\n",
        "a".repeat(40 * 1024)
    );
    // The server may close before reading it all; a write error is part of the answer.
    let _ = stream.write_all(too_big.as_bytes()).await;
    let (status, _) = read_response(&mut stream).await;
    assert_eq!(status, 431);
    assert!(
        closed_after(&mut stream, Duration::from_secs(2))
            .await
            .is_some(),
        "the connection is closed after the 431"
    );
    app.stop().await.unwrap();
}

#[tokio::test]
async fn a_smaller_header_cap_is_honoured() {
    let (app, _t) = spawn(|s| s.server.max_header_bytes = 8 * 1024).await;
    let mut stream = TcpStream::connect(app.addr).await.unwrap();
    let request = format!(
        "GET /health/live HTTP/1.1\r\nHost: hearth\r\nX-Filler: {}\r\n\r\n",
        "a".repeat(10 * 1024)
    );
    let _ = stream.write_all(request.as_bytes()).await;
    assert_eq!(read_response(&mut stream).await.0, 431);
    app.stop().await.unwrap();
}

#[tokio::test]
async fn shutdown_closes_idle_and_half_open_connections_at_once() {
    let (mut app, _t) = spawn(|s| {
        s.server.drain_delay_secs = 0;
        s.server.shutdown_timeout_secs = 30;
        s.server.header_read_timeout_secs = 30;
        s.server.idle_timeout_secs = 60;
    })
    .await;
    let mut idle = TcpStream::connect(app.addr).await.unwrap();
    idle.write_all(LIVE).await.unwrap();
    assert_eq!(read_response(&mut idle).await.0, 200);
    let mut half_open = Vec::new();
    for _ in 0..20 {
        let mut stream = TcpStream::connect(app.addr).await.unwrap();
        stream
            .write_all(b"GET /health/live HTTP/1.1\r\nHo")
            .await
            .unwrap();
        half_open.push(stream);
    }
    let mut silent = TcpStream::connect(app.addr).await.unwrap();
    // Let the server accept them all.
    tokio::time::sleep(Duration::from_millis(200)).await;

    let started = Instant::now();
    let server = app.begin_shutdown();
    tokio::time::timeout(Duration::from_secs(5), server)
        .await
        .expect("shutdown does not wait out the grace period")
        .unwrap()
        .unwrap();
    assert!(started.elapsed() < Duration::from_secs(5));
    for stream in std::iter::once(&mut idle)
        .chain(half_open.iter_mut())
        .chain(std::iter::once(&mut silent))
    {
        assert!(
            closed_after(stream, Duration::from_secs(1)).await.is_some(),
            "every connection is closed"
        );
    }
}

#[tokio::test]
async fn keep_alive_serves_many_requests_on_one_connection() {
    let (app, _t) = spawn(|_| {}).await;
    let mut stream = TcpStream::connect(app.addr).await.unwrap();
    for _ in 0..5 {
        stream.write_all(LIVE).await.unwrap();
        let (status, body) = read_response(&mut stream).await;
        assert_eq!(status, 200);
        assert!(!body.is_empty(), "a whole answer, body included");
    }
    // Two pipelined requests are both answered, in order.
    let mut two = LIVE.to_vec();
    two.extend_from_slice(LIVE);
    stream.write_all(&two).await.unwrap();
    for (status, body) in read_responses(&mut stream, 2).await {
        assert_eq!(status, 200);
        assert!(!body.is_empty(), "a whole answer, body included");
    }
    app.stop().await.unwrap();
}
