//! Idle HTTP/1 connections to plain `http://` backends, kept per worker thread: a checkout
//! and a return take no lock and touch no other thread's memory.
//!
//! A connection goes back to the pool of whichever thread ends its response. On a
//! multi-thread runtime that is often not the thread the next request starts on (tasks move
//! between workers), and connections would strand on one thread while another opens new
//! ones: there each thread keeps at most [`LOCAL_IDLE_PER_HOST`] idle connections per host
//! and passes the rest to a pool shared by all threads (behind a lock), which a thread with
//! none of its own takes from. A current-thread runtime keeps them all in its thread's pool.
//!
//! Idle connections are not polled while they wait, so a backend that closes one is noticed
//! when it is next checked out (polled once then; a closed one is dropped and the next tried)
//! or by a sweep. Each host keeps at most [`Limits::max_idle_per_host`] idle connections per
//! pool, none older than [`Limits::idle_timeout`]; every [`SWEEP_INTERVAL`] a return also
//! sweeps its pool's other hosts, so connections to a backend no longer called do not pile
//! up.

use std::cell::RefCell;
use std::collections::{HashMap, VecDeque};
use std::sync::{LazyLock, Mutex, PoisonError};
use std::task::{Context, Waker};
use std::time::{Duration, Instant};

use hyper::http::uri::Authority;

use super::http1::Http1;

/// How often a return also sweeps every host of its pool.
pub const SWEEP_INTERVAL: Duration = Duration::from_secs(10);
/// On a multi-thread runtime, the idle connections per host a thread keeps for itself.
pub const LOCAL_IDLE_PER_HOST: usize = 2;

/// What bounds idle connections.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Per host and per pool; past it the oldest idle connection is closed.
    pub max_idle_per_host: usize,
    /// An idle connection older than this is closed rather than reused.
    pub idle_timeout: Duration,
    /// Whether threads share what they do not keep (a multi-thread runtime).
    pub shared: bool,
    /// A connection idle this long or longer may be being closed by its backend right now:
    /// an idempotent request sent on it keeps a copy, to be sent again if it breaks.
    pub replay_after_idle: Duration,
}

impl Limits {
    /// 256 idle connections per host and pool, 60 s at most; shared between threads when
    /// the current runtime has several.
    pub fn for_current_runtime() -> Self {
        let shared = tokio::runtime::Handle::try_current()
            .is_ok_and(|h| h.runtime_flavor() != tokio::runtime::RuntimeFlavor::CurrentThread);
        Self {
            max_idle_per_host: 256,
            idle_timeout: Duration::from_secs(60),
            shared,
            replay_after_idle: Duration::from_secs(1),
        }
    }
}

struct Parked {
    conn: Http1,
    since: Instant,
}

/// A pool's key: the authority as written (hashed and compared as bytes, which is cheaper
/// than `Authority`'s own case-insensitive hash, byte by byte; two spellings of one host are
/// two keys, which costs at most a connection).
struct Host(Authority);

impl PartialEq for Host {
    fn eq(&self, other: &Self) -> bool {
        self.0.as_str() == other.0.as_str()
    }
}

impl Eq for Host {}

// As `str` hashes, which `Borrow<str>` requires.
impl std::hash::Hash for Host {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.0.as_str().hash(state);
    }
}

impl std::borrow::Borrow<str> for Host {
    fn borrow(&self) -> &str {
        self.0.as_str()
    }
}

/// One pool: idle connections by host.
#[derive(Default)]
struct Idle {
    /// Oldest first: a checkout takes the newest (the most likely still open).
    hosts: HashMap<Host, VecDeque<Parked>, foldhash::fast::RandomState>,
    last_sweep: Option<Instant>,
}

thread_local! {
    static LOCAL: RefCell<Idle> = RefCell::new(Idle::default());
}

static SHARED: LazyLock<Mutex<Idle>> = LazyLock::new(|| Mutex::new(Idle::default()));

/// An idle connection to `host` that is still open, and how long it was idle: this thread's,
/// else a shared one. Polled once in `cx` to notice a backend that closed it.
pub fn checkout(
    host: &Authority,
    now: Instant,
    limits: Limits,
    cx: &mut Context<'_>,
) -> Option<(Http1, Duration)> {
    if let Some(found) = LOCAL.with_borrow_mut(|idle| idle.take(host, now, limits, cx)) {
        return Some(found);
    }
    if !limits.shared {
        return None;
    }
    SHARED
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .take(host, now, limits, cx)
}

/// Keeps a connection whose last exchange ended cleanly for the next request to `host`.
pub fn checkin(host: &Authority, conn: Http1, limits: Limits) {
    let now = Instant::now();
    let keep = match limits.shared {
        true => LOCAL_IDLE_PER_HOST,
        false => limits.max_idle_per_host,
    };
    let passed = LOCAL.with_borrow_mut(|idle| idle.put(host, conn, now, limits, keep));
    if let Some(conn) = passed {
        let mut shared = SHARED.lock().unwrap_or_else(PoisonError::into_inner);
        let _ = shared.put(host, conn, now, limits, limits.max_idle_per_host);
    }
}

/// How many idle connections to `host` this thread holds.
#[cfg(test)]
pub fn idle_count(host: &Authority) -> usize {
    LOCAL.with_borrow(|idle| idle.hosts.get(host.as_str()).map_or(0, VecDeque::len))
}

impl Idle {
    fn take(
        &mut self,
        host: &Authority,
        now: Instant,
        limits: Limits,
        cx: &mut Context<'_>,
    ) -> Option<(Http1, Duration)> {
        let list = self.hosts.get_mut(host.as_str())?;
        while let Some(parked) = list.pop_back() {
            let idle = now.saturating_duration_since(parked.since);
            if idle > limits.idle_timeout {
                // The rest are older still.
                list.clear();
                break;
            }
            let mut conn = parked.conn;
            if conn.is_open(cx) {
                return Some((conn, idle));
            }
            tracing::trace!(%host, "an idle backend connection was closed by the backend");
        }
        None
    }

    /// Parks `conn` unless the host already has `keep` idle connections here: then it comes
    /// back when `limits.shared` (for the shared pool), else the oldest is closed for it.
    fn put(
        &mut self,
        host: &Authority,
        conn: Http1,
        now: Instant,
        limits: Limits,
        keep: usize,
    ) -> Option<Http1> {
        if self
            .last_sweep
            .is_none_or(|last| now.duration_since(last) >= SWEEP_INTERVAL)
        {
            self.last_sweep = Some(now);
            self.sweep(now, limits.idle_timeout);
        }
        let list = match self.hosts.get_mut(host.as_str()) {
            Some(list) => list,
            None => self.hosts.entry(Host(host.clone())).or_default(),
        };
        prune(list, now, limits.idle_timeout);
        let keep = keep.max(1);
        if list.len() >= keep {
            if limits.shared && keep < limits.max_idle_per_host {
                return Some(conn);
            }
            while list.len() >= keep {
                list.pop_front();
            }
        }
        list.push_back(Parked { conn, since: now });
        None
    }

    /// Drops the expired connections of every host, and those whose backend closed them
    /// (polled without a waker: nothing waits on an idle connection), then the empty hosts.
    fn sweep(&mut self, now: Instant, timeout: Duration) {
        let mut cx = Context::from_waker(Waker::noop());
        self.hosts.retain(|_, list| {
            prune(list, now, timeout);
            list.retain_mut(|parked| parked.conn.is_open(&mut cx));
            !list.is_empty()
        });
    }
}

/// Drops the connections idle for longer than `timeout` (at the front: oldest first).
fn prune(list: &mut VecDeque<Parked>, now: Instant, timeout: Duration) {
    while list
        .front()
        .is_some_and(|p| now.duration_since(p.since) > timeout)
    {
        list.pop_front();
    }
}
