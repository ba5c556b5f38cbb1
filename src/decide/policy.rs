//! The routing policy file: raw types that mirror the TOML (unknown fields rejected), then
//! validation into [`Policy`], the only type the rest of the code sees. Every validation error
//! names the file and the path inside it (`buckets.code.targets[1]`). Owns the top level and
//! the buckets; the catalogue, rules and health thresholds validate their own sections.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::canary::CanarySpec;
use super::catalogue::{validate_target, Latency, RawTarget, Target};
use super::health::{validate_health, HealthConfig, RawHealth};
use super::rules::{validate_rules, Names, RawRule, Rule};
use crate::types::{BucketId, ScorerKind};

/// Primary plus fallbacks: more than three targets per request makes tail latency a sum of
/// timeouts that no caller budgets for.
pub const MAX_TARGETS: usize = 3;
pub const POLICY_SCHEMA_VERSION: u32 = 1;

#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    /// User error: the file could not be read.
    #[error("policy {file}: {source}")]
    Io {
        file: String,
        #[source]
        source: std::io::Error,
    },
    /// User error: TOML syntax, a wrong type or an unknown field (the message has line and column).
    #[error("policy {file}: {message}")]
    Parse { file: String, message: String },
    /// User error: well-formed TOML that breaks a rule of the policy.
    #[error("policy {file}: {path}: {message}")]
    Invalid {
        file: String,
        path: String,
        message: String,
    },
}

// ---------- raw: exactly the file's shape ----------

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPolicy {
    schema_version: u32,
    policy_version: String,
    default_bucket: String,
    matching: RawMatching,
    escalation: RawEscalation,
    /// The tenant tiers callers may state; when given, rules may only name these.
    #[serde(default)]
    tenant_tiers: Option<Vec<String>>,
    #[serde(default)]
    health: Option<RawHealth>,
    targets: BTreeMap<String, RawTarget>,
    buckets: BTreeMap<String, RawBucket>,
    #[serde(default)]
    rules: Vec<RawRule>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMatching {
    #[serde(default)]
    scorer: Option<ScorerKind>,
    k: usize,
    min_confidence: RawThreshold,
    min_similarity: f32,
    #[serde(default)]
    uncertain_margin: Option<f32>,
}

/// A confidence threshold as written: a number, or `"fitted"`.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
enum RawThreshold {
    Value(f32),
    Word(String),
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEscalation {
    on: Vec<Trigger>,
    timeout_ms: u64,
    max_attempts: usize,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawBucket {
    #[serde(default)]
    description: Option<String>,
    targets: Vec<String>,
    #[serde(default)]
    min_confidence: Option<RawThreshold>,
    #[serde(default)]
    escalation: Option<RawEscalation>,
    #[serde(default)]
    canary: Option<RawCanary>,
    /// A target that gets a mirrored copy of the traffic, for offline evaluation.
    #[serde(default)]
    shadow: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCanary {
    target: String,
    percent: u8,
}

// ---------- validated ----------

/// What makes the caller move on to the next target.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Trigger {
    Timeout,
    RateLimited,
    ServerError,
    VerifierRejected,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Escalation {
    pub on: Vec<Trigger>,
    pub timeout_ms: u64,
    pub max_attempts: usize,
}

#[derive(Debug, Clone, PartialEq)]
pub struct BucketPolicy {
    pub description: Option<String>,
    /// Primary first, then fallbacks; 1..=MAX_TARGETS, no repeats.
    pub targets: Vec<Arc<Target>>,
    pub min_confidence: Threshold,
    pub escalation: Escalation,
    /// Never the bucket's primary.
    pub canary: Option<CanarySpec>,
    /// Never one of the bucket's targets or its canary.
    pub shadow: Option<Arc<Target>>,
}

/// The confidence below which a bucket is not trusted (the default bucket serves).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Threshold {
    /// A calibrated probability written in the policy.
    Fixed(f32),
    /// The threshold `router fit` fitted for the serving scorer (stored in the index
    /// bundle); 0 where none was fitted.
    Fitted,
}

impl Threshold {
    /// The number to compare a confidence with, given the index's fitted threshold.
    pub fn resolve(self, fitted: Option<f32>) -> f32 {
        match self {
            Self::Fixed(v) => v,
            Self::Fitted => fitted.unwrap_or(0.0),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Matching {
    /// How neighbours and the head become bucket probabilities.
    pub scorer: ScorerKind,
    /// Neighbours that vote.
    pub k: usize,
    /// Global confidence floor; a bucket may raise or lower it for itself.
    pub min_confidence: Threshold,
    /// Below this cosine for the nearest archetype, the prompt is like nothing we know.
    pub min_similarity: f32,
    /// Decisions whose margin (top-1 minus top-2 probability) is below this, or that
    /// abstained, are kept for labeling (`GET /admin/uncertain`).
    pub uncertain_margin: f32,
}

/// Margin below which a decision is kept for labeling unless the policy says otherwise.
pub const DEFAULT_UNCERTAIN_MARGIN: f32 = 0.2;

/// A validated routing policy.
#[derive(Debug, Clone, PartialEq)]
pub struct Policy {
    pub version: String,
    pub default_bucket: BucketId,
    pub matching: Matching,
    pub buckets: BTreeMap<BucketId, BucketPolicy>,
    /// The catalogue: every declared target by name.
    pub targets: BTreeMap<String, Arc<Target>>,
    /// Side rules in the order they are evaluated.
    pub rules: Vec<Rule>,
    pub health: HealthConfig,
    pub tenant_tiers: Option<BTreeSet<String>>,
}

impl Policy {
    pub fn load(path: &Path) -> Result<Self, PolicyError> {
        let file = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| PolicyError::Io {
            file: file.clone(),
            source,
        })?;
        Self::parse(&text, &file)
    }

    /// Parses and validates policy text; `file` only labels errors.
    pub fn parse(text: &str, file: &str) -> Result<Self, PolicyError> {
        let raw: RawPolicy = toml::from_str(text).map_err(|e| PolicyError::Parse {
            file: file.to_owned(),
            message: e.to_string().trim_end().to_owned(),
        })?;
        validate(raw, file)
    }

    pub fn bucket(&self, id: &BucketId) -> Option<&BucketPolicy> {
        self.buckets.get(id)
    }

    pub fn target(&self, name: &str) -> Option<&Arc<Target>> {
        self.targets.get(name)
    }
}

fn validate(raw: RawPolicy, file: &str) -> Result<Policy, PolicyError> {
    let invalid = |path: &str, message: String| PolicyError::Invalid {
        file: file.to_owned(),
        path: path.to_owned(),
        message,
    };
    if raw.schema_version != POLICY_SCHEMA_VERSION {
        return Err(invalid(
            "schema_version",
            format!(
                "{} is not supported (expected {POLICY_SCHEMA_VERSION})",
                raw.schema_version
            ),
        ));
    }
    if raw.policy_version.trim().is_empty() {
        return Err(invalid("policy_version", "must not be empty".into()));
    }
    let m = &raw.matching;
    if !(1..=100).contains(&m.k) {
        return Err(invalid("matching.k", format!("{} is outside 1..=100", m.k)));
    }
    let min_confidence =
        validate_threshold(&m.min_confidence).map_err(|e| invalid("matching.min_confidence", e))?;
    let uncertain_margin = m.uncertain_margin.unwrap_or(DEFAULT_UNCERTAIN_MARGIN);
    check_unit(uncertain_margin).map_err(|e| invalid("matching.uncertain_margin", e))?;
    if !(-1.0..=1.0).contains(&m.min_similarity) {
        return Err(invalid(
            "matching.min_similarity",
            format!("{} is outside [-1, 1]", m.min_similarity),
        ));
    }
    let default_escalation = validate_escalation(&raw.escalation)
        .map_err(|(field, e)| invalid(&format!("escalation.{field}"), e))?;

    let targets = validate_catalogue(&raw.targets).map_err(|(p, e)| invalid(&p, e))?;
    let tenant_tiers = match &raw.tenant_tiers {
        None => None,
        Some(list) => {
            let mut set = BTreeSet::new();
            for (i, t) in list.iter().enumerate() {
                if t.trim().is_empty() || !set.insert(t.clone()) {
                    return Err(invalid(
                        &format!("tenant_tiers[{i}]"),
                        format!("`{t}` is empty or listed twice"),
                    ));
                }
            }
            Some(set)
        }
    };
    let health = match &raw.health {
        Some(h) => {
            validate_health(h).map_err(|(field, e)| invalid(&format!("health.{field}"), e))?
        }
        None => HealthConfig::default(),
    };

    let mut buckets = BTreeMap::new();
    for (name, b) in &raw.buckets {
        let path = format!("buckets.{name}");
        if b.targets.is_empty() || b.targets.len() > MAX_TARGETS {
            return Err(invalid(
                &format!("{path}.targets"),
                format!(
                    "has {} targets; a bucket needs 1 to {MAX_TARGETS} (primary + fallbacks)",
                    b.targets.len()
                ),
            ));
        }
        let mut seen = BTreeSet::new();
        let mut resolved = Vec::with_capacity(b.targets.len());
        for (i, t) in b.targets.iter().enumerate() {
            let tpath = format!("{path}.targets[{i}]");
            let Some(target) = targets.get(t) else {
                let known: Vec<&str> = targets.keys().map(String::as_str).collect();
                return Err(invalid(
                    &tpath,
                    format!("unknown target `{t}` (known: {})", known.join(", ")),
                ));
            };
            if !seen.insert(t) {
                return Err(invalid(&tpath, format!("target `{t}` is listed twice")));
            }
            resolved.push(Arc::clone(target));
        }
        let lookup = |field: &str, name: &str| {
            targets.get(name).cloned().ok_or_else(|| {
                let known: Vec<&str> = targets.keys().map(String::as_str).collect();
                invalid(
                    &format!("{path}.{field}"),
                    format!("unknown target `{name}` (known: {})", known.join(", ")),
                )
            })
        };
        let canary = match &b.canary {
            None => None,
            Some(c) => {
                let target = lookup("canary.target", &c.target)?;
                if b.targets[0] == c.target {
                    return Err(invalid(
                        &format!("{path}.canary.target"),
                        format!("`{}` is already this bucket's primary", c.target),
                    ));
                }
                if c.percent > 100 {
                    return Err(invalid(
                        &format!("{path}.canary.percent"),
                        format!("{} is outside 0..=100", c.percent),
                    ));
                }
                Some(CanarySpec {
                    target,
                    percent: c.percent,
                })
            }
        };
        let shadow = match &b.shadow {
            None => None,
            Some(name) => {
                let target = lookup("shadow", name)?;
                let is_canary = canary.as_ref().is_some_and(|c| c.target.name == *name);
                if seen.contains(name) || is_canary {
                    return Err(invalid(
                        &format!("{path}.shadow"),
                        format!(
                            "`{name}` already serves this bucket; a shadow must be another target"
                        ),
                    ));
                }
                Some(target)
            }
        };
        let min_confidence = match &b.min_confidence {
            Some(c) => {
                validate_threshold(c).map_err(|e| invalid(&format!("{path}.min_confidence"), e))?
            }
            None => min_confidence,
        };
        let escalation = match &b.escalation {
            Some(e) => validate_escalation(e)
                .map_err(|(field, e)| invalid(&format!("{path}.escalation.{field}"), e))?,
            None => default_escalation.clone(),
        };
        buckets.insert(
            BucketId::new(name),
            BucketPolicy {
                description: b.description.clone(),
                targets: resolved,
                min_confidence,
                escalation,
                canary,
                shadow,
            },
        );
    }
    let default_bucket = BucketId::new(&raw.default_bucket);
    if !buckets.contains_key(&default_bucket) {
        let known: Vec<&str> = buckets.keys().map(BucketId::as_str).collect();
        return Err(invalid(
            "default_bucket",
            format!(
                "`{}` is not a bucket of this policy (buckets: {})",
                raw.default_bucket,
                known.join(", ")
            ),
        ));
    }
    let names = Names {
        buckets: buckets.keys().map(BucketId::as_str).collect(),
        capabilities: targets
            .values()
            .flat_map(|t| t.capabilities.iter().map(String::as_str))
            .collect(),
        tenant_tiers: tenant_tiers.as_ref(),
        has_latency: targets.values().any(|t| t.latency.is_some()),
    };
    let rules = validate_rules(&raw.rules, &names).map_err(|(p, e)| invalid(&p, e))?;
    Ok(Policy {
        version: raw.policy_version,
        default_bucket,
        matching: Matching {
            scorer: m.scorer.unwrap_or(ScorerKind::Combined),
            k: m.k,
            min_confidence,
            min_similarity: m.min_similarity,
            uncertain_margin,
        },
        buckets,
        targets,
        rules,
        health,
        tenant_tiers,
    })
}

/// Validates every target, and that latencies are of one kind so "fastest" is meaningful.
fn validate_catalogue(
    raw: &BTreeMap<String, RawTarget>,
) -> Result<BTreeMap<String, Arc<Target>>, (String, String)> {
    let mut targets = BTreeMap::new();
    let mut first_latency: Option<(&str, Latency)> = None;
    for (name, t) in raw {
        let target =
            validate_target(name, t).map_err(|(f, e)| (format!("targets.{name}.{f}"), e))?;
        if let Some(latency) = target.latency {
            match first_latency {
                None => first_latency = Some((name, latency)),
                Some((other, first)) => {
                    if !first.same_kind(latency) {
                        return Err((
                            format!("targets.{name}"),
                            format!("mixes latency_rank and typical_latency_ms with targets.{other}; use one kind for every target"),
                        ));
                    }
                }
            }
        }
        targets.insert(name.clone(), target);
    }
    Ok(targets)
}

fn validate_threshold(raw: &RawThreshold) -> Result<Threshold, String> {
    match raw {
        RawThreshold::Value(v) => check_unit(*v).map(|()| Threshold::Fixed(*v)),
        RawThreshold::Word(w) if w == "fitted" => Ok(Threshold::Fitted),
        RawThreshold::Word(w) => Err(format!(
            "`{w}` is neither a number in [0, 1] nor \"fitted\""
        )),
    }
}

fn check_unit(value: f32) -> Result<(), String> {
    if (0.0..=1.0).contains(&value) {
        Ok(())
    } else {
        Err(format!("{value} is outside [0, 1]"))
    }
}

fn validate_escalation(raw: &RawEscalation) -> Result<Escalation, (&'static str, String)> {
    if raw.timeout_ms == 0 {
        return Err(("timeout_ms", "must be greater than 0".into()));
    }
    if !(1..=MAX_TARGETS).contains(&raw.max_attempts) {
        return Err((
            "max_attempts",
            format!("{} is outside 1..={MAX_TARGETS}", raw.max_attempts),
        ));
    }
    let mut on = raw.on.clone();
    on.sort();
    on.dedup();
    Ok(Escalation {
        on,
        timeout_ms: raw.timeout_ms,
        max_attempts: raw.max_attempts,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

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
        assert_eq!(next.tier, super::super::catalogue::Tier::Frontier);
        assert!(next.capabilities.is_empty() && next.latency.is_none());
        assert_eq!(p.rules.len(), 2);
        assert_eq!(p.rules[1].then.force_bucket, Some(BucketId::new("chat")));
        assert_eq!(p.health.cooldown.as_millis(), 30000);
        assert_eq!(
            p.health.when_all_open,
            super::super::health::WhenAllOpen::Reject
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
}
