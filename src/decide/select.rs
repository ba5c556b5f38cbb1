//! From the semantic bucket to the request's targets: side rules (force a bucket, cap the tier,
//! require capabilities, prefer the fastest), the request's own needs (capabilities, context
//! window), the canary split, then provider health. Each step that changes anything says so
//! in the reasons; a request nothing can serve is an error, never a silent pick.

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::breaker::{Availability, HealthView, WhenAllOpen};
use super::canary::{in_share, CanaryApplied, CanarySpec};
use super::catalogue::Target;
use super::drill::{DrillApplied, DrillSpec};
use super::error::DecideError;
use super::policy::{Policy, MAX_TARGETS};
use super::request::RequestContext;
use super::rules::{Prefer, Rule};
use crate::types::BucketId;

/// The targets chosen for one request, primary first.
pub(super) struct Selected {
    pub bucket: BucketId,
    pub targets: Vec<Arc<Target>>,
    pub canary: Option<CanaryApplied>,
    pub drill: Option<DrillApplied>,
    pub shadow: Option<Arc<Target>>,
    pub probe: Option<String>,
}

fn names(targets: &[Arc<Target>]) -> String {
    targets
        .iter()
        .map(|t| t.name.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

fn join(set: &std::collections::BTreeSet<String>) -> String {
    set.iter()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .join(", ")
}

/// Why a target cannot serve this request regardless of health, or `None` when it can.
/// The same checks, in the same order, as [`drop_unfit`] and [`apply_rule`].
fn ineligible(target: &Target, request: &RequestContext, fired: &[&Rule]) -> Option<String> {
    if !request.capabilities.is_subset(&target.capabilities) {
        return Some(format!("lacks {}", join(&request.capabilities)));
    }
    if (target.context_window as u128) < request.prompt_tokens as u128 {
        return Some(format!("window {} is too small", target.context_window));
    }
    fired.iter().find_map(|r| {
        if r.then.cap_tier.is_some_and(|cap| target.tier > cap) {
            Some(format!(
                "tier {} is capped by rule {}",
                target.tier.as_str(),
                r.name
            ))
        } else if !r.then.require_capabilities.is_subset(&target.capabilities) {
            Some(format!("lacks what rule {} requires", r.name))
        } else {
            None
        }
    })
}

/// Keeps the targets for which `keep` holds; returns the dropped ones.
fn retain(targets: &mut Vec<Arc<Target>>, keep: impl Fn(&Target) -> bool) -> Vec<Arc<Target>> {
    let (kept, dropped): (Vec<_>, Vec<_>) = targets.drain(..).partition(|t| keep(t));
    *targets = kept;
    dropped
}

fn dropped_clause(dropped: &[Arc<Target>]) -> String {
    if dropped.is_empty() {
        "nothing dropped".into()
    } else {
        format!("dropped {}", names(dropped))
    }
}

/// The targets of `semantic` (or of the bucket a rule forces) that can serve `request` at
/// `now`, primary first. Every step that changes anything adds to `reasons`.
pub(super) fn select(
    policy: &Policy,
    semantic: BucketId,
    request: &RequestContext,
    health: &HealthView,
    now: Instant,
    reasons: &mut Vec<String>,
) -> Result<Selected, DecideError> {
    let fired: Vec<&Rule> = policy
        .rules
        .iter()
        .filter(|r| r.when.matches(request))
        .collect();
    let forced = fired.iter().find_map(|r| {
        r.then.force_bucket.as_ref().map(|b| Forced {
            bucket: b,
            by: &r.name,
        })
    });
    let bucket = forced.map_or_else(|| semantic.clone(), |f| f.bucket.clone());
    let bucket_policy = policy
        .bucket(&bucket)
        .ok_or_else(|| DecideError::UnknownBucket {
            bucket: bucket.clone(),
        })?;
    let mut targets: Vec<Arc<Target>> = bucket_policy.targets.clone();
    // Why targets were dropped, for the error when none is left.
    let mut why: Vec<String> = Vec::new();
    drop_unfit(&mut targets, request, reasons, &mut why);
    for rule in &fired {
        let said = apply_rule(rule, forced, &semantic, &mut targets, &mut why);
        reasons.push(format!("rule {}: {said}", rule.name));
    }
    if targets.is_empty() {
        return Err(DecideError::NoEligibleTarget {
            bucket,
            why: why.join("; "),
        });
    }
    let canary = bucket_policy
        .canary
        .as_ref()
        .and_then(|spec| apply_canary(spec, &bucket, request, &fired, &mut targets, reasons));
    let when_all_open = policy.health.when_all_open;
    let mut targets = by_health(targets, &bucket, when_all_open, health, now, reasons)?;
    let drill = bucket_policy
        .drill
        .as_ref()
        .and_then(|spec| apply_drill(spec, &bucket, request, &mut targets, reasons));
    let probe = (health.availability(&targets[0].name, now) == Availability::Probe).then(|| {
        reasons.push(format!(
            "health: {} is half-open; this request is its probe",
            targets[0].name
        ));
        targets[0].name.clone()
    });
    let shadow = bucket_policy.shadow.as_ref().and_then(|s| {
        if health.availability(&s.name, now).usable() {
            reasons.push(format!("shadow: mirror to {} for evaluation", s.name));
            Some(Arc::clone(s))
        } else {
            reasons.push(format!("shadow: {} is cooling down; not mirrored", s.name));
            None
        }
    });
    debug_assert!(targets.len() <= MAX_TARGETS);
    Ok(Selected {
        bucket,
        targets,
        canary,
        drill,
        shadow,
        probe,
    })
}

/// A drill swaps the primary and the first (healthy) fallback for the request's share, so the
/// callers' fallback path is exercised; the primary stays next in line.
fn apply_drill(
    spec: &DrillSpec,
    bucket: &BucketId,
    request: &RequestContext,
    targets: &mut [Arc<Target>],
    reasons: &mut Vec<String>,
) -> Option<DrillApplied> {
    let key = request.routing_key.as_deref()?;
    if !spec.fires(bucket.as_str(), key, request.utc_seconds) {
        return None;
    }
    if targets.len() < 2 {
        reasons.push(format!(
            "drill: in the {}% share of {bucket}, but no fallback is available; not applied",
            spec.percent
        ));
        return None;
    }
    targets.swap(0, 1);
    reasons.push(format!(
        "drill: {}% share of {bucket}; fallback {} is the target, then {}",
        spec.percent,
        targets[0].name,
        names(&targets[1..])
    ));
    Some(DrillApplied {
        target: targets[0].name.clone(),
        primary: targets[1].name.clone(),
        percent: spec.percent,
    })
}

/// The first fired rule that forces a bucket: it wins over the semantic match and over later
/// rules.
#[derive(Clone, Copy)]
struct Forced<'a> {
    bucket: &'a BucketId,
    by: &'a str,
}

/// Drops the targets that lack what the request needs: its capabilities, then a context
/// window that holds the prompt.
fn drop_unfit(
    targets: &mut Vec<Arc<Target>>,
    request: &RequestContext,
    reasons: &mut Vec<String>,
    why: &mut Vec<String>,
) {
    if !request.capabilities.is_empty() {
        let dropped = retain(targets, |t| request.capabilities.is_subset(&t.capabilities));
        if !dropped.is_empty() {
            let clause = format!(
                "request needs {}; {}",
                join(&request.capabilities),
                dropped_clause(&dropped)
            );
            reasons.push(format!("capabilities: {clause}"));
            why.push(clause);
        }
    }
    let tokens = request.prompt_tokens;
    let dropped = retain(targets, |t| t.context_window as u128 >= tokens as u128);
    if !dropped.is_empty() {
        let clause = format!(
            "prompt of {tokens} tokens exceeds the context window of {}",
            names(&dropped)
        );
        reasons.push(format!("context: {clause}"));
        why.push(clause);
    }
}

/// Applies one fired rule's actions in order (force, cap the tier, require capabilities,
/// prefer); returns what the rule did, for its reason.
fn apply_rule(
    rule: &Rule,
    forced: Option<Forced<'_>>,
    semantic: &BucketId,
    targets: &mut Vec<Arc<Target>>,
    why: &mut Vec<String>,
) -> String {
    let then = &rule.then;
    let mut parts: Vec<String> = Vec::with_capacity(2);
    if let Some(b) = &then.force_bucket {
        match forced {
            Some(f) if f.by == rule.name => {
                parts.push(format!("forced bucket {b} (semantic match was {semantic})"));
            }
            Some(f) => parts.push(format!(
                "bucket {b} not forced: rule {} already forced {}",
                f.by, f.bucket
            )),
            None => {}
        }
    }
    if let Some(cap) = then.cap_tier {
        let dropped = retain(targets, |t| t.tier <= cap);
        let clause = format!(
            "capped tier at {}, {}",
            cap.as_str(),
            dropped_clause(&dropped)
        );
        if !dropped.is_empty() {
            why.push(format!("rule {} {clause}", rule.name));
        }
        parts.push(clause);
    }
    if !then.require_capabilities.is_empty() {
        let dropped = retain(targets, |t| {
            then.require_capabilities.is_subset(&t.capabilities)
        });
        let clause = format!(
            "required {}, {}",
            join(&then.require_capabilities),
            dropped_clause(&dropped)
        );
        if !dropped.is_empty() {
            why.push(format!("rule {} {clause}", rule.name));
        }
        parts.push(clause);
    }
    if let Some(prefer) = then.prefer {
        match prefer {
            Prefer::Fastest => {
                // Stable: equally fast targets (and those without a latency, last) keep the
                // policy's order.
                targets.sort_by_key(|t| t.latency.map_or(u32::MAX, |l| l.key()));
                parts.push(format!("preferred fastest: {}", names(targets)));
            }
        }
    }
    parts.join("; ")
}

/// Makes the canary the primary when the request's routing key falls in its share and the
/// canary could serve the request; the old primary becomes the first fallback.
fn apply_canary(
    spec: &CanarySpec,
    bucket: &BucketId,
    request: &RequestContext,
    fired: &[&Rule],
    targets: &mut Vec<Arc<Target>>,
    reasons: &mut Vec<String>,
) -> Option<CanaryApplied> {
    let share = format!("{}% share of {bucket}", spec.percent);
    let Some(key) = &request.routing_key else {
        reasons.push(format!("canary: no routing key, so not in the {share}"));
        return None;
    };
    if !in_share(bucket.as_str(), key, spec.percent) {
        reasons.push(format!("canary: routing key outside the {share}"));
        return None;
    }
    if let Some(problem) = ineligible(&spec.target, request, fired) {
        reasons.push(format!(
            "canary: routing key in the {share}, but {} {problem}; not applied",
            spec.target.name
        ));
        return None;
    }
    targets.retain(|t| t.name != spec.target.name);
    targets.insert(0, Arc::clone(&spec.target));
    targets.truncate(MAX_TARGETS);
    reasons.push(format!(
        "canary: routing key in the {share}; {} is primary, then {}",
        spec.target.name,
        names(&targets[1..])
    ));
    Some(CanaryApplied {
        target: spec.target.name.clone(),
        percent: spec.percent,
    })
}

/// Skips targets whose breaker is open or whose probe is in flight. When that leaves none,
/// the policy either rejects (with when the first may reopen) or keeps them all, least
/// recently failed first.
fn by_health(
    targets: Vec<Arc<Target>>,
    bucket: &BucketId,
    when_all_open: WhenAllOpen,
    health: &HealthView,
    now: Instant,
    reasons: &mut Vec<String>,
) -> Result<Vec<Arc<Target>>, DecideError> {
    let (usable, mut skipped): (Vec<_>, Vec<_>) = targets
        .into_iter()
        .partition(|t| health.availability(&t.name, now).usable());
    for t in &skipped {
        let state = match health.availability(&t.name, now) {
            Availability::Open => "open",
            Availability::ProbeInFlight => "half-open, probe in flight",
            Availability::Closed | Availability::Probe => "usable",
        };
        reasons.push(format!("health: skipped {} ({state})", t.name));
    }
    if !usable.is_empty() {
        return Ok(usable);
    }
    match when_all_open {
        WhenAllOpen::Reject => {
            let retry_after = skipped
                .iter()
                .filter_map(|t| health.open_until(&t.name, now))
                .map(|until| until.saturating_duration_since(now))
                .min()
                .unwrap_or(Duration::ZERO);
            Err(DecideError::AllTargetsOpen {
                bucket: bucket.clone(),
                targets: skipped.iter().map(|t| t.name.clone()).collect(),
                retry_after,
            })
        }
        WhenAllOpen::LeastRecentlyFailed => {
            // Oldest failure first (never failed before any); ties keep policy order.
            skipped.sort_by_key(|t| health.last_failure(&t.name));
            reasons.push(format!(
                "health: every eligible target of {bucket} is cooling down; policy says least recently failed, so {} first",
                skipped[0].name
            ));
            Ok(skipped)
        }
    }
}
