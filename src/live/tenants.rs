//! Tenant namespaces (`--tenants FILE`). Each configured tenant serves its own snapshot: its
//! own examples plus the shared ones (unless `replace`), indexed and fitted on their own, and
//! its own policy if it names one. The encoder is shared: the model is loaded once.
//!
//! ```toml
//! [tenants.acme]
//! policy = "acme-policy.toml"   # optional, relative to this file; else the main policy
//! replace = false               # true: acme's examples only, not the shared ones
//! token_sha256 = "9f86d0…"      # optional: sha256 of a token that may manage acme only
//! ```

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::Deserialize;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::LiveState;
use crate::decide::{Policy, PolicyError};
use crate::embed::Embedder;
use crate::index::HnswParams;
use crate::pipeline::bundle::Bundle;
use crate::pipeline::indexer::{rebuild_index, Reuse};
use crate::pipeline::Snapshot;
use crate::store::ArchetypeStore;

#[derive(Debug, thiserror::Error)]
pub enum TenantsError {
    #[error("tenants file {path}: {message}")]
    File { path: String, message: String },
    #[error("tenant `{tenant}`: {source}")]
    Policy {
        tenant: String,
        #[source]
        source: PolicyError,
    },
    #[error("tenant `{tenant}`: building its index: {message}")]
    Index { tenant: String, message: String },
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TenantsFile {
    #[serde(default)]
    tenants: BTreeMap<String, TenantEntry>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TenantEntry {
    policy: Option<PathBuf>,
    #[serde(default)]
    replace: bool,
    token_sha256: Option<String>,
}

/// One tenant as the file declares it.
#[derive(Clone)]
pub struct TenantConfig {
    pub name: String,
    /// Its own policy file, resolved against the tenants file's directory.
    pub policy: Option<PathBuf>,
    /// Serve the tenant's examples only, not the shared ones.
    pub replace: bool,
    token_digest: Option<[u8; 32]>,
}

impl std::fmt::Debug for TenantConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TenantConfig")
            .field("name", &self.name)
            .field("policy", &self.policy)
            .field("replace", &self.replace)
            .field("token", &self.token_digest.map(|_| "<redacted>"))
            .finish()
    }
}

impl TenantConfig {
    /// Whether `offered` is this tenant's token (constant time).
    pub fn token_matches(&self, offered: &str) -> bool {
        let Some(digest) = &self.token_digest else {
            return false;
        };
        let offered: [u8; 32] = Sha256::digest(offered.as_bytes()).into();
        digest.ct_eq(&offered).into()
    }
}

/// Reads and checks the tenants file: names are `[a-z0-9_-]`, 1-64 characters; digests are
/// 64 hex digits; policy files exist.
pub fn load_tenants(path: &Path) -> Result<Vec<TenantConfig>, TenantsError> {
    let fail = |message: String| TenantsError::File {
        path: path.display().to_string(),
        message,
    };
    let text = std::fs::read_to_string(path).map_err(|e| fail(e.to_string()))?;
    let file: TenantsFile = toml::from_str(&text).map_err(|e| fail(e.to_string()))?;
    let dir = path.parent().unwrap_or(Path::new("."));
    file.tenants
        .into_iter()
        .map(|(name, entry)| {
            let valid_name = !name.is_empty()
                && name.len() <= 64
                && name
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-');
            if !valid_name {
                return Err(fail(format!(
                    "tenant `{name}`: names are 1-64 characters of a-z, 0-9, `_` and `-`"
                )));
            }
            let token_digest = entry
                .token_sha256
                .map(|hex_digest| {
                    hex::decode(hex_digest.trim())
                        .ok()
                        .and_then(|bytes| <[u8; 32]>::try_from(bytes).ok())
                        .ok_or_else(|| {
                            fail(format!("tenants.{name}.token_sha256: expected 64 hex digits (sha256 of the token)"))
                        })
                })
                .transpose()?;
            let policy = entry.policy.map(|p| dir.join(p));
            if let Some(p) = &policy {
                if !p.is_file() {
                    return Err(fail(format!(
                        "tenants.{name}.policy: no file at {}",
                        p.display()
                    )));
                }
            }
            Ok(TenantConfig {
                name,
                policy,
                replace: entry.replace,
                token_digest,
            })
        })
        .collect()
}

/// One configured tenant and what it serves.
pub struct Tenant {
    pub config: TenantConfig,
    pub live: Arc<LiveState>,
    /// Where its rebuilt bundles are saved for the next start.
    pub bundle_dir: PathBuf,
}

/// Every configured tenant. Empty when no tenants file is given: then `tenant` in a request
/// is free-form (canary key, logs) and everything is served from the shared namespace.
#[derive(Default)]
pub struct Tenants {
    by_name: BTreeMap<String, Tenant>,
}

impl Tenants {
    pub fn new(tenants: Vec<Tenant>) -> Self {
        Self {
            by_name: tenants
                .into_iter()
                .map(|t| (t.config.name.clone(), t))
                .collect(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.by_name.is_empty()
    }

    pub fn get(&self, name: &str) -> Option<&Tenant> {
        self.by_name.get(name)
    }

    pub fn iter(&self) -> impl Iterator<Item = &Tenant> {
        self.by_name.values()
    }

    pub fn names(&self) -> Vec<&str> {
        self.by_name.keys().map(String::as_str).collect()
    }

    /// The tenant whose token `offered` is, if any.
    pub fn token_owner(&self, offered: &str) -> Option<&str> {
        // Every digest is compared, so timing does not tell which tenant matched.
        let mut owner = None;
        for tenant in self.by_name.values() {
            if tenant.config.token_matches(offered) {
                owner = Some(tenant.config.name.as_str());
            }
        }
        owner
    }
}

/// Where `name`'s rebuilt bundles are saved, under the data directory.
pub fn tenant_bundle_dir(data_dir: &Path, name: &str) -> PathBuf {
    data_dir.join("tenants").join(name).join("index")
}

/// Loads a tenant at start: its policy (validated like the main one), and its index — the
/// shared bundle itself when the tenant adds nothing, its saved bundle when that matches,
/// else one built reusing the shared bundle's vectors and the store's embedding cache (only
/// the tenant's texts the fleet never embedded run through the model).
pub fn start_tenant(
    config: TenantConfig,
    main_policy: &Path,
    store: &ArchetypeStore,
    shared: &Arc<Bundle>,
    embedder: &dyn Embedder,
    data_dir: &Path,
) -> Result<Tenant, TenantsError> {
    let tenant = config.name.clone();
    let policy =
        Policy::load(config.policy.as_deref().unwrap_or(main_policy)).map_err(|source| {
            TenantsError::Policy {
                tenant: tenant.clone(),
                source,
            }
        })?;
    let examples = store.effective(Some(&tenant), config.replace);
    let sha = examples.content_sha256();
    let bundle_dir = tenant_bundle_dir(data_dir, &tenant);
    let failed = |message: String| TenantsError::Index {
        tenant: tenant.clone(),
        message,
    };
    let bundle = if shared.manifest().examples_sha256 == sha {
        Arc::clone(shared)
    } else {
        match Bundle::load(&bundle_dir, embedder.fingerprint()) {
            Ok(saved) if saved.manifest().examples_sha256 == sha => Arc::new(saved),
            _ => {
                let mut built = rebuild_index(
                    &examples,
                    embedder,
                    HnswParams::default(),
                    Reuse::previous(shared).with_cache(store.vector_cache().as_deref()),
                    &|_, _| {},
                )
                .map_err(|e| failed(e.to_string()))?;
                if let Err(e) = built.save(&bundle_dir) {
                    tracing::warn!(tenant, error = %e, "tenant index built but not saved");
                }
                Arc::new(built)
            }
        }
    };
    let snapshot = Snapshot::new(Arc::new(policy), bundle, embedder.dims())
        .map_err(|e| failed(e.to_string()))?;
    tracing::info!(
        tenant,
        version = snapshot.bundle.version(),
        examples = examples.len(),
        "tenant ready"
    );
    Ok(Tenant {
        live: Arc::new(LiveState::for_tenant(snapshot, embedder.dims(), &tenant)),
        config,
        bundle_dir,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(text: &str) -> Result<Vec<TenantConfig>, TenantsError> {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("own.toml"), "x").unwrap();
        let path = dir.path().join("tenants.toml");
        std::fs::write(&path, text).unwrap();
        load_tenants(&path)
    }

    #[test]
    fn tenants_are_read_and_checked() {
        let token = hex::encode(Sha256::digest(b"acme-secret"));
        let tenants = load(&format!(
            "[tenants.acme]\npolicy = \"own.toml\"\nreplace = true\ntoken_sha256 = \"{token}\"\n[tenants.beta]\n"
        ))
        .unwrap();
        assert_eq!(tenants.len(), 2);
        assert!(tenants[0].replace && tenants[0].policy.is_some());
        assert!(tenants[0].token_matches("acme-secret"));
        assert!(!tenants[0].token_matches("acme-secre"));
        assert!(!tenants[1].token_matches(""));
        assert!(!format!("{:?}", tenants[0]).contains(&token));
        for (bad, says) in [
            ("[tenants.Acme]\n", "names are"),
            ("[tenants.acme]\ntoken_sha256 = \"abc\"\n", "64 hex digits"),
            ("[tenants.acme]\npolicy = \"missing.toml\"\n", "no file"),
            ("[tenants.acme]\nreplce = true\n", "unknown field"),
        ] {
            let err = load(bad).err().unwrap().to_string();
            assert!(err.contains(says), "{bad}: {err}");
        }
    }
}
