//! What the listeners keep per connection: the `--max-connections` cap with its metrics and
//! warning, and the count of open HTTP/2 streams that tells when a connection is idle.

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use hyper::body::{Body, Frame, SizeHint};
use prometheus::{IntCounter, IntGauge};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, watch};

use crate::warn_every::WarnEvery;

/// The default `--max-connections`, unless the file descriptor limit allows fewer.
pub const DEFAULT_MAX_CONNECTIONS: usize = 10_000;
/// File descriptors kept for what is not a client connection: listeners, the admin port, the
/// controller stream, Redis, files.
const RESERVED_FDS: u64 = 128;
/// The warning that the limit is reached is logged at most this often.
const WARN_EVERY: Duration = Duration::from_secs(10);

/// The most connections served at once, across the plain and TLS listeners.
pub struct ConnectionLimit {
    permits: Arc<Semaphore>,
    max: usize,
    open: IntGauge,
    refused: IntCounter,
    warning: WarnEvery,
}

/// A connection counted against the limit until dropped.
pub struct Admitted {
    _permit: OwnedSemaphorePermit,
    open: IntGauge,
}

impl Drop for Admitted {
    fn drop(&mut self) {
        self.open.dec();
    }
}

impl ConnectionLimit {
    /// `open` and `refused` are the metrics `tollgate_connections_open` and
    /// `tollgate_connections_refused_total`.
    pub fn new(max: usize, open: IntGauge, refused: IntCounter) -> Self {
        let max = max.clamp(1, Semaphore::MAX_PERMITS);
        Self {
            permits: Arc::new(Semaphore::new(max)),
            max,
            open,
            refused,
            warning: WarnEvery::new(WARN_EVERY),
        }
    }

    /// A slot for a new connection, or `None` when every one is taken.
    pub fn admit(&self) -> Option<Admitted> {
        let permit = self.permits.clone().try_acquire_owned().ok()?;
        self.open.inc();
        Some(Admitted {
            _permit: permit,
            open: self.open.clone(),
        })
    }

    /// Counts a connection closed unserved because the limit is reached; warns at most every
    /// [`WARN_EVERY`], with how many were refused since the last warning.
    pub fn refuse(&self, peer: SocketAddr) {
        self.refused.inc();
        if let Some(refused) = self.warning.due() {
            tracing::warn!(
                max_connections = self.max,
                refused,
                peer = %peer,
                "connection limit reached (--max-connections): new connections are closed unserved"
            );
        }
    }
}

/// `--max-connections` when not given: [`DEFAULT_MAX_CONNECTIONS`], or fewer when the file
/// descriptor limit (`soft_fd_limit`) cannot hold that many with a backend connection each.
pub fn default_max_connections(soft_fd_limit: Option<u64>) -> usize {
    match soft_fd_limit {
        Some(fds) => {
            let fit = fds.saturating_sub(RESERVED_FDS) / 2;
            usize::try_from(fit)
                .unwrap_or(usize::MAX)
                .clamp(1, DEFAULT_MAX_CONNECTIONS)
        }
        None => DEFAULT_MAX_CONNECTIONS,
    }
}

/// Raises the soft limit on open files to the hard limit (as the Go runtime does at start:
/// the soft limit, often 1,024, is a leftover of `select(2)`), and returns the soft limit now
/// in force (`None`: unlimited or unknown).
pub fn raise_fd_limit() -> Option<u64> {
    use rustix::process::{Resource, getrlimit, setrlimit};
    let mut limit = getrlimit(Resource::Nofile);
    if limit.current != limit.maximum {
        let raised = rustix::process::Rlimit {
            current: limit.maximum,
            maximum: limit.maximum,
        };
        match setrlimit(Resource::Nofile, raised) {
            Ok(()) => limit = raised,
            Err(e) => tracing::debug!(error = %e, "cannot raise the open files limit"),
        }
    }
    limit.current
}

/// The requests open on one HTTP/2 connection: from a request's arrival until its response
/// body is sent (or the stream is reset). A connection with none for the idle timeout is
/// closed.
#[derive(Clone)]
pub struct Streams(Arc<watch::Sender<usize>>);

/// One open stream, counted until dropped.
pub struct StreamGuard(Streams);

impl Drop for StreamGuard {
    fn drop(&mut self) {
        self.0.0.send_modify(|n| *n = n.saturating_sub(1));
    }
}

impl Default for Streams {
    fn default() -> Self {
        Self(Arc::new(watch::channel(0).0))
    }
}

impl Streams {
    pub fn open(&self) -> StreamGuard {
        self.0.send_modify(|n| *n += 1);
        StreamGuard(self.clone())
    }

    /// Resolves once no stream has been open for `timeout` (the clock restarts whenever the
    /// last open stream ends).
    pub async fn idle_for(&self, timeout: Duration) {
        let mut count = self.0.subscribe();
        loop {
            if *count.borrow_and_update() == 0 {
                tokio::select! {
                    () = tokio::time::sleep(timeout) => return,
                    _ = count.changed() => {}
                }
            } else {
                // `self` holds the sender: this never fails.
                let _ = count.changed().await;
            }
        }
    }
}

/// A response body holding its stream's [`StreamGuard`] until hyper is done with it.
pub struct Tracked<B> {
    inner: B,
    _guard: StreamGuard,
}

impl<B> Tracked<B> {
    pub fn new(inner: B, guard: StreamGuard) -> Self {
        Self {
            inner,
            _guard: guard,
        }
    }
}

impl<B: Body + Unpin> Body for Tracked<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limit(max: usize) -> ConnectionLimit {
        ConnectionLimit::new(
            max,
            IntGauge::new("open", "open").unwrap(),
            IntCounter::new("refused", "refused").unwrap(),
        )
    }

    #[test]
    fn the_limit_admits_up_to_max_and_frees_a_slot_on_drop() {
        let limit = limit(2);
        let a = limit.admit().unwrap();
        let _b = limit.admit().unwrap();
        assert!(limit.admit().is_none());
        assert_eq!(limit.open.get(), 2);
        drop(a);
        assert_eq!(limit.open.get(), 1);
        assert!(limit.admit().is_some());
        limit.refuse("127.0.0.1:1".parse().unwrap());
        limit.refuse("127.0.0.1:1".parse().unwrap());
        assert_eq!(limit.refused.get(), 2);
    }

    #[test]
    fn the_default_fits_the_file_descriptor_limit() {
        assert_eq!(default_max_connections(None), DEFAULT_MAX_CONNECTIONS);
        assert_eq!(
            default_max_connections(Some(1 << 20)),
            DEFAULT_MAX_CONNECTIONS
        );
        assert_eq!(default_max_connections(Some(1024)), 448);
        assert_eq!(default_max_connections(Some(10)), 1);
    }

    #[tokio::test]
    async fn a_connection_is_idle_once_no_stream_is_open_for_the_timeout() {
        let streams = Streams::default();
        let guard = streams.open();
        let idle = streams.idle_for(Duration::from_millis(50));
        tokio::pin!(idle);
        // A stream open for longer than the timeout is not idleness.
        assert!(
            tokio::time::timeout(Duration::from_millis(300), &mut idle)
                .await
                .is_err()
        );
        drop(guard);
        tokio::time::timeout(Duration::from_secs(10), idle)
            .await
            .expect("idle once the last stream ended");
    }
}
