//! The live health board: one circuit breaker per target behind a mutex for writes (reported
//! outcomes, probe claims), and an immutable [`HealthView`] republished through `ArcSwap`
//! after every write, so a decision only does one atomic load. Per replica, like Envoy's
//! outlier detection; nothing here touches the disk or the network.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use serde::Serialize;

use crate::decide::{Breaker, HealthConfig, HealthView, OutcomeReport, Phase, Transition};

#[derive(Default)]
pub struct HealthBoard {
    breakers: Mutex<BTreeMap<String, Breaker>>,
    view: ArcSwap<HealthView>,
}

/// One breaker as `GET /health/targets` shows it.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct TargetReport {
    pub target: String,
    pub state: Phase,
    /// Reported outcomes in the window, oldest first (`ok`, `timeout`...).
    #[schema(value_type = Vec<String>)]
    pub window: Vec<&'static str>,
    pub failures: usize,
    pub error_rate: f64,
    pub consecutive_failures: u32,
    /// Until the breaker turns half-open (open), or the claimed probe lapses (half-open).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reopens_in_ms: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_failure_ms_ago: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_latency_ms: Option<u64>,
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

impl HealthBoard {
    pub fn new() -> Self {
        Self::default()
    }

    /// The current view: one atomic load, for the hot path.
    pub fn view(&self) -> Arc<HealthView> {
        self.view.load_full()
    }

    /// Records an outcome for `target` (the caller checks the name against the policy) and
    /// publishes a new view. Thresholds come from the policy in force, so a reload applies to
    /// the next report.
    pub fn record(
        &self,
        target: &str,
        report: &OutcomeReport,
        config: &HealthConfig,
        now: Instant,
    ) -> Transition {
        let mut breakers = self.lock();
        let transition = breakers
            .entry(target.to_owned())
            .or_default()
            .record(report, config, now);
        self.publish(&breakers);
        transition
    }

    /// Claims the one probe of a half-open target: true for exactly one caller until the
    /// probe's outcome is reported or it lapses. On false, decide again with [`Self::view`],
    /// which then shows the probe in flight.
    pub fn claim_probe(&self, target: &str, config: &HealthConfig, now: Instant) -> bool {
        let mut breakers = self.lock();
        let claimed = breakers
            .get_mut(target)
            .is_some_and(|b| b.claim_probe(config, now));
        // Published either way: a failed claim may have seen an expired cooldown or probe.
        self.publish(&breakers);
        claimed
    }

    /// Every breaker that has had a report, by target name.
    pub fn report(&self, now: Instant) -> Vec<TargetReport> {
        let breakers = self.lock();
        let view = self.view();
        breakers
            .iter()
            .map(|(name, b)| {
                let h = b.health();
                TargetReport {
                    target: name.clone(),
                    state: b.state(now).phase(),
                    window: b.window().map(|o| o.as_str()).collect(),
                    failures: h.window_failures,
                    error_rate: if h.window_len == 0 {
                        0.0
                    } else {
                        h.window_failures as f64 / h.window_len as f64
                    },
                    consecutive_failures: h.consecutive_failures,
                    reopens_in_ms: view
                        .open_until(name, now)
                        .map(|t| millis(t.saturating_duration_since(now))),
                    last_failure_ms_ago: h
                        .last_failure
                        .map(|t| millis(now.saturating_duration_since(t))),
                    last_latency_ms: h.last_latency_ms,
                }
            })
            .collect()
    }

    fn publish(&self, breakers: &BTreeMap<String, Breaker>) {
        let view = breakers
            .iter()
            .map(|(name, b)| (name.clone(), b.health()))
            .collect();
        self.view.store(Arc::new(HealthView::new(view)));
    }

    /// A panic while holding the lock leaves breakers that are still consistent (each
    /// method mutates one breaker through its own methods), so poisoning is ignored.
    fn lock(&self) -> MutexGuard<'_, BTreeMap<String, Breaker>> {
        self.breakers.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decide::{Availability, ReportedOutcome};

    #[test]
    fn reports_publish_views_and_one_probe_is_claimed() {
        let board = HealthBoard::new();
        let config = HealthConfig {
            consecutive_failures_to_open: 2,
            cooldown: Duration::from_secs(5),
            ..HealthConfig::default()
        };
        let t0 = Instant::now();
        let before = board.view();
        for _ in 0..2 {
            board.record(
                "mid-a",
                &OutcomeReport::new(ReportedOutcome::RateLimited),
                &config,
                t0,
            );
        }
        assert_eq!(before.availability("mid-a", t0), Availability::Closed);
        assert_eq!(board.view().availability("mid-a", t0), Availability::Open);
        let later = t0 + Duration::from_secs(6);
        assert_eq!(
            board.view().availability("mid-a", later),
            Availability::Probe
        );
        assert!(board.claim_probe("mid-a", &config, later));
        assert!(!board.claim_probe("mid-a", &config, later));
        assert!(!board.claim_probe("never-reported", &config, later));
        assert_eq!(
            board.view().availability("mid-a", later),
            Availability::ProbeInFlight
        );
        let t = board.record(
            "mid-a",
            &OutcomeReport::new(ReportedOutcome::Ok),
            &config,
            later,
        );
        assert_eq!((t.from, t.to), (Phase::HalfOpen, Phase::Closed));
        let report = board.report(later);
        assert_eq!(report.len(), 1);
        assert_eq!(report[0].state, Phase::Closed);
        assert_eq!(report[0].window, ["ok"]);
    }
}
