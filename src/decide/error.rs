//! What can go wrong in `decide`: loading a policy ([`PolicyError`], which always names the
//! file, and the path inside it when the file is well-formed), and routing one request
//! ([`DecideError`]). A leaf module: every other file of `decide` may use it.

use std::time::Duration;

use crate::types::BucketId;

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
    /// User error: well-formed TOML that breaks a rule of the policy at `path`
    /// (`buckets.code.targets[1]`).
    #[error("policy {file}: {path}: {message}")]
    Invalid {
        file: String,
        path: String,
        message: String,
    },
}

/// A rule of the policy broken at `path`: what each section's validator returns. The path is
/// relative to the section until [`Self::within`] prefixes it; [`Self::in_file`] makes it a
/// [`PolicyError::Invalid`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct FieldError {
    pub path: String,
    pub message: String,
}

impl FieldError {
    pub fn new(path: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            path: path.into(),
            message: message.into(),
        }
    }

    /// The same error seen from the enclosing section: `window` within `health` is
    /// `health.window`.
    pub fn within(self, section: &str) -> Self {
        Self {
            path: format!("{section}.{}", self.path),
            message: self.message,
        }
    }

    pub fn in_file(self, file: &str) -> PolicyError {
        PolicyError::Invalid {
            file: file.to_owned(),
            path: self.path,
            message: self.message,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum DecideError {
    /// User error (in the index or policy): the scores chose a bucket the policy does not
    /// have. Snapshots are cross-checked when built, so at request time this is a bug.
    #[error("bucket `{bucket}` is not in the routing policy")]
    UnknownBucket { bucket: BucketId },
    /// User error: no target of the bucket can serve this request (its capabilities, its
    /// size, or the side rules ruled every one out; `why` says which, in order). HTTP 422.
    #[error("no target of bucket `{bucket}` can serve this request: {why}")]
    NoEligibleTarget { bucket: BucketId, why: String },
    /// Runtime failure: every eligible target's circuit breaker is open and the policy says
    /// to reject rather than try one anyway. HTTP 503; the first may reopen after
    /// `retry_after`.
    #[error("every eligible target of bucket `{bucket}` is cooling down ({}); retry in {}s", .targets.join(", "), .retry_after.as_secs().max(1))]
    AllTargetsOpen {
        bucket: BucketId,
        targets: Vec<String>,
        retry_after: Duration,
    },
}
