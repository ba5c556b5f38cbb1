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
