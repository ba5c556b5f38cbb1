//! Decisions under provider health (open, half-open breakers), canary shares and shadows.

use super::*;

#[test]
fn open_targets_are_skipped_with_a_reason() {
    let (base, now) = times();
    let health = view(&[("l", 1, 0)], base);
    let r = at(&policy(), &code(), &req(), &health, now).unwrap();
    assert_eq!(names(&r), ["m", "s"]);
    assert!(
        has_reason(&r, "health: skipped l (open)"),
        "{:?}",
        r.reasons
    );
    assert!(r.probe.is_none());
}

#[test]
fn single_target_bucket_still_cools_its_primary_down() {
    let (base, now) = times();
    let health = view(&[("s", 1, 0)], base);
    let chat = sure("chat");
    let r = at(&policy(), &chat, &req(), &health, now).unwrap();
    assert_eq!(names(&r), ["s"]);
    assert!(
        has_reason(&r, "health: skipped s (open)"),
        "{:?}",
        r.reasons
    );
    assert!(
        has_reason(&r, "least recently failed, so s first"),
        "{:?}",
        r.reasons
    );
    let e = at(&rejecting(), &chat, &req(), &health, now).unwrap_err();
    match e {
        DecideError::AllTargetsOpen {
            targets,
            retry_after,
            ..
        } => {
            assert_eq!(targets, ["s"]);
            assert!(retry_after > Duration::ZERO && retry_after <= Duration::from_secs(10));
        }
        other @ (DecideError::UnknownBucket { .. } | DecideError::NoEligibleTarget { .. }) => {
            panic!("{other}")
        }
    }
}

#[test]
fn all_open_picks_the_least_recently_failed_first() {
    let (base, now) = times();
    // l failed last (98 s), m first (91 s), s at 95 s: all still open at 100 s.
    let health = view(&[("l", 1, 7), ("m", 1, 0), ("s", 1, 4)], base);
    let r = at(&policy(), &code(), &req(), &health, now).unwrap();
    assert_eq!(names(&r), ["m", "s", "l"]);
}

#[test]
fn a_half_open_primary_is_the_probe_and_one_in_flight_is_skipped() {
    let (base, now) = times();
    let r = at(
        &policy(),
        &code(),
        &req(),
        &view(&[("l", 2, 50)], base),
        now,
    )
    .unwrap();
    assert_eq!(r.target.name, "l");
    assert_eq!(r.probe.as_deref(), Some("l"));
    assert!(
        has_reason(&r, "l is half-open; this request is its probe"),
        "{:?}",
        r.reasons
    );
    let r = at(
        &policy(),
        &code(),
        &req(),
        &view(&[("l", 3, 50)], base),
        now,
    )
    .unwrap();
    assert_eq!(names(&r), ["m", "s"]);
    assert!(
        has_reason(&r, "skipped l (half-open, probe in flight)"),
        "{:?}",
        r.reasons
    );
}

/// A routing key inside (or outside) code's 30% canary share.
fn key(inside: bool) -> String {
    (0..)
        .map(|i| format!("req-{i}"))
        .find(|k| canary::in_share("code", k, 30) == inside)
        .expect("some key falls on each side. This is a bug.")
}

#[test]
fn canary_takes_its_share_as_primary() {
    let inside = RequestContext {
        routing_key: Some(key(true)),
        ..req()
    };
    let r = run(&policy(), &code(), &inside).unwrap();
    assert_eq!(
        names(&r),
        ["c", "l", "m"],
        "the old primary is the first fallback"
    );
    assert_eq!(
        r.canary,
        Some(CanaryApplied {
            target: "c".into(),
            percent: 30
        })
    );
    assert!(
        has_reason(
            &r,
            "canary: routing key in the 30% share of code; c is primary, then l, m"
        ),
        "{:?}",
        r.reasons
    );
    let outside = RequestContext {
        routing_key: Some(key(false)),
        ..req()
    };
    let r = run(&policy(), &code(), &outside).unwrap();
    assert_eq!(names(&r), ["l", "m", "s"]);
    assert!(r.canary.is_none() && has_reason(&r, "outside the 30% share"));
    let r = run(&policy(), &code(), &req()).unwrap();
    assert!(r.canary.is_none() && has_reason(&r, "no routing key"));
}

#[test]
fn an_ineligible_canary_is_not_applied() {
    let r = RequestContext {
        routing_key: Some(key(true)),
        capabilities: BTreeSet::from(["long_context".to_owned()]),
        ..req()
    };
    let r = run(&policy(), &code(), &r).unwrap();
    assert_eq!(names(&r), ["l"]);
    assert!(r.canary.is_none());
    assert!(
        has_reason(&r, "but c lacks long_context; not applied"),
        "{:?}",
        r.reasons
    );
}

#[test]
fn shadow_is_listed_unless_it_is_cooling_down() {
    let r = run(&policy(), &code(), &req()).unwrap();
    assert_eq!(r.shadow.as_ref().map(|t| t.name.as_str()), Some("w"));
    assert!(has_reason(&r, "shadow: mirror to w"));
    let (base, now) = times();
    let r = at(&policy(), &code(), &req(), &view(&[("w", 1, 0)], base), now).unwrap();
    assert!(r.shadow.is_none() && has_reason(&r, "shadow: w is cooling down"));
}
