//! `router serve`: bind first (so `/health` answers during start-up), build the core on a
//! blocking thread, then serve until SIGINT/SIGTERM. SIGHUP re-reads the policy file.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context;

use super::startup::{build_core, IndexSource, ModelSettings};
use super::{build_app, AppState, Limits};

/// Settings of `router serve`.
#[derive(Debug, Clone)]
pub struct ServeSettings {
    pub addr: SocketAddr,
    pub archetypes: PathBuf,
    pub policy: PathBuf,
    pub data_dir: PathBuf,
    /// A bundle to serve instead of building from the archetypes.
    pub index: Option<PathBuf>,
    pub model: ModelSettings,
    pub limits: Limits,
}

pub async fn run(settings: ServeSettings) -> anyhow::Result<()> {
    let metrics = super::metrics::install();
    let state = AppState::starting(settings.limits, Some(metrics));
    let listener = tokio::net::TcpListener::bind(settings.addr)
        .await
        .with_context(|| format!("binding {}", settings.addr))?;
    let local = listener.local_addr().context("reading the bound address")?;
    tracing::info!("listening on http://{local}");

    // Start-up runs on a blocking thread; the server answers /health and /ready meanwhile.
    // The server future below waits for it through `startup_failed`.
    let (fail_tx, startup_failed) = tokio::sync::oneshot::channel::<anyhow::Error>();
    let startup_state = state.clone();
    let startup_settings = settings.clone();
    // Joined implicitly: on failure it signals `startup_failed`, which ends `serve`.
    tokio::task::spawn_blocking(move || {
        let index_source = match &startup_settings.index {
            Some(dir) => IndexSource::Bundle(dir.clone()),
            None => IndexSource::Archetypes {
                dir: startup_settings.archetypes.clone(),
                data_dir: startup_settings.data_dir.clone(),
            },
        };
        let phase = |p: String| startup_state.set_phase(p);
        match build_core(
            &startup_settings.model,
            &startup_settings.policy,
            &index_source,
            &phase,
        ) {
            Ok(core) => {
                startup_state.set_core(core);
                tracing::info!("ready");
            }
            Err(e) => {
                let _ = fail_tx.send(e);
            }
        }
    });

    let reload_state = state.clone();
    let policy_path = settings.policy.clone();
    // Lives as long as the process; nothing waits for it at shutdown.
    tokio::spawn(reload_on_sighup(reload_state, policy_path));

    let app = build_app(state);
    let server = axum::serve(listener, app).with_graceful_shutdown(shutdown_signal());
    tokio::select! {
        result = server => result.context("serving HTTP")?,
        Ok(error) = startup_failed => return Err(error.context("starting the router")),
    }
    tracing::info!("shut down cleanly");
    Ok(())
}

/// Resolves on SIGINT or SIGTERM; in-flight requests then finish before `serve` returns.
async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(e) = tokio::signal::ctrl_c().await {
            tracing::error!(error = %e, "cannot listen for SIGINT");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
    tracing::info!("shutdown signal received; finishing in-flight requests");
}

/// SIGHUP re-reads the policy; a bad file changes nothing (the live state keeps the last good).
async fn reload_on_sighup(state: AppState, policy_path: PathBuf) {
    #[cfg(unix)]
    {
        let Ok(mut hangups) =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
        else {
            tracing::warn!("cannot listen for SIGHUP; policy reload by signal is off");
            return;
        };
        while hangups.recv().await.is_some() {
            let Some(live) = state.live().cloned() else {
                tracing::warn!("SIGHUP during start-up ignored");
                continue;
            };
            let path = policy_path.clone();
            let outcome = tokio::task::spawn_blocking(move || live.reload_policy(&path)).await;
            let label = match outcome {
                Ok(Ok(_)) => "ok",
                Ok(Err(_)) | Err(_) => "error",
            };
            ::metrics::counter!(super::metrics::RELOAD_TOTAL, "kind" => "policy", "outcome" => label).increment(1);
        }
    }
    #[cfg(not(unix))]
    {
        let _ = (state, policy_path);
    }
}
