//! Provider health, the pure part: one circuit breaker per target over a sliding window of
//! reported outcomes, and the immutable [`HealthView`] that `decide` reads.
//!
//! closed ─(error rate or consecutive failures)→ open ─(cooldown, or a longer Retry-After)→
//! half_open ─(probe succeeds)→ closed, ─(probe fails)→ open again.
//!
//! No clock and no locks here: every method takes `now`, and the shared, locked board that
//! publishes views lives at composer level (`crate::live::HealthBoard`). The policy's
//! `[health]` section is parsed and checked with the rest of the policy (`policy::validate`).

use std::collections::{BTreeMap, VecDeque};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

/// A Retry-After longer than this is treated as this: a provider asking for a day of silence
/// would otherwise take a target out until someone notices.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(3600);

/// What a caller reports after using a target (`"outcome"` of `POST /feedback`).
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    Serialize,
    Deserialize,
    utoipa::ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum ReportedOutcome {
    Ok,
    Timeout,
    RateLimited,
    ServerError,
    /// The provider answered but a verifier refused the answer: a quality signal for
    /// escalation, not a sign the provider is down, so it does not count as a failure here.
    VerifierRejected,
}

impl ReportedOutcome {
    /// Whether the outcome says the provider is unhealthy.
    pub fn is_failure(self) -> bool {
        match self {
            Self::Timeout | Self::RateLimited | Self::ServerError => true,
            Self::Ok | Self::VerifierRejected => false,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ok => "ok",
            Self::Timeout => "timeout",
            Self::RateLimited => "rate_limited",
            Self::ServerError => "server_error",
            Self::VerifierRejected => "verifier_rejected",
        }
    }
}

/// One reported outcome with its optional details.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OutcomeReport {
    pub outcome: ReportedOutcome,
    pub latency_ms: Option<u64>,
    /// The provider's `Retry-After`, honoured as a longer cooldown when the breaker opens.
    pub retry_after_s: Option<u64>,
}

impl OutcomeReport {
    pub fn new(outcome: ReportedOutcome) -> Self {
        Self {
            outcome,
            latency_ms: None,
            retry_after_s: None,
        }
    }
}

/// What to do when every eligible target of a bucket is open.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WhenAllOpen {
    /// Route to the target whose last failure is oldest, and say so.
    LeastRecentlyFailed,
    /// Refuse (HTTP 503 with Retry-After).
    Reject,
}

/// Breaker thresholds, from the policy's `[health]` section.
#[derive(Debug, Clone, PartialEq)]
pub struct HealthConfig {
    /// Outcomes kept per target.
    pub window: usize,
    /// Outcomes needed in the window before the error rate can open the breaker.
    pub min_requests: usize,
    pub error_rate_to_open: f64,
    pub consecutive_failures_to_open: u32,
    pub cooldown: Duration,
    pub when_all_open: WhenAllOpen,
}

impl Default for HealthConfig {
    /// Used when the policy has no `[health]` section: a 20-outcome window, open at half of at
    /// least 10 failing or 5 failures in a row, 30 s cooldown (Envoy's outlier detection uses
    /// 5 consecutive errors and a 30 s base ejection time).
    fn default() -> Self {
        Self {
            window: 20,
            min_requests: 10,
            error_rate_to_open: 0.5,
            consecutive_failures_to_open: 5,
            cooldown: Duration::from_secs(30),
            when_all_open: WhenAllOpen::LeastRecentlyFailed,
        }
    }
}

/// A breaker's state, with the instants that move it on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BreakerState {
    Closed,
    /// No traffic until `until`; then half-open.
    Open {
        until: Instant,
    },
    /// One probe may go through; `probe_until` is set while a claimed probe is in flight
    /// (a probe whose outcome never arrives lapses then, and another may be claimed).
    HalfOpen {
        probe_until: Option<Instant>,
    },
}

/// A state's name, for reasons, logs and reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    Closed,
    Open,
    HalfOpen,
}

impl BreakerState {
    pub fn phase(self) -> Phase {
        match self {
            Self::Closed => Phase::Closed,
            Self::Open { .. } => Phase::Open,
            Self::HalfOpen { .. } => Phase::HalfOpen,
        }
    }

    /// The state once time has passed: cooldowns and lapsed probes expire.
    pub fn at(self, now: Instant) -> Self {
        match self {
            Self::Open { until } if now >= until => Self::HalfOpen { probe_until: None },
            Self::HalfOpen {
                probe_until: Some(t),
            } if now >= t => Self::HalfOpen { probe_until: None },
            Self::Closed | Self::Open { .. } | Self::HalfOpen { .. } => self,
        }
    }
}

/// A state change caused by a report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Transition {
    pub from: Phase,
    pub to: Phase,
}

/// One target's breaker.
#[derive(Debug, Clone)]
pub struct Breaker {
    state: BreakerState,
    window: VecDeque<ReportedOutcome>,
    consecutive_failures: u32,
    last_failure: Option<Instant>,
    last_latency_ms: Option<u64>,
}

impl Default for Breaker {
    fn default() -> Self {
        Self::new()
    }
}

impl Breaker {
    pub fn new() -> Self {
        Self {
            state: BreakerState::Closed,
            window: VecDeque::new(),
            consecutive_failures: 0,
            last_failure: None,
            last_latency_ms: None,
        }
    }

    /// The state at `now` (cooldowns expire without a report).
    pub fn state(&self, now: Instant) -> BreakerState {
        self.state.at(now)
    }

    /// Records one outcome and moves the state machine.
    pub fn record(
        &mut self,
        report: &OutcomeReport,
        config: &HealthConfig,
        now: Instant,
    ) -> Transition {
        self.state = self.state.at(now);
        let from = self.state.phase();
        let failed = report.outcome.is_failure();
        if let Some(ms) = report.latency_ms {
            self.last_latency_ms = Some(ms);
        }
        self.window.push_back(report.outcome);
        while self.window.len() > config.window {
            self.window.pop_front();
        }
        if failed {
            self.consecutive_failures = self.consecutive_failures.saturating_add(1);
            self.last_failure = Some(now);
        } else {
            self.consecutive_failures = 0;
        }
        let retry_after = report
            .retry_after_s
            .map(|s| Duration::from_secs(s).min(MAX_RETRY_AFTER));
        let reopen_at = now
            .checked_add(config.cooldown.max(retry_after.unwrap_or_default()))
            .unwrap_or(now);
        self.state = match self.state {
            BreakerState::Closed if failed && self.should_open(config) => {
                BreakerState::Open { until: reopen_at }
            }
            BreakerState::Closed => BreakerState::Closed,
            // Late reports of requests sent before opening: only a longer Retry-After counts.
            BreakerState::Open { until } => match retry_after {
                Some(_) if failed => BreakerState::Open {
                    until: until.max(reopen_at),
                },
                Some(_) | None => BreakerState::Open { until },
            },
            BreakerState::HalfOpen { .. } if failed => BreakerState::Open { until: reopen_at },
            BreakerState::HalfOpen { .. } => {
                // The probe succeeded: start afresh, keeping only this success.
                self.window.clear();
                self.window.push_back(report.outcome);
                BreakerState::Closed
            }
        };
        Transition {
            from,
            to: self.state.phase(),
        }
    }

    /// Claims the half-open probe: true for one caller until the probe's outcome is
    /// reported or the probe lapses (after one cooldown).
    pub fn claim_probe(&mut self, config: &HealthConfig, now: Instant) -> bool {
        self.state = self.state.at(now);
        match self.state {
            BreakerState::HalfOpen { probe_until: None } => {
                self.state = BreakerState::HalfOpen {
                    probe_until: Some(now.checked_add(config.cooldown).unwrap_or(now)),
                };
                true
            }
            BreakerState::HalfOpen {
                probe_until: Some(_),
            }
            | BreakerState::Closed
            | BreakerState::Open { .. } => false,
        }
    }

    fn should_open(&self, config: &HealthConfig) -> bool {
        if self.consecutive_failures >= config.consecutive_failures_to_open {
            return true;
        }
        let n = self.window.len();
        n >= config.min_requests && self.failures() as f64 / n as f64 >= config.error_rate_to_open
    }

    fn failures(&self) -> usize {
        self.window.iter().filter(|o| o.is_failure()).count()
    }

    /// The summary a [`HealthView`] publishes.
    pub fn health(&self) -> TargetHealth {
        TargetHealth {
            state: self.state,
            last_failure: self.last_failure,
            window_len: self.window.len(),
            window_failures: self.failures(),
            consecutive_failures: self.consecutive_failures,
            last_latency_ms: self.last_latency_ms,
        }
    }

    /// The outcomes in the window, oldest first.
    pub fn window(&self) -> impl Iterator<Item = ReportedOutcome> + '_ {
        self.window.iter().copied()
    }
}

/// One target's health as of the last report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TargetHealth {
    pub state: BreakerState,
    pub last_failure: Option<Instant>,
    pub window_len: usize,
    pub window_failures: usize,
    pub consecutive_failures: u32,
    pub last_latency_ms: Option<u64>,
}

/// Whether `decide` may send to a target now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Availability {
    Closed,
    /// Half-open with no probe in flight: this request may be the probe.
    Probe,
    /// Half-open with a probe in flight: skipped until its outcome arrives.
    ProbeInFlight,
    Open,
}

impl Availability {
    pub fn usable(self) -> bool {
        match self {
            Self::Closed | Self::Probe => true,
            Self::ProbeInFlight | Self::Open => false,
        }
    }
}

/// Immutable snapshot of every breaker: what `decide` reads. A target absent from the view
/// has had no reports and is closed.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct HealthView {
    targets: BTreeMap<String, TargetHealth>,
}

impl HealthView {
    pub fn new(targets: BTreeMap<String, TargetHealth>) -> Self {
        Self { targets }
    }

    pub fn availability(&self, target: &str, now: Instant) -> Availability {
        match self.targets.get(target).map(|h| h.state.at(now)) {
            None | Some(BreakerState::Closed) => Availability::Closed,
            Some(BreakerState::Open { .. }) => Availability::Open,
            Some(BreakerState::HalfOpen { probe_until: None }) => Availability::Probe,
            Some(BreakerState::HalfOpen {
                probe_until: Some(_),
            }) => Availability::ProbeInFlight,
        }
    }

    pub fn last_failure(&self, target: &str) -> Option<Instant> {
        self.targets.get(target).and_then(|h| h.last_failure)
    }

    /// When an open target becomes half-open (`None` when it is not open at `now`).
    pub fn open_until(&self, target: &str, now: Instant) -> Option<Instant> {
        match self.targets.get(target).map(|h| h.state.at(now)) {
            Some(BreakerState::Open { until }) => Some(until),
            Some(BreakerState::HalfOpen { probe_until }) => probe_until,
            None | Some(BreakerState::Closed) => None,
        }
    }
}

#[cfg(test)]
mod tests;
