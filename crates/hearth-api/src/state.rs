//! What every handler shares.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use hearth_auth::{Authenticator, LockoutStore, PasswordHasher, RevocationStore, TokenService};
use hearth_limits::client_ip::ClientIpResolver;
use hearth_limits::{AnomalyDetector, Limiter, RouteLimits};
use hearth_observability::metrics::PrometheusHandle;
use hearth_storage::Database;
use hearth_storage::leaderboard::Leaderboards;

use crate::settings::Settings;

/// Where sessions live: revocations and login lockouts.
#[derive(Clone)]
pub struct SessionStores {
    /// Revoked tokens, sessions and users.
    pub revocations: Arc<dyn RevocationStore>,
    /// Failed-login counts and locks.
    pub lockouts: Arc<dyn LockoutStore>,
}

impl SessionStores {
    /// Both in this process: right for one embedded instance.
    pub fn in_process() -> Self {
        Self {
            revocations: Arc::new(hearth_auth::InProcessRevocations::new()),
            lockouts: Arc::new(hearth_auth::InProcessLockouts::new()),
        }
    }
}

/// Shared application state; cloning is cheap.
#[derive(Clone)]
pub struct AppState(Arc<Inner>);

/// The parts of [`AppState`].
pub struct Inner {
    /// Storage.
    pub db: Arc<dyn Database>,
    /// Token issue and verification.
    pub tokens: TokenService,
    /// Verification plus the revocation check (Redis or in-process).
    pub auth: Authenticator,
    /// Failed-login counts and locks (Redis or in-process).
    pub lockouts: Arc<dyn LockoutStore>,
    /// bcrypt off the async threads.
    pub hasher: PasswordHasher,
    /// The settings the app was built with.
    pub settings: Settings,
    /// The Prometheus registry's handle.
    pub metrics: PrometheusHandle,
    /// Who the client is behind the load balancer.
    pub client_ip: ClientIpResolver,
    /// Rate-limit decisions (Redis or in-process).
    pub limiter: Limiter,
    /// Which rules apply to which routes.
    pub route_limits: RouteLimits,
    /// Per-IP traffic anomaly detection; in-process per instance.
    pub anomaly: AnomalyDetector,
    /// Leaderboards (Redis sorted sets or in-process).
    pub leaderboards: Arc<dyn Leaderboards>,
    /// Set when graceful shutdown begins, so readiness fails and load balancers drain us.
    draining: AtomicBool,
}

impl AppState {
    /// Builds the state from its parts.
    pub fn new(
        db: Arc<dyn Database>,
        settings: Settings,
        metrics: PrometheusHandle,
        limiter: Limiter,
        leaderboards: Arc<dyn Leaderboards>,
        sessions: SessionStores,
    ) -> Self {
        let tokens = TokenService::new(&settings.auth);
        Self(Arc::new(Inner {
            auth: Authenticator::new(tokens.clone(), sessions.revocations),
            lockouts: sessions.lockouts,
            route_limits: crate::limits::route_table(&settings.limits.rules),
            anomaly: AnomalyDetector::new(settings.limits.anomaly),
            limiter,
            leaderboards,
            tokens,
            hasher: PasswordHasher::new(
                settings.auth.bcrypt_cost,
                settings.auth.max_concurrent_hashes,
            ),
            client_ip: ClientIpResolver::new(settings.limits.trusted_proxies.clone()),
            db,
            settings,
            metrics,
            draining: AtomicBool::new(false),
        }))
    }

    /// Marks the instance as draining: readiness answers 503 from now on.
    pub fn begin_drain(&self) {
        self.0.draining.store(true, Ordering::SeqCst);
    }

    /// Whether graceful shutdown has begun.
    pub fn is_draining(&self) -> bool {
        self.0.draining.load(Ordering::SeqCst)
    }
}

impl std::ops::Deref for AppState {
    type Target = Inner;

    fn deref(&self) -> &Inner {
        &self.0
    }
}
