//! Raw policy → [`Policy`]: every check the file must pass, one function per section, in the
//! order the file reads. Each returns a [`FieldError`] whose path is relative to its section;
//! the caller prefixes the section (`buckets.code` + `targets[1]`), and [`validate`] adds the
//! file. The catalogue and the rules check their own sections (`catalogue`, `rules`).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use super::raw::{RawEscalation, RawHealth, RawMatching, RawPolicy, RawThreshold};
use super::validate_bucket::{validate_bucket, BucketDefaults};
use super::validated::{
    BucketPolicy, Escalation, Matching, Policy, Threshold, DEFAULT_UNCERTAIN_MARGIN, MAX_TARGETS,
};
use crate::decide::breaker::HealthConfig;
use crate::decide::catalogue::{validate_target, Latency, RawTarget, Target};
use crate::decide::drill::validate_drill;
use crate::decide::error::{FieldError, PolicyError};
use crate::decide::rules::{validate_rules, Names};
use crate::types::{BucketId, ScorerKind};

/// The only schema this build reads; the file says which it was written for.
pub const POLICY_SCHEMA_VERSION: u32 = 1;

/// Most neighbours a request may search (`matching.k`).
const MAX_K: usize = 100;

/// Most outcomes a window may keep; more only costs memory on every published view.
const MAX_WINDOW: usize = 1000;

/// Validates a parsed policy file; `file` only labels errors.
pub(super) fn validate(raw: RawPolicy, file: &str) -> Result<Policy, PolicyError> {
    validate_policy(raw).map_err(|e| e.in_file(file))
}

fn validate_policy(raw: RawPolicy) -> Result<Policy, FieldError> {
    if raw.schema_version != POLICY_SCHEMA_VERSION {
        return Err(FieldError::new(
            "schema_version",
            format!(
                "{} is not supported (expected {POLICY_SCHEMA_VERSION})",
                raw.schema_version
            ),
        ));
    }
    if raw.policy_version.trim().is_empty() {
        return Err(FieldError::new("policy_version", "must not be empty"));
    }
    let matching = validate_matching(&raw.matching).map_err(|e| e.within("matching"))?;
    let escalation = validate_escalation(&raw.escalation).map_err(|e| e.within("escalation"))?;
    let targets = validate_catalogue(&raw.targets)?;
    let tenant_tiers = raw
        .tenant_tiers
        .as_deref()
        .map(validate_tenant_tiers)
        .transpose()?;
    let health = match &raw.health {
        Some(h) => validate_health(h).map_err(|e| e.within("health"))?,
        None => HealthConfig::default(),
    };
    let drill = raw
        .drill
        .as_ref()
        .map(validate_drill)
        .transpose()
        .map_err(|e| e.within("drill"))?;
    let defaults = BucketDefaults {
        min_confidence: matching.min_confidence,
        escalation: &escalation,
        drill,
    };
    let mut buckets = BTreeMap::new();
    for (name, b) in &raw.buckets {
        let bucket = validate_bucket(b, &targets, &defaults)
            .map_err(|e| e.within(&format!("buckets.{name}")))?;
        buckets.insert(BucketId::new(name), bucket);
    }
    let default_bucket = validate_default_bucket(&raw.default_bucket, &buckets)?;
    let names = Names {
        buckets: buckets.keys().map(BucketId::as_str).collect(),
        capabilities: targets
            .values()
            .flat_map(|t| t.capabilities.iter().map(String::as_str))
            .collect(),
        tenant_tiers: tenant_tiers.as_ref(),
        has_latency: targets.values().any(|t| t.latency.is_some()),
    };
    let rules = validate_rules(&raw.rules, &names)?;
    if let Some(problem) = raw.conversation.problems().into_iter().next() {
        let (path, message) = problem.split_once(' ').unwrap_or((&problem, ""));
        return Err(FieldError::new(path, message));
    }
    Ok(Policy {
        version: raw.policy_version,
        default_bucket,
        matching,
        buckets,
        targets,
        rules,
        health,
        tenant_tiers,
        conversation: raw.conversation,
    })
}

/// `[matching]`.
fn validate_matching(m: &RawMatching) -> Result<Matching, FieldError> {
    if !(1..=MAX_K).contains(&m.k) {
        return Err(FieldError::new(
            "k",
            format!("{} is outside 1..={MAX_K}", m.k),
        ));
    }
    let min_confidence = validate_threshold(&m.min_confidence, "min_confidence")?;
    let uncertain_margin = m.uncertain_margin.unwrap_or(DEFAULT_UNCERTAIN_MARGIN);
    check_unit(uncertain_margin).map_err(|e| FieldError::new("uncertain_margin", e))?;
    if !(-1.0..=1.0).contains(&m.min_similarity) {
        return Err(FieldError::new(
            "min_similarity",
            format!("{} is outside [-1, 1]", m.min_similarity),
        ));
    }
    Ok(Matching {
        scorer: m.scorer.unwrap_or(ScorerKind::Combined),
        k: m.k,
        min_confidence,
        min_similarity: m.min_similarity,
        uncertain_margin,
        when_uncertain: m.when_uncertain.unwrap_or_default(),
    })
}

/// `[targets.*]`: every target, and that latencies are of one kind so "fastest" is
/// meaningful.
fn validate_catalogue(
    raw: &BTreeMap<String, RawTarget>,
) -> Result<BTreeMap<String, Arc<Target>>, FieldError> {
    let mut targets = BTreeMap::new();
    let mut first_latency: Option<(&str, Latency)> = None;
    for (name, t) in raw {
        let target = validate_target(name, t).map_err(|e| e.within(&format!("targets.{name}")))?;
        if let Some(latency) = target.latency {
            match first_latency {
                None => first_latency = Some((name, latency)),
                Some((other, first)) => {
                    if !first.same_kind(latency) {
                        return Err(FieldError::new(
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

/// `tenant_tiers`: non-empty names, each listed once.
fn validate_tenant_tiers(list: &[String]) -> Result<BTreeSet<String>, FieldError> {
    let mut set = BTreeSet::new();
    for (i, t) in list.iter().enumerate() {
        if t.trim().is_empty() || !set.insert(t.clone()) {
            return Err(FieldError::new(
                format!("tenant_tiers[{i}]"),
                format!("`{t}` is empty or listed twice"),
            ));
        }
    }
    Ok(set)
}

/// `[health]`.
fn validate_health(raw: &RawHealth) -> Result<HealthConfig, FieldError> {
    if !(1..=MAX_WINDOW).contains(&raw.window) {
        return Err(FieldError::new(
            "window",
            format!("{} is outside 1..={MAX_WINDOW}", raw.window),
        ));
    }
    if !(1..=raw.window).contains(&raw.min_requests) {
        return Err(FieldError::new(
            "min_requests",
            format!(
                "{} is outside 1..=window ({})",
                raw.min_requests, raw.window
            ),
        ));
    }
    if !(raw.error_rate_to_open > 0.0 && raw.error_rate_to_open <= 1.0) {
        return Err(FieldError::new(
            "error_rate_to_open",
            format!("{} is outside (0, 1]", raw.error_rate_to_open),
        ));
    }
    if raw.consecutive_failures_to_open == 0 {
        return Err(FieldError::new(
            "consecutive_failures_to_open",
            "must be at least 1",
        ));
    }
    if raw.cooldown_ms == 0 {
        return Err(FieldError::new("cooldown_ms", "must be greater than 0"));
    }
    Ok(HealthConfig {
        window: raw.window,
        min_requests: raw.min_requests,
        error_rate_to_open: raw.error_rate_to_open,
        consecutive_failures_to_open: raw.consecutive_failures_to_open,
        cooldown: Duration::from_millis(raw.cooldown_ms),
        when_all_open: raw.when_all_open,
    })
}

fn validate_default_bucket(
    name: &str,
    buckets: &BTreeMap<BucketId, BucketPolicy>,
) -> Result<BucketId, FieldError> {
    let default_bucket = BucketId::new(name);
    if buckets.contains_key(&default_bucket) {
        return Ok(default_bucket);
    }
    let known: Vec<&str> = buckets.keys().map(BucketId::as_str).collect();
    Err(FieldError::new(
        "default_bucket",
        format!(
            "`{name}` is not a bucket of this policy (buckets: {})",
            known.join(", ")
        ),
    ))
}

/// A `min_confidence` at `path`: a number in [0, 1], or `"fitted"`.
pub(super) fn validate_threshold(raw: &RawThreshold, path: &str) -> Result<Threshold, FieldError> {
    match raw {
        RawThreshold::Value(v) => check_unit(*v)
            .map(|()| Threshold::Fixed(*v))
            .map_err(|e| FieldError::new(path, e)),
        RawThreshold::Word(w) if w == "fitted" => Ok(Threshold::Fitted),
        RawThreshold::Word(w) => Err(FieldError::new(
            path,
            format!("`{w}` is neither a number in [0, 1] nor \"fitted\""),
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

/// An `escalation` table (the top level's, or a bucket's own).
pub(super) fn validate_escalation(raw: &RawEscalation) -> Result<Escalation, FieldError> {
    if raw.timeout_ms == 0 {
        return Err(FieldError::new("timeout_ms", "must be greater than 0"));
    }
    if !(1..=MAX_TARGETS).contains(&raw.max_attempts) {
        return Err(FieldError::new(
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
