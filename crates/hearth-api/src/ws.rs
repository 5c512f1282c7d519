//! `GET /v1/ws`: the WebSocket transport.
//!
//! # Layout
//! - [`WsSettings`]: timeouts, sizes, allowed origins and the send queue.
//! - `Sockets` (in [`AppState`]): the settings, the shutdown signal every socket watches, and
//!   connection ids.
//! - `upgrade`: the handler. A request carrying the session cookie is refused (403) unless its
//!   `Origin` is allowed: that is cross-site WebSocket hijacking. Then the upgrade.
//! - `Connection`: one socket. Its task reads frames, authenticates, answers, watches the
//!   timers and shutdown; a second task writes what the first queues (`Outbound`) and sends
//!   pings. The reader never waits for the writer: a full queue closes the socket (1008, "too
//!   slow").
//! - `message`: the client's closed set of messages, the server's answers, the topics.
//!
//! Each socket has a `hearth_realtime::Subscriber` of the process's hub: once authenticated it
//! follows the user's own topic and `control`, plus the topics the client subscribes to. A
//! delivery is queued for the writer like any answer (with its publish time, so the writer
//! records `hearth_ws_push_latency_seconds` once the frame is handed to the socket); a lagging
//! subscription, or a revocation on `control` that covers the socket's token, closes it with
//! 1008. An authenticated socket marks its user active (`hearth_active_users`) when it
//! authenticates, sends a message, or answers a ping.
//!
//! # What it does not do
//! It does not publish or fan out: the hub (`hearth-realtime`) does. Nothing here reads a token
//! from the URL.

pub(crate) mod message;

use std::collections::{BTreeSet, VecDeque};
use std::pin::pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use axum::extract::State;
use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket, WebSocketUpgrade};
use axum::http::{HeaderMap, header};
use axum::response::Response;
use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt as _, StreamExt as _};
use hearth_auth::{AuthError, Claims, TokenType};
use hearth_limits::{ConnectionLimiter, RouteClass};
use hearth_observability::metrics::names;
use hearth_realtime::control::Revoked;
use hearth_realtime::{Delivery, Subscriber, topics};
use tokio::sync::{Notify, oneshot, watch};
use tokio::time::{Instant, sleep_until};

use crate::error::ApiError;
use crate::extract::session::{ACCESS_COOKIE, cookie};
use crate::state::AppState;
use message::{ClientMessage, ServerMessage, Unreadable};

/// The log target of this module's lines.
const LOG_TARGET: &str = "hearth_api::ws";

/// The read buffer each socket allocates up front, zero-filled and resident (tungstenite's
/// default is 128 KiB): small, because most sockets sit idle and client messages are a few
/// hundred bytes at most (`auth` with its token); a larger frame grows it as needed. 2 KiB
/// rather than 4 is a quarter of an idle socket's memory (docs/benchmarks.md, "WebSocket").
const READ_BUFFER_BYTES: usize = 2 * 1024;

/// How long a closing socket waits for the client's close frame (and its writer to finish)
/// before the connection is dropped.
const CLOSE_GRACE: Duration = Duration::from_secs(2);

/// RFC 6455 close codes the server sends.
mod code {
    pub(super) const GOING_AWAY: u16 = 1001;
    pub(super) const PROTOCOL_ERROR: u16 = 1002;
    pub(super) const UNSUPPORTED_DATA: u16 = 1003;
    pub(super) const POLICY_VIOLATION: u16 = 1008;
    pub(super) const MESSAGE_TOO_BIG: u16 = 1009;
    pub(super) const INTERNAL_ERROR: u16 = 1011;
    pub(super) const TRY_AGAIN_LATER: u16 = 1013;
}

/// The WebSocket's settings. The defaults are the contract's; the gateway will read them from
/// the `realtime` settings section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WsSettings {
    /// Seconds a socket has to send its `auth` message (cookie sockets need none).
    pub auth_timeout_secs: u64,
    /// Origins (`https://example.com`) whose pages may open a socket with the session
    /// cookie. Empty: browser mode is off, and a cookie upgrade is refused.
    pub allowed_origins: Vec<String>,
    /// The largest frame taken; larger closes the socket with 1009.
    pub max_frame_bytes: usize,
    /// The largest message (all its frames) taken; larger closes with 1009.
    pub max_message_bytes: usize,
    /// Seconds without a pong after which the socket is closed with 1001.
    pub idle_timeout_secs: u64,
    /// Seconds between the server's pings.
    pub ping_secs: u64,
    /// Messages queued for one socket; a client that lets more pile up is disconnected.
    pub send_queue: usize,
}

impl WsSettings {
    /// The contract's defaults: auth in 5 s, no browser origins, 16 KiB frames, 64 KiB
    /// messages, a ping every 15 s and 45 s to answer, 256 queued messages.
    pub fn defaults() -> Self {
        Self {
            auth_timeout_secs: 5,
            allowed_origins: Vec::new(),
            max_frame_bytes: 16 * 1024,
            max_message_bytes: 64 * 1024,
            idle_timeout_secs: 45,
            ping_secs: 15,
            send_queue: 256,
        }
    }
}

impl From<&hearth_app::settings::RealtimeSettings> for WsSettings {
    fn from(settings: &hearth_app::settings::RealtimeSettings) -> Self {
        Self {
            auth_timeout_secs: settings.auth_timeout_secs,
            allowed_origins: settings.allowed_origins.clone(),
            max_frame_bytes: settings.max_frame_bytes,
            max_message_bytes: settings.max_message_bytes,
            idle_timeout_secs: settings.idle_timeout_secs,
            ping_secs: settings.ping_secs,
            send_queue: settings.send_queue,
        }
    }
}

impl Default for WsSettings {
    fn default() -> Self {
        Self::defaults()
    }
}

/// What the writer of one socket is asked to send. The hub's deliveries arrive as `Push`; a
/// lagging subscription as `Close(1008, "too slow")`.
#[derive(Debug)]
pub(crate) enum Outbound {
    /// A text frame of JSON.
    Json(String),
    /// A text frame of JSON pushed from the hub, published at `published_at` (unix
    /// microseconds): once sent, the writer records `hearth_ws_push_latency_seconds`.
    Push { json: String, published_at: u64 },
    /// A close frame, after which the writer stops.
    Close(u16, &'static str),
}

/// The writer's queue: what the reader asks it to send, bounded, and never waited on by the
/// reader. A tokio `mpsc` channel would allocate a block of 32 slots (1.3 KiB) up front for
/// every socket, most of which never queue more than one frame at a time; this one holds no
/// memory until something is queued (docs/benchmarks.md, "WebSocket").
struct Queue {
    items: Mutex<VecDeque<Outbound>>,
    /// Wakes the writer; `notify_one` keeps a permit when the writer is not waiting yet.
    ready: Notify,
    /// The most `items` may hold.
    capacity: usize,
    /// Set when the writer has ended (its socket failed): later items are dropped.
    closed: AtomicBool,
}

/// Why [`Queue::push`] did not take an item.
struct Full;

impl Queue {
    fn new(capacity: usize) -> Arc<Self> {
        Arc::new(Self {
            items: Mutex::new(VecDeque::new()),
            ready: Notify::new(),
            capacity: capacity.max(1),
            closed: AtomicBool::new(false),
        })
    }

    /// Queues `item` without waiting; `Err(Full)` when `capacity` items are waiting. Once the
    /// writer has ended, `item` is dropped and `Ok` returned: the reader sees the socket fail.
    fn push(&self, item: Outbound) -> Result<(), Full> {
        if self.closed.load(Ordering::Acquire) {
            return Ok(());
        }
        {
            let mut items = self.items.lock().unwrap_or_else(PoisonError::into_inner);
            if items.len() >= self.capacity {
                return Err(Full);
            }
            items.push_back(item);
        }
        self.ready.notify_one();
        Ok(())
    }

    /// The next item, waiting for one.
    async fn pop(&self) -> Outbound {
        loop {
            if let Some(item) = self
                .items
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .pop_front()
            {
                return item;
            }
            // A push between the check above and this wait left a permit: no wake-up is lost.
            self.ready.notified().await;
        }
    }
}

/// Marks the queue closed when the writer ends, however it ends.
struct WriterGone(Arc<Queue>);

impl Drop for WriterGone {
    fn drop(&mut self) {
        self.0.closed.store(true, Ordering::Release);
    }
}

/// Every socket's shared part, held by [`AppState`].
pub(crate) struct Sockets {
    settings: WsSettings,
    /// Turns true when the server closes: every socket then closes with 1001. Each socket
    /// holds a receiver from before its upgrade, so `closed` waits for all of them.
    closing: watch::Sender<bool>,
    /// Connection ids, for logs.
    next_id: AtomicU64,
}

impl Sockets {
    pub(crate) fn new(settings: WsSettings) -> Self {
        Self {
            settings,
            closing: watch::Sender::new(false),
            next_id: AtomicU64::new(1),
        }
    }

    /// The settings sockets are opened with.
    pub(crate) fn settings(&self) -> &WsSettings {
        &self.settings
    }

    /// Asks every socket to close with 1001.
    pub(crate) fn close_all(&self) {
        self.closing.send_replace(true);
    }

    /// Completes when every socket (and every upgrade in progress) has ended.
    pub(crate) async fn closed(&self) {
        self.closing.closed().await;
    }
}

/// `GET /v1/ws`. Refuses a cookie upgrade from an origin not allowed (403) before upgrading;
/// anything that is not a WebSocket upgrade is refused by the extractor (4xx, made
/// problem+json by the stack).
#[utoipa::path(
    get, path = "/v1/ws", tag = "realtime",
    description = "Upgrades to a WebSocket: authenticate with an `auth` message, or the session cookie from an allowed origin. Messages: `docs/api.md#websocket`.",
    responses(
        (status = 101, description = "Switching protocols."),
        (status = 400, description = "Not a WebSocket upgrade request."),
        (status = 403, description = "A session cookie from an origin not allowed."),
        (status = 426, description = "The connection cannot be upgraded."),
    )
)]
pub(crate) async fn upgrade(
    State(state): State<AppState>,
    headers: HeaderMap,
    upgrade: WebSocketUpgrade,
) -> Result<Response, ApiError> {
    let settings = state.sockets.settings();
    let cookie_token = cookie(&headers, ACCESS_COOKIE).map(str::to_owned);
    if cookie_token.is_some() {
        let origin = headers
            .get(header::ORIGIN)
            .and_then(|value| value.to_str().ok());
        let allowed = origin.is_some_and(|origin| {
            settings
                .allowed_origins
                .iter()
                .any(|allowed| allowed == origin)
        });
        if !allowed {
            return Err(ApiError::Forbidden(
                "a WebSocket with the session cookie may only be opened from an allowed origin",
            ));
        }
    }
    // Subscribed before the upgrade, so shutdown also waits for sockets still upgrading.
    let closing = state.sockets.closing.subscribe();
    let id = state.sockets.next_id.fetch_add(1, Ordering::Relaxed);
    Ok(upgrade
        .read_buffer_size(READ_BUFFER_BYTES)
        .max_frame_size(settings.max_frame_bytes)
        .max_message_size(settings.max_message_bytes)
        .on_upgrade(move |socket| Connection::run(state, socket, cookie_token, closing, id)))
}

/// Why a socket is to be closed: the code and reason the server sends.
#[derive(Debug, Clone, Copy)]
struct Close(u16, &'static str);

/// How a socket ended, for `hearth_ws_closes_total`.
enum Ended {
    /// The server closed it with this code.
    ByServer(u16),
    /// The client sent a close frame (with this code, if any).
    ByClient(Option<u16>),
    /// The connection dropped without a close frame.
    Dropped,
}

/// Counts the socket in `hearth_ws_connections` while it lives.
struct OpenGauge;

impl OpenGauge {
    fn open() -> Self {
        metrics::gauge!(names::WS_CONNECTIONS).increment(1.0);
        Self
    }
}

impl Drop for OpenGauge {
    fn drop(&mut self) {
        metrics::gauge!(names::WS_CONNECTIONS).decrement(1.0);
    }
}

/// One socket's reading side, which owns its state.
struct Connection {
    state: AppState,
    id: u64,
    /// The writer's queue; the hub's `Subscriber` is forwarded here.
    outbound: Arc<Queue>,
    /// The writer's way round a full queue: a close sent ahead of everything queued.
    urgent: Option<oneshot::Sender<Close>>,
    /// The `websocket` rule class, one limiter per window; owned here, so no lock.
    limits: Vec<ConnectionLimiter>,
    /// Set once authenticated.
    user: Option<Claims>,
    /// Topics subscribed by name (the user's own topic is implicit).
    topics: BTreeSet<String>,
    /// This socket's subscription to the hub.
    subscriber: Subscriber,
    /// False once the hub is gone (`recv` answers `None` from then on).
    hub_open: bool,
}

impl Connection {
    async fn run(
        state: AppState,
        socket: WebSocket,
        cookie_token: Option<String>,
        mut closing: watch::Receiver<bool>,
        id: u64,
    ) {
        let _gauge = OpenGauge::open();
        let settings = state.sockets.settings().clone();
        let (sink, stream) = socket.split();
        let outbound = Queue::new(settings.send_queue);
        let (urgent, urgent_rx) = oneshot::channel();
        let ping_every = Duration::from_secs(settings.ping_secs.max(1));
        let writer = tokio::spawn(write(sink, outbound.clone(), urgent_rx, ping_every));
        let limits = state
            .settings
            .limits
            .rules
            .rules_for(RouteClass::Websocket)
            .into_iter()
            .map(ConnectionLimiter::new)
            .collect();
        let subscriber = state.hub.subscriber(settings.send_queue.max(1));
        let mut connection = Self {
            state,
            id,
            outbound,
            urgent: Some(urgent),
            limits,
            user: None,
            topics: BTreeSet::new(),
            subscriber,
            hub_open: true,
        };
        tracing::debug!(target: LOG_TARGET, id, "socket opened");
        let (ended, stream) = connection
            .read(stream, cookie_token, &mut closing, &settings)
            .await;
        let code = match ended {
            Ended::ByServer(code) | Ended::ByClient(Some(code)) => code_label(code),
            Ended::ByClient(None) => "1005",
            Ended::Dropped => "none",
        };
        metrics::counter!(names::WS_CLOSES, "code" => code).increment(1);
        tracing::debug!(target: LOG_TARGET, id, code, "socket closed");
        // Let the writer send what it holds (the close frame above all), and the client
        // answer it, but not for longer than the grace.
        let user = connection.user.as_ref().map(|claims| claims.sub);
        if let Some(user) = user {
            // Saves the life at the driver's next pass.
            connection.state.lives.detach(user);
        }
        drop(connection);
        let drain = async {
            if let Some(mut stream) = stream {
                while let Some(Ok(_)) = stream.next().await {}
            }
        };
        let abort = writer.abort_handle();
        let finished = tokio::time::timeout(CLOSE_GRACE, async {
            drain.await;
            writer.await
        })
        .await;
        if finished.is_err() {
            // A writer stuck on a client that does not read holds the socket open: stop it.
            abort.abort();
            tracing::debug!(target: LOG_TARGET, id, ?user, "socket did not close in time; dropped");
        }
        // Held until here, so that shutdown waits for the close handshake too.
        drop(closing);
    }

    /// Reads until the socket is to close; returns how it ended, and the stream when the
    /// close handshake still has frames to read.
    async fn read(
        &mut self,
        mut stream: SplitStream<WebSocket>,
        cookie_token: Option<String>,
        closing: &mut watch::Receiver<bool>,
        settings: &WsSettings,
    ) -> (Ended, Option<SplitStream<WebSocket>>) {
        let idle = Duration::from_secs(settings.idle_timeout_secs.max(1));
        // Two timers for the socket's life, reset rather than rebuilt on every frame.
        let mut auth_timer = pin!(sleep_until(
            Instant::now() + Duration::from_secs(settings.auth_timeout_secs)
        ));
        let mut idle_timer = pin!(sleep_until(Instant::now() + idle));
        if let Some(token) = cookie_token
            && let Err(close) = self.authenticate(&token).await
        {
            return (self.close(close), Some(stream));
        }
        loop {
            let outcome = tokio::select! {
                biased;
                () = shutting_down(closing) => {
                    Err(Close(code::GOING_AWAY, "server shutting down"))
                }
                () = &mut auth_timer, if self.user.is_none() => {
                    Err(Close(code::POLICY_VIOLATION, "authentication timed out"))
                }
                () = &mut idle_timer => {
                    Err(Close(code::GOING_AWAY, "no pong"))
                }
                delivery = self.subscriber.recv(), if self.hub_open => self.on_delivery(delivery),
                frame = stream.next() => match frame {
                    None => return (Ended::Dropped, None),
                    Some(Ok(Message::Text(text))) => self.on_text(&text).await,
                    Some(Ok(Message::Binary(_))) => {
                        Err(Close(code::UNSUPPORTED_DATA, "binary frames are not accepted"))
                    }
                    Some(Ok(Message::Pong(_))) => {
                        idle_timer.as_mut().reset(Instant::now() + idle);
                        // A socket left open stays active: it answers a ping every
                        // `ping_secs`, well within the 5 minutes.
                        self.mark_active();
                        Ok(())
                    }
                    // tungstenite answers pings itself.
                    Some(Ok(Message::Ping(_))) => Ok(()),
                    Some(Ok(Message::Close(frame))) => {
                        // tungstenite queued the reply; reading on sends it.
                        return (Ended::ByClient(frame.map(|f| f.code)), Some(stream));
                    }
                    Some(Err(error)) => match close_for(error) {
                        Some(close) => Err(close),
                        None => return (Ended::Dropped, None),
                    },
                },
            };
            if let Err(close) = outcome {
                return (self.close(close), Some(stream));
            }
        }
    }

    /// Sends `close` ahead of anything queued and stops the writer.
    fn close(&mut self, close: Close) -> Ended {
        if let Some(urgent) = self.urgent.take() {
            // The writer may be gone already (its socket failed); then there is no one to tell.
            let _ = urgent.send(close);
        }
        Ended::ByServer(close.0)
    }

    /// Authenticates the socket with an access token, as HTTP does: verified, then the
    /// revocation check.
    async fn authenticate(&mut self, token: &str) -> Result<(), Close> {
        match self.state.auth.authenticate(token, TokenType::Access).await {
            Ok(claims) => {
                let user_id = claims.sub;
                tracing::debug!(target: LOG_TARGET, id = self.id, %user_id, "socket authenticated");
                self.subscriber.subscribe(&topics::user(&user_id));
                self.subscriber.subscribe(topics::CONTROL);
                self.state.active_users.seen(user_id);
                // Subscribed first, so the life's `life.state` reaches this socket.
                self.state.lives.attach(user_id);
                self.user = Some(claims);
                self.send(&ServerMessage::Authenticated { user_id })
            }
            Err(AuthError::Token(error)) => {
                tracing::debug!(target: LOG_TARGET, id = self.id, %error, "socket token refused");
                Err(Close(code::POLICY_VIOLATION, "authentication failed"))
            }
            Err(AuthError::Store(error)) => {
                tracing::warn!(target: LOG_TARGET, %error, "revocation store unavailable; refusing a socket");
                Err(Close(
                    code::TRY_AGAIN_LATER,
                    "authentication is unavailable; retry shortly",
                ))
            }
        }
    }

    async fn on_text(&mut self, text: &str) -> Result<(), Close> {
        let parsed = message::parse(text);
        let kind = match &parsed {
            Ok(message) => message.kind(),
            Err(Unreadable::UnknownType) => "unknown",
            Err(Unreadable::Invalid(_)) => "invalid",
        };
        metrics::counter!(names::WS_MESSAGES, "direction" => "in", "type" => kind).increment(1);
        self.mark_active();
        if self.user.is_none() {
            // The first message must be `auth`; anything else is refused.
            return match parsed {
                Ok(ClientMessage::Auth { token }) => self.authenticate(&token).await,
                _ => Err(Close(
                    code::POLICY_VIOLATION,
                    "the first message must be auth",
                )),
            };
        }
        if let Some(wait) = self.rate_limited() {
            return self.send(&ServerMessage::Error {
                code: "rate_limited",
                message: "too many messages; wait before sending more",
                retry_after: Some(wait),
            });
        }
        match parsed {
            Ok(ClientMessage::Ping {}) => self.send(&ServerMessage::Pong),
            Ok(ClientMessage::Auth { .. }) => self.invalid("this socket is already authenticated"),
            Ok(ClientMessage::Subscribe { topics }) => {
                if let Some(bad) = topics.iter().find(|t| !message::topic_allowed(t)) {
                    return self.invalid(&format!("unknown topic {bad:?}"));
                }
                for topic in &topics {
                    self.subscriber.subscribe(topic);
                }
                self.topics.extend(topics);
                Ok(())
            }
            Ok(ClientMessage::Unsubscribe { topics }) => {
                if let Some(bad) = topics.iter().find(|t| !message::topic_allowed(t)) {
                    return self.invalid(&format!("unknown topic {bad:?}"));
                }
                for topic in &topics {
                    self.subscriber.unsubscribe(topic);
                    self.topics.remove(topic);
                }
                Ok(())
            }
            // Every other message is a `life.*` command.
            Ok(message) => match message.life_command() {
                Some(Ok(command)) => self.life(command).await,
                Some(Err(detail)) => self.invalid(&detail),
                None => Ok(()),
            },
            Err(Unreadable::UnknownType) => self.send(&ServerMessage::Error {
                code: "unknown_type",
                message: "unknown message type",
                retry_after: None,
            }),
            Err(Unreadable::Invalid(detail)) => self.invalid(&detail),
        }
    }

    /// Carries out a `life.*` command; a refusal is the socket's `error` message
    /// (`invalid_message` for the player's mistakes, `unavailable` when storage failed).
    async fn life(&mut self, command: hearth_app::life::Command) -> Result<(), Close> {
        let Some(user) = self.user.as_ref().map(|claims| claims.sub) else {
            return Ok(());
        };
        match self.state.lives.command(user, command).await {
            Ok(()) => Ok(()),
            Err(error) if error.is_client_error() => self.invalid(&error.to_string()),
            Err(error) => {
                tracing::warn!(target: LOG_TARGET, %error, %user, "a life command failed");
                self.send(&ServerMessage::Error {
                    code: "unavailable",
                    message: "the life is unavailable; retry shortly",
                    retry_after: Some(1),
                })
            }
        }
    }

    /// Marks the socket's user (once authenticated) as active now.
    fn mark_active(&self) {
        if let Some(claims) = &self.user {
            self.state.active_users.seen(claims.sub);
        }
    }

    fn invalid(&mut self, detail: &str) -> Result<(), Close> {
        self.send(&ServerMessage::Error {
            code: "invalid_message",
            message: detail,
            retry_after: None,
        })
    }

    /// Counts one message against the `websocket` rules; `Some(seconds)` to wait when refused.
    fn rate_limited(&mut self) -> Option<u64> {
        let mut wait = None;
        for limiter in &mut self.limits {
            let decision = limiter.check();
            if !decision.allowed {
                let secs = decision
                    .retry_after
                    .map_or(1, |d| d.as_secs_f64().ceil() as u64)
                    .max(1);
                wait = Some(wait.map_or(secs, |w: u64| w.max(secs)));
            }
        }
        wait
    }

    /// A delivery from the hub: a push is queued for the client as it was published; a
    /// revocation on `control` that covers this socket's token closes it, as does a lagging
    /// subscription.
    fn on_delivery(&mut self, delivery: Option<Delivery>) -> Result<(), Close> {
        match delivery {
            None => {
                self.hub_open = false;
                Ok(())
            }
            Some(Delivery::Lagged) => Err(Close(code::POLICY_VIOLATION, "too slow")),
            Some(Delivery::Message { topic, payload, .. }) if &*topic == topics::CONTROL => {
                let revoked = Revoked::parse(&payload).zip(self.user.as_ref());
                match revoked {
                    Some((revoked, claims))
                        if revoked.applies_to(claims.sub, claims.fam, claims.jti) =>
                    {
                        Err(Close(code::POLICY_VIOLATION, "session revoked"))
                    }
                    _ => Ok(()),
                }
            }
            Some(Delivery::Message {
                payload,
                published_at,
                ..
            }) => {
                metrics::counter!(names::WS_MESSAGES, "direction" => "out", "type" => "push")
                    .increment(1);
                self.queue(Outbound::Push {
                    json: payload.to_string(),
                    published_at,
                })
            }
        }
    }

    fn send(&mut self, message: &ServerMessage<'_>) -> Result<(), Close> {
        metrics::counter!(names::WS_MESSAGES, "direction" => "out", "type" => message.kind())
            .increment(1);
        self.send_raw(message.encode())
    }

    /// Queues a text frame without waiting: a full queue closes the socket.
    fn send_raw(&mut self, json: String) -> Result<(), Close> {
        self.queue(Outbound::Json(json))
    }

    /// Queues `outbound` for the writer without waiting: a full queue closes the socket.
    fn queue(&mut self, outbound: Outbound) -> Result<(), Close> {
        // Once the writer has ended (its socket failed), `push` drops the item: the reader
        // will see the socket fail.
        self.outbound
            .push(outbound)
            .map_err(|Full| Close(code::POLICY_VIOLATION, "too slow"))
    }
}

/// The `code` label of a close: the codes RFC 6455 defines, others (a client may send any
/// code from 3000 to 4999) as `other`, so a client cannot mint label values.
fn code_label(code: u16) -> &'static str {
    match code {
        1000 => "1000",
        1001 => "1001",
        1002 => "1002",
        1003 => "1003",
        1007 => "1007",
        1008 => "1008",
        1009 => "1009",
        1010 => "1010",
        1011 => "1011",
        1013 => "1013",
        _ => "other",
    }
}

/// Completes when the server begins closing sockets (or is gone).
async fn shutting_down(closing: &mut watch::Receiver<bool>) {
    // The guard `wait_for` returns is not `Send`: drop it here, not across an await.
    let _ = closing.wait_for(|closing| *closing).await.map(|_| ());
}

/// The close a read error asks for; `None` when the connection is simply gone.
fn close_for(error: axum::Error) -> Option<Close> {
    let error = match error.into_inner().downcast::<tungstenite::Error>() {
        Ok(error) => *error,
        Err(other) => {
            tracing::debug!(target: LOG_TARGET, error = %other, "socket read failed");
            return Some(Close(code::INTERNAL_ERROR, "read failed"));
        }
    };
    match error {
        tungstenite::Error::Capacity(_) => Some(Close(code::MESSAGE_TOO_BIG, "too big")),
        tungstenite::Error::Protocol(
            tungstenite::error::ProtocolError::ResetWithoutClosingHandshake,
        )
        | tungstenite::Error::ConnectionClosed
        | tungstenite::Error::AlreadyClosed
        | tungstenite::Error::Io(_) => None,
        tungstenite::Error::Protocol(_) | tungstenite::Error::Utf8(_) => {
            Some(Close(code::PROTOCOL_ERROR, "protocol violation"))
        }
        other => {
            tracing::debug!(target: LOG_TARGET, error = %other, "socket read failed");
            Some(Close(code::PROTOCOL_ERROR, "protocol violation"))
        }
    }
}

/// Records one push's latency from its publish (`published_at`) to `now`, both unix
/// microseconds. A publishing host whose clock runs ahead gives a negative span: counted as 0.
fn record_push_latency(published_at: u64, now: u64) {
    #[allow(clippy::cast_precision_loss)]
    let seconds = now.saturating_sub(published_at) as f64 / 1e6;
    hearth_observability::metrics::ws_push_latency().record(seconds);
}

/// The writing task: sends what the reader queues, and a ping every `ping_every`, until a
/// close is asked for (queued or urgent) or the reader is gone.
async fn write(
    mut sink: SplitSink<WebSocket, Message>,
    queue: Arc<Queue>,
    mut urgent: oneshot::Receiver<Close>,
    ping_every: Duration,
) {
    let _gone = WriterGone(queue.clone());
    let mut ping = tokio::time::interval_at(Instant::now() + ping_every, ping_every);
    ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let next = tokio::select! {
            biased;
            close = &mut urgent => match close {
                Ok(Close(code, reason)) => Outbound::Close(code, reason),
                // The reader ended without asking for a close.
                Err(_) => return,
            },
            next = queue.pop() => next,
            _ = ping.tick() => {
                if sink.send(Message::Ping(axum::body::Bytes::new())).await.is_err() {
                    return;
                }
                continue;
            }
        };
        let sent = match next {
            Outbound::Json(json) => sink.send(Message::Text(Utf8Bytes::from(json))).await,
            Outbound::Push { json, published_at } => {
                let sent = sink.send(Message::Text(Utf8Bytes::from(json))).await;
                if sent.is_ok() {
                    record_push_latency(published_at, hearth_realtime::unix_micros());
                }
                sent
            }
            Outbound::Close(code, reason) => {
                let frame = CloseFrame {
                    code,
                    reason: Utf8Bytes::from_static(reason),
                };
                let _ = sink.send(Message::Close(Some(frame))).await;
                return;
            }
        };
        if sent.is_err() {
            return;
        }
    }
}
