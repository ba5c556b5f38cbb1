//! The accept loop of `router serve`, in place of `axum::serve`: the same graceful shutdown,
//! plus what a server facing untrusted clients needs and `axum::serve` does not offer: a cap on
//! open connections (refused beyond it), optionally one per peer address, and a watchdog per connection that closes a request
//! head that does not arrive in time (slowloris) and a keep-alive connection left idle.
//!
//! Body and whole-request deadlines are per request, so they live in the router's layers
//! (`serve::deadline`), not here.

use std::collections::HashMap;
use std::convert::Infallible;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::Request;
use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, Semaphore};
use tower::ServiceExt;

use super::conn_activity::{Activity, Tracked};
use super::error::ApiError;

pub const CONNECTIONS_OPEN: &str = "router_connections_open";
/// Connections refused, by `reason`: `max_connections` (that many were open) or
/// `max_connections_per_peer` (that many were open from the same address).
pub const CONNECTIONS_REFUSED_TOTAL: &str = "router_connections_refused_total";
/// Connections the watchdog closed, by `reason` (header_timeout, idle_timeout).
pub const CONNECTIONS_CUT_TOTAL: &str = "router_connections_cut_total";

/// Connection limits (`--header-read-timeout-ms`, `--idle-timeout-ms`, `--max-connections`).
#[derive(Debug, Clone, Copy)]
pub struct ConnLimits {
    /// From the first byte of a request head (or the accept, for a new connection) to its end.
    pub header_read_timeout: Duration,
    /// Keep-alive: no request in flight and no bytes either way for this long closes it.
    pub idle_timeout: Duration,
    /// Open connections at most; one more is answered 503 and closed at once.
    pub max_connections: usize,
    /// Open connections from one peer address at most (0: no such cap). Off by default:
    /// behind a load balancer or a NAT every client shares a few addresses.
    pub max_connections_per_peer: usize,
}

impl Default for ConnLimits {
    fn default() -> Self {
        Self {
            header_read_timeout: Duration::from_secs(5),
            idle_timeout: Duration::from_secs(60),
            max_connections: 1024,
            max_connections_per_peer: 0,
        }
    }
}

/// Serves `app` on `listener` until `shutdown` resolves, then stops accepting, asks every
/// connection to finish its request in flight and close, and returns once all have closed.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    limits: ConnLimits,
    shutdown: impl Future<Output = ()>,
) {
    let slots = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let peers = Arc::new(Mutex::new(HashMap::new()));
    // `stop` turns true at shutdown; every connection task holds a `done` receiver, so the
    // sender's `closed()` resolves when the last one ends.
    let (stop_tx, stop_rx) = watch::channel(false);
    let (done_tx, done_rx) = watch::channel(());
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = &mut shutdown => break,
        };
        let (stream, peer) = match accepted {
            Ok(pair) => pair,
            Err(e) => {
                accept_failed(&e).await;
                continue;
            }
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            refuse(&stream, "max_connections");
            continue;
        };
        let Some(peer_slot) = PeerSlot::take(&peers, peer.ip(), limits.max_connections_per_peer)
        else {
            refuse(&stream, "max_connections_per_peer");
            continue;
        };
        let app = app.clone();
        let stop = stop_rx.clone();
        let done = done_rx.clone();
        // Waited for through `done` at shutdown.
        tokio::spawn(async move {
            ::metrics::gauge!(CONNECTIONS_OPEN).increment(1.0);
            connection(stream, peer, app, limits, stop).await;
            ::metrics::gauge!(CONNECTIONS_OPEN).decrement(1.0);
            drop((slot, peer_slot, done));
        });
    }
    drop(listener);
    let _ = stop_tx.send(true);
    drop(done_rx);
    done_tx.closed().await;
}

/// Open connections by peer address; only addresses with one open are kept.
type PeerCounts = Arc<Mutex<HashMap<IpAddr, usize>>>;

/// One connection's place in its peer's count, given back when dropped.
struct PeerSlot {
    peers: PeerCounts,
    ip: IpAddr,
}

impl PeerSlot {
    /// A place for one more connection from `ip`, unless `cap` (0: none) are open. Without a
    /// cap nothing is counted.
    fn take(peers: &PeerCounts, ip: IpAddr, cap: usize) -> Option<Option<Self>> {
        if cap == 0 {
            return Some(None);
        }
        let mut counts = peers
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let open = counts.entry(ip).or_insert(0);
        if *open >= cap {
            return None;
        }
        *open += 1;
        Some(Some(Self {
            peers: Arc::clone(peers),
            ip,
        }))
    }
}

impl Drop for PeerSlot {
    fn drop(&mut self) {
        let mut counts = self
            .peers
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(open) = counts.get_mut(&self.ip) {
            *open -= 1;
            if *open == 0 {
                counts.remove(&self.ip);
            }
        }
    }
}

/// Too many open connections: a 503 if the socket takes it without waiting, then close.
fn refuse(stream: &TcpStream, reason: &'static str) {
    ::metrics::counter!(CONNECTIONS_REFUSED_TOTAL, "reason" => reason).increment(1);
    let error = ApiError::TooManyConnections;
    let body = serde_json::to_string(&error.body()).unwrap_or_default();
    let response = format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\nretry-after: 1\r\nconnection: close\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    );
    // Read what the client already sent: a socket closed with unread bytes makes the kernel
    // send a reset, which can destroy the 503 before the client reads it.
    let mut unread = [0u8; 8192];
    let _ = stream.try_read(&mut unread);
    let _ = stream.try_write(response.as_bytes());
}

/// Errors of one connection (reset, aborted) are the client's; others (out of file
/// descriptors) would spin, so they pause the loop a moment, like `axum::serve`.
async fn accept_failed(e: &std::io::Error) {
    use std::io::ErrorKind;
    let per_connection = matches!(
        e.kind(),
        ErrorKind::ConnectionRefused | ErrorKind::ConnectionAborted | ErrorKind::ConnectionReset
    );
    if !per_connection {
        tracing::error!(error = %e, "accept failed; pausing 1 s");
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

async fn connection(
    stream: TcpStream,
    peer: SocketAddr,
    app: Router,
    limits: ConnLimits,
    mut stop: watch::Receiver<bool>,
) {
    let activity = Activity::new();
    let io = TokioIo::new(Tracked::new(stream, activity.clone()));
    let in_flight = activity.clone();
    let service = hyper::service::service_fn(move |request: Request<Incoming>| {
        let guard = in_flight.begin();
        let mut request = request.map(Body::new);
        request.extensions_mut().insert(ConnectInfo(peer));
        let app = app.clone();
        async move {
            let response = app.oneshot(request).await;
            drop(guard);
            Ok::<_, Infallible>(response.unwrap_or_else(|never| match never {}))
        }
    });
    let mut builder = hyper::server::conn::http1::Builder::new();
    // hyper's own header timer runs from when it starts waiting for a head, idle time
    // included: a backstop behind the watchdog, which tells the two apart.
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout + limits.idle_timeout);
    let conn = builder.serve_connection(io, service);
    let mut conn = std::pin::pin!(conn);
    let watchdog = activity.watch(limits.header_read_timeout, limits.idle_timeout);
    let mut watchdog = std::pin::pin!(watchdog);
    let mut stopping = false;
    loop {
        tokio::select! {
            result = conn.as_mut() => {
                if let Err(e) = result {
                    tracing::trace!(error = %e, %peer, "connection ended with an error");
                }
                return;
            }
            cutoff = &mut watchdog => {
                ::metrics::counter!(CONNECTIONS_CUT_TOTAL, "reason" => cutoff.as_str()).increment(1);
                tracing::debug!(%peer, reason = cutoff.as_str(), "connection closed");
                return;
            }
            _ = stop.wait_for(|s| *s), if !stopping => {
                stopping = true;
                conn.as_mut().graceful_shutdown();
                // hyper closes a connection between requests at once; one in the middle of a
                // head (or not reading our answer) gets a second at most, not its timeouts.
                let grace = Duration::from_secs(1);
                watchdog.set(activity.watch(
                    limits.header_read_timeout.min(grace),
                    limits.idle_timeout.min(grace),
                ));
            }
        }
    }
}
