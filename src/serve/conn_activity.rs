//! What one connection is doing, for the accept loop's watchdog: bytes moving, requests in
//! flight, a request head being read. Kept in atomics beside the socket, so the watchdog reads
//! it without touching hyper's connection state.

use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// `head_since` when no request head is being read.
const NONE: u64 = u64::MAX;

/// Why the watchdog closed a connection (the `reason` label of the metric).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cutoff {
    /// A request head started arriving and was not complete in time (slowloris).
    HeaderTimeout,
    /// No request in flight and no bytes either way for the idle timeout (keep-alive idle).
    IdleTimeout,
}

impl Cutoff {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::HeaderTimeout => "header_timeout",
            Self::IdleTimeout => "idle_timeout",
        }
    }
}

/// Times are milliseconds since the connection was accepted.
#[derive(Debug)]
pub struct Activity {
    start: Instant,
    in_flight: AtomicUsize,
    last_io: AtomicU64,
    /// When the first byte of the request head now being read arrived; the accept itself
    /// for a new connection, whose first request must come within the header timeout.
    head_since: AtomicU64,
}

impl Activity {
    pub fn new() -> Arc<Self> {
        Arc::new(Self {
            start: Instant::now(),
            in_flight: AtomicUsize::new(0),
            last_io: AtomicU64::new(0),
            head_since: AtomicU64::new(0),
        })
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.start.elapsed().as_millis()).unwrap_or(u64::MAX - 1)
    }

    fn on_read(&self) {
        let now = self.now_ms();
        self.last_io.store(now, Ordering::Relaxed);
        // Bytes while no request is in flight belong to the next request's head.
        if self.in_flight.load(Ordering::Acquire) == 0 {
            let _ =
                self.head_since
                    .compare_exchange(NONE, now, Ordering::Relaxed, Ordering::Relaxed);
        }
    }

    fn on_write(&self) {
        self.last_io.store(self.now_ms(), Ordering::Relaxed);
    }

    /// A request head was parsed and handed to the app; the guard ends it.
    pub fn begin(self: &Arc<Self>) -> InFlight {
        self.in_flight.fetch_add(1, Ordering::AcqRel);
        self.head_since.store(NONE, Ordering::Relaxed);
        InFlight(self.clone())
    }

    /// The cutoff due now, if any.
    fn due(&self, header: Duration, idle: Duration) -> Option<Cutoff> {
        if self.in_flight.load(Ordering::Acquire) > 0 {
            return None;
        }
        let now = self.now_ms();
        let head = self.head_since.load(Ordering::Relaxed);
        if head != NONE {
            return (now.saturating_sub(head) >= millis(header)).then_some(Cutoff::HeaderTimeout);
        }
        let last = self.last_io.load(Ordering::Relaxed);
        (now.saturating_sub(last) >= millis(idle)).then_some(Cutoff::IdleTimeout)
    }

    /// Resolves with the first cutoff that falls due; checked a few times per timeout, so a
    /// connection is cut at most a fifth of the shorter timeout late.
    pub async fn watch(&self, header: Duration, idle: Duration) -> Cutoff {
        let tick = (header.min(idle) / 5).clamp(Duration::from_millis(10), Duration::from_secs(1));
        loop {
            tokio::time::sleep(tick).await;
            if let Some(cutoff) = self.due(header, idle) {
                return cutoff;
            }
        }
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// One request in flight on the connection; dropping it (the response is ready) restarts the
/// idle clock.
pub struct InFlight(Arc<Activity>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.on_write();
        self.0.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

/// A socket that reports its reads and writes to an [`Activity`].
pub struct Tracked<S> {
    inner: S,
    activity: Arc<Activity>,
}

impl<S> Tracked<S> {
    pub fn new(inner: S, activity: Arc<Activity>) -> Self {
        Self { inner, activity }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Tracked<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        if matches!(polled, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.activity.on_read();
        }
        polled
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Tracked<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write(cx, buf);
        if matches!(polled, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.on_write();
        }
        polled
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        if matches!(polled, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.on_write();
        }
        polled
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEADER: Duration = Duration::from_millis(50);
    const IDLE: Duration = Duration::from_millis(200);

    #[test]
    fn a_new_connection_must_send_its_first_head_within_the_header_timeout() {
        let a = Activity::new();
        std::thread::sleep(Duration::from_millis(60));
        assert_eq!(a.due(HEADER, IDLE), Some(Cutoff::HeaderTimeout));
    }

    #[test]
    fn a_started_head_is_cut_at_the_header_timeout() {
        let a = Activity::new();
        drop(a.begin()); // a first request, answered
        std::thread::sleep(Duration::from_millis(10));
        a.on_read();
        assert_eq!(a.due(HEADER, IDLE), None);
        std::thread::sleep(Duration::from_millis(60));
        assert_eq!(a.due(HEADER, IDLE), Some(Cutoff::HeaderTimeout));
    }

    #[test]
    fn a_request_in_flight_is_never_cut_and_idle_counts_from_its_end() {
        let a = Activity::new();
        a.on_read();
        let guard = a.begin();
        std::thread::sleep(Duration::from_millis(60));
        a.on_read(); // the body, while in flight: not a new head
        assert_eq!(a.due(HEADER, Duration::ZERO), None);
        drop(guard);
        assert_eq!(a.due(HEADER, IDLE), None);
        assert_eq!(a.due(HEADER, Duration::ZERO), Some(Cutoff::IdleTimeout));
    }
}
