//! Typed JSON answers of the handlers that are not admin endpoints; each derives its
//! OpenAPI schema, so `/openapi.json` describes exactly what is serialised.

use serde::Serialize;
use utoipa::ToSchema;

use super::error::ErrorBody;
use super::wire::EmbedResponse;
use crate::decide::{Decision, Phase};
use crate::live::health_board::TargetReport;
use crate::live::reloader::ReloaderStatus;
use crate::pipeline::compose::Limits;
use crate::types::{BucketId, ModelFingerprint};

/// `POST /classify/batch`: one item per request, in request order.
#[derive(Debug, Serialize, ToSchema)]
pub struct BatchAnswer {
    pub decisions: Vec<BatchItem>,
}

/// A decision as answered: with a `feedback_token` per target it names, which a report to
/// `POST /feedback` about that target must carry.
#[derive(Debug, Serialize, ToSchema)]
pub struct SignedDecision {
    #[serde(flatten)]
    pub decision: Decision,
    /// Target name → token, for the primary, each fallback and the shadow.
    pub feedback_tokens: std::collections::BTreeMap<String, String>,
}

impl SignedDecision {
    pub fn new(decision: Decision, signer: &super::feedback_sig::DecisionSigner) -> Self {
        let feedback_tokens = signer.tokens_for(&decision);
        Self {
            decision,
            feedback_tokens,
        }
    }
}

/// A decision, or the error of that one request.
#[derive(Debug, Serialize, ToSchema)]
#[serde(untagged)]
pub enum BatchItem {
    Decided(Box<SignedDecision>),
    Failed(ErrorBody),
}

/// `POST /embed` with `texts`.
#[derive(Debug, Serialize, ToSchema)]
pub struct EmbedBatchAnswer {
    pub embeddings: Vec<EmbedResponse>,
}

/// `POST /embed`: one vector for `text`, or `{"embeddings": [...]}` for `texts`.
#[derive(Debug, Serialize, ToSchema)]
#[serde(untagged)]
pub enum EmbedAnswer {
    One(EmbedResponse),
    Many(EmbedBatchAnswer),
}

/// `GET /health`.
#[derive(Debug, Serialize, ToSchema)]
pub struct HealthAnswer {
    /// Always `ok`.
    #[schema(value_type = String)]
    pub status: &'static str,
}

/// `GET /ready`: ready (200), or draining or starting (503).
#[derive(Debug, Serialize, ToSchema)]
#[serde(untagged)]
pub enum ReadyAnswer {
    Ready {
        /// True.
        ready: bool,
        policy_version: String,
        index_version: String,
        last_reload_error: Option<String>,
        reload: ReloaderStatus,
    },
    Draining {
        /// False.
        ready: bool,
        /// `draining`.
        #[schema(value_type = String)]
        reason: &'static str,
    },
    Starting {
        /// False.
        ready: bool,
        /// What start-up is doing.
        phase: String,
    },
}

/// `GET /info`.
#[derive(Debug, Serialize, ToSchema)]
pub struct InfoAnswer {
    pub model: ModelFingerprint,
    #[schema(value_type = String)]
    pub device: &'static str,
    pub index: IndexInfo,
    pub policy: PolicyInfo,
    pub build: BuildInfo,
    pub limits: Limits,
    /// Where archetype changes are kept, and whether that store answers.
    pub store: crate::store::StoreStatus,
    /// What each configured tenant's namespace serves now, so a fleet's convergence can be
    /// checked per tenant (absent without a tenants file).
    #[serde(skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub tenants: std::collections::BTreeMap<String, TenantInfo>,
}

/// One tenant's namespace in `GET /info`.
#[derive(Debug, Serialize, ToSchema)]
pub struct TenantInfo {
    pub index_version: String,
    /// Vectors in its index (the shared ones included unless `replace`).
    pub index_size: usize,
    pub policy_version: String,
    /// Whether it serves its own examples only.
    pub replace: bool,
    /// The last failed rebuild or reload of this namespace, if any.
    pub last_reload_error: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct IndexInfo {
    pub version: String,
    pub size: usize,
    pub dims: usize,
    /// Examples per bucket.
    pub counts: std::collections::BTreeMap<BucketId, usize>,
    /// Seconds since the Unix epoch.
    pub built_at: u64,
    pub examples_sha256: String,
    /// HNSW parameters: connectivity, expansion_add, expansion_search, quantization.
    #[schema(value_type = Object)]
    pub hnsw: crate::index::HnswParams,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct PolicyInfo {
    pub version: String,
    pub default_bucket: BucketId,
    pub buckets: Vec<BucketId>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct BuildInfo {
    #[schema(value_type = String)]
    pub version: &'static str,
    /// `debug` or `release`.
    #[schema(value_type = String)]
    pub profile: &'static str,
}

/// `POST /feedback`: the target's breaker state after the report.
#[derive(Debug, Serialize, ToSchema)]
pub struct FeedbackAnswer {
    pub target: String,
    pub state: Phase,
}

/// `GET /health/targets`.
#[derive(Debug, Serialize, ToSchema)]
pub struct TargetsAnswer {
    pub targets: Vec<TargetReport>,
}
