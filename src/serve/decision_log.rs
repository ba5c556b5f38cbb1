//! The decision log: one JSON line per decision (ids, trace ids, tenant, outcome, rules, conversation
//! context, versions, timings, estimated cost), written off the request path.
//!
//! A request builds an owned [`Line`] and hands it to a bounded channel with `try_send`; one
//! writer thread serialises and writes. When the channel is full the line is dropped and
//! counted (`router_decision_log_dropped_total`): a slow disk or a blocked pipe never stalls a
//! request. The prompt is never written unless `--log-prompts`, and then cut to
//! [`PROMPT_CHARS`] characters.

use std::io::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TrySendError};
use std::sync::Arc;

use serde::Serialize;

use super::trace::RequestTrace;
use crate::decide::{Decision, Timings};
use crate::pipeline::compose::{DecisionLogDestination, DecisionLogSettings};
use crate::pipeline::{CacheOutcome, ClassifyInput};
use crate::types::ModelFingerprint;

/// Lines dropped because the writer could not keep up (or could not write).
pub const DROPPED_METRIC: &str = "router_decision_log_dropped_total";
/// Characters of the routed text kept with `--log-prompts`.
pub const PROMPT_CHARS: usize = 200;
/// Lines waiting for the writer before new ones are dropped.
pub const DEFAULT_CAPACITY: usize = 8192;

/// Cheap to clone; off unless built by [`DecisionLog::open`] or [`DecisionLog::with_writer`].
#[derive(Clone, Default)]
pub struct DecisionLog {
    inner: Option<Arc<Inner>>,
}

struct Inner {
    tx: SyncSender<Line>,
    sample: f64,
    log_prompts: bool,
    dropped: AtomicU64,
}

/// What the handler knows of a request that its decision does not carry.
#[derive(Debug, Clone, Default)]
pub struct RequestNote {
    tenant: Option<String>,
    prompt: Option<String>,
    /// W3C trace and span ids of the request (`serve::trace`).
    trace_id: Option<String>,
    span_id: Option<String>,
}

/// One decision-log line, as written.
#[derive(Debug, Serialize)]
struct Line {
    ts_ms: u64,
    decision_id: String,
    request_id: Option<String>,
    trace_id: Option<String>,
    span_id: Option<String>,
    tenant: Option<String>,
    bucket: String,
    confidence: f32,
    margin: f32,
    abstained: bool,
    target: String,
    fallbacks: Vec<String>,
    /// Names of the policy rules that fired.
    rules: Vec<String>,
    /// Every step that shaped the outcome, as in the decision.
    reasons: Vec<String>,
    conversation: Option<ConversationLine>,
    policy_version: String,
    index_version: String,
    model: String,
    model_revision: String,
    tokens: usize,
    prompt_tokens: usize,
    truncated: bool,
    cache: &'static str,
    estimated_input_cost_usd: f64,
    timings_us: Timings,
    #[serde(skip_serializing_if = "Option::is_none")]
    prompt: Option<String>,
}

/// The conversation context a decision used.
#[derive(Debug, Serialize)]
struct ConversationLine {
    /// Earlier turns that contributed.
    turns: usize,
    /// The conversation's task before this turn, and what this turn alone says.
    task: String,
    turn_bucket: String,
    new_task: bool,
    current_weight: f32,
    /// Each earlier turn's weight in the context, oldest first.
    weights: Vec<f32>,
}

impl DecisionLog {
    /// No decision log.
    pub fn off() -> Self {
        Self::default()
    }

    /// The log `settings` ask for, with its writer thread started.
    pub fn open(settings: &DecisionLogSettings) -> std::io::Result<Self> {
        let writer: Box<dyn Write + Send> = match &settings.destination {
            DecisionLogDestination::Off => return Ok(Self::off()),
            DecisionLogDestination::Stderr => Box::new(std::io::stderr()),
            DecisionLogDestination::Stdout => Box::new(std::io::stdout()),
            DecisionLogDestination::File(path) => Box::new(
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(path)?,
            ),
        };
        Self::with_writer(writer, settings, DEFAULT_CAPACITY)
    }

    /// A log written to `writer` (tests, embedding); `settings.destination` is not used.
    /// At most `capacity` lines wait for the writer; more are dropped.
    pub fn with_writer(
        writer: impl Write + Send + 'static,
        settings: &DecisionLogSettings,
        capacity: usize,
    ) -> std::io::Result<Self> {
        let (tx, rx) = sync_channel(capacity.max(1));
        std::thread::Builder::new()
            .name("decision-log".into())
            .spawn(move || write_lines(&rx, writer))?;
        ::metrics::counter!(DROPPED_METRIC).increment(0);
        Ok(Self {
            inner: Some(Arc::new(Inner {
                tx,
                sample: settings.sample,
                log_prompts: settings.log_prompts,
                dropped: AtomicU64::new(0),
            })),
        })
    }

    pub fn is_on(&self) -> bool {
        self.inner.is_some()
    }

    /// What to keep of `input` for its line; nothing when the log is off.
    pub fn note(&self, input: &ClassifyInput, trace: Option<&RequestTrace>) -> RequestNote {
        match &self.inner {
            None => RequestNote::default(),
            Some(inner) => RequestNote {
                tenant: input.context.tenant.clone(),
                prompt: inner.log_prompts.then(|| cut(&input.text, PROMPT_CHARS)),
                trace_id: trace.map(|t| t.trace_id.clone()),
                span_id: trace.map(|t| t.span_id.clone()),
            },
        }
    }

    /// Queues the line of `decision` if it is sampled; never blocks.
    pub fn record(
        &self,
        decision: &Decision,
        note: RequestNote,
        cache: CacheOutcome,
        model: &ModelFingerprint,
    ) {
        let Some(inner) = &self.inner else { return };
        if !sampled(&decision.decision_id, inner.sample) {
            return;
        }
        inner.queue(line(decision, note, cache, model));
    }

    /// Lines this log dropped so far.
    pub fn dropped(&self) -> u64 {
        self.inner
            .as_ref()
            .map_or(0, |i| i.dropped.load(Ordering::Relaxed))
    }
}

impl Inner {
    fn queue(&self, line: Line) {
        match self.tx.try_send(line) {
            Ok(()) => {}
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => {
                self.dropped.fetch_add(1, Ordering::Relaxed);
                ::metrics::counter!(DROPPED_METRIC).increment(1);
            }
        }
    }
}

/// The writer thread: writes what is queued, flushes when the queue is empty, ends when every
/// sender is gone.
fn write_lines(rx: &Receiver<Line>, mut writer: impl Write) {
    let mut failed = false;
    let mut write = |line: &Line, writer: &mut dyn Write| {
        let result = serde_json::to_vec(line)
            .map_err(std::io::Error::from)
            .and_then(|mut bytes| {
                bytes.push(b'\n');
                writer.write_all(&bytes)
            });
        if let Err(e) = result {
            ::metrics::counter!(DROPPED_METRIC).increment(1);
            if !failed {
                failed = true;
                tracing::warn!(error = %e, "cannot write the decision log; its lines are dropped");
            }
        }
    };
    while let Ok(first) = rx.recv() {
        write(&first, &mut writer);
        while let Ok(next) = rx.try_recv() {
            write(&next, &mut writer);
        }
        let _ = writer.flush();
    }
}

fn line(
    decision: &Decision,
    note: RequestNote,
    cache: CacheOutcome,
    model: &ModelFingerprint,
) -> Line {
    let r = &decision.routing;
    let ts_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
    Line {
        ts_ms,
        decision_id: decision.decision_id.clone(),
        request_id: decision.request_id.clone(),
        trace_id: note.trace_id,
        span_id: note.span_id,
        tenant: note.tenant,
        bucket: r.bucket.to_string(),
        confidence: r.confidence,
        margin: r.margin,
        abstained: r.abstained,
        target: r.target.name.clone(),
        fallbacks: r.fallbacks.iter().map(|t| t.name.clone()).collect(),
        rules: rule_names(&r.reasons),
        reasons: r.reasons.clone(),
        conversation: r.conversation.as_ref().map(|c| ConversationLine {
            turns: c.turns.len(),
            task: c.task.to_string(),
            turn_bucket: c.turn_bucket.to_string(),
            new_task: c.new_task,
            current_weight: c.current_weight,
            weights: c.turns.iter().map(|t| t.weight).collect(),
        }),
        policy_version: decision.policy_version.clone(),
        index_version: decision.index_version.clone(),
        model: model.id.clone(),
        model_revision: model.revision.clone(),
        tokens: decision.tokens,
        prompt_tokens: decision.prompt_tokens,
        truncated: decision.truncated,
        cache: cache.as_str(),
        estimated_input_cost_usd: r.estimated_input_cost_usd,
        timings_us: decision.timings_us,
        prompt: note.prompt,
    }
}

/// The rules that fired, from the reasons `rule NAME: …` that `decide` writes for them.
fn rule_names(reasons: &[String]) -> Vec<String> {
    reasons
        .iter()
        .filter_map(|r| r.strip_prefix("rule ")?.split_once(':'))
        .map(|(name, _)| name.to_owned())
        .collect()
}

/// Whether the decision `id` is in the sampled share `rate` (FNV-1a of the id: the same id
/// always gets the same answer).
fn sampled(id: &str, rate: f64) -> bool {
    if rate >= 1.0 {
        return true;
    }
    if rate <= 0.0 {
        return false;
    }
    let hash = id.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    });
    (hash as f64 / u64::MAX as f64) < rate
}

/// The first `max` characters of `text` (cut on a character boundary).
fn cut(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((end, _)) => text[..end].to_owned(),
        None => text.to_owned(),
    }
}

#[cfg(test)]
mod tests;
