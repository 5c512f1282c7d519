//! The Redis connection behind the Redis-backed limiter and budgets: a deadline on every call,
//! the degraded state with its log line and gauge, and the background probe that returns to
//! Redis on its own once it answers again.

use std::fmt;
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{Client, RedisError, RedisResult, Script};

use crate::metric_names;
use crate::settings::RedisDownPolicy;

/// Where a Redis-backed limiter or budget store connects: a URL, a [`redis::Client`], or a
/// [`ConnectionManager`] the application already shares (then its reconnect settings apply).
#[derive(Clone)]
pub enum RedisTarget {
    /// A URL such as `redis://127.0.0.1:6379/0`.
    Url(String),
    /// A client; a connection manager is made from it.
    Client(Client),
    /// An existing connection manager, used as is.
    Manager(ConnectionManager),
}

impl fmt::Debug for RedisTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // A URL may carry a password: never print it.
        match self {
            Self::Url(_) => f.write_str("RedisTarget::Url(..)"),
            Self::Client(_) => f.write_str("RedisTarget::Client(..)"),
            Self::Manager(_) => f.write_str("RedisTarget::Manager(..)"),
        }
    }
}

impl From<&str> for RedisTarget {
    fn from(url: &str) -> Self {
        Self::Url(url.to_owned())
    }
}

impl From<String> for RedisTarget {
    fn from(url: String) -> Self {
        Self::Url(url)
    }
}

impl From<Client> for RedisTarget {
    fn from(client: Client) -> Self {
        Self::Client(client)
    }
}

impl From<ConnectionManager> for RedisTarget {
    fn from(manager: ConnectionManager) -> Self {
        Self::Manager(manager)
    }
}

/// Timing of the Redis link.
#[derive(Debug, Clone, Copy)]
pub(crate) struct LinkOptions {
    /// Deadline of one call; past it the call counts as a failure.
    pub(crate) timeout: Duration,
    /// Deadline of the first connection and of each probe.
    pub(crate) connect_timeout: Duration,
    /// Pause between probes while degraded.
    pub(crate) probe_every: Duration,
}

impl Default for LinkOptions {
    fn default() -> Self {
        Self {
            timeout: Duration::from_millis(500),
            connect_timeout: Duration::from_secs(1),
            probe_every: Duration::from_millis(500),
        }
    }
}

#[derive(Debug, Default)]
struct LinkState {
    degraded: AtomicBool,
    probing: AtomicBool,
}

/// A failed Redis call; the caller applies the [`RedisDownPolicy`].
#[derive(Debug)]
pub(crate) struct CallFailed;

/// One Redis connection with health tracking. Cheap to clone.
#[derive(Clone)]
pub(crate) struct RedisLink {
    conn: ConnectionManager,
    policy: RedisDownPolicy,
    options: LinkOptions,
    state: Arc<LinkState>,
    component: &'static str,
    scripts: Arc<[Script]>,
}

impl fmt::Debug for RedisLink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisLink")
            .field("component", &self.component)
            .field("policy", &self.policy)
            .field("degraded", &self.is_degraded())
            .finish_non_exhaustive()
    }
}

impl RedisLink {
    /// Connects and loads `scripts`. An unreachable server is not an error: the link starts
    /// degraded and the probe brings it up later. Only a bad URL fails.
    pub(crate) async fn connect(
        target: RedisTarget,
        policy: RedisDownPolicy,
        options: LinkOptions,
        component: &'static str,
        scripts: Vec<Script>,
    ) -> RedisResult<Self> {
        let conn = match target {
            RedisTarget::Url(url) => manager(Client::open(url)?, options)?,
            RedisTarget::Client(client) => manager(client, options)?,
            RedisTarget::Manager(manager) => manager,
        };
        let link = Self {
            conn,
            policy,
            options,
            state: Arc::default(),
            component,
            scripts: scripts.into(),
        };
        let ready = tokio::time::timeout(
            options.connect_timeout,
            prepare(link.conn.clone(), link.scripts.clone()),
        )
        .await;
        match ready {
            Ok(Ok(())) => {
                metrics::gauge!(metric_names::DEGRADED, "component" => component).set(0.0);
            }
            Ok(Err(e)) => link.fail(&e, true),
            Err(_) => link.fail(&"connection timed out", true),
        }
        Ok(link)
    }

    pub(crate) fn policy(&self) -> RedisDownPolicy {
        self.policy
    }

    /// Whether Redis is currently considered down (decisions fall back per the policy).
    pub(crate) fn is_degraded(&self) -> bool {
        self.state.degraded.load(Ordering::Acquire)
    }

    /// Runs one call against Redis under the deadline. Connection-level failures mark the
    /// link degraded and start the probe; any failure is counted.
    pub(crate) async fn call<T, F, Fut>(&self, f: F) -> Result<T, CallFailed>
    where
        F: FnOnce(ConnectionManager) -> Fut,
        Fut: Future<Output = RedisResult<T>>,
    {
        match tokio::time::timeout(self.options.timeout, f(self.conn.clone())).await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(e)) => {
                let outage = e.is_io_error()
                    || e.is_connection_dropped()
                    || e.is_timeout()
                    || e.is_unrecoverable_error();
                self.fail(&e, outage);
                Err(CallFailed)
            }
            Err(_) => {
                self.fail(&"call timed out", true);
                Err(CallFailed)
            }
        }
    }

    fn fail(&self, why: &dyn fmt::Display, outage: bool) {
        metrics::counter!(metric_names::REDIS_ERRORS, "component" => self.component).increment(1);
        if !outage {
            tracing::warn!(component = self.component, error = %why, "Redis call failed");
            return;
        }
        if !self.state.degraded.swap(true, Ordering::AcqRel) {
            metrics::gauge!(metric_names::DEGRADED, "component" => self.component).set(1.0);
            match self.policy {
                RedisDownPolicy::Local => tracing::error!(
                    component = self.component,
                    error = %why,
                    "Redis unreachable: falling back to in-process limits until it answers"
                ),
                RedisDownPolicy::Refuse => tracing::error!(
                    component = self.component,
                    error = %why,
                    "Redis unreachable: refusing until it answers (policy refuse)"
                ),
            }
        }
        self.spawn_probe();
    }

    /// One background task per link while degraded: PING (and reload the scripts, which a
    /// restarted server has forgotten) every `probe_every`; on success, clear the degraded
    /// state. It ends when the link is dropped.
    fn spawn_probe(&self) {
        if self.state.probing.swap(true, Ordering::AcqRel) {
            return;
        }
        let weak: Weak<LinkState> = Arc::downgrade(&self.state);
        let conn = self.conn.clone();
        let scripts = self.scripts.clone();
        let options = self.options;
        let component = self.component;
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(options.probe_every).await;
                let Some(state) = weak.upgrade() else {
                    return;
                };
                let ok = tokio::time::timeout(
                    options.connect_timeout,
                    prepare(conn.clone(), scripts.clone()),
                )
                .await;
                if let Ok(Ok(())) = ok {
                    state.degraded.store(false, Ordering::Release);
                    state.probing.store(false, Ordering::Release);
                    metrics::gauge!(metric_names::DEGRADED, "component" => component).set(0.0);
                    tracing::info!(
                        component,
                        "Redis answers again: back to Redis-backed limits"
                    );
                    return;
                }
            }
        });
    }
}

fn manager(client: Client, options: LinkOptions) -> RedisResult<ConnectionManager> {
    // Few, short reconnect attempts: the probe retries for as long as needed, and requests
    // must not queue behind a long backoff.
    let config = ConnectionManagerConfig::new()
        .set_connection_timeout(Some(options.connect_timeout))
        .set_response_timeout(Some(options.timeout))
        .set_number_of_retries(1)
        .set_max_delay(Duration::from_millis(200));
    ConnectionManager::new_lazy_with_config(client, config)
}

async fn prepare(mut conn: ConnectionManager, scripts: Arc<[Script]>) -> Result<(), RedisError> {
    redis::cmd("PING").query_async::<()>(&mut conn).await?;
    for script in scripts.iter() {
        script.prepare_invoke().load_async(&mut conn).await?;
    }
    Ok(())
}
