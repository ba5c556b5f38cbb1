//! One `[buckets.NAME]` section: its targets (primary first, then fallbacks), canary, shadow,
//! drill, threshold and escalation, each checked against the catalogue. Paths in errors are
//! relative to the bucket; the caller prefixes `buckets.NAME`.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use super::raw::{RawBucket, RawCanary};
use super::validate::{validate_escalation, validate_threshold};
use super::validated::{BucketPolicy, Escalation, Threshold, MAX_TARGETS};
use crate::decide::canary::CanarySpec;
use crate::decide::catalogue::Target;
use crate::decide::drill::{validate_drill, DrillSpec};
use crate::decide::error::FieldError;

/// What a bucket inherits from the top level when it does not say.
pub(super) struct BucketDefaults<'a> {
    pub(super) min_confidence: Threshold,
    pub(super) escalation: &'a Escalation,
    pub(super) drill: Option<DrillSpec>,
}

/// One `[buckets.NAME]`: its targets, canary, shadow, threshold and escalation.
pub(super) fn validate_bucket(
    b: &RawBucket,
    catalogue: &BTreeMap<String, Arc<Target>>,
    defaults: &BucketDefaults<'_>,
) -> Result<BucketPolicy, FieldError> {
    let targets = bucket_targets(&b.targets, catalogue)?;
    let canary = b
        .canary
        .as_ref()
        .map(|c| validate_canary(c, &b.targets[0], catalogue))
        .transpose()
        .map_err(|e| e.within("canary"))?;
    let shadow = match &b.shadow {
        None => None,
        Some(name) => {
            let target = known_target(catalogue, "shadow", name)?;
            let is_canary = canary.as_ref().is_some_and(|c| c.target.name == *name);
            if b.targets.contains(name) || is_canary {
                return Err(FieldError::new(
                    "shadow",
                    format!("`{name}` already serves this bucket; a shadow must be another target"),
                ));
            }
            Some(target)
        }
    };
    let drill = match &b.drill {
        Some(d) => Some(validate_drill(d).map_err(|e| e.within("drill"))?),
        None => defaults.drill,
    };
    let min_confidence = match &b.min_confidence {
        Some(c) => validate_threshold(c, "min_confidence")?,
        None => defaults.min_confidence,
    };
    let escalation = match &b.escalation {
        Some(e) => validate_escalation(e).map_err(|e| e.within("escalation"))?,
        None => defaults.escalation.clone(),
    };
    Ok(BucketPolicy {
        description: b.description.clone(),
        targets,
        min_confidence,
        escalation,
        canary,
        shadow,
        drill,
    })
}

/// A bucket's `targets`: 1..=MAX_TARGETS known targets, none twice, primary first.
fn bucket_targets(
    names: &[String],
    catalogue: &BTreeMap<String, Arc<Target>>,
) -> Result<Vec<Arc<Target>>, FieldError> {
    if names.is_empty() || names.len() > MAX_TARGETS {
        return Err(FieldError::new(
            "targets",
            format!(
                "has {} targets; a bucket needs 1 to {MAX_TARGETS} (primary + fallbacks)",
                names.len()
            ),
        ));
    }
    let mut seen = BTreeSet::new();
    let mut resolved = Vec::with_capacity(names.len());
    for (i, t) in names.iter().enumerate() {
        let path = format!("targets[{i}]");
        let target = known_target(catalogue, &path, t)?;
        if !seen.insert(t) {
            return Err(FieldError::new(
                path,
                format!("target `{t}` is listed twice"),
            ));
        }
        resolved.push(target);
    }
    Ok(resolved)
}

/// A bucket's `canary`: a known target other than the primary, and a percent.
fn validate_canary(
    c: &RawCanary,
    primary: &str,
    catalogue: &BTreeMap<String, Arc<Target>>,
) -> Result<CanarySpec, FieldError> {
    let target = known_target(catalogue, "target", &c.target)?;
    if primary == c.target {
        return Err(FieldError::new(
            "target",
            format!("`{}` is already this bucket's primary", c.target),
        ));
    }
    if c.percent > 100 {
        return Err(FieldError::new(
            "percent",
            format!("{} is outside 0..=100", c.percent),
        ));
    }
    Ok(CanarySpec {
        target,
        percent: c.percent,
    })
}

/// The catalogue's target `name`, or an error at `path` that lists the known ones.
fn known_target(
    catalogue: &BTreeMap<String, Arc<Target>>,
    path: &str,
    name: &str,
) -> Result<Arc<Target>, FieldError> {
    catalogue.get(name).cloned().ok_or_else(|| {
        let known: Vec<&str> = catalogue.keys().map(String::as_str).collect();
        FieldError::new(
            path,
            format!("unknown target `{name}` (known: {})", known.join(", ")),
        )
    })
}
