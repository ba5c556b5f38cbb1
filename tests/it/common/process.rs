//! The real `router` binary as a child process, and a minimal HTTP/1.1 client for its socket.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use super::repo_root;

pub fn router() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_router"));
    command.current_dir(repo_root()).env("ROUTER_LOG", "info");
    if std::env::var_os("ROUTER_MODEL_DIR").is_none() {
        command.env("ROUTER_MODELS_ROOT", repo_root().join("models"));
    }
    command
}

/// A minimal HTTP/1.1 exchange (Connection: close), enough for a smoke test of the real socket.
pub fn http(addr: &str, method: &str, path: &str, body: Option<&str>) -> (u16, Value) {
    http_as(addr, method, path, body, None)
}

pub fn http_as(
    addr: &str,
    method: &str,
    path: &str,
    body: Option<&str>,
    token: Option<&str>,
) -> (u16, Value) {
    let auth = token
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(60)))
        .unwrap();
    let body = body.unwrap_or("");
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\n{auth}Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let (status, payload) = read_response(stream);
    (
        status,
        serde_json::from_str(&payload).unwrap_or(Value::Null),
    )
}

/// A GET whose answer is text (`/metrics`).
pub fn http_text(addr: &str, path: &str) -> (u16, String) {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(60)))
        .unwrap();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    read_response(stream)
}

fn read_response(mut stream: TcpStream) -> (u16, String) {
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let (head, payload) = response.split_once("\r\n\r\n").unwrap();
    let status = head.split_whitespace().nth(1).unwrap().parse().unwrap();
    (status, payload.to_owned())
}

/// Starts `router serve` on port 0 with extra arguments; returns the process and its address.
pub fn start(
    args: &[&std::ffi::OsStr],
    envs: &[(&str, &str)],
) -> (KillOnDrop, String, std::sync::mpsc::Receiver<String>) {
    let mut command = router();
    command
        .args(["serve", "--addr", "127.0.0.1:0"])
        .args(args)
        .stderr(Stdio::piped());
    for (k, v) in envs {
        command.env(k, v);
    }
    let mut child = KillOnDrop(command.spawn().unwrap());
    let stderr = BufReader::new(child.0.stderr.take().unwrap());
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    // Forwards the child's log lines; ends when the child closes stderr.
    std::thread::spawn(move || {
        for line in stderr.lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let addr = loop {
        let line = rx
            .recv_timeout(Duration::from_secs(60))
            .expect("the router logs its address");
        if let Some(rest) = line.split("listening on http://").nth(1) {
            break rest.split_whitespace().next().unwrap().to_owned();
        }
    };
    // Alive at once; ready (503 until then) once the model is warm and the index loaded.
    assert_eq!(http(&addr, "GET", "/health", None).0, 200);
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        let (status, body) = http(&addr, "GET", "/ready", None);
        if status == 200 {
            assert_eq!(body["ready"], true);
            break;
        }
        assert_eq!(status, 503, "{body}");
        assert!(Instant::now() < deadline, "not ready in time: {body}");
        std::thread::sleep(Duration::from_millis(100));
    }
    (child, addr, rx)
}

/// Polls `/ready` until `field` equals `want`; returns how long it took.
pub fn wait_ready_field(addr: &str, field: &str, want: &str) -> Duration {
    let start = Instant::now();
    loop {
        let (_, ready) = http(addr, "GET", "/ready", None);
        if ready[field] == want {
            return start.elapsed();
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "{field} never became {want}: {ready}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Kills the server if the test fails before it shuts it down, so no process outlives the test.
pub struct KillOnDrop(pub std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

pub fn sigterm(child: &KillOnDrop) {
    let kill = Command::new("kill")
        .args(["-TERM", &child.0.id().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
}
