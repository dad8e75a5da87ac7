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

use std::future::poll_fn;
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

/// Relays between `a` and `b` until either ends or fails, or nothing crosses for `idle`;
/// what was carried either way, and the failure (`TimedOut` for the idle timeout) if there
/// was one.
pub async fn join<A, B>(a: &mut A, b: &mut B, idle: Duration) -> (Carried, io::Result<()>)
where
    A: AsyncRead + AsyncWrite + Unpin,
    B: AsyncRead + AsyncWrite + Unpin,
{
    let mut a_to_b = Direction::default();
    let mut b_to_a = Direction::default();
    // Set once, and moved on only when it fires: activity costs a clock read, not a timer
    // update per message.
    let mut last_active = Instant::now();
    let mut seen = 0;
    let mut timer = Box::pin(tokio::time::sleep_until(last_active + idle));
    let outcome = poll_fn(|cx| {
        if let Poll::Ready(done) = a_to_b.poll(Pin::new(&mut *a), Pin::new(&mut *b), cx) {
            return Poll::Ready(done);
        }
        if let Poll::Ready(done) = b_to_a.poll(Pin::new(&mut *b), Pin::new(&mut *a), cx) {
            return Poll::Ready(done);
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
    /// Moves bytes from `from` to `to` for as long as both are ready; `Ready` once `from`
    /// has ended and `to` has been shut down, or on a failure.
    fn poll<R, W>(
        &mut self,
        mut from: Pin<&mut R>,
        mut to: Pin<&mut W>,
        cx: &mut Context<'_>,
    ) -> Poll<io::Result<()>>
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
                return to.as_mut().poll_shutdown(cx);
            }
            let mut buf = [0u8; READ_SIZE];
            let mut read = ReadBuf::new(&mut buf);
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
    use tokio::io::{AsyncReadExt, AsyncWriteExt, duplex};

    use super::*;

    #[tokio::test]
    async fn bytes_cross_both_ways_and_either_end_ends_the_relay() {
        let (mut client, mut proxy_client) = duplex(64);
        let (mut proxy_backend, mut backend) = duplex(64);
        let relay = tokio::spawn(async move {
            join(
                &mut proxy_client,
                &mut proxy_backend,
                Duration::from_secs(60),
            )
            .await
        });

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
        let (mut client, mut proxy_client) = duplex(1024);
        let (mut proxy_backend, mut backend) = duplex(1024);
        let relay = tokio::spawn(async move {
            join(
                &mut proxy_client,
                &mut proxy_backend,
                Duration::from_secs(60),
            )
            .await
        });
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
        assert!(outcome.is_ok());
        assert_eq!(carried.b_to_a, expected.len() as u64);
    }

    #[tokio::test(start_paused = true)]
    async fn a_relay_ends_after_the_idle_timeout_and_not_while_bytes_cross() {
        let (mut client, mut proxy_client) = duplex(64);
        let (mut proxy_backend, mut backend) = duplex(64);
        let idle = Duration::from_secs(600);
        let relay =
            tokio::spawn(async move { join(&mut proxy_client, &mut proxy_backend, idle).await });
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
}
