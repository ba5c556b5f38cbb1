//! From the voted bucket to the request's targets: side rules (force a bucket, cap the tier,
//! require capabilities, prefer the fastest), the request's own needs (capabilities, context
//! window), the canary split, then provider health. Each step that changes anything says so
//! in the reasons; a request nothing can serve is an error, never a silent pick.

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::canary::{in_share, CanaryApplied};
use super::catalogue::Target;
use super::health::{Availability, HealthView, WhenAllOpen};
use super::policy::{Policy, MAX_TARGETS};
use super::request::RequestContext;
use super::rules::{Prefer, Rule};
use super::DecideError;
use crate::types::BucketId;

/// The targets chosen for one request, primary first.
pub(super) struct Selected {
    pub bucket: BucketId,
    pub targets: Vec<Arc<Target>>,
    pub canary: Option<CanaryApplied>,
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
/// The same checks, in the same order, as the filters in [`select`].
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

pub(super) fn select(
    policy: &Policy,
    voted: BucketId,
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
    let forced = fired
        .iter()
        .find_map(|r| r.then.force_bucket.as_ref().map(|b| (b, r.name.as_str())));
    let bucket = forced.map_or(voted.clone(), |(b, _)| b.clone());
    let bucket_policy = policy
        .bucket(&bucket)
        .ok_or_else(|| DecideError::UnknownBucket(bucket.clone()))?;
    let mut targets: Vec<Arc<Target>> = bucket_policy.targets.clone();
    // Why targets were dropped, for the error when none is left.
    let mut why: Vec<String> = Vec::new();

    if !request.capabilities.is_empty() {
        let dropped = retain(&mut targets, |t| {
            request.capabilities.is_subset(&t.capabilities)
        });
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
    let dropped = retain(&mut targets, |t| t.context_window as u128 >= tokens as u128);
    if !dropped.is_empty() {
        let clause = format!(
            "prompt of {tokens} tokens exceeds the context window of {}",
            names(&dropped)
        );
        reasons.push(format!("context: {clause}"));
        why.push(clause);
    }

    for rule in &fired {
        let then = &rule.then;
        let mut parts: Vec<String> = Vec::with_capacity(2);
        if let Some(b) = &then.force_bucket {
            match forced {
                Some((_, by)) if by == rule.name => {
                    parts.push(format!("forced bucket {b} (semantic match was {voted})"));
                }
                Some((first, by)) => parts.push(format!(
                    "bucket {b} not forced: rule {by} already forced {first}"
                )),
                None => {}
            }
        }
        if let Some(cap) = then.cap_tier {
            let dropped = retain(&mut targets, |t| t.tier <= cap);
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
            let dropped = retain(&mut targets, |t| {
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
                    // Stable: equally fast targets (and those without a latency, last) keep
                    // the policy's order.
                    targets.sort_by_key(|t| t.latency.map_or(u32::MAX, |l| l.key()));
                    parts.push(format!("preferred fastest: {}", names(&targets)));
                }
            }
        }
        reasons.push(format!("rule {}: {}", rule.name, parts.join("; ")));
    }

    if targets.is_empty() {
        return Err(DecideError::NoEligibleTarget {
            bucket,
            why: why.join("; "),
        });
    }

    let mut canary = None;
    if let Some(spec) = &bucket_policy.canary {
        let share = format!("{}% share of {bucket}", spec.percent);
        match &request.routing_key {
            None => reasons.push(format!("canary: no routing key, so not in the {share}")),
            Some(key) if !in_share(bucket.as_str(), key, spec.percent) => {
                reasons.push(format!("canary: routing key outside the {share}"));
            }
            Some(_) => match ineligible(&spec.target, request, &fired) {
                Some(problem) => reasons.push(format!(
                    "canary: routing key in the {share}, but {} {problem}; not applied",
                    spec.target.name
                )),
                None => {
                    targets.retain(|t| t.name != spec.target.name);
                    targets.insert(0, Arc::clone(&spec.target));
                    targets.truncate(MAX_TARGETS);
                    reasons.push(format!(
                        "canary: routing key in the {share}; {} is primary, then {}",
                        spec.target.name,
                        names(&targets[1..])
                    ));
                    canary = Some(CanaryApplied {
                        target: spec.target.name.clone(),
                        percent: spec.percent,
                    });
                }
            },
        }
    }

    let (mut usable, mut skipped): (Vec<_>, Vec<_>) = targets
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
    if usable.is_empty() {
        match policy.health.when_all_open {
            WhenAllOpen::Reject => {
                let retry_after = skipped
                    .iter()
                    .filter_map(|t| health.open_until(&t.name, now))
                    .map(|until| until.saturating_duration_since(now))
                    .min()
                    .unwrap_or(Duration::ZERO);
                return Err(DecideError::AllTargetsOpen {
                    bucket,
                    targets: skipped.iter().map(|t| t.name.clone()).collect(),
                    retry_after,
                });
            }
            WhenAllOpen::LeastRecentlyFailed => {
                // Oldest failure first (never failed before any); ties keep policy order.
                skipped.sort_by_key(|t| health.last_failure(&t.name));
                reasons.push(format!(
                    "health: every eligible target of {bucket} is cooling down; policy says least recently failed, so {} first",
                    skipped[0].name
                ));
                usable = skipped;
            }
        }
    }
    let probe = (health.availability(&usable[0].name, now) == Availability::Probe).then(|| {
        reasons.push(format!(
            "health: {} is half-open; this request is its probe",
            usable[0].name
        ));
        usable[0].name.clone()
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
    debug_assert!(usable.len() <= MAX_TARGETS);
    Ok(Selected {
        bucket,
        targets: usable,
        canary,
        shadow,
        probe,
    })
}
