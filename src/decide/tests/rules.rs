//! The policy's side rules: forced buckets, tier caps, capabilities, speed, prompt windows.

use super::*;

#[test]
fn rule_force_bucket() {
    let r = run(
        &policy(),
        &code(),
        &RequestContext {
            prompt_tokens: 6000,
            ..req()
        },
    )
    .unwrap();
    assert_eq!(r.bucket.as_str(), "long");
    assert_eq!(names(&r), ["l"]);
    assert!(
        has_reason(
            &r,
            "rule long: forced bucket long (semantic match was code)"
        ),
        "{:?}",
        r.reasons
    );
}

#[test]
fn rule_cap_tier() {
    let free = RequestContext {
        tier: Some("free".into()),
        ..req()
    };
    let r = run(&policy(), &code(), &free).unwrap();
    assert_eq!(names(&r), ["m", "s"]);
    assert!(
        has_reason(&r, "rule free-cap: capped tier at mid, dropped l"),
        "{:?}",
        r.reasons
    );
    let pro = RequestContext {
        tier: Some("pro".into()),
        ..req()
    };
    assert_eq!(
        names(&run(&policy(), &code(), &pro).unwrap()),
        ["l", "m", "s"]
    );
}

#[test]
fn rule_require_capabilities() {
    let json = RequestContext {
        metadata: BTreeMap::from([("format".to_owned(), serde_json::json!("json"))]),
        ..req()
    };
    let r = run(&policy(), &code(), &json).unwrap();
    assert_eq!(names(&r), ["m", "s"]);
    assert!(
        has_reason(&r, "rule json: required json_mode, dropped l"),
        "{:?}",
        r.reasons
    );
}

#[test]
fn rule_prefer_fastest() {
    let high = RequestContext {
        priority: Priority::High,
        ..req()
    };
    let r = run(&policy(), &code(), &high).unwrap();
    assert_eq!(names(&r), ["s", "m", "l"]);
    assert!(
        has_reason(&r, "rule fast: preferred fastest: s, m, l"),
        "{:?}",
        r.reasons
    );
}

#[test]
fn request_capabilities_drop_targets_and_can_leave_none() {
    let vision = RequestContext {
        capabilities: BTreeSet::from(["vision".to_owned()]),
        ..req()
    };
    let r = run(&policy(), &code(), &vision).unwrap();
    assert_eq!(names(&r), ["l", "m"]);
    assert!(
        has_reason(&r, "capabilities: request needs vision; dropped s"),
        "{:?}",
        r.reasons
    );
    let e = run(&policy(), &sure("chat"), &vision).unwrap_err();
    assert!(
        matches!(&e, DecideError::NoEligibleTarget { bucket, why } if bucket.as_str() == "chat" && why.contains("vision")),
        "{e}"
    );
}

#[test]
fn rules_that_empty_the_bucket_are_an_error_not_a_silent_pick() {
    let r = RequestContext {
        tier: Some("free".into()),
        prompt_tokens: 6000,
        ..req()
    };
    let e = run(&policy(), &code(), &r).unwrap_err();
    assert!(
        matches!(&e, DecideError::NoEligibleTarget { why, .. } if why.contains("rule free-cap capped tier at mid, dropped l")),
        "{e}"
    );
}

#[test]
fn prompts_larger_than_a_window_skip_that_target() {
    let r = run(
        &policy(),
        &code(),
        &RequestContext {
            prompt_tokens: 4000,
            ..req()
        },
    )
    .unwrap();
    assert_eq!(names(&r), ["l", "m"]);
    assert!(
        has_reason(
            &r,
            "context: prompt of 4000 tokens exceeds the context window of s"
        ),
        "{:?}",
        r.reasons
    );
    let e = run(
        &policy(),
        &sure("chat"),
        &RequestContext {
            prompt_tokens: 4000,
            ..req()
        },
    );
    assert!(matches!(e, Err(DecideError::NoEligibleTarget { .. })));
}
