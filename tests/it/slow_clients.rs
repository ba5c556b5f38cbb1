//! Slow and greedy clients against the real accept loop (`serve::listen`) on loopback: half-sent
//! request heads are closed after the header timeout while normal requests answer, connections
//! past the cap are refused, idle keep-alive connections are closed, a stalled body gets 408 and
//! a trickled one 503 at the deadline. Timing asserts only bound from above, with wide slack.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use semantic_router::serve::deadline::RequestTimeouts;
use semantic_router::serve::listen::{self, ConnLimits};
use semantic_router::serve::{build_app, AppState, Limits};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::common;

/// Slack on every "closed within" bound: the machine may be busy with other builds.
const SLACK: Duration = Duration::from_secs(20);

struct Server {
    addr: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<()>,
}

impl Server {
    async fn start(conn: ConnLimits, timeouts: RequestTimeouts) -> Self {
        let app =
            build_app(AppState::ready(common::core(), Limits::default()).with_timeouts(timeouts));
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(listen::serve(listener, app, conn, async {
            let _ = stopped.await;
        }));
        Self {
            addr,
            stop: Some(stop),
            task,
        }
    }

    /// Stops accepting, lets open connections finish, and waits for the loop to return.
    async fn shut_down(mut self) {
        let _ = self.stop.take().unwrap().send(());
        tokio::time::timeout(SLACK, self.task)
            .await
            .expect("the accept loop returns after shutdown")
            .unwrap();
    }
}

fn classify_request(addr: SocketAddr) -> String {
    let body = r#"{"prompt": "Write a Python function that merges two sorted lists"}"#;
    format!(
        "POST /classify HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
}

/// Sends `raw` on a new connection and reads the answer to its end: (status, JSON body).
async fn exchange(addr: SocketAddr, raw: &str) -> (u16, Value) {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream.write_all(raw.as_bytes()).await.unwrap();
    read_response(&mut stream).await
}

/// A reset (a refused connection closed before its request was read) reads as status 0.
async fn read_response(stream: &mut TcpStream) -> (u16, Value) {
    let mut response = Vec::new();
    let read = tokio::time::timeout(SLACK, stream.read_to_end(&mut response))
        .await
        .expect("an answer in time");
    if read.is_err() && response.is_empty() {
        return (0, Value::Null);
    }
    parse(&response)
}

fn parse(response: &[u8]) -> (u16, Value) {
    let text = String::from_utf8_lossy(response);
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    (status, serde_json::from_str(body).unwrap_or(Value::Null))
}

/// Waits until the server closes `stream` (EOF or reset); returns how long that took.
async fn closed_within(stream: &mut TcpStream, limit: Duration) -> Duration {
    let start = Instant::now();
    let mut buf = [0u8; 1024];
    loop {
        match tokio::time::timeout(limit, stream.read(&mut buf)).await {
            Err(_) => panic!("still open after {limit:?}"),
            Ok(Ok(0) | Err(_)) => return start.elapsed(),
            Ok(Ok(_)) => {} // a response before the close (a 503 refusal)
        }
    }
}

/// A connection that sent half a request head and stopped.
async fn half_open(addr: SocketAddr) -> TcpStream {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream
        .write_all(b"POST /classify HTTP/1.1\r\nHost: x\r\nContent-Type: appl")
        .await
        .unwrap();
    stream
}

#[tokio::test(flavor = "multi_thread")]
async fn half_sent_heads_are_closed_on_time_while_normal_requests_answer() {
    let header = Duration::from_millis(1500);
    let server = Server::start(
        ConnLimits {
            header_read_timeout: header,
            idle_timeout: Duration::from_secs(60),
            max_connections: 1024,
            max_connections_per_peer: 0,
        },
        RequestTimeouts::default(),
    )
    .await;
    let mut slow = Vec::new();
    for _ in 0..500 {
        slow.push(half_open(server.addr).await);
    }
    // One that never sends a byte: a new connection owes its first head within the timeout.
    slow.push(TcpStream::connect(server.addr).await.unwrap());
    let opened = Instant::now();
    let (status, body) = exchange(server.addr, &classify_request(server.addr)).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["bucket"], "code");
    for stream in &mut slow {
        closed_within(stream, header + SLACK).await;
    }
    let all_closed = opened.elapsed();
    assert!(all_closed < header + SLACK, "{all_closed:?}");
    // And the server still answers afterwards.
    let (status, _) = exchange(server.addr, &classify_request(server.addr)).await;
    assert_eq!(status, 200);
    server.shut_down().await;
}

/// Connects to `addr` from the loopback address `from` (all of 127.0.0.0/8 is loopback on Linux).
async fn connect_from(from: [u8; 4], addr: SocketAddr) -> TcpStream {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind(SocketAddr::from((from, 0))).unwrap();
    socket.connect(addr).await.unwrap()
}

#[cfg(target_os = "linux")]
#[tokio::test(flavor = "multi_thread")]
async fn one_peer_cannot_take_every_connection_when_a_per_peer_cap_is_set() {
    let server = Server::start(
        ConnLimits {
            header_read_timeout: Duration::from_secs(600),
            idle_timeout: Duration::from_secs(600),
            max_connections: 1024,
            max_connections_per_peer: 3,
        },
        RequestTimeouts::default(),
    )
    .await;
    let greedy = [127, 0, 0, 2];
    let mut held = Vec::new();
    for _ in 0..3 {
        let mut stream = connect_from(greedy, server.addr).await;
        stream
            .write_all(b"POST /classify HTTP/1.1\r\nHost: x\r\n")
            .await
            .unwrap();
        held.push(stream);
    }
    // A fourth from the same address is answered 503 and closed; others still get in.
    let mut fourth = connect_from(greedy, server.addr).await;
    let (status, body) = read_response(&mut fourth).await;
    assert!(status == 503 || status == 0, "{status} {body}");
    if status == 503 {
        assert_eq!(body["error"]["code"], "too_many_connections", "{body}");
    }
    let mut other = connect_from([127, 0, 0, 3], server.addr).await;
    other
        .write_all(classify_request(server.addr).as_bytes())
        .await
        .unwrap();
    let (status, body) = read_response(&mut other).await;
    assert_eq!(status, 200, "{body}");
    // The greedy peer's places come back when its connections close.
    drop(held);
    let deadline = Instant::now() + SLACK;
    loop {
        let mut again = connect_from(greedy, server.addr).await;
        again
            .write_all(classify_request(server.addr).as_bytes())
            .await
            .unwrap();
        let (status, body) = read_response(&mut again).await;
        if status == 200 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no place came back: {status} {body}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    server.shut_down().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn connections_past_the_cap_are_refused_and_slots_come_back() {
    // A header timeout far longer than the test: whatever closes early was refused.
    let server = Server::start(
        ConnLimits {
            header_read_timeout: Duration::from_secs(600),
            idle_timeout: Duration::from_secs(600),
            max_connections: 20,
            max_connections_per_peer: 0,
        },
        RequestTimeouts::default(),
    )
    .await;
    let mut held = Vec::new();
    for _ in 0..20 {
        held.push(half_open(server.addr).await);
    }
    for _ in 0..5 {
        let mut extra = TcpStream::connect(server.addr).await.unwrap();
        let took = closed_within(&mut extra, SLACK).await;
        assert!(took < SLACK, "{took:?}");
    }
    drop(held);
    // The freed slots serve again (the loop notices the closes asynchronously).
    let deadline = Instant::now() + SLACK;
    loop {
        let (status, body) = exchange(server.addr, &classify_request(server.addr)).await;
        if status == 200 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no slot came back: {status} {body}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    server.shut_down().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn idle_keep_alive_is_closed_stalled_bodies_get_408_and_trickles_hit_the_deadline() {
    let server = Server::start(
        ConnLimits {
            header_read_timeout: Duration::from_secs(5),
            idle_timeout: Duration::from_millis(500),
            max_connections: 1024,
            max_connections_per_peer: 0,
        },
        RequestTimeouts {
            body_read: Duration::from_millis(700),
            request: Duration::from_millis(2500),
        },
    )
    .await;
    // Keep-alive: answered, then closed once idle.
    let mut stream = TcpStream::connect(server.addr).await.unwrap();
    let request = classify_request(server.addr).replace("Connection: close\r\n", "");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut answered = Vec::new();
    let took = loop {
        let mut buf = [0u8; 4096];
        match tokio::time::timeout(SLACK, stream.read(&mut buf)).await {
            Ok(Ok(0) | Err(_)) => break Instant::now(),
            Ok(Ok(n)) => answered.extend_from_slice(&buf[..n]),
            Err(_) => panic!("the idle connection stayed open"),
        }
    };
    assert_eq!(parse(&answered).0, 200);
    let _ = took;

    // A body that stops: 408 body_timeout.
    let stalled = "POST /classify HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"prompt\": ";
    let (status, body) = exchange(server.addr, stalled).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (408, Some("body_timeout")),
        "{body}"
    );

    // A body trickled a byte at a time, each within the body timeout: 503 at the deadline.
    let mut stream = TcpStream::connect(server.addr).await.unwrap();
    stream
        .write_all(b"POST /classify HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n")
        .await
        .unwrap();
    let started = Instant::now();
    for _ in 0..100 {
        if stream.write_all(b" ").await.is_err() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
        if started.elapsed() > Duration::from_secs(4) {
            break;
        }
    }
    let (status, body) = read_response(&mut stream).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (503, Some("deadline_exceeded")),
        "{body}"
    );
    server.shut_down().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn shutdown_returns_with_half_open_connections_still_there() {
    let server = Server::start(
        ConnLimits {
            header_read_timeout: Duration::from_secs(600),
            idle_timeout: Duration::from_secs(600),
            max_connections: 1024,
            max_connections_per_peer: 0,
        },
        RequestTimeouts::default(),
    )
    .await;
    let mut held = Vec::new();
    for _ in 0..10 {
        held.push(half_open(server.addr).await);
    }
    server.shut_down().await;
    for stream in &mut held {
        closed_within(stream, SLACK).await;
    }
}
