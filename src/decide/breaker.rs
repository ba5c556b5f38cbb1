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
mod tests {
    use super::*;

    fn cfg() -> HealthConfig {
        HealthConfig {
            window: 10,
            min_requests: 4,
            error_rate_to_open: 0.5,
            consecutive_failures_to_open: 3,
            cooldown: Duration::from_secs(10),
            when_all_open: WhenAllOpen::Reject,
        }
    }

    fn rec(b: &mut Breaker, o: ReportedOutcome, now: Instant) -> Transition {
        b.record(&OutcomeReport::new(o), &cfg(), now)
    }

    fn secs(s: u64) -> Duration {
        Duration::from_secs(s)
    }

    #[test]
    fn consecutive_failures_open_the_breaker() {
        let t0 = Instant::now();
        let mut b = Breaker::new();
        assert_eq!(rec(&mut b, ReportedOutcome::Timeout, t0).to, Phase::Closed);
        assert_eq!(
            rec(&mut b, ReportedOutcome::ServerError, t0).to,
            Phase::Closed
        );
        let t = rec(&mut b, ReportedOutcome::RateLimited, t0);
        assert_eq!((t.from, t.to), (Phase::Closed, Phase::Open));
        assert_eq!(
            b.state(t0),
            BreakerState::Open {
                until: t0 + secs(10)
            }
        );
    }

    #[test]
    fn error_rate_opens_only_after_min_requests() {
        let t0 = Instant::now();
        let mut b = Breaker::new();
        // fail, ok, fail: 2/3 failing but below min_requests, and never 3 in a row
        for o in [
            ReportedOutcome::Timeout,
            ReportedOutcome::Ok,
            ReportedOutcome::Timeout,
        ] {
            assert_eq!(rec(&mut b, o, t0).to, Phase::Closed);
        }
        // ok then fail: 3/5 ≥ 0.5 with 5 ≥ 4 requests
        assert_eq!(rec(&mut b, ReportedOutcome::Ok, t0).to, Phase::Closed);
        assert_eq!(rec(&mut b, ReportedOutcome::Timeout, t0).to, Phase::Open);
    }

    #[test]
    fn successes_keep_it_closed_and_verifier_rejections_are_not_failures() {
        let t0 = Instant::now();
        let mut b = Breaker::new();
        for _ in 0..20 {
            assert_eq!(
                rec(&mut b, ReportedOutcome::VerifierRejected, t0).to,
                Phase::Closed
            );
        }
        assert_eq!(b.health().window_len, 10, "window is bounded");
        assert_eq!(b.health().window_failures, 0);
    }

    #[test]
    fn open_becomes_half_open_after_cooldown_then_closes_on_success() {
        let t0 = Instant::now();
        let mut b = Breaker::new();
        for _ in 0..3 {
            rec(&mut b, ReportedOutcome::ServerError, t0);
        }
        assert_eq!(b.state(t0 + secs(9)).phase(), Phase::Open);
        assert_eq!(
            b.state(t0 + secs(10)),
            BreakerState::HalfOpen { probe_until: None }
        );
        let t = rec(&mut b, ReportedOutcome::Ok, t0 + secs(11));
        assert_eq!((t.from, t.to), (Phase::HalfOpen, Phase::Closed));
        assert_eq!(b.health().window_len, 1, "closing starts a fresh window");
        assert_eq!(b.health().consecutive_failures, 0);
    }

    #[test]
    fn half_open_failure_reopens_with_a_fresh_cooldown() {
        let t0 = Instant::now();
        let mut b = Breaker::new();
        for _ in 0..3 {
            rec(&mut b, ReportedOutcome::ServerError, t0);
        }
        let t = rec(&mut b, ReportedOutcome::Timeout, t0 + secs(12));
        assert_eq!((t.from, t.to), (Phase::HalfOpen, Phase::Open));
        assert_eq!(
            b.state(t0 + secs(12)),
            BreakerState::Open {
                until: t0 + secs(22)
            }
        );
    }

    #[test]
    fn retry_after_lengthens_the_cooldown_and_is_bounded() {
        let t0 = Instant::now();
        let mut b = Breaker::new();
        rec(&mut b, ReportedOutcome::RateLimited, t0);
        rec(&mut b, ReportedOutcome::RateLimited, t0);
        let report = OutcomeReport {
            outcome: ReportedOutcome::RateLimited,
            latency_ms: Some(5),
            retry_after_s: Some(60),
        };
        b.record(&report, &cfg(), t0);
        assert_eq!(
            b.state(t0),
            BreakerState::Open {
                until: t0 + secs(60)
            }
        );
        // a later 429 with a huge Retry-After extends, but only up to the bound
        let huge = OutcomeReport {
            retry_after_s: Some(u64::MAX),
            ..report
        };
        b.record(&huge, &cfg(), t0);
        assert_eq!(
            b.state(t0),
            BreakerState::Open {
                until: t0 + MAX_RETRY_AFTER
            }
        );
        // a shorter Retry-After than the cooldown does not shorten it
        let mut c = Breaker::new();
        for _ in 0..3 {
            c.record(
                &OutcomeReport {
                    retry_after_s: Some(1),
                    ..report
                },
                &cfg(),
                t0,
            );
        }
        assert_eq!(
            c.state(t0),
            BreakerState::Open {
                until: t0 + secs(10)
            }
        );
    }

    #[test]
    fn one_probe_at_a_time_and_lapsed_probes_free_the_slot() {
        let t0 = Instant::now();
        let mut b = Breaker::new();
        assert!(!b.claim_probe(&cfg(), t0), "closed breakers have no probe");
        for _ in 0..3 {
            rec(&mut b, ReportedOutcome::ServerError, t0);
        }
        assert!(!b.claim_probe(&cfg(), t0 + secs(5)), "still open");
        assert!(b.claim_probe(&cfg(), t0 + secs(10)));
        assert!(!b.claim_probe(&cfg(), t0 + secs(11)), "probe in flight");
        assert!(b.claim_probe(&cfg(), t0 + secs(20)), "the probe lapsed");
    }

    #[test]
    fn view_reports_availability_over_time() {
        let t0 = Instant::now();
        let mut b = Breaker::new();
        for _ in 0..3 {
            rec(&mut b, ReportedOutcome::ServerError, t0);
        }
        let view = HealthView::new(BTreeMap::from([("a".to_owned(), b.health())]));
        assert_eq!(view.availability("a", t0), Availability::Open);
        assert_eq!(view.availability("a", t0 + secs(10)), Availability::Probe);
        assert_eq!(view.availability("unknown", t0), Availability::Closed);
        assert_eq!(view.last_failure("a"), Some(t0));
        assert_eq!(view.open_until("a", t0), Some(t0 + secs(10)));
        b.claim_probe(&cfg(), t0 + secs(10));
        let view = HealthView::new(BTreeMap::from([("a".to_owned(), b.health())]));
        assert_eq!(
            view.availability("a", t0 + secs(11)),
            Availability::ProbeInFlight
        );
    }

    #[test]
    fn outcomes_keep_the_api_names() {
        for (outcome, name) in [
            (ReportedOutcome::Ok, "ok"),
            (ReportedOutcome::Timeout, "timeout"),
            (ReportedOutcome::RateLimited, "rate_limited"),
            (ReportedOutcome::ServerError, "server_error"),
            (ReportedOutcome::VerifierRejected, "verifier_rejected"),
        ] {
            assert_eq!(outcome.as_str(), name);
            assert_eq!(serde_json::json!(outcome), serde_json::json!(name));
            let read: ReportedOutcome = serde_json::from_str(&format!("\"{name}\"")).unwrap();
            assert_eq!(read, outcome);
        }
        // serde_json's messages never name the Rust type, so the rename left them as they were.
        let e = serde_json::from_str::<ReportedOutcome>("\"fine\"").unwrap_err();
        assert_eq!(
            e.to_string(),
            "unknown variant `fine`, expected one of `ok`, `timeout`, `rate_limited`, \
             `server_error`, `verifier_rejected` at line 1 column 6"
        );
    }
}
