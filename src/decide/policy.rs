//! The routing policy file: raw types that mirror the TOML (unknown fields rejected), then
//! validation into [`Policy`], the only type the rest of the code sees. Every validation error
//! names the file and the path inside it (`buckets.code.targets[1]`).

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::types::BucketId;

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
    targets: BTreeMap<String, RawTarget>,
    buckets: BTreeMap<String, RawBucket>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMatching {
    k: usize,
    min_confidence: f32,
    min_similarity: f32,
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
struct RawTarget {
    provider: String,
    model: String,
    #[serde(default)]
    allow_alias: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawBucket {
    #[serde(default)]
    description: Option<String>,
    targets: Vec<String>,
    #[serde(default)]
    min_confidence: Option<f32>,
    #[serde(default)]
    escalation: Option<RawEscalation>,
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

/// A model the router can send to: a provider and a pinned, dated model snapshot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Target {
    pub name: String,
    pub provider: String,
    pub model: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct BucketPolicy {
    pub description: Option<String>,
    /// Primary first, then fallbacks; 1..=MAX_TARGETS, no repeats.
    pub targets: Vec<Target>,
    pub min_confidence: f32,
    pub escalation: Escalation,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Matching {
    /// Neighbours that vote.
    pub k: usize,
    /// Global confidence floor; a bucket may raise or lower it for itself.
    pub min_confidence: f32,
    /// Below this cosine for the nearest archetype, the prompt is like nothing we know.
    pub min_similarity: f32,
}

/// A validated routing policy.
#[derive(Debug, Clone, PartialEq)]
pub struct Policy {
    pub version: String,
    pub default_bucket: BucketId,
    pub matching: Matching,
    pub buckets: BTreeMap<BucketId, BucketPolicy>,
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
    check_unit(m.min_confidence).map_err(|e| invalid("matching.min_confidence", e))?;
    if !(-1.0..=1.0).contains(&m.min_similarity) {
        return Err(invalid(
            "matching.min_similarity",
            format!("{} is outside [-1, 1]", m.min_similarity),
        ));
    }
    let default_escalation = validate_escalation(&raw.escalation)
        .map_err(|(field, e)| invalid(&format!("escalation.{field}"), e))?;

    let mut targets = BTreeMap::new();
    for (name, t) in &raw.targets {
        let path = format!("targets.{name}");
        if t.provider.trim().is_empty() {
            return Err(invalid(
                &format!("{path}.provider"),
                "must not be empty".into(),
            ));
        }
        if !t.allow_alias && !looks_dated(&t.model) {
            return Err(invalid(
                &format!("{path}.model"),
                format!("`{}` is not a dated snapshot (e.g. `...-2025-08-07` or `...@20250929`); pin one, or set allow_alias = true to accept a moving alias", t.model),
            ));
        }
        targets.insert(
            name.clone(),
            Target {
                name: name.clone(),
                provider: t.provider.clone(),
                model: t.model.clone(),
            },
        );
    }

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
            resolved.push(target.clone());
        }
        let min_confidence = match b.min_confidence {
            Some(c) => {
                check_unit(c).map_err(|e| invalid(&format!("{path}.min_confidence"), e))?;
                c
            }
            None => m.min_confidence,
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
    Ok(Policy {
        version: raw.policy_version,
        default_bucket,
        matching: Matching {
            k: m.k,
            min_confidence: m.min_confidence,
            min_similarity: m.min_similarity,
        },
        buckets,
    })
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

    const SAMPLE: &str = r#"
schema_version = 1
policy_version = "test.1"
default_bucket = "chat"

[matching]
k = 5
min_confidence = 0.4
min_similarity = 0.3

[escalation]
on = ["timeout", "server_error"]
timeout_ms = 5000
max_attempts = 2

[targets.small]
provider = "openai"
model = "gpt-4.1-mini-2025-04-14"

[targets.big]
provider = "anthropic"
model = "claude-sonnet-4-5-20250929"

[buckets.chat]
targets = ["small"]

[buckets.code]
targets = ["big", "small"]
min_confidence = 0.6
escalation = { on = ["rate_limited"], timeout_ms = 20000, max_attempts = 3 }
"#;

    fn err_of(text: &str) -> String {
        Policy::parse(text, "p.toml").unwrap_err().to_string()
    }

    #[test]
    fn sample_parses() {
        let p = Policy::parse(SAMPLE, "p.toml").unwrap();
        let code = p.bucket(&BucketId::new("code")).unwrap();
        assert_eq!(code.targets[0].name, "big");
        assert_eq!(code.min_confidence, 0.6);
        assert_eq!(code.escalation.max_attempts, 3);
        let chat = p.bucket(&BucketId::new("chat")).unwrap();
        assert_eq!(chat.min_confidence, 0.4);
        assert_eq!(
            chat.escalation.on,
            vec![Trigger::Timeout, Trigger::ServerError]
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
