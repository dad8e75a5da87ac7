//! Idle HTTP/1 connections to plain `http://` backends, kept per worker thread: a checkout
//! and a return take no lock and touch no other thread's memory. A connection is returned to
//! the pool of whichever thread ends its response (a task may move between the threads of a
//! multi-thread runtime; a connection is `Send`, so that is fine).
//!
//! Idle connections are not polled while they wait, so a backend that closes one is noticed
//! when it is next checked out (polled once then; a closed one is dropped and the next tried)
//! or when its host's list is pruned. Each host keeps at most
//! [`Limits::max_idle_per_host`] idle connections per thread, none older than
//! [`Limits::idle_timeout`]; every [`SWEEP_INTERVAL`] a return also prunes the other hosts,
//! so connections to a backend no longer called do not pile up.

use std::cell::RefCell;
use std::collections::{HashMap, VecDeque};
use std::task::{Context, Waker};
use std::time::{Duration, Instant};

use hyper::http::uri::Authority;

use super::http1::Http1;

/// How often a return also prunes every host's idle list.
pub const SWEEP_INTERVAL: Duration = Duration::from_secs(10);

/// What bounds a worker's idle connections.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Per host and per worker thread; past it the oldest idle connection is closed.
    pub max_idle_per_host: usize,
    /// An idle connection older than this is closed rather than reused.
    pub idle_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_idle_per_host: 256,
            idle_timeout: Duration::from_secs(60),
        }
    }
}

struct Parked {
    conn: Http1,
    since: Instant,
}

#[derive(Default)]
struct Idle {
    /// Oldest first: a checkout takes the newest (the most likely still open).
    hosts: HashMap<Authority, VecDeque<Parked>, foldhash::fast::RandomState>,
    last_sweep: Option<Instant>,
}

thread_local! {
    static IDLE: RefCell<Idle> = RefCell::new(Idle::default());
}

/// An idle connection to `host` that is still open, if this thread has one. Polled once in
/// `cx` to notice a backend that closed it.
pub fn checkout(host: &Authority, limits: Limits, cx: &mut Context<'_>) -> Option<Http1> {
    IDLE.with_borrow_mut(|idle| {
        let list = idle.hosts.get_mut(host)?;
        let now = Instant::now();
        while let Some(parked) = list.pop_back() {
            if now.duration_since(parked.since) > limits.idle_timeout {
                // The rest are older still.
                list.clear();
                break;
            }
            let mut conn = parked.conn;
            if conn.is_open(cx) {
                return Some(conn);
            }
            tracing::trace!(%host, "an idle backend connection was closed by the backend");
        }
        None
    })
}

/// Keeps a connection whose last exchange ended cleanly for the next request to `host`.
pub fn checkin(host: &Authority, conn: Http1, limits: Limits) {
    IDLE.with_borrow_mut(|idle| {
        let now = Instant::now();
        if idle
            .last_sweep
            .is_none_or(|last| now.duration_since(last) >= SWEEP_INTERVAL)
        {
            idle.last_sweep = Some(now);
            sweep(idle, now, limits);
        }
        let parked = Parked { conn, since: now };
        let list = match idle.hosts.get_mut(host) {
            Some(list) => list,
            None => idle.hosts.entry(host.clone()).or_default(),
        };
        prune(list, now, limits.idle_timeout);
        while list.len() >= limits.max_idle_per_host.max(1) {
            list.pop_front();
        }
        list.push_back(parked);
    })
}

/// How many idle connections to `host` this thread holds.
#[cfg(test)]
pub fn idle_count(host: &Authority) -> usize {
    IDLE.with_borrow(|idle| idle.hosts.get(host).map_or(0, VecDeque::len))
}

/// Drops the expired connections of every host, and those whose backend closed them
/// (polled without a waker: nothing waits on an idle connection), then the empty hosts.
fn sweep(idle: &mut Idle, now: Instant, limits: Limits) {
    let mut cx = Context::from_waker(Waker::noop());
    idle.hosts.retain(|_, list| {
        prune(list, now, limits.idle_timeout);
        list.retain_mut(|parked| parked.conn.is_open(&mut cx));
        !list.is_empty()
    });
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
