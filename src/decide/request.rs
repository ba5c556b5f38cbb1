//! What `decide` knows about the request besides its bucket scores: size, who asks, how urgent,
//! what the answer needs. Built by the edges (HTTP wire types, CLI) and the pipeline, which
//! fills in the token count; `decide` only reads it.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

/// How urgent the caller says the request is.
#[derive(
    Debug,
    Clone,
    Copy,
    Default,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    Serialize,
    Deserialize,
    utoipa::ToSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Priority {
    Low,
    #[default]
    Normal,
    High,
}

/// The request as the rules see it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RequestContext {
    /// Tokens of the whole prompt (every turn), before any truncation for embedding.
    pub prompt_tokens: usize,
    pub tenant: Option<String>,
    /// The tenant's plan (`free`, `pro`...), as the caller states it.
    pub tier: Option<String>,
    pub priority: Priority,
    /// Capabilities the answer needs (`vision` when a message has an image part). Targets
    /// lacking any of them are never chosen.
    pub capabilities: BTreeSet<String>,
    pub metadata: BTreeMap<String, serde_json::Value>,
    /// What the canary share is hashed on (the request id, else the tenant); none → no canary.
    pub routing_key: Option<String>,
    /// Wall-clock seconds since the Unix epoch when the request arrived; drills limited to a
    /// daily window need it (none: such drills do not fire).
    pub utc_seconds: Option<u64>,
}
