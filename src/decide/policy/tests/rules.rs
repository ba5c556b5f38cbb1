//! Validation of the policy's rules: names, conditions, actions.

use super::*;

#[test]
fn rule_names_are_present_and_unique() {
    assert_names(
        &mutated("name = \"fast\"", "name = \" \""),
        &["rules[1].name"],
    );
    assert_names(
        &mutated("name = \"fast\"", "name = \"free-cap\""),
        &["rules[1].name", "unique"],
    );
}

#[test]
fn rule_needs_a_condition() {
    assert_names(
        &mutated(
            "when = { priority = \"high\", metadata = { team = \"search\" } }",
            "when = {}",
        ),
        &["rules[1].when", "no condition"],
    );
}

#[test]
fn rule_token_bounds_must_leave_room() {
    assert_names(
        &mutated(
            "prompt_tokens_above = 10",
            "prompt_tokens_above = 10, prompt_tokens_below = 11",
        ),
        &["rules[0].when", "never fire"],
    );
}

#[test]
fn rule_tiers_are_declared_tenant_tiers() {
    assert_names(&mutated(RULE_TIER, "tier = [], "), &["rules[0].when.tier"]);
    assert_names(
        &mutated(RULE_TIER, "tier = [\"free\", \"gold\"], "),
        &["rules[0].when.tier[1]", "gold"],
    );
}

#[test]
fn rule_priority_is_closed() {
    assert_names(
        &mutated("priority = \"high\"", "priority = \"urgent\""),
        &["urgent"],
    );
}

#[test]
fn rule_capabilities_must_be_declared_by_a_target() {
    assert_names(
        &mutated(RULE_TIER, "capabilities = [\"telepathy\"], "),
        &["rules[0].when.capabilities[0]", "telepathy"],
    );
    assert_names(
        &mutated(
            "require_capabilities = [\"vision\"]",
            "require_capabilities = [\"visoin\"]",
        ),
        &["rules[0].then.require_capabilities[0]", "visoin"],
    );
    assert_names(
        &mutated(
            "require_capabilities = [\"vision\"]",
            "require_capabilities = []",
        ),
        &["rules[0].then.require_capabilities"],
    );
}

#[test]
fn rule_metadata_keys_are_not_empty() {
    assert_names(
        &mutated(
            "metadata = { team = \"search\" }",
            "metadata = { \"\" = \"search\" }",
        ),
        &["rules[1].when.metadata"],
    );
}

#[test]
fn rule_needs_an_action() {
    assert_names(
        &mutated(
            "then = { prefer = \"fastest\", force_bucket = \"chat\" }",
            "then = {}",
        ),
        &["rules[1].then", "no action"],
    );
}

#[test]
fn forced_bucket_must_exist() {
    assert_names(
        &mutated("force_bucket = \"chat\"", "force_bucket = \"long_context\""),
        &["rules[1].then.force_bucket", "long_context"],
    );
}

#[test]
fn cap_tier_is_closed() {
    assert_names(
        &mutated("cap_tier = \"mid\"", "cap_tier = \"medium\""),
        &["medium"],
    );
}

#[test]
fn prefer_fastest_needs_latencies() {
    let text = SAMPLE
        .replace("latency_rank = 1\n", "")
        .replace("latency_rank = 2\n", "");
    assert_names(&err_of(&text), &["rules[1].then.prefer", "latency"]);
    assert_names(
        &mutated("prefer = \"fastest\"", "prefer = \"cheapest\""),
        &["cheapest"],
    );
}
