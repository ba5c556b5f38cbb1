//! Signed decisions: every decision answer carries, per target it names, a `feedback_token`
//! (an HMAC-SHA256 over the decision id and the target), and `POST /feedback` must bring one
//! back. A report about a decision the router never issued, or about a target that decision
//! did not name, is refused, so a caller cannot open a breaker it was never routed to.
//!
//! Stateless: any replica with the same key (`--decision-key FILE`) verifies any other's
//! tokens. Without the flag the key is random per process: feedback then has to reach the
//! replica that decided, and a restart voids outstanding tokens.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use hmac::{Hmac, KeyInit, Mac};
use rand::RngCore;
use sha2::Sha256;
use subtle::ConstantTimeEq;

use crate::decide::Decision;

/// Bytes of the HMAC kept in a token: 128 bits are far beyond guessing, and tokens stay short.
const TOKEN_BYTES: usize = 16;
/// A key shorter than this is refused: it could be guessed offline from one token.
const MIN_KEY_BYTES: usize = 16;

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// The operator's: the key file cannot be read.
    #[error("reading the decision key {path}: {source}")]
    Read {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
    /// The operator's: too short a key.
    #[error("the decision key {path} has {len} bytes; give at least {MIN_KEY_BYTES} (e.g. `head -c 32 /dev/urandom | base64 > FILE`)")]
    TooShort {
        path: std::path::PathBuf,
        len: usize,
    },
}

/// The key that signs decisions. Cheap to clone.
#[derive(Clone)]
pub struct DecisionSigner {
    key: Arc<[u8]>,
}

impl std::fmt::Debug for DecisionSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DecisionSigner(<redacted>)")
    }
}

impl DecisionSigner {
    /// The key in `path` (surrounding whitespace trimmed).
    pub fn load(path: &Path) -> Result<Self, KeyError> {
        let bytes = std::fs::read(path).map_err(|source| KeyError::Read {
            path: path.to_owned(),
            source,
        })?;
        let key = bytes.trim_ascii();
        if key.len() < MIN_KEY_BYTES {
            return Err(KeyError::TooShort {
                path: path.to_owned(),
                len: key.len(),
            });
        }
        Ok(Self::from_key(key))
    }

    pub fn from_key(key: &[u8]) -> Self {
        Self { key: key.into() }
    }

    /// A fresh random key, for a process started without `--decision-key`.
    pub fn random() -> Self {
        let mut key = [0u8; 32];
        rand::rng().fill_bytes(&mut key);
        Self::from_key(&key)
    }

    fn mac(&self, decision_id: &str, target: &str) -> [u8; TOKEN_BYTES] {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.key)
            .expect("HMAC takes a key of any length. This is a bug.");
        // Length-prefixed, so no (id, target) pair can collide with another.
        mac.update(b"router-feedback-v1");
        for part in [decision_id, target] {
            mac.update(&(part.len() as u64).to_be_bytes());
            mac.update(part.as_bytes());
        }
        let full = mac.finalize().into_bytes();
        let mut token = [0u8; TOKEN_BYTES];
        token.copy_from_slice(&full[..TOKEN_BYTES]);
        token
    }

    /// The token a report about `target` for `decision_id` must carry.
    pub fn token(&self, decision_id: &str, target: &str) -> String {
        hex::encode(self.mac(decision_id, target))
    }

    /// Whether `token` is the one this key issued for `decision_id` and `target`.
    pub fn verify(&self, decision_id: &str, target: &str, token: &str) -> bool {
        let mut offered = [0u8; TOKEN_BYTES];
        if hex::decode_to_slice(token.trim(), &mut offered).is_err() {
            return false;
        }
        self.mac(decision_id, target).ct_eq(&offered).into()
    }

    /// Tokens for every target `decision` names (primary, fallbacks, shadow).
    pub fn tokens_for(&self, decision: &Decision) -> BTreeMap<String, String> {
        let routing = &decision.routing;
        std::iter::once(&routing.target)
            .chain(&routing.fallbacks)
            .chain(routing.shadow.iter())
            .map(|t| (t.name.clone(), self.token(&decision.decision_id, &t.name)))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_is_bound_to_its_decision_target_and_key() {
        let signer = DecisionSigner::from_key(b"0123456789abcdef0123");
        let token = signer.token("01KAM", "mid-a");
        assert_eq!(token.len(), 2 * TOKEN_BYTES);
        assert!(signer.verify("01KAM", "mid-a", &token));
        assert!(!signer.verify("01KAM", "mid-b", &token), "another target");
        assert!(!signer.verify("01KAN", "mid-a", &token), "another decision");
        assert!(!signer.verify("01KA", "Mmid-a", &token), "shifted boundary");
        assert!(!DecisionSigner::random().verify("01KAM", "mid-a", &token));
        assert!(!signer.verify("01KAM", "mid-a", "zz"));
        assert_eq!(format!("{signer:?}"), "DecisionSigner(<redacted>)");
    }
}
