//! Bytes copied both ways between two connections (a client's and a backend's, once a
//! WebSocket handshake has switched protocols), holding no buffer while idle.
//!
//! Each direction reads into a buffer on the stack of the poll that reads, and writes what it
//! read before that poll returns. Only when the receiving side cannot take it all (its socket
//! buffer is full: a slow reader) is the rest kept, on the heap, and the direction reads
//! nothing more until it has been written, so a slow reader holds at most one read's worth
//! ([`READ_SIZE`]) of the proxy's memory. An idle connection holds none: ten thousand idle
//! WebSockets cost what their two sockets and their task cost, where a copy loop with a
//! buffer per direction (`tokio::io::copy`) holds 16 KiB each.
//!
//! The relay ends when either side ends its stream (the other is told so, with a shutdown)
//! or fails: a WebSocket is over once either side has closed (after the closing handshake
//! the server closes first, RFC 6455 section 7.1.1), and a client that keeps its end open
//! after that holds nothing of the proxy's. It also ends when no byte has crossed either way
//! for the idle timeout: a peer that vanished without closing (a dropped NAT entry, a
//! powered-off device) would otherwise hold its place under `--max-connections` for ever.
//!
//! And it stops when told to (the end of the drain): each direction carries on only to the
//! next boundary of the protocol it carries ([`Boundaries`]: the end of a WebSocket frame),
//! then reads no more, so that the caller can end the conversation in that protocol (a close
//! frame) rather than cut a message in half.

use std::future::{Future, poll_fn};
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use tokio::time::Instant;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// The most one read takes from a side: what a slow reader can make the proxy hold.
pub const READ_SIZE: usize = 16 * 1024;

/// What a relay carried, each way: bytes written to the other side.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Carried {
    pub a_to_b: u64,
    pub b_to_a: u64,
}

/// Where a stream of a protocol may be cut, followed as its bytes are carried.
pub trait Boundaries {
    /// Follows bytes carried this way.
    fn carried(&mut self, bytes: &[u8]);
    /// How many more bytes to carry to reach the next boundary: 0 at one; at least 1 while
    /// the distance is not known yet (a frame header is still arriving).
    fn to_boundary(&self) -> u64;
}

/// How a relay ended, when it did not fail.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ended {
    /// One side ended its stream; the other was told.
    Closed,
    /// Stopped as asked, both directions at a boundary, both connections still open.
    Stopped,
}

/// The two directions' [`Boundaries`].
pub struct Protocol<'a> {
    pub a_to_b: &'a mut (dyn Boundaries + Send),
    pub b_to_a: &'a mut (dyn Boundaries + Send),
}

/// Relays between `a` and `b` until either ends or fails, nothing crosses for `idle`, or
/// `stop` resolves and both directions have reached a boundary of `protocol`; what was
/// carried either way, and how it ended (`TimedOut` for the idle timeout).
pub async fn join<A, B>(
    a: &mut A,
    b: &mut B,
    idle: Duration,
    protocol: Protocol<'_>,
    stop: impl Future<Output = ()>,
) -> (Carried, io::Result<Ended>)
where
    A: AsyncRead + AsyncWrite + Unpin,
    B: AsyncRead + AsyncWrite + Unpin,
{
    let Protocol {
        a_to_b: a_to_b_bounds,
        b_to_a: b_to_a_bounds,
    } = protocol;
    let mut a_to_b = Direction::default();
    let mut b_to_a = Direction::default();
    let mut stop = std::pin::pin!(stop);
    let mut stopping = false;
    // Set once, and moved on only when it fires: activity costs a clock read, not a timer
    // update per message.
    let mut last_active = Instant::now();
    let mut seen = 0;
    let mut timer = Box::pin(tokio::time::sleep_until(last_active + idle));
    let outcome = poll_fn(|cx| {
        if !stopping && stop.as_mut().poll(cx).is_ready() {
            stopping = true;
        }
        let ab = a_to_b.poll(
            Pin::new(&mut *a),
            Pin::new(&mut *b),
            a_to_b_bounds,
            stopping,
            cx,
        );
        let ba = b_to_a.poll(
            Pin::new(&mut *b),
            Pin::new(&mut *a),
            b_to_a_bounds,
            stopping,
            cx,
        );
        match (ab, ba) {
            (Poll::Ready(Err(e)), _) | (_, Poll::Ready(Err(e))) => return Poll::Ready(Err(e)),
            (Poll::Ready(Ok(Halt::Ended)), _) | (_, Poll::Ready(Ok(Halt::Ended))) => {
                return Poll::Ready(Ok(Ended::Closed));
            }
            (Poll::Ready(Ok(Halt::AtBoundary)), Poll::Ready(Ok(Halt::AtBoundary))) => {
                return Poll::Ready(Ok(Ended::Stopped));
            }
            _ => {}
        }
        let carried = a_to_b.written + b_to_a.written;
        if carried != seen {
            seen = carried;
            last_active = Instant::now();
        }
        while timer.as_mut().poll(cx).is_ready() {
            if last_active.elapsed() >= idle {
                let message = format!("nothing sent either way for {idle:?}");
                return Poll::Ready(Err(io::Error::new(io::ErrorKind::TimedOut, message)));
            }
            timer.as_mut().reset(last_active + idle);
        }
        Poll::Pending
    })
    .await;
    let carried = Carried {
        a_to_b: a_to_b.written,
        b_to_a: b_to_a.written,
    };
    (carried, outcome)
}

/// Why a direction stopped.
enum Halt {
    /// Its reading side ended, and its writing side was shut down.
    Ended,
    /// Stopping, it reached a boundary with nothing left to write.
    AtBoundary,
}

/// One direction's state between polls: bytes read but not yet written, and whether the
/// reading side has ended.
#[derive(Default)]
struct Direction {
    unwritten: Vec<u8>,
    offset: usize,
    ended: bool,
    written: u64,
}

impl Direction {
    /// Moves bytes from `from` to `to` for as long as both are ready (when `stopping`, only
    /// up to the next boundary); `Ready` once `from` has ended and `to` has been shut down,
    /// once stopped at a boundary, or on a failure.
    fn poll<R, W>(
        &mut self,
        mut from: Pin<&mut R>,
        mut to: Pin<&mut W>,
        bounds: &mut dyn Boundaries,
        stopping: bool,
        cx: &mut Context<'_>,
    ) -> Poll<io::Result<Halt>>
    where
        R: AsyncRead + ?Sized,
        W: AsyncWrite + ?Sized,
    {
        loop {
            // What a slow reader left, first; its memory is given back once written.
            while self.offset < self.unwritten.len() {
                let n = ready!(self.write(to.as_mut(), cx, None))?;
                self.offset += n;
            }
            if !self.unwritten.is_empty() {
                self.unwritten = Vec::new();
                self.offset = 0;
            }
            if self.ended {
                ready!(to.as_mut().poll_shutdown(cx))?;
                return Poll::Ready(Ok(Halt::Ended));
            }
            let limit = if stopping {
                match bounds.to_boundary() {
                    0 => {
                        ready!(to.as_mut().poll_flush(cx))?;
                        return Poll::Ready(Ok(Halt::AtBoundary));
                    }
                    n => n.min(READ_SIZE as u64) as usize,
                }
            } else {
                READ_SIZE
            };
            let mut buf = [0u8; READ_SIZE];
            let mut read = ReadBuf::new(&mut buf[..limit]);
            match from.as_mut().poll_read(cx, &mut read) {
                Poll::Ready(result) => result?,
                Poll::Pending => {
                    // Nothing more to read now: what was written goes out.
                    return match to.as_mut().poll_flush(cx) {
                        Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
                        _ => Poll::Pending,
                    };
                }
            }
            let data = read.filled();
            if data.is_empty() {
                self.ended = true;
                continue;
            }
            bounds.carried(data);
            let mut done = 0;
            while done < data.len() {
                match self.write(to.as_mut(), cx, Some(&data[done..])) {
                    Poll::Ready(result) => done += result?,
                    Poll::Pending => {
                        self.unwritten = data[done..].to_vec();
                        return Poll::Pending;
                    }
                }
            }
        }
    }

    /// Writes `data` (or what is left unwritten, with `None`), counting what was taken.
    fn write<W: AsyncWrite + ?Sized>(
        &mut self,
        to: Pin<&mut W>,
        cx: &mut Context<'_>,
        data: Option<&[u8]>,
    ) -> Poll<io::Result<usize>> {
        let data = data.unwrap_or(&self.unwritten[self.offset..]);
        let n = ready!(to.poll_write(cx, data))?;
        if n == 0 {
            return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
        }
        self.written += n as u64;
        Poll::Ready(Ok(n))
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream, duplex};

    use super::*;

    /// A stream with no boundaries but between any two bytes.
    #[derive(Default)]
    struct Unframed;

    impl Boundaries for Unframed {
        fn carried(&mut self, _: &[u8]) {}
        fn to_boundary(&self) -> u64 {
            0
        }
    }

    /// Lines: a boundary after each newline.
    #[derive(Default)]
    struct Lines {
        mid_line: bool,
    }

    impl Boundaries for Lines {
        fn carried(&mut self, bytes: &[u8]) {
            if let Some(last) = bytes.last() {
                self.mid_line = *last != b'\n';
            }
        }
        fn to_boundary(&self) -> u64 {
            u64::from(self.mid_line)
        }
    }

    /// A client and a backend with a relay between them, never asked to stop, over pipes
    /// that hold `capacity` bytes.
    fn relayed(
        capacity: usize,
        idle: Duration,
    ) -> (
        DuplexStream,
        DuplexStream,
        tokio::task::JoinHandle<(Carried, io::Result<Ended>)>,
    ) {
        let (client, mut proxy_client) = duplex(capacity);
        let (mut proxy_backend, backend) = duplex(capacity);
        let relay = tokio::spawn(async move {
            let (mut ab, mut ba) = (Unframed, Unframed);
            let protocol = Protocol {
                a_to_b: &mut ab,
                b_to_a: &mut ba,
            };
            let stop = std::future::pending();
            join(&mut proxy_client, &mut proxy_backend, idle, protocol, stop).await
        });
        (client, backend, relay)
    }

    #[tokio::test]
    async fn bytes_cross_both_ways_and_either_end_ends_the_relay() {
        let (mut client, mut backend, relay) = relayed(64, Duration::from_secs(60));

        client.write_all(b"hello").await.unwrap();
        let mut got = [0u8; 5];
        backend.read_exact(&mut got).await.unwrap();
        assert_eq!(&got, b"hello");
        backend.write_all(b"hi").await.unwrap();
        let mut got = [0u8; 2];
        client.read_exact(&mut got).await.unwrap();
        assert_eq!(&got, b"hi");

        // The backend closes: the client is told, and the relay ends though the client's
        // end is still open.
        drop(backend);
        let mut rest = Vec::new();
        client.read_to_end(&mut rest).await.unwrap();
        assert!(rest.is_empty());
        let (carried, outcome) = relay.await.unwrap();
        assert!(outcome.is_ok());
        assert_eq!(
            carried,
            Carried {
                a_to_b: 5,
                b_to_a: 2
            }
        );
    }

    #[tokio::test]
    async fn a_slow_reader_holds_one_read_and_gets_every_byte_in_order() {
        // The pipes hold 1 KiB: the relay must keep what the reader cannot take yet.
        let (mut client, mut backend, relay) = relayed(1024, Duration::from_secs(60));
        let sent: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
        let expected = sent.clone();
        let writer = tokio::spawn(async move {
            backend.write_all(&sent).await.unwrap();
            backend
        });
        let mut got = vec![0u8; expected.len()];
        for chunk in got.chunks_mut(333) {
            tokio::task::yield_now().await;
            client.read_exact(chunk).await.unwrap();
        }
        assert_eq!(got, expected);
        drop(writer.await.unwrap());
        let (carried, outcome) = relay.await.unwrap();
        assert_eq!(outcome.unwrap(), Ended::Closed);
        assert_eq!(carried.b_to_a, expected.len() as u64);
    }

    #[tokio::test(start_paused = true)]
    async fn a_relay_ends_after_the_idle_timeout_and_not_while_bytes_cross() {
        let (mut client, mut backend, relay) = relayed(64, Duration::from_secs(600));
        // A byte every 5 minutes keeps it open past the timeout.
        for _ in 0..4 {
            tokio::time::sleep(Duration::from_secs(300)).await;
            client.write_all(b"x").await.unwrap();
            let mut got = [0u8; 1];
            backend.read_exact(&mut got).await.unwrap();
        }
        assert!(!relay.is_finished());
        let (carried, outcome) = tokio::time::timeout(Duration::from_secs(700), relay)
            .await
            .expect("the relay ends after the idle timeout")
            .unwrap();
        assert_eq!(outcome.unwrap_err().kind(), io::ErrorKind::TimedOut);
        assert_eq!(carried.a_to_b, 4);
    }

    #[tokio::test]
    async fn asked_to_stop_each_direction_finishes_its_unit_then_reads_no_more() {
        let (mut client, mut proxy_client) = duplex(64);
        let (mut proxy_backend, mut backend) = duplex(64);
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let relay = tokio::spawn(async move {
            let (mut ab, mut ba) = (Lines::default(), Lines::default());
            let protocol = Protocol {
                a_to_b: &mut ab,
                b_to_a: &mut ba,
            };
            let stop = async {
                let _ = stop_rx.await;
            };
            let idle = Duration::from_secs(60);
            let ended = join(&mut proxy_client, &mut proxy_backend, idle, protocol, stop).await;
            (ended, proxy_client, proxy_backend)
        });
        // Half a line each way when the stop comes.
        client.write_all(b"one\ntw").await.unwrap();
        backend.write_all(b"uno\ndo").await.unwrap();
        let mut got = [0u8; 6];
        backend.read_exact(&mut got).await.unwrap();
        client.read_exact(&mut got).await.unwrap();
        stop_tx.send(()).unwrap();
        // The rest of each line still crosses, and what follows it does not.
        client.write_all(b"o\nthree\n").await.unwrap();
        backend.write_all(b"s\ntres\n").await.unwrap();
        let ((carried, outcome), mut proxy_client, _) = relay.await.unwrap();
        assert_eq!(outcome.unwrap(), Ended::Stopped);
        assert_eq!(
            carried,
            Carried {
                a_to_b: 8,
                b_to_a: 8
            }
        );
        let mut rest = [0u8; 2];
        backend.read_exact(&mut rest).await.unwrap();
        assert_eq!(&rest, b"o\n");
        client.read_exact(&mut rest).await.unwrap();
        assert_eq!(&rest, b"s\n");
        // Both connections are still open for the caller, the next line unread.
        let mut next = [0u8; 6];
        proxy_client.read_exact(&mut next).await.unwrap();
        assert_eq!(&next, b"three\n");
    }
}
