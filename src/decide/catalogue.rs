//! The model catalogue: each `[targets.NAME]` of the policy, declared once — provider, dated
//! model snapshot, tier, capabilities, context window, list prices and relative latency.
//! Owns the raw target shape and its validation; knows nothing of buckets or rules.

use std::collections::BTreeSet;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::error::FieldError;

/// How capable (and expensive) a target is. Ordered: `small < mid < frontier`, so a rule can
/// cap the tier of a request.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    Serialize,
    Deserialize,
    utoipa::ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Tier {
    Small,
    Mid,
    Frontier,
}

impl Tier {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Small => "small",
            Self::Mid => "mid",
            Self::Frontier => "frontier",
        }
    }
}

/// How fast a target answers, relative to the others: one kind for the whole catalogue, so
/// that "fastest" compares like with like.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Latency {
    /// 1 is the fastest; equal ranks are equally fast.
    Rank(u32),
    /// Typical time to a complete answer, as operators measured it.
    TypicalMs(u32),
}

impl Latency {
    /// Smaller is faster; only meaningful between latencies of the same kind, which
    /// validation guarantees.
    pub fn key(self) -> u32 {
        match self {
            Self::Rank(r) | Self::TypicalMs(r) => r,
        }
    }

    pub fn same_kind(self, other: Self) -> bool {
        match (self, other) {
            (Self::Rank(_), Self::Rank(_)) | (Self::TypicalMs(_), Self::TypicalMs(_)) => true,
            (Self::Rank(_), Self::TypicalMs(_)) | (Self::TypicalMs(_), Self::Rank(_)) => false,
        }
    }
}

/// A model the router can send to: a provider, a pinned dated snapshot, and what the rules
/// need to know about it. Decisions serialize the name, provider, model and tier.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Target {
    pub name: String,
    pub provider: String,
    pub model: String,
    pub tier: Tier,
    #[serde(skip)]
    pub capabilities: BTreeSet<String>,
    /// Tokens the model accepts in one request.
    #[serde(skip)]
    pub context_window: u64,
    /// List prices in USD per million tokens.
    #[serde(skip)]
    pub price_in_per_mtok: f64,
    #[serde(skip)]
    pub price_out_per_mtok: f64,
    #[serde(skip)]
    pub latency: Option<Latency>,
}

impl Target {
    /// Estimated USD cost of sending `tokens` input tokens to this target.
    pub fn input_cost_usd(&self, tokens: usize) -> f64 {
        tokens as f64 * self.price_in_per_mtok / 1e6
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawTarget {
    provider: String,
    model: String,
    #[serde(default)]
    allow_alias: bool,
    tier: Tier,
    #[serde(default)]
    capabilities: Vec<String>,
    context_window: u64,
    price_in_per_mtok: f64,
    price_out_per_mtok: f64,
    #[serde(default)]
    latency_rank: Option<u32>,
    #[serde(default)]
    typical_latency_ms: Option<u32>,
}

/// Validates one target; error paths are relative to `targets.NAME`.
pub(super) fn validate_target(name: &str, t: &RawTarget) -> Result<Arc<Target>, FieldError> {
    if t.provider.trim().is_empty() {
        return Err(FieldError::new("provider", "must not be empty"));
    }
    if !t.allow_alias && !looks_dated(&t.model) {
        return Err(FieldError::new(
            "model",
            format!("`{}` is not a dated snapshot (e.g. `...-2025-08-07` or `...@20250929`); pin one, or set allow_alias = true to accept a moving alias", t.model),
        ));
    }
    let mut capabilities = BTreeSet::new();
    for (i, c) in t.capabilities.iter().enumerate() {
        if !is_capability_name(c) {
            return Err(FieldError::new(
                format!("capabilities[{i}]"),
                format!("`{c}` is not a capability name (lowercase letters, digits and `_`, e.g. `json_mode`)"),
            ));
        }
        if !capabilities.insert(c.clone()) {
            return Err(FieldError::new(
                format!("capabilities[{i}]"),
                format!("`{c}` is listed twice"),
            ));
        }
    }
    if t.context_window == 0 {
        return Err(FieldError::new("context_window", "must be greater than 0"));
    }
    for (field, price) in [
        ("price_in_per_mtok", t.price_in_per_mtok),
        ("price_out_per_mtok", t.price_out_per_mtok),
    ] {
        if !price.is_finite() || price < 0.0 {
            return Err(FieldError::new(
                field,
                format!("{price} is not a price ≥ 0"),
            ));
        }
    }
    let latency = match (t.latency_rank, t.typical_latency_ms) {
        (Some(_), Some(_)) => {
            return Err(FieldError::new(
                "latency_rank",
                "give latency_rank or typical_latency_ms, not both",
            ))
        }
        (Some(0), None) => {
            return Err(FieldError::new(
                "latency_rank",
                "ranks start at 1 (fastest)",
            ))
        }
        (None, Some(0)) => {
            return Err(FieldError::new(
                "typical_latency_ms",
                "must be greater than 0",
            ))
        }
        (Some(r), None) => Some(Latency::Rank(r)),
        (None, Some(ms)) => Some(Latency::TypicalMs(ms)),
        (None, None) => None,
    };
    Ok(Arc::new(Target {
        name: name.to_owned(),
        provider: t.provider.clone(),
        model: t.model.clone(),
        tier: t.tier,
        capabilities,
        context_window: t.context_window,
        price_in_per_mtok: t.price_in_per_mtok,
        price_out_per_mtok: t.price_out_per_mtok,
        latency,
    }))
}

/// Capability names are identifiers: `vision`, `json_mode`, `long_context`.
pub fn is_capability_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

/// Whether a model id names a dated snapshot: it contains a plausible date as `YYYYMMDD` or
/// `YYYY-MM-DD` (`claude-sonnet-4-5-20250929`, `gpt-5-2025-08-07`).
pub fn looks_dated(model: &str) -> bool {
    let b = model.as_bytes();
    (0..b.len()).any(|i| {
        let starts_number = i == 0 || !b[i - 1].is_ascii_digit();
        starts_number
            && date_span_len(&b[i..]).is_some_and(|len| {
                let digits: String = model[i..i + len]
                    .chars()
                    .filter(char::is_ascii_digit)
                    .collect();
                is_date(&digits)
            })
    })
}

/// Length of a `YYYYMMDD` or `YYYY-MM-DD` span at the start of `b`, if there is one.
fn date_span_len(b: &[u8]) -> Option<usize> {
    let digit = |i: usize| b.get(i).is_some_and(u8::is_ascii_digit);
    if (0..8).all(digit) && !digit(8) {
        return Some(8);
    }
    let dashed = (0..4).all(digit)
        && b.get(4) == Some(&b'-')
        && digit(5)
        && digit(6)
        && b.get(7) == Some(&b'-')
        && digit(8)
        && digit(9)
        && !digit(10);
    dashed.then_some(10)
}

fn is_date(eight: &str) -> bool {
    if eight.len() != 8 || !eight.bytes().all(|b| b.is_ascii_digit()) {
        return false;
    }
    let n = |r: std::ops::Range<usize>| eight[r].parse::<u32>().unwrap_or(0);
    (2000..2100).contains(&n(0..4)) && (1..=12).contains(&n(4..6)) && (1..=31).contains(&n(6..8))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dated_snapshots() {
        for ok in [
            "claude-sonnet-4-5-20250929",
            "gpt-5-2025-08-07",
            "gemini-2.5-pro@20250617",
            "20240101",
        ] {
            assert!(looks_dated(ok), "{ok}");
        }
        for alias in [
            "gpt-4o",
            "claude-sonnet-4-5",
            "gpt-5-latest",
            "model-123456789",
            "x-2025-13-01",
        ] {
            assert!(!looks_dated(alias), "{alias}");
        }
    }
}
