//! One listener's connections: what each is doing (requests in flight, when it went idle,
//! when an HTTP/1 request head began), the table that caps their number, and the I/O wrapper
//! that notices a request head beginning.

use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio_util::sync::CancellationToken;

/// Why the collector closed a connection (`agentrace_connections_closed_total{reason}`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CloseReason {
    /// An HTTP/1 request head still incomplete `--header-read-timeout-secs` after its first byte.
    HeaderTimeout,
    /// A TLS handshake that took longer than the header read timeout.
    HandshakeTimeout,
    /// A TLS handshake that failed.
    HandshakeFailed,
    /// A request body slower than `--min-body-rate` over a window.
    BodyTimeout,
    /// No request in flight for `--idle-timeout-secs`.
    IdleTimeout,
    /// An HTTP/2 keep-alive ping unanswered.
    KeepaliveTimeout,
    /// The oldest idle connection, closed at the cap to make room for a new one.
    Evicted,
    /// A new connection at the cap with none idle to close.
    OverCapacity,
}

impl CloseReason {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::HeaderTimeout => "header_timeout",
            Self::HandshakeTimeout => "handshake_timeout",
            Self::HandshakeFailed => "handshake_failed",
            Self::BodyTimeout => "body_timeout",
            Self::IdleTimeout => "idle_timeout",
            Self::KeepaliveTimeout => "keepalive_timeout",
            Self::Evicted => "evicted",
            Self::OverCapacity => "over_capacity",
        }
    }
}

/// The state of one connection, shared by its task, its requests and the table.
#[derive(Debug)]
pub struct Connection {
    /// The listener's clock: times below are milliseconds since this.
    epoch: Instant,
    in_flight: AtomicUsize,
    /// When the last request ended (or the connection opened).
    idle_since_ms: AtomicU64,
    /// When the first byte of a pending HTTP/1 request head arrived; 0: none pending.
    head_since_ms: AtomicU64,
    /// HTTP/2 (seen from the preface): no request heads to time, pings and settings flow idle.
    http2: AtomicBool,
    reason: OnceLock<CloseReason>,
    close: CancellationToken,
}

impl Connection {
    fn new(epoch: Instant) -> Self {
        let now = epoch.elapsed().as_millis() as u64;
        Self {
            epoch,
            in_flight: AtomicUsize::new(0),
            idle_since_ms: AtomicU64::new(now),
            head_since_ms: AtomicU64::new(0),
            http2: AtomicBool::new(false),
            reason: OnceLock::new(),
            close: CancellationToken::new(),
        }
    }

    fn now_ms(&self) -> u64 {
        // Never 0, which means "none" for the head timer.
        (self.epoch.elapsed().as_millis() as u64).max(1)
    }

    /// A request began: the connection is busy until the returned guard drops.
    pub fn begin(self: &Arc<Self>) -> InFlight {
        self.head_since_ms.store(0, Ordering::Relaxed);
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        InFlight(self.clone())
    }

    pub fn is_idle(&self) -> bool {
        self.in_flight.load(Ordering::Relaxed) == 0
    }

    /// Asks the connection's task to close it, for `reason` (the first reason given stands).
    pub fn close(&self, reason: CloseReason) {
        let _ = self.reason.set(reason);
        self.close.cancel();
    }

    pub fn closing(&self) -> &CancellationToken {
        &self.close
    }

    pub fn reason(&self) -> Option<CloseReason> {
        self.reason.get().copied()
    }

    /// The limit this connection has passed now, if any: an HTTP/1 head pending too long, or
    /// idle too long.
    pub fn overdue(&self, header_read: Duration, idle: Duration) -> Option<CloseReason> {
        if !self.is_idle() {
            return None;
        }
        let now = self.now_ms();
        let head_since = self.head_since_ms.load(Ordering::Relaxed);
        if head_since != 0 && now.saturating_sub(head_since) >= header_read.as_millis() as u64 {
            return Some(CloseReason::HeaderTimeout);
        }
        let idle_since = self.idle_since_ms.load(Ordering::Relaxed);
        (now.saturating_sub(idle_since) >= idle.as_millis() as u64).then_some(CloseReason::IdleTimeout)
    }

    fn idle_since(&self) -> u64 {
        self.idle_since_ms.load(Ordering::Relaxed)
    }

    /// Bytes arrived: on an idle HTTP/1 connection they begin a request head.
    fn received(&self, bytes: &[u8]) {
        if !self.is_idle() || self.http2.load(Ordering::Relaxed) {
            return;
        }
        if self.head_since_ms.load(Ordering::Relaxed) == 0 {
            if bytes.starts_with(HTTP2_PREFACE_START) {
                self.http2.store(true, Ordering::Relaxed);
                return;
            }
            self.head_since_ms.store(self.now_ms(), Ordering::Relaxed);
        }
    }
}

const HTTP2_PREFACE_START: &[u8] = b"PRI * HTTP/2.0";

/// Holds a connection busy while a request is served.
#[derive(Debug)]
pub struct InFlight(Arc<Connection>);

impl Drop for InFlight {
    fn drop(&mut self) {
        let connection = &self.0;
        if connection.in_flight.fetch_sub(1, Ordering::Relaxed) == 1 {
            connection.idle_since_ms.store(connection.now_ms(), Ordering::Relaxed);
        }
    }
}

/// The open connections of one listener, at most `max`.
#[derive(Debug)]
pub struct Table {
    epoch: Instant,
    max: usize,
    open: Mutex<Vec<Arc<Connection>>>,
}

impl Table {
    pub fn new(max: usize) -> Self {
        Self { epoch: Instant::now(), max, open: Mutex::new(Vec::new()) }
    }

    /// Registers a new connection. At the cap the oldest idle connection is told to close
    /// (and still counts until its task ends); with none idle, the new one is refused.
    pub fn admit(&self) -> Result<Arc<Connection>, CloseReason> {
        let mut open = self.open.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let live = open.iter().filter(|connection| !connection.close.is_cancelled()).count();
        if live >= self.max {
            let oldest_idle = open
                .iter()
                .filter(|connection| connection.is_idle() && !connection.close.is_cancelled())
                .min_by_key(|connection| connection.idle_since());
            match oldest_idle {
                Some(oldest) => oldest.close(CloseReason::Evicted),
                None => return Err(CloseReason::OverCapacity),
            }
        }
        let connection = Arc::new(Connection::new(self.epoch));
        open.push(connection.clone());
        Ok(connection)
    }

    /// Forgets a connection whose task ended.
    pub fn remove(&self, connection: &Arc<Connection>) {
        let mut open = self.open.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        open.retain(|other| !Arc::ptr_eq(other, connection));
    }

    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.open.lock().unwrap_or_else(std::sync::PoisonError::into_inner).len()
    }
}

/// A connection's byte stream (after TLS), telling the connection when bytes arrive.
pub struct Watched<IO> {
    inner: IO,
    connection: Arc<Connection>,
}

impl<IO> Watched<IO> {
    pub fn new(inner: IO, connection: Arc<Connection>) -> Self {
        Self { inner, connection }
    }
}

impl<IO: AsyncRead + Unpin> AsyncRead for Watched<IO> {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let polled = Pin::new(&mut this.inner).poll_read(cx, buf);
        if buf.filled().len() > before {
            this.connection.received(&buf.filled()[before..]);
        }
        polled
    }
}

impl<IO: AsyncWrite + Unpin> AsyncWrite for Watched<IO> {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn at_the_cap_the_oldest_idle_connection_makes_room_and_busy_ones_do_not() {
        let table = Table::new(2);
        let first = table.admit().expect("room");
        std::thread::sleep(Duration::from_millis(5));
        let second = table.admit().expect("room");
        let third = table.admit().expect("the oldest idle one makes room");
        assert_eq!(first.reason(), Some(CloseReason::Evicted));
        assert_eq!(second.reason(), None);
        let _busy = (second.begin(), third.begin());
        assert_eq!(table.admit().err(), Some(CloseReason::OverCapacity), "none idle");
        table.remove(&first);
        assert_eq!(table.len(), 2);
    }

    #[test]
    fn a_pending_http1_head_times_out_and_an_idle_connection_idles_out() {
        let table = Table::new(8);
        let connection = table.admit().expect("room");
        let header_read = Duration::from_millis(20);
        let idle = Duration::from_secs(60);
        assert_eq!(connection.overdue(header_read, idle), None);
        connection.received(b"POST /v1/tra");
        std::thread::sleep(Duration::from_millis(30));
        assert_eq!(connection.overdue(header_read, idle), Some(CloseReason::HeaderTimeout));
        let request = connection.begin();
        assert_eq!(connection.overdue(header_read, idle), None, "busy");
        drop(request);
        assert_eq!(connection.overdue(header_read, Duration::from_millis(10)), None, "just went idle");
        std::thread::sleep(Duration::from_millis(15));
        assert_eq!(
            connection.overdue(header_read, Duration::from_millis(10)),
            Some(CloseReason::IdleTimeout)
        );
    }

    #[test]
    fn http2_traffic_between_requests_starts_no_head_timer() {
        let table = Table::new(8);
        let connection = table.admit().expect("room");
        connection.received(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n");
        connection.received(&[0, 0, 8, 6, 0]); // a PING frame
        std::thread::sleep(Duration::from_millis(5));
        assert_eq!(connection.overdue(Duration::from_millis(1), Duration::from_secs(60)), None);
    }
}
