//! `router serve` flags of the HTTP edge's own defences: connection and request time limits,
//! the connection cap. Plain values here; the binary turns them into `serve::EdgeSettings`
//! (this edge never imports the other).

use std::path::PathBuf;

use clap::Args;

#[derive(Debug, Clone, Args)]
pub struct EdgeArgs {
    /// Longest a request head may take to arrive, in ms: from its first byte, or from the
    /// accept for a new connection. Half-sent heads (slowloris) are closed after it.
    #[arg(long, env = "ROUTER_HEADER_READ_TIMEOUT_MS", default_value_t = 5_000)]
    pub header_read_timeout_ms: u64,
    /// Longest wait for the next chunk of a request body, in ms (then 408 body_timeout).
    #[arg(long, env = "ROUTER_BODY_READ_TIMEOUT_MS", default_value_t = 10_000)]
    pub body_read_timeout_ms: u64,
    /// Longest a public route takes from the request head to its answer, body included, in
    /// ms (then 503 deadline_exceeded). Admin routes are exempt.
    #[arg(long, env = "ROUTER_REQUEST_TIMEOUT_MS", default_value_t = 30_000)]
    pub request_timeout_ms: u64,
    /// A keep-alive connection with no request and no bytes for this long is closed, in ms.
    #[arg(long, env = "ROUTER_IDLE_TIMEOUT_MS", default_value_t = 60_000)]
    pub idle_timeout_ms: u64,
    /// Open connections at most; one more is answered 503 too_many_connections and closed.
    /// Each open connection holds a few KiB to tens of KiB of buffers.
    #[arg(long, env = "ROUTER_MAX_CONNECTIONS", default_value_t = 1024)]
    pub max_connections: usize,
    /// Open connections from one peer address at most; one more is answered 503
    /// too_many_connections and closed. 0 (the default) sets no such cap: behind a load
    /// balancer or a NAT, many clients share one address.
    #[arg(long, env = "ROUTER_MAX_CONNECTIONS_PER_PEER", default_value_t = 0)]
    pub max_connections_per_peer: usize,
    /// File of client tokens' sha256 hex digests, one a line (`printf %s TOKEN | sha256sum`):
    /// /classify, /classify/batch, /embed and /feedback then need `Authorization: Bearer
    /// <token>` (401 without, 403 unknown_client_token). Without it they stay open.
    #[arg(long, env = "ROUTER_CLIENT_TOKENS")]
    pub client_tokens: Option<PathBuf>,
    /// File holding the key (16 bytes at least) that signs decisions, so /feedback only takes
    /// reports about decisions a router with this key issued. Give every replica the same file;
    /// without it each process draws a random key (feedback must reach the replica that decided).
    #[arg(long, env = "ROUTER_DECISION_KEY")]
    pub decision_key: Option<PathBuf>,
    /// /feedback reports a second per caller (client token, else peer address); past it 429.
    #[arg(long, env = "ROUTER_FEEDBACK_RATE", default_value_t = 20.0)]
    pub feedback_rate: f64,
    /// /feedback reports a caller may send at once before the rate applies.
    #[arg(long, env = "ROUTER_FEEDBACK_BURST", default_value_t = 40)]
    pub feedback_burst: u32,
}
