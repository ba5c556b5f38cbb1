//! The load driver behind `router bench`: keep-alive HTTP/1.1 clients on threads, each
//! answered request timed with the service's own stage timings, every other outcome counted
//! by status (refusals timed apart, since they must be fast).

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use serde_json::Value;

/// One answered request: its HTTP latency and the model's share of it as the service
/// reported it (`timings_us.tokenize + embed`).
pub(super) struct Timed {
    pub(super) total_ms: f64,
    pub(super) model_ms: f64,
    /// `timings_us.search` and `timings_us.total` (the service's own view of the request).
    pub(super) search_ms: f64,
    pub(super) served_ms: f64,
}

fn model_ms(decision: &Value) -> f64 {
    stage_ms(decision, "tokenize") + stage_ms(decision, "embed")
}

fn stage_ms(decision: &Value, stage: &str) -> f64 {
    decision["timings_us"][stage].as_u64().unwrap_or(0) as f64 / 1000.0
}

/// What one load gives back: answered requests, every other outcome counted by status (or
/// `connection` for a broken one), and how long each 429 took (refusals must be fast).
pub(super) struct Load {
    pub(super) answered: Vec<Timed>,
    pub(super) statuses: BTreeMap<String, usize>,
    pub(super) refusal_ms: Vec<f64>,
}

/// Sends `n` requests from `clients` threads.
pub(super) fn run_load(
    addr: &str,
    bodies: &[String],
    n: usize,
    clients: usize,
) -> anyhow::Result<Load> {
    let next = AtomicUsize::new(0);
    let results: Vec<anyhow::Result<Load>> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..clients)
            .map(|_| {
                scope.spawn(|| {
                    let mut stream = connect(addr)?;
                    let mut latencies = Vec::new();
                    let mut statuses: BTreeMap<String, usize> = BTreeMap::new();
                    let mut refusal_ms = Vec::new();
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        if i >= n {
                            break;
                        }
                        let start = Instant::now();
                        let exchange = request_bytes(
                            &mut stream,
                            addr,
                            "POST",
                            "/classify",
                            &bodies[i % bodies.len()],
                        );
                        // The latency ends when the answer is in; reading it is the client's.
                        let elapsed_ms = start.elapsed().as_secs_f64() * 1000.0;
                        match exchange {
                            Ok((200, payload)) => {
                                let decision =
                                    serde_json::from_slice(&payload).unwrap_or(Value::Null);
                                latencies.push(Timed {
                                    total_ms: elapsed_ms,
                                    model_ms: model_ms(&decision),
                                    search_ms: stage_ms(&decision, "search"),
                                    served_ms: stage_ms(&decision, "total"),
                                });
                            }
                            Ok((status, _)) => {
                                if status == 429 {
                                    refusal_ms.push(elapsed_ms);
                                }
                                *statuses.entry(status.to_string()).or_default() += 1
                            }
                            Err(_) => {
                                *statuses.entry("connection".to_owned()).or_default() += 1;
                                stream = connect(addr)?;
                            }
                        }
                    }
                    Ok(Load {
                        answered: latencies,
                        statuses,
                        refusal_ms,
                    })
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err(anyhow::anyhow!("client thread panicked")))
            })
            .collect()
    });
    let mut total = Load {
        answered: Vec::with_capacity(n),
        statuses: BTreeMap::new(),
        refusal_ms: Vec::new(),
    };
    for r in results {
        let load = r?;
        total.answered.extend(load.answered);
        total.refusal_ms.extend(load.refusal_ms);
        for (status, n) in load.statuses {
            *total.statuses.entry(status).or_default() += n;
        }
    }
    Ok(total)
}

pub(super) fn connect(addr: &str) -> anyhow::Result<TcpStream> {
    let stream = TcpStream::connect(addr).with_context(|| format!("connecting to {addr}"))?;
    stream.set_nodelay(true)?;
    stream.set_read_timeout(Some(Duration::from_secs(60)))?;
    Ok(stream)
}

/// One HTTP/1.1 keep-alive exchange; enough HTTP for our own service's responses.
pub(super) fn request(
    stream: &mut TcpStream,
    addr: &str,
    method: &str,
    path: &str,
    body: &str,
) -> anyhow::Result<(u16, Value)> {
    let (status, payload) = request_bytes(stream, addr, method, path, body)?;
    Ok((
        status,
        serde_json::from_slice(&payload).unwrap_or(Value::Null),
    ))
}

/// The same exchange, the body left as bytes (`/metrics` is text).
fn request_bytes(
    stream: &mut TcpStream,
    addr: &str,
    method: &str,
    path: &str,
    body: &str,
) -> anyhow::Result<(u16, Vec<u8>)> {
    // One write: formatting straight into an unbuffered socket with TCP_NODELAY would send
    // each piece as its own segment and wake the server for a partial request head.
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(head.as_bytes())?;
    let mut reader = BufReader::new(&*stream);
    let mut status_line = String::new();
    reader.read_line(&mut status_line)?;
    let status: u16 = status_line
        .split_whitespace()
        .nth(1)
        .context("status line")?
        .parse()?;
    let mut length = 0usize;
    loop {
        let mut header = String::new();
        reader.read_line(&mut header)?;
        let header = header.trim_end();
        if header.is_empty() {
            break;
        }
        if let Some((name, value)) = header.split_once(':') {
            if name.eq_ignore_ascii_case("content-length") {
                length = value.trim().parse()?;
            }
        }
    }
    let mut payload = vec![0u8; length];
    reader.read_exact(&mut payload)?;
    if !reader.buffer().is_empty() {
        bail!("unexpected bytes after the response");
    }
    Ok((status, payload))
}

/// How fast the service itself refused: `/classify` 429s by the upper bounds of
/// `router_request_duration_seconds` (cumulative since the service started).
pub(super) struct ServiceRefusals {
    pub(super) count: u64,
    /// Share answered within 1 ms of the routed request head.
    pub(super) within_1ms: f64,
    /// The smallest bucket bound that holds 99 % of them, in ms.
    pub(super) p99_at_most_ms: f64,
}

pub(super) fn service_refusals(addr: &str) -> anyhow::Result<Option<ServiceRefusals>> {
    let (status, text) = request_bytes(&mut connect(addr)?, addr, "GET", "/metrics", "")?;
    if status != 200 {
        bail!("GET /metrics answered {status}");
    }
    Ok(refusals_in(&String::from_utf8_lossy(&text)))
}

fn refusals_in(metrics: &str) -> Option<ServiceRefusals> {
    // (upper bound in seconds, requests at most that long), in the exporter's ascending order.
    let buckets: Vec<(f64, u64)> = metrics
        .lines()
        .filter(|l| l.starts_with("router_request_duration_seconds_bucket{"))
        .filter(|l| l.contains(r#"route="/classify""#) && l.contains(r#"status="429""#))
        .filter_map(|l| {
            let le = l.split(r#"le=""#).nth(1)?.split('"').next()?;
            let bound = if le == "+Inf" {
                f64::INFINITY
            } else {
                le.parse().ok()?
            };
            Some((bound, l.rsplit(' ').next()?.parse().ok()?))
        })
        .collect();
    let count = buckets.last()?.1;
    if count == 0 {
        return None;
    }
    let within = |secs: f64| {
        buckets
            .iter()
            .filter(|(bound, _)| *bound <= secs)
            .map(|&(_, n)| n)
            .max()
            .unwrap_or(0)
    };
    let p99 = buckets
        .iter()
        .find(|&&(_, n)| n as f64 >= 0.99 * count as f64)
        .map_or(f64::INFINITY, |&(bound, _)| bound);
    Some(ServiceRefusals {
        count,
        within_1ms: within(0.001) as f64 / count as f64,
        p99_at_most_ms: p99 * 1000.0,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusal_times_are_read_from_the_request_histogram() {
        let text = r#"router_request_duration_seconds_bucket{route="/classify",status="200",le="0.001"} 0
router_request_duration_seconds_bucket{route="/classify",status="429",le="0.0005"} 90
router_request_duration_seconds_bucket{route="/classify",status="429",le="0.001"} 98
router_request_duration_seconds_bucket{route="/classify",status="429",le="0.0025"} 100
router_request_duration_seconds_bucket{route="/classify",status="429",le="+Inf"} 100
"#;
        let r = refusals_in(text).unwrap();
        assert_eq!(r.count, 100);
        assert!((r.within_1ms - 0.98).abs() < 1e-9);
        assert!((r.p99_at_most_ms - 2.5).abs() < 1e-9);
        assert!(refusals_in("router_requests_total 3\n").is_none());
    }
}
