//! The HTTP/1 server: an accept loop over hyper's connection driver, with the timeouts
//! `axum::serve` does not have.
//!
//! Each connection is watched for three things (`server.*` settings):
//! - the **header read timeout**: a connection must send a whole request header block within
//!   `header_read_timeout_secs` of being accepted, or of its next request's first byte;
//! - the **idle timeout**: a kept-alive connection may wait `idle_timeout_secs` between
//!   requests;
//! - the **header cap**: hyper answers a header block over `max_header_bytes` with 431 and
//!   closes the connection, so no more than that (and one read) is buffered.
//!
//! hyper's own `header_read_timeout` is not used: its timer starts whenever hyper waits for a
//! request head, idle keep-alive waits included, so it would close every idle connection
//! after the header timeout and leave no room for a longer idle timeout. Instead each
//! connection keeps an [`Activity`] record, written by its IO (bytes arriving while idle), by
//! the service (a request starting) and by the response body (dropped when the answer is
//! written), and one timer per connection reads it.
//!
//! On shutdown, connections not serving a request (idle, or still sending a header block)
//! close at once; a connection with a request in flight finishes it, then closes.
//!
//! Upgrades are on: after a `101 Switching Protocols` the driver's future completes and the
//! connection, with its timers, is gone from here; the socket belongs to the WebSocket's task
//! (`crate::ws`), which pings and times out by its own settings. On shutdown every socket is
//! sent close 1001, and the grace period waits for sockets as for requests.
//!
//! While serving, the gateway runs its own [`LeaderboardPusher`]: each second it delivers to
//! this process's sockets the subscribed top 10s that changed. It stops when the sockets are
//! closed.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::{Pin, pin};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes, HttpBody};
use axum::extract::ConnectInfo;
use axum::response::Response;
use hearth_app::leaderboards::LeaderboardPusher;
use hyper::body::{Frame, Incoming, SizeHint};
use hyper::server::conn::http1;
use hyper_util::rt::TokioIo;
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::time::Instant;
use tower::ServiceExt as _;

use crate::App;

/// The log target of the server's lines.
const LOG_TARGET: &str = "hearth_api::server";

/// How often the leaderboard pusher looks for changed boards: the contract's "at most once a
/// second".
const LEADERBOARD_PUSH_EVERY: Duration = Duration::from_secs(1);

/// Serves until `shutdown` completes, then drains gracefully.
///
/// On shutdown: readiness turns 503 at once; after `server.drain_delay_secs` the listener
/// closes, and so do connections that are idle or still sending a header block; in-flight
/// requests then have `server.shutdown_timeout_secs` to finish.
///
/// While serving, this gateway's `leaderboard` pushes run ([`LeaderboardPusher`]); they stop
/// when the sockets are closed.
///
/// # Errors
/// None today: a failed accept is logged and retried, as `axum::serve` does. The `Result`
/// keeps the signature callers already use.
pub async fn serve(
    listener: TcpListener,
    app: App,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> io::Result<()> {
    let state = app.state.clone();
    let settings = &state.settings.server;
    let drain_delay = Duration::from_secs(settings.drain_delay_secs);
    let grace = Duration::from_secs(settings.shutdown_timeout_secs);
    let timeouts = Timeouts {
        header_read: Duration::from_secs(settings.header_read_timeout_secs),
        idle: Duration::from_secs(settings.idle_timeout_secs),
    };
    let mut http = http1::Builder::new();
    // The header timer is ours (see the module docs); hyper caps the header block and
    // answers 431 itself.
    http.header_read_timeout(None)
        .max_header_size(settings.max_header_bytes);

    let signal = {
        let state = state.clone();
        async move {
            shutdown.await;
            tracing::info!(
                drain_delay_secs = drain_delay.as_secs(),
                "shutdown requested; draining"
            );
            state.begin_drain();
            tokio::time::sleep(drain_delay).await;
        }
    };
    let mut signal = pin!(signal);
    let (stop_pusher, pusher_stopping) = tokio::sync::oneshot::channel::<()>();
    let pusher =
        tokio::spawn(
            LeaderboardPusher::new(state.hearth.hub.clone(), state.hearth.leaderboards.clone())
                .run(LEADERBOARD_PUSH_EVERY, async move {
                    // Sent or dropped: either way, stop.
                    let _ = pusher_stopping.await;
                }),
        );
    // Connections hold a receiver: the value turning true asks them to close, and the last
    // one dropped tells the loop below that every connection has ended.
    let (closing_tx, closing_rx) = watch::channel(false);
    loop {
        tokio::select! {
            () = &mut signal => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    let closing = closing_rx.clone();
                    tokio::spawn(connection(stream, peer, &app.router, &http, timeouts, closing));
                }
                Err(error) => accept_failed(error).await,
            },
        }
    }
    drop(listener);
    tracing::info!("listener closed; finishing in-flight requests");
    closing_tx.send_replace(true);
    drop(closing_rx);
    // No more pushes for sockets about to close.
    drop(stop_pusher);
    if let Err(error) = pusher.await {
        tracing::error!(target: LOG_TARGET, %error, "the leaderboard pusher failed");
    }
    // Upgraded connections have left hyper's driver: their sockets close with 1001.
    state.sockets.close_all();
    let drained = async {
        tokio::join!(closing_tx.closed(), state.sockets.closed());
    };
    if tokio::time::timeout(grace, drained).await.is_err() {
        tracing::warn!(
            grace_secs = grace.as_secs(),
            "in-flight requests or sockets outlived the grace period"
        );
    }
    state.hearth.close().await;
    tracing::info!("shut down");
    Ok(())
}

/// A failed accept: a connection that died in the backlog is skipped; anything else (out of
/// file descriptors, most often) is logged and retried after a second, as `axum::serve` does.
async fn accept_failed(error: io::Error) {
    if matches!(
        error.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
    ) {
        return;
    }
    tracing::error!(target: LOG_TARGET, %error, "accept failed; retrying in 1 s");
    tokio::time::sleep(Duration::from_secs(1)).await;
}

/// The two per-connection timeouts.
#[derive(Debug, Clone, Copy)]
struct Timeouts {
    header_read: Duration,
    idle: Duration,
}

/// Starts serving one accepted connection: its service (the router, with the peer address
/// as `ConnectInfo` and every answer tracked) and hyper's driver. The returned future drives
/// the connection until it ends, a timeout closes it, or shutdown does.
fn connection(
    stream: TcpStream,
    peer: SocketAddr,
    router: &Router,
    http: &http1::Builder,
    timeouts: Timeouts,
    mut closing: watch::Receiver<bool>,
) -> impl Future<Output = ()> + Send + 'static {
    // Each answer goes out as soon as it is written, rather than held back by Nagle's
    // algorithm while an earlier segment waits for the client's (possibly delayed) ACK: a
    // body written after its head, or a WebSocket frame after another, would otherwise wait
    // up to the client's delayed-ACK timer. A socket that refuses is served as it is.
    if let Err(error) = stream.set_nodelay(true) {
        tracing::debug!(target: LOG_TARGET, %error, "TCP_NODELAY refused");
    }
    let activity = Arc::new(Activity::new());
    let started = activity.clone();
    let answered = activity.clone();
    let service = router
        .clone()
        .map_request(move |request: http::Request<Incoming>| {
            started.request_started();
            let mut request = request.map(Body::new);
            request.extensions_mut().insert(ConnectInfo(peer));
            request
        })
        .map_response(move |response: Response| {
            let tracked = answered.clone();
            response.map(|body| TrackedBody {
                body,
                _answer: Answer(tracked),
            })
        });
    let io = TokioIo::new(TrackedStream {
        stream,
        activity: activity.clone(),
    });
    // With upgrades, the driver completes once a `101` is written and hands the socket to
    // the WebSocket's own task (`crate::ws`), whose ping and idle rules, and whose close on
    // shutdown, take over from the timers here.
    let conn = http
        .serve_connection(io, TowerToHyperService::new(service))
        .with_upgrades();
    async move {
        let mut conn = pin!(conn);
        let mut timer = pin!(tokio::time::sleep_until(activity.wake_at(timeouts)));
        let mut draining = false;
        loop {
            tokio::select! {
                result = conn.as_mut() => {
                    if let Err(error) = result {
                        tracing::debug!(target: LOG_TARGET, %error, "connection ended with an error");
                    }
                    break;
                }
                () = &mut timer => {
                    match activity.deadline(timeouts) {
                        Some((deadline, why)) if deadline <= Instant::now() => {
                            tracing::debug!(target: LOG_TARGET, why, "closing connection");
                            break;
                        }
                        _ => timer.as_mut().reset(activity.wake_at(timeouts)),
                    }
                }
                _ = closing.changed(), if !draining => {
                    draining = true;
                    if !activity.is_busy() {
                        // Idle, or a header block still coming in: nothing to finish.
                        break;
                    }
                    // Finish the request in flight, then close instead of keeping alive.
                    conn.as_mut().graceful_shutdown();
                }
            }
        }
    }
}

/// What a connection is doing, for its timer and for shutdown.
///
/// Written from the connection's own task only (the IO, the service and the body are all
/// polled by hyper's driver there), but shared through `Arc`, so atomics with relaxed order:
/// no other memory hangs on them.
struct Activity {
    /// The connection's accept: `since` is counted from it, in milliseconds.
    origin: Instant,
    /// Requests started whose answers are not yet written.
    busy: AtomicU32,
    /// When the current wait began (milliseconds since `origin`, shifted left by one), and in
    /// the low bit whether it is an idle wait (1) or a header block coming in (0).
    waiting: AtomicU64,
}

impl Activity {
    const IDLE: u64 = 1;

    fn new() -> Self {
        Self {
            origin: Instant::now(),
            busy: AtomicU32::new(0),
            // A new connection owes a header block from its accept on.
            waiting: AtomicU64::new(0),
        }
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.origin.elapsed().as_millis()).unwrap_or(u64::MAX >> 1)
    }

    fn request_started(&self) {
        self.busy.fetch_add(1, Ordering::Relaxed);
    }

    fn answer_written(&self) {
        if self.busy.fetch_sub(1, Ordering::Relaxed) == 1 {
            self.waiting
                .store((self.now_ms() << 1) | Self::IDLE, Ordering::Relaxed);
        }
    }

    /// Bytes arrived: on an idle connection, a request's header block has begun.
    fn bytes_read(&self) {
        if self.busy.load(Ordering::Relaxed) == 0
            && self.waiting.load(Ordering::Relaxed) & Self::IDLE == Self::IDLE
        {
            self.waiting.store(self.now_ms() << 1, Ordering::Relaxed);
        }
    }

    fn is_busy(&self) -> bool {
        self.busy.load(Ordering::Relaxed) > 0
    }

    /// When the connection is to be closed, and why; `None` while a request is in flight.
    fn deadline(&self, timeouts: Timeouts) -> Option<(Instant, &'static str)> {
        if self.is_busy() {
            return None;
        }
        let waiting = self.waiting.load(Ordering::Relaxed);
        let since = self.origin + Duration::from_millis(waiting >> 1);
        Some(if waiting & Self::IDLE == Self::IDLE {
            (since + timeouts.idle, "idle timeout")
        } else {
            (since + timeouts.header_read, "header read timeout")
        })
    }

    /// When the timer should look again: the deadline, or while a request is in flight, the
    /// shorter timeout from now (the answer being written does not wake the timer).
    fn wake_at(&self, timeouts: Timeouts) -> Instant {
        self.deadline(timeouts).map_or_else(
            || Instant::now() + timeouts.header_read.min(timeouts.idle),
            |(deadline, _)| deadline,
        )
    }
}

/// Marks its answer written when dropped: hyper drops a response body once it has written
/// its last frame, or when the connection ends.
struct Answer(Arc<Activity>);

impl Drop for Answer {
    fn drop(&mut self) {
        self.0.answer_written();
    }
}

/// A response body that marks the connection idle again when hyper is done with it.
struct TrackedBody {
    body: Body,
    _answer: Answer,
}

impl HttpBody for TrackedBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

/// The socket, telling the connection's [`Activity`] when bytes arrive.
struct TrackedStream {
    stream: TcpStream,
    activity: Arc<Activity>,
}

impl AsyncRead for TrackedStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.stream).poll_read(cx, buf);
        if buf.filled().len() > before {
            self.activity.bytes_read();
        }
        polled
    }
}

impl AsyncWrite for TrackedStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}
