//! What every request shares: the tables being served and the proxy's plumbing, in one
//! structure built once at start ([`Shared`]). Kept apart from the request path, so the
//! modules that install tables, serve the admin port or watch files need not depend on it.

use std::sync::atomic::AtomicU32;
use std::time::Duration;

use arc_swap::ArcSwap;

use crate::access_log::AccessLog;
use crate::auth::AuthState;
use crate::dispatch::Dispatch;
use crate::managed::Managed;
use crate::metrics::Metrics;
use crate::request_body::BodyLimits;
use crate::request_trace::Tracers;
use crate::throttle::Limiter;
use crate::upstream::Upstream;

/// What every request shares: the tables being served and the proxy's plumbing.
pub struct Shared {
    /// The current dispatch; a request holds the one it started with until it ends.
    pub dispatch: ArcSwap<Dispatch>,
    /// Every outbound call a request makes goes through it.
    pub client: Upstream,
    pub metrics: Metrics,
    pub access_log: AccessLog,
    /// How many proxies serve the gateway (fleet mode, from the controller; 1 otherwise): in
    /// local rate-limiting mode each proxy enforces `1 / fleet_size` of every rate.
    pub fleet_size: AtomicU32,
    /// Signing keys and cached authorizer answers.
    pub auth: AuthState,
    /// Throttle and quota counters.
    pub limiter: Limiter,
    /// The port HTTPS redirects name, when the proxy serves TLS.
    pub https_port: Option<u16>,
    /// The payload limit, the body read deadline and the buffered-body budget.
    pub body_limits: BodyLimits,
    /// How long a WebSocket may carry nothing either way before it is closed.
    pub websocket_idle_timeout: Duration,
    /// The WebSocket API connections this proxy holds, and the bus to the fleet's.
    pub managed: Managed,
    /// The exporters of the collectors traced stages send spans to.
    pub tracers: Tracers,
}
