use super::*;
use crate::decide::breaker::HealthConfig;
use crate::types::{BucketId, ScorerKind};

const SAMPLE: &str = r#"
schema_version = 1
policy_version = "test.1"
default_bucket = "chat"
tenant_tiers = ["free", "pro"]

[matching]
k = 5
min_confidence = 0.4
min_similarity = 0.3

[escalation]
on = ["timeout", "server_error"]
timeout_ms = 5000
max_attempts = 2

[health]
window = 20
min_requests = 5
error_rate_to_open = 0.5
consecutive_failures_to_open = 3
cooldown_ms = 30000
when_all_open = "reject"

[targets.small]
provider = "openai"
model = "gpt-4.1-mini-2025-04-14"
tier = "small"
capabilities = ["json_mode", "vision"]
context_window = 1047576
price_in_per_mtok = 0.4
price_out_per_mtok = 1.6
latency_rank = 1

[targets.big]
provider = "anthropic"
model = "claude-sonnet-4-5-20250929"
tier = "mid"
capabilities = ["vision"]
context_window = 200000
price_in_per_mtok = 3.0
price_out_per_mtok = 15.0
latency_rank = 2

[targets.next]
provider = "openai"
model = "gpt-5-2025-08-07"
tier = "frontier"
context_window = 400000
price_in_per_mtok = 1.25
price_out_per_mtok = 10.0

[buckets.chat]
targets = ["small"]
shadow = "next"

[buckets.code]
targets = ["big", "small"]
min_confidence = 0.6
escalation = { on = ["rate_limited"], timeout_ms = 20000, max_attempts = 3 }
canary = { target = "next", percent = 5 }

[[rules]]
name = "free-cap"
when = { tier = ["free"], prompt_tokens_above = 10 }
then = { cap_tier = "mid", require_capabilities = ["vision"] }

[[rules]]
name = "fast"
when = { priority = "high", metadata = { team = "search" } }
then = { prefer = "fastest", force_bucket = "chat" }
"#;

fn err_of(text: &str) -> String {
    Policy::parse(text, "p.toml").unwrap_err().to_string()
}

#[test]
fn scorer_and_fitted_thresholds() {
    let p = Policy::parse(SAMPLE, "p.toml").unwrap();
    assert_eq!(p.matching.scorer, ScorerKind::Combined);
    assert_eq!(p.matching.uncertain_margin, DEFAULT_UNCERTAIN_MARGIN);
    let fitted = SAMPLE
        .replace("k = 5", "scorer = \"head\"\nk = 5\nuncertain_margin = 0.1")
        .replace("min_confidence = 0.4", "min_confidence = \"fitted\"");
    let p = Policy::parse(&fitted, "p.toml").unwrap();
    assert_eq!(p.matching.scorer, ScorerKind::Head);
    assert_eq!(p.matching.min_confidence, Threshold::Fitted);
    assert_eq!(p.matching.uncertain_margin, 0.1);
    // A bucket without its own threshold inherits "fitted"; one with a number keeps it.
    let chat = p.bucket(&BucketId::new("chat")).unwrap();
    assert_eq!(chat.min_confidence, Threshold::Fitted);
    assert_eq!(chat.min_confidence.resolve(Some(0.7)), 0.7);
    assert_eq!(chat.min_confidence.resolve(None), 0.0);
    assert!(
        err_of(&SAMPLE.replace("min_confidence = 0.4", "min_confidence = \"fited\""))
            .contains("matching.min_confidence")
    );
    assert!(err_of(&SAMPLE.replace("k = 5", "scorer = \"knn\"\nk = 5")).contains("knn"));
}

#[test]
fn sample_parses() {
    let p = Policy::parse(SAMPLE, "p.toml").unwrap();
    let code = p.bucket(&BucketId::new("code")).unwrap();
    assert_eq!(code.targets[0].name, "big");
    assert_eq!(code.min_confidence, Threshold::Fixed(0.6));
    assert_eq!(code.escalation.max_attempts, 3);
    let chat = p.bucket(&BucketId::new("chat")).unwrap();
    assert_eq!(chat.min_confidence, Threshold::Fixed(0.4));
    assert_eq!(
        chat.escalation.on,
        vec![Trigger::Timeout, Trigger::ServerError]
    );
    assert_eq!(chat.shadow.as_ref().unwrap().name, "next");
    assert_eq!(code.canary.as_ref().unwrap().percent, 5);
    let next = p.target("next").unwrap();
    assert_eq!(next.tier, crate::decide::catalogue::Tier::Frontier);
    assert!(next.capabilities.is_empty() && next.latency.is_none());
    assert_eq!(p.rules.len(), 2);
    assert_eq!(p.rules[1].then.force_bucket, Some(BucketId::new("chat")));
    assert_eq!(p.health.cooldown.as_millis(), 30000);
    assert_eq!(
        p.health.when_all_open,
        crate::decide::breaker::WhenAllOpen::Reject
    );
}

/// Replaces `from` (which must occur exactly once) and returns the error message.
fn mutated(from: &str, to: &str) -> String {
    assert_eq!(SAMPLE.matches(from).count(), 1, "{from:?} must occur once");
    err_of(&SAMPLE.replacen(from, to, 1))
}

fn assert_names(message: &str, parts: &[&str]) {
    for part in parts {
        assert!(message.contains(part), "{part:?} missing from: {message}");
    }
}

const SMALL_TIER: &str = "tier = \"small\"";
const RULE_TIER: &str = "tier = [\"free\"], ";

#[test]
fn no_health_section_uses_documented_defaults() {
    let start = SAMPLE.find("[health]").unwrap();
    let end = SAMPLE.find("[targets.small]").unwrap();
    let text = format!("{}{}", &SAMPLE[..start], &SAMPLE[end..]);
    let p = Policy::parse(&text, "p.toml").unwrap();
    assert_eq!(p.health, HealthConfig::default());
}

#[test]
fn target_tier_is_required_and_closed() {
    assert_names(&mutated(SMALL_TIER, ""), &["tier"]);
    assert_names(&mutated(SMALL_TIER, "tier = \"huge\""), &["huge", "line"]);
}

#[test]
fn target_capability_names_are_identifiers_and_unique() {
    let caps = "capabilities = [\"json_mode\", \"vision\"]";
    assert_names(
        &mutated(caps, "capabilities = [\"Json Mode\"]"),
        &["targets.small.capabilities[0]", "Json Mode"],
    );
    assert_names(
        &mutated(caps, "capabilities = [\"vision\", \"vision\"]"),
        &["targets.small.capabilities[1]", "twice"],
    );
}

#[test]
fn context_window_is_required_and_positive() {
    assert_names(&mutated("context_window = 200000", ""), &["context_window"]);
    assert_names(
        &mutated("context_window = 200000", "context_window = 0"),
        &["targets.big.context_window"],
    );
}

#[test]
fn prices_are_required_and_not_negative() {
    assert_names(
        &mutated("price_in_per_mtok = 3.0", ""),
        &["price_in_per_mtok"],
    );
    assert_names(
        &mutated("price_out_per_mtok = 15.0", "price_out_per_mtok = -1.0"),
        &["targets.big.price_out_per_mtok", "-1"],
    );
    assert_names(
        &mutated("price_in_per_mtok = 3.0", "price_in_per_mtok = nan"),
        &["targets.big.price_in_per_mtok"],
    );
}

#[test]
fn latency_is_one_field_of_one_kind() {
    assert_names(
        &mutated(
            "latency_rank = 2",
            "latency_rank = 2\ntypical_latency_ms = 900",
        ),
        &["targets.big.latency_rank", "not both"],
    );
    assert_names(
        &mutated("latency_rank = 2", "latency_rank = 0"),
        &["targets.big.latency_rank"],
    );
    assert_names(
        &mutated("latency_rank = 2", "typical_latency_ms = 900"),
        &["targets.small", "targets.big", "one kind"],
    );
}

#[test]
fn health_thresholds_are_checked() {
    for (from, to, path) in [
        ("\nwindow = 20", "\nwindow = 0", "health.window"),
        (
            "min_requests = 5",
            "min_requests = 21",
            "health.min_requests",
        ),
        (
            "error_rate_to_open = 0.5",
            "error_rate_to_open = 0.0",
            "health.error_rate_to_open",
        ),
        (
            "consecutive_failures_to_open = 3",
            "consecutive_failures_to_open = 0",
            "health.consecutive_failures_to_open",
        ),
        (
            "cooldown_ms = 30000",
            "cooldown_ms = 0",
            "health.cooldown_ms",
        ),
    ] {
        assert_names(&mutated(from, to), &[path]);
    }
    assert_names(
        &mutated("when_all_open = \"reject\"", "when_all_open = \"random\""),
        &["random"],
    );
}

#[test]
fn tenant_tiers_are_unique() {
    assert_names(
        &mutated(
            "tenant_tiers = [\"free\", \"pro\"]",
            "tenant_tiers = [\"free\", \"free\"]",
        ),
        &["tenant_tiers[1]"],
    );
}

#[test]
fn canary_names_a_known_target_other_than_the_primary() {
    let canary = "canary = { target = \"next\", percent = 5 }";
    assert_names(
        &mutated(canary, "canary = { target = \"nxt\", percent = 5 }"),
        &["buckets.code.canary.target", "nxt"],
    );
    assert_names(
        &mutated(canary, "canary = { target = \"big\", percent = 5 }"),
        &["buckets.code.canary.target", "primary"],
    );
    assert_names(
        &mutated(canary, "canary = { target = \"next\", percent = 101 }"),
        &["buckets.code.canary.percent"],
    );
}

#[test]
fn shadow_names_another_known_target() {
    assert_names(
        &mutated("shadow = \"next\"", "shadow = \"nope\""),
        &["buckets.chat.shadow", "nope"],
    );
    assert_names(
        &mutated("shadow = \"next\"", "shadow = \"small\""),
        &["buckets.chat.shadow", "already serves"],
    );
}

#[test]
fn unknown_rule_field_is_named() {
    assert_names(
        &mutated("cap_tier = \"mid\"", "cap_teir = \"mid\""),
        &["cap_teir"],
    );
}

#[test]
fn unknown_field_is_named_with_its_line() {
    let e = err_of(&SAMPLE.replace("min_similarity = 0.3", "min_similarty = 0.3"));
    assert!(
        e.contains("p.toml") && e.contains("min_similarty") && e.contains("line"),
        "{e}"
    );
}

#[test]
fn unknown_target_cites_path() {
    let e = err_of(&SAMPLE.replace(
        r#"targets = ["big", "small"]"#,
        r#"targets = ["big", "smal"]"#,
    ));
    assert!(
        e.contains("buckets.code.targets[1]") && e.contains("smal"),
        "{e}"
    );
}

#[test]
fn too_many_targets() {
    let e = err_of(&SAMPLE.replace(
        r#"targets = ["big", "small"]"#,
        r#"targets = ["big", "small", "big", "small"]"#,
    ));
    assert!(
        e.contains("buckets.code.targets") && e.contains("1 to 3"),
        "{e}"
    );
}

#[test]
fn repeated_target() {
    let e = err_of(&SAMPLE.replace(
        r#"targets = ["big", "small"]"#,
        r#"targets = ["big", "big"]"#,
    ));
    assert!(e.contains("listed twice"), "{e}");
}

#[test]
fn default_bucket_must_exist() {
    let e = err_of(&SAMPLE.replace(r#"default_bucket = "chat""#, r#"default_bucket = "nope""#));
    assert!(e.contains("default_bucket") && e.contains("nope"), "{e}");
}

#[test]
fn alias_model_needs_opt_in() {
    let aliased = SAMPLE.replace("gpt-4.1-mini-2025-04-14", "gpt-4.1-mini");
    let e = err_of(&aliased);
    assert!(
        e.contains("targets.small.model") && e.contains("allow_alias"),
        "{e}"
    );
    let allowed = aliased.replace(
        "model = \"gpt-4.1-mini\"",
        "model = \"gpt-4.1-mini\"\nallow_alias = true",
    );
    assert!(Policy::parse(&allowed, "p.toml").is_ok());
}

#[test]
fn unknown_trigger_is_named() {
    let e = err_of(&SAMPLE.replace(r#"on = ["rate_limited"]"#, r#"on = ["ratelimited"]"#));
    assert!(e.contains("ratelimited"), "{e}");
}

#[test]
fn thresholds_and_limits_are_checked() {
    assert!(
        err_of(&SAMPLE.replace("min_confidence = 0.4", "min_confidence = 1.4"))
            .contains("matching.min_confidence")
    );
    assert!(err_of(&SAMPLE.replace("k = 5", "k = 0")).contains("matching.k"));
    assert!(
        err_of(&SAMPLE.replace("max_attempts = 2", "max_attempts = 9"))
            .contains("escalation.max_attempts")
    );
    assert!(
        err_of(&SAMPLE.replace("timeout_ms = 5000", "timeout_ms = 0"))
            .contains("escalation.timeout_ms")
    );
    assert!(
        err_of(&SAMPLE.replace("schema_version = 1", "schema_version = 2"))
            .contains("schema_version")
    );
}

// Rules are validated on their own: names, conditions, actions.
mod rules;
