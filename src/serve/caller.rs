//! Who called an admin endpoint: the admin (every namespace) or a tenant's token (its own
//! namespace only). Put in the request's extensions by `auth::require_admin`.

use super::error::ApiError;
use crate::live::Tenants;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Caller {
    Admin,
    Tenant(String),
}

impl Caller {
    /// The namespace a request acts on: the one it asks for (the admin: any configured
    /// tenant, or none for the shared one; a tenant: its own), else the caller's own.
    pub fn namespace(
        &self,
        asked: Option<&str>,
        tenants: &Tenants,
    ) -> Result<Option<String>, ApiError> {
        let asked = asked.map(str::trim).filter(|t| !t.is_empty());
        if let Some(name) = asked {
            if tenants.get(name).is_none() {
                return Err(ApiError::UnknownTenant(format!(
                    "tenant `{name}` is not configured (tenants: {})",
                    tenants.names().join(", ")
                )));
            }
        }
        match (self, asked) {
            (Self::Admin, asked) => Ok(asked.map(str::to_owned)),
            (Self::Tenant(own), None) => Ok(Some(own.clone())),
            (Self::Tenant(own), Some(name)) if name == own => Ok(Some(own.clone())),
            (Self::Tenant(_), Some(_)) => Err(ApiError::Forbidden),
        }
    }

    /// Endpoints that act on every namespace at once (reload, rebuild) are the admin's.
    pub fn require_admin(&self) -> Result<(), ApiError> {
        match self {
            Self::Admin => Ok(()),
            Self::Tenant(_) => Err(ApiError::Forbidden),
        }
    }

    /// Whether this caller may see an item of `tenant`'s.
    pub fn may_see(&self, tenant: Option<&str>) -> bool {
        match self {
            Self::Admin => true,
            Self::Tenant(own) => tenant == Some(own.as_str()),
        }
    }
}
