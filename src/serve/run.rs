//! `router serve`: bind first (so `/health` answers during start-up), build the core on a
//! blocking thread, then serve until SIGINT/SIGTERM. SIGHUP re-reads the policy file.
//!
//! Shutdown drains: the first signal turns `/ready` to 503 "draining" while requests are
//! still served for `--drain-secs` (load balancers take that long to stop sending; a second
//! signal cuts it short), then the listener closes and in-flight requests finish.
//!
//! Connections are served by `serve::listen` (header, idle and connection limits) rather
//! than `axum::serve`.

use std::time::Duration;

use anyhow::Context;

use super::auth::AdminToken;
use super::{build_app, AppState};
use crate::live::ReloadKind;
use crate::pipeline::compose::{build_core, ServiceSettings};
use crate::pipeline::PipelineOptions;

/// Settings of the HTTP edge itself, beside the core's `ServiceSettings`: what slow, greedy
/// or unknown clients may do.
#[derive(Debug, Clone)]
pub struct EdgeSettings {
    pub connections: super::listen::ConnLimits,
    pub timeouts: super::deadline::RequestTimeouts,
    /// `None`: the routing endpoints are open.
    pub client_tokens: Option<super::callers::ClientTokens>,
    /// `None`: a random key for this process (logged).
    pub decision_key: Option<super::feedback_sig::DecisionSigner>,
    pub feedback_rate: f64,
    pub feedback_burst: u32,
}

pub async fn run(settings: ServiceSettings, edge: EdgeSettings) -> anyhow::Result<()> {
    let metrics = super::metrics::install();
    let admin_token = settings.admin_secret.as_deref().and_then(AdminToken::new);
    let decision_log = super::decision_log::DecisionLog::open(&settings.decision_log)
        .context("opening the decision log")?;
    let state = AppState::starting(settings.limits, Some(metrics))
        .with_admin_token(admin_token.clone())
        .with_decision_log(decision_log)
        .with_timeouts(edge.timeouts)
        .with_client_tokens(edge.client_tokens.clone())
        .with_feedback_limiter(super::callers::RateLimiter::new(
            edge.feedback_rate,
            edge.feedback_burst,
        ));
    let state = match edge.decision_key.clone() {
        Some(signer) => state.with_signer(signer),
        None => {
            tracing::warn!("no --decision-key: decisions are signed with a random key of this process; feedback is refused by other replicas and after a restart (give every replica the same key file)");
            state
        }
    };
    if edge.client_tokens.is_none() {
        tracing::info!("routing endpoints are open (set --client-tokens to require client tokens)");
    }
    if admin_token.is_none() {
        tracing::info!("admin endpoints are off (set ROUTER_ADMIN_TOKEN or --admin-token-file to turn them on)");
    }
    let listener = tokio::net::TcpListener::bind(settings.addr)
        .await
        .with_context(|| format!("binding {}", settings.addr))?;
    let local = listener.local_addr().context("reading the bound address")?;
    tracing::info!("listening on http://{local}");

    // Start-up runs on a blocking thread; the server answers /health and /ready meanwhile.
    // The server future below waits for it through `startup_failed`.
    let (fail_tx, startup_failed) = tokio::sync::oneshot::channel::<anyhow::Error>();
    let startup_state = state.clone();
    let model = settings.model.clone();
    let paths = settings.paths.clone();
    let options = PipelineOptions {
        cache_bytes: settings.limits.cache_bytes,
        ..PipelineOptions::default()
    };
    let runtime = tokio::runtime::Handle::current();
    let (watch_tx, watch_rx) = tokio::sync::oneshot::channel();
    // Joined implicitly: on failure it signals `startup_failed`, which ends `serve`.
    tokio::task::spawn_blocking(move || {
        let phase = |p: String| startup_state.set_phase(p);
        match build_core(&model, &paths, options, &runtime, &phase) {
            Ok(core) => {
                // Edits to the policy or archetype files become reload requests.
                match crate::live::watch::watch(
                    &paths.policy,
                    &paths.archetypes,
                    core.reloads.clone(),
                ) {
                    Ok(watch) => {
                        let _ = watch_tx.send(watch);
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "file watching is off; use SIGHUP or POST /admin/reload")
                    }
                }
                startup_state.set_core(core);
                tracing::info!("ready");
            }
            Err(e) => {
                let _ = fail_tx.send(e.into());
            }
        }
    });

    // Lives as long as the process; nothing waits for it at shutdown.
    tokio::spawn(reload_on_sighup(state.clone()));
    // Holds the file watch until the runtime shuts down (dropping it stops watching); nothing
    // waits for it.
    tokio::spawn(async move {
        let _watch = watch_rx.await;
        std::future::pending::<()>().await;
    });

    let app = build_app(state.clone());
    let server = super::listen::serve(
        listener,
        app,
        edge.connections,
        shutdown_signal(state, settings.drain),
    );
    tokio::select! {
        () = server => {},
        Ok(error) = startup_failed => return Err(error.context("starting the router")),
    }
    tracing::info!("shut down cleanly");
    Ok(())
}

/// Resolves when the server should stop accepting: the first SIGINT or SIGTERM turns `/ready`
/// to 503 "draining", then requests are still served for `drain` (or until a second signal).
/// `listen::serve` then closes the listener and waits for in-flight requests before it returns.
async fn shutdown_signal(state: AppState, drain: Duration) {
    let mut signals = ShutdownSignals::listen();
    signals.next().await;
    state.start_draining();
    tracing::info!(
        drain_secs = drain.as_secs_f64(),
        "shutdown signal received; /ready answers 503 draining, requests are still served"
    );
    if !drain.is_zero() {
        tokio::select! {
            () = tokio::time::sleep(drain) => {},
            () = signals.next() => tracing::info!("second shutdown signal; ending the drain early"),
        }
    }
    tracing::info!("finishing in-flight requests");
}

/// SIGINT and SIGTERM, waited for more than once.
struct ShutdownSignals {
    #[cfg(unix)]
    terminate: Option<tokio::signal::unix::Signal>,
}

impl ShutdownSignals {
    fn listen() -> Self {
        #[cfg(unix)]
        let terminate =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => Some(s),
                Err(e) => {
                    tracing::error!(error = %e, "cannot listen for SIGTERM");
                    None
                }
            };
        Self {
            #[cfg(unix)]
            terminate,
        }
    }

    async fn next(&mut self) {
        let ctrl_c = async {
            if let Err(e) = tokio::signal::ctrl_c().await {
                tracing::error!(error = %e, "cannot listen for SIGINT");
                std::future::pending::<()>().await;
            }
        };
        #[cfg(unix)]
        let terminate = async {
            match self.terminate.as_mut() {
                Some(s) => {
                    s.recv().await;
                }
                None => std::future::pending::<()>().await,
            }
        };
        #[cfg(not(unix))]
        let terminate = std::future::pending::<()>();
        tokio::select! {
            () = ctrl_c => {},
            () = terminate => {},
        }
    }
}

/// SIGHUP asks the reloader to re-read the policy; a bad file changes nothing.
async fn reload_on_sighup(state: AppState) {
    #[cfg(unix)]
    {
        let Ok(mut hangups) =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
        else {
            tracing::warn!("cannot listen for SIGHUP; policy reload by signal is off");
            return;
        };
        while hangups.recv().await.is_some() {
            match state.reloads() {
                Some(reloads) => reloads.send(ReloadKind::Policy),
                None => tracing::warn!("SIGHUP during start-up ignored"),
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = state;
    }
}
