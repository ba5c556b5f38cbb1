//! The routing policy file: [`Policy::load`] reads it, serde parses it into the raw types that
//! mirror the TOML (`raw`: unknown fields rejected), and `validate` turns those into the
//! validated types (`validated`), the only ones the rest of the code sees. Every error names
//! the file, and the path inside it when the TOML is well-formed (`buckets.code.targets[1]`).
//! The catalogue and the side rules validate their own sections (`catalogue`, `rules`).

mod raw;
mod validate;
mod validate_bucket;
mod validated;

use std::path::Path;

pub use validate::POLICY_SCHEMA_VERSION;
pub use validated::{
    BucketPolicy, Escalation, Matching, Policy, Threshold, Trigger, WhenUncertain,
    DEFAULT_UNCERTAIN_MARGIN, MAX_TARGETS,
};

use crate::decide::error::PolicyError;

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
        let raw: raw::RawPolicy = toml::from_str(text).map_err(|e| PolicyError::Parse {
            file: file.to_owned(),
            message: e.to_string().trim_end().to_owned(),
        })?;
        validate::validate(raw, file)
    }
}

#[cfg(test)]
mod tests;
