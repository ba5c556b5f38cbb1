//! Side rules: ordered `[[rules]]` of the policy, each a typed condition on the request
//! (`when`, all given parts must hold) and typed actions (`then`). Owns their raw shape,
//! validation and matching; `select` applies the actions of the rules that fire.

use std::collections::{BTreeMap, BTreeSet};

use serde::Deserialize;

use super::catalogue::Tier;
use super::error::FieldError;
use super::request::{Priority, RequestContext};
use crate::types::BucketId;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawRule {
    name: String,
    #[serde(default)]
    description: Option<String>,
    when: RawWhen,
    then: RawThen,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawWhen {
    #[serde(default)]
    prompt_tokens_above: Option<usize>,
    #[serde(default)]
    prompt_tokens_below: Option<usize>,
    #[serde(default)]
    tier: Option<Vec<String>>,
    #[serde(default)]
    priority: Option<Priority>,
    #[serde(default)]
    capabilities: Option<Vec<String>>,
    #[serde(default)]
    metadata: Option<BTreeMap<String, serde_json::Value>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawThen {
    #[serde(default)]
    force_bucket: Option<String>,
    #[serde(default)]
    cap_tier: Option<Tier>,
    #[serde(default)]
    require_capabilities: Option<Vec<String>>,
    #[serde(default)]
    prefer: Option<Prefer>,
}

/// How to reorder the remaining targets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Prefer {
    /// By the catalogue's latency (rank or typical ms), fastest first; ties keep policy order.
    Fastest,
}

/// A validated rule.
#[derive(Debug, Clone, PartialEq)]
pub struct Rule {
    pub name: String,
    pub description: Option<String>,
    pub when: When,
    pub then: Then,
}

/// Conditions; every one that is given must hold.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct When {
    pub prompt_tokens_above: Option<usize>,
    pub prompt_tokens_below: Option<usize>,
    /// The tenant tier is one of these.
    pub tier: Option<BTreeSet<String>>,
    pub priority: Option<Priority>,
    /// The request requires all of these.
    pub capabilities: BTreeSet<String>,
    /// Each key is present in the request's metadata with an equal value.
    pub metadata: BTreeMap<String, serde_json::Value>,
}

impl When {
    pub fn matches(&self, r: &RequestContext) -> bool {
        self.prompt_tokens_above
            .is_none_or(|bound| r.prompt_tokens > bound)
            && self
                .prompt_tokens_below
                .is_none_or(|bound| r.prompt_tokens < bound)
            && self
                .tier
                .as_ref()
                .is_none_or(|tiers| r.tier.as_ref().is_some_and(|t| tiers.contains(t)))
            && self.priority.is_none_or(|p| p == r.priority)
            && self.capabilities.is_subset(&r.capabilities)
            && self
                .metadata
                .iter()
                .all(|(k, v)| r.metadata.get(k) == Some(v))
    }
}

/// Actions, applied in this order when the rule fires.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Then {
    pub force_bucket: Option<BucketId>,
    /// Drop targets above this tier.
    pub cap_tier: Option<Tier>,
    /// Drop targets lacking any of these.
    pub require_capabilities: BTreeSet<String>,
    pub prefer: Option<Prefer>,
}

/// What rule validation checks names against.
pub(super) struct Names<'a> {
    pub buckets: BTreeSet<&'a str>,
    /// Every capability some target declares: a rule naming another can never be satisfied.
    pub capabilities: BTreeSet<&'a str>,
    /// The policy's `tenant_tiers`, when it declares them.
    pub tenant_tiers: Option<&'a BTreeSet<String>>,
    /// Whether the catalogue gives latencies, which `prefer = "fastest"` needs.
    pub has_latency: bool,
}

/// Validates the rules in order; error paths are whole (`rules[2].then`).
pub(super) fn validate_rules(raw: &[RawRule], names: &Names) -> Result<Vec<Rule>, FieldError> {
    let mut seen = BTreeSet::new();
    raw.iter()
        .enumerate()
        .map(|(i, r)| {
            let path = format!("rules[{i}]");
            if r.name.trim().is_empty() {
                return Err(FieldError::new(format!("{path}.name"), "must not be empty"));
            }
            if !seen.insert(r.name.as_str()) {
                return Err(FieldError::new(
                    format!("{path}.name"),
                    format!(
                        "`{}` names an earlier rule too; rule names must be unique",
                        r.name
                    ),
                ));
            }
            Ok(Rule {
                name: r.name.clone(),
                description: r.description.clone(),
                when: validate_when(&r.when, names, &format!("{path}.when"))?,
                then: validate_then(&r.then, names, &format!("{path}.then"))?,
            })
        })
        .collect()
}

fn capability_set(
    list: &[String],
    names: &Names,
    path: &str,
) -> Result<BTreeSet<String>, FieldError> {
    if list.is_empty() {
        return Err(FieldError::new(
            path.to_owned(),
            "must name at least one capability",
        ));
    }
    list.iter()
        .enumerate()
        .map(|(j, c)| {
            if names.capabilities.contains(c.as_str()) {
                Ok(c.clone())
            } else {
                let known: Vec<&str> = names.capabilities.iter().copied().collect();
                Err(FieldError::new(
                    format!("{path}[{j}]"),
                    format!(
                        "no target declares capability `{c}` (declared: {})",
                        known.join(", ")
                    ),
                ))
            }
        })
        .collect()
}

fn validate_when(raw: &RawWhen, names: &Names, path: &str) -> Result<When, FieldError> {
    let given = raw.prompt_tokens_above.is_some()
        || raw.prompt_tokens_below.is_some()
        || raw.tier.is_some()
        || raw.priority.is_some()
        || raw.capabilities.is_some()
        || raw.metadata.is_some();
    if !given {
        return Err(FieldError::new(
            path.to_owned(),
            "has no condition; a rule for every request belongs in the buckets themselves",
        ));
    }
    if let (Some(above), Some(below)) = (raw.prompt_tokens_above, raw.prompt_tokens_below) {
        if above.saturating_add(1) >= below {
            return Err(FieldError::new(
                path.to_owned(),
                format!("no prompt is above {above} and below {below} tokens; the rule would never fire"),
            ));
        }
    }
    let tier = match &raw.tier {
        None => None,
        Some(list) if list.is_empty() => {
            return Err(FieldError::new(
                format!("{path}.tier"),
                "must name at least one tier",
            ))
        }
        Some(list) => {
            for (j, t) in list.iter().enumerate() {
                if let Some(known) = names.tenant_tiers {
                    if !known.contains(t) {
                        let known: Vec<&str> = known.iter().map(String::as_str).collect();
                        return Err(FieldError::new(
                            format!("{path}.tier[{j}]"),
                            format!("`{t}` is not in tenant_tiers ({})", known.join(", ")),
                        ));
                    }
                }
            }
            Some(list.iter().cloned().collect())
        }
    };
    let capabilities = match &raw.capabilities {
        None => BTreeSet::new(),
        Some(list) => capability_set(list, names, &format!("{path}.capabilities"))?,
    };
    let metadata = raw.metadata.clone().unwrap_or_default();
    if let Some(key) = metadata.keys().find(|k| k.trim().is_empty()) {
        return Err(FieldError::new(
            format!("{path}.metadata"),
            format!("key `{key}` is empty"),
        ));
    }
    Ok(When {
        prompt_tokens_above: raw.prompt_tokens_above,
        prompt_tokens_below: raw.prompt_tokens_below,
        tier,
        priority: raw.priority,
        capabilities,
        metadata,
    })
}

fn validate_then(raw: &RawThen, names: &Names, path: &str) -> Result<Then, FieldError> {
    if raw.force_bucket.is_none()
        && raw.cap_tier.is_none()
        && raw.require_capabilities.is_none()
        && raw.prefer.is_none()
    {
        return Err(FieldError::new(
            path.to_owned(),
            "has no action (force_bucket, cap_tier, require_capabilities or prefer)",
        ));
    }
    let force_bucket = match &raw.force_bucket {
        None => None,
        Some(b) if names.buckets.contains(b.as_str()) => Some(BucketId::new(b)),
        Some(b) => {
            let known: Vec<&str> = names.buckets.iter().copied().collect();
            return Err(FieldError::new(
                format!("{path}.force_bucket"),
                format!("unknown bucket `{b}` (buckets: {})", known.join(", ")),
            ));
        }
    };
    let require_capabilities = match &raw.require_capabilities {
        None => BTreeSet::new(),
        Some(list) => capability_set(list, names, &format!("{path}.require_capabilities"))?,
    };
    if raw.prefer.is_some() && !names.has_latency {
        return Err(FieldError::new(
            format!("{path}.prefer"),
            "no target declares latency_rank or typical_latency_ms, so there is no fastest",
        ));
    }
    Ok(Then {
        force_bucket,
        cap_tier: raw.cap_tier,
        require_capabilities,
        prefer: raw.prefer,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx() -> RequestContext {
        RequestContext {
            prompt_tokens: 500,
            tenant: Some("acme".into()),
            tier: Some("free".into()),
            priority: Priority::High,
            capabilities: BTreeSet::from(["vision".to_owned()]),
            metadata: BTreeMap::from([("region".to_owned(), serde_json::json!("eu"))]),
            routing_key: None,
            utc_seconds: None,
        }
    }

    #[test]
    fn every_given_condition_must_hold() {
        let all = When {
            prompt_tokens_above: Some(100),
            prompt_tokens_below: Some(1000),
            tier: Some(BTreeSet::from(["free".to_owned(), "trial".to_owned()])),
            priority: Some(Priority::High),
            capabilities: BTreeSet::from(["vision".to_owned()]),
            metadata: BTreeMap::from([("region".to_owned(), serde_json::json!("eu"))]),
        };
        assert!(all.matches(&ctx()));
        let mut r = ctx();
        r.prompt_tokens = 100;
        assert!(!all.matches(&r), "above is strict");
        r.prompt_tokens = 1000;
        assert!(!all.matches(&r), "below is strict");
        let mut r = ctx();
        r.tier = None;
        assert!(!all.matches(&r), "no tier matches no tier list");
        let mut r = ctx();
        r.priority = Priority::Normal;
        assert!(!all.matches(&r));
        let mut r = ctx();
        r.capabilities.clear();
        assert!(!all.matches(&r));
        let mut r = ctx();
        r.metadata.insert("region".into(), serde_json::json!("us"));
        assert!(!all.matches(&r));
        r.metadata.clear();
        assert!(!all.matches(&r));
    }
}
