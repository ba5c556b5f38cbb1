use std::sync::{Arc, Barrier, Mutex};
use std::time::{Duration, Instant};

use super::*;

fn settings(sample: f64) -> DecisionLogSettings {
    DecisionLogSettings {
        destination: DecisionLogDestination::Off,
        sample,
        log_prompts: false,
    }
}

fn a_line(id: &str) -> Line {
    Line {
        ts_ms: 0,
        decision_id: id.to_owned(),
        request_id: None,
        trace_id: None,
        span_id: None,
        tenant: None,
        bucket: "simple".into(),
        confidence: 0.9,
        margin: 0.5,
        abstained: false,
        target: "small".into(),
        fallbacks: Vec::new(),
        rules: Vec::new(),
        reasons: Vec::new(),
        conversation: None,
        policy_version: "p".into(),
        index_version: "i".into(),
        model: "m".into(),
        model_revision: "r".into(),
        tokens: 3,
        prompt_tokens: 3,
        truncated: false,
        cache: "miss",
        estimated_input_cost_usd: 0.0,
        timings_us: Timings::default(),
        prompt: None,
    }
}

/// A writer whose first write waits until the test lets it go.
struct Stuck {
    gate: Arc<Barrier>,
    first: bool,
    out: Arc<Mutex<Vec<u8>>>,
}

impl Write for Stuck {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if std::mem::take(&mut self.first) {
            self.gate.wait();
        }
        self.out.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[test]
fn a_full_queue_drops_and_counts_without_blocking() {
    let gate = Arc::new(Barrier::new(2));
    let out = Arc::new(Mutex::new(Vec::new()));
    let writer = Stuck {
        gate: Arc::clone(&gate),
        first: true,
        out: Arc::clone(&out),
    };
    let log = DecisionLog::with_writer(writer, &settings(1.0), 2).unwrap();
    let inner = log.inner.as_ref().unwrap();
    let started = Instant::now();
    for i in 0..50 {
        inner.queue(a_line(&format!("d{i}")));
    }
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "queueing must not wait for the writer"
    );
    // The writer holds at most one line, the queue two: at least 47 are dropped.
    let dropped = log.dropped();
    assert!((47..50).contains(&dropped), "dropped {dropped}");
    gate.wait();
    let kept = usize::try_from(50 - dropped).unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while out.lock().unwrap().iter().filter(|b| **b == b'\n').count() < kept {
        assert!(
            Instant::now() < deadline,
            "the writer never wrote the kept lines"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    let text = String::from_utf8(out.lock().unwrap().clone()).unwrap();
    let first: serde_json::Value = serde_json::from_str(text.lines().next().unwrap()).unwrap();
    assert_eq!(first["decision_id"], "d0");
}

#[test]
fn sampling_is_deterministic_and_near_its_rate() {
    let ids: Vec<String> = (0..10_000).map(|_| ulid::Ulid::new().to_string()).collect();
    let kept = ids.iter().filter(|id| sampled(id, 0.25)).count();
    assert!(
        (2_000..3_000).contains(&kept),
        "kept {kept} of 10000 at 0.25"
    );
    assert!(ids.iter().all(|id| sampled(id, 0.25) == sampled(id, 0.25)));
    assert!(ids.iter().all(|id| sampled(id, 1.0)));
    assert!(!ids.iter().any(|id| sampled(id, 0.0)));
}

#[test]
fn prompts_are_cut_on_a_character_boundary() {
    assert_eq!(cut("héllo", 2), "hé");
    assert_eq!(cut("日本語テキスト", 3), "日本語");
    assert_eq!(cut("short", 200), "short");
    assert_eq!(
        cut(&"é".repeat(500), PROMPT_CHARS).chars().count(),
        PROMPT_CHARS
    );
}

#[test]
fn rule_names_come_from_rule_reasons() {
    let reasons = vec![
        "semantic: coding (0.91)".to_owned(),
        "rule long_context: bucket → complex".to_owned(),
        "rule free_tier: targets limited".to_owned(),
        "policy v1: coding → big".to_owned(),
    ];
    assert_eq!(rule_names(&reasons), ["long_context", "free_tier"]);
}

#[test]
fn off_records_nothing() {
    let log = DecisionLog::off();
    assert!(!log.is_on());
    assert_eq!(log.dropped(), 0);
    let note = log.note(&ClassifyInput::prompt("secret"), None);
    assert!(note.prompt.is_none() && note.tenant.is_none());
}
