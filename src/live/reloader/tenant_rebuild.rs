//! Rebuilding one tenant's index after the shared one (a part of the reloader's run).

use std::sync::Arc;

use super::{lock, ReloadFailure, Reloader};
use crate::live::Tenant;
use crate::pipeline::indexer::{rebuild_index_fitted, Reuse};

impl Reloader {
    /// A tenant's index: the shared bundle itself when the tenant adds nothing to it, else
    /// its own, re-embedding only texts its current index lacks.
    pub(super) fn rebuild_tenant(&self, tenant: &Tenant, refit: bool) -> Result<(), ReloadFailure> {
        let failed = |e: &dyn std::fmt::Display| ReloadFailure::Rebuild(e.to_string());
        let examples =
            lock(&self.store).effective(Some(&tenant.config.name), tenant.config.replace);
        let sha = examples.content_sha256();
        let current = tenant.live.snapshot();
        if !refit && current.bundle.manifest().examples_sha256 == sha {
            return Ok(());
        }
        let shared = self.live.snapshot();
        if !refit && shared.bundle.manifest().examples_sha256 == sha {
            tenant
                .live
                .swap_bundle(Arc::clone(&shared.bundle))
                .map_err(|e| failed(&e))?;
            return Ok(());
        }
        let fit = lock(&self.fit).clone();
        let (mut index, _) = rebuild_index_fitted(
            &examples,
            self.embedder.as_ref(),
            self.hnsw,
            Reuse::previous(&current.bundle).with_cache(self.vectors.as_deref()),
            &fit,
            &|_, _| {},
        )
        .map_err(|e| failed(&e))?;
        tenant.live.check_bundle(&index).map_err(|e| failed(&e))?;
        if let Err(e) = index.save(&tenant.bundle_dir) {
            let message = format!("the rebuilt tenant index could not be saved: {e}");
            tenant.live.record_error(message.clone());
            return Err(failed(&message));
        }
        tenant
            .live
            .swap_bundle(Arc::new(index))
            .map_err(|e| failed(&e))?;
        Ok(())
    }
}
