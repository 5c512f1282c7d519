//! What every handler shares.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use hearth_app::Hearth;
use hearth_limits::client_ip::ClientIpResolver;
use hearth_limits::{AnomalyDetector, RouteLimits};

use crate::ws::WsSettings;

/// Shared application state; cloning is cheap.
///
/// It derefs to its parts, which deref to the wired services ([`hearth_app::Services`]), so a
/// handler reaches `state.db`, `state.rounds` or `state.limiter` directly.
#[derive(Clone)]
pub struct AppState(Arc<Inner>);

/// The parts of [`AppState`]: the services, and what only the HTTP transport needs.
pub struct Inner {
    /// The wired services: storage, tokens, limiter, leaderboards, rounds, settings.
    pub hearth: Hearth,
    /// Who the client is behind the load balancer.
    pub client_ip: ClientIpResolver,
    /// Which rules apply to which routes.
    pub route_limits: RouteLimits,
    /// Per-IP traffic anomaly detection; in-process per instance.
    pub anomaly: AnomalyDetector,
    /// The WebSocket's settings and the signal that closes every socket on shutdown.
    pub(crate) sockets: crate::ws::Sockets,
    /// Users seen by this process in the last 5 minutes, for `hearth_active_users`.
    pub(crate) active_users: crate::active_users::ActiveUsers,
    /// Set when graceful shutdown begins, so readiness fails and load balancers drain us.
    draining: AtomicBool,
}

impl AppState {
    /// The HTTP state around wired services, with the WebSocket's settings from the `realtime`
    /// section.
    pub fn new(hearth: Hearth) -> Self {
        let ws = WsSettings::from(&hearth.settings.realtime);
        Self::with_ws(hearth, ws)
    }

    /// The HTTP state around wired services, with the WebSocket's settings.
    pub fn with_ws(hearth: Hearth, ws: WsSettings) -> Self {
        let settings = &hearth.settings;
        Self(Arc::new(Inner {
            route_limits: crate::limits::route_table(&settings.limits.rules),
            anomaly: AnomalyDetector::new(settings.limits.anomaly),
            client_ip: ClientIpResolver::new(settings.limits.trusted_proxies.clone()),
            hearth,
            sockets: crate::ws::Sockets::new(ws),
            active_users: crate::active_users::ActiveUsers::default(),
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

impl std::ops::Deref for Inner {
    type Target = hearth_app::Services;

    fn deref(&self) -> &hearth_app::Services {
        &self.hearth
    }
}
