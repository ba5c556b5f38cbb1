//! Keeps a replica's archetypes current with the shared store: LISTEN for each commit's
//! notification, and read the changes anyway every `every` (a notification is lost while
//! the listening connection is down). New changes go to the one reloader as a rebuild, which
//! re-embeds only new texts and swaps the index in without downtime.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::StreamExt;
use tokio::sync::Notify;
use tokio_postgres::{AsyncMessage, NoTls};

use super::{ReloadHandle, ReloadKind};
use crate::store::shared::CHANNEL;
use crate::store::{ArchetypeStore, StoreHealth};

/// Longest wait between reconnection attempts of the listener.
const MAX_BACKOFF: Duration = Duration::from_secs(5);

pub struct StoreSync {
    pub store: Arc<Mutex<ArchetypeStore>>,
    pub health: Arc<StoreHealth>,
    pub listen: tokio_postgres::Config,
    pub every: Duration,
    pub reloads: ReloadHandle,
}

impl StoreSync {
    /// Runs until the process ends.
    pub fn spawn(self, runtime: &tokio::runtime::Handle) {
        runtime.spawn(self.run());
    }

    async fn run(self) {
        let notified = Arc::new(Notify::new());
        let mut backoff = Duration::from_millis(100);
        loop {
            match self.listen.connect(NoTls).await {
                Ok((client, mut connection)) => {
                    let wake = Arc::clone(&notified);
                    // The connection yields notifications only while it is polled.
                    let mut driver = tokio::spawn(async move {
                        let mut messages =
                            futures_util::stream::poll_fn(move |cx| connection.poll_message(cx));
                        while let Some(Ok(message)) = messages.next().await {
                            if let AsyncMessage::Notification(_) = message {
                                wake.notify_one();
                            }
                        }
                    });
                    if let Err(e) = client.batch_execute(&format!("LISTEN {CHANNEL}")).await {
                        tracing::warn!(error = %e, "could not LISTEN on the shared store");
                    } else {
                        backoff = Duration::from_millis(100);
                        tracing::debug!("listening for shared archetype changes");
                        loop {
                            // Catch up first: changes may have been committed while we were away.
                            self.catch_up().await;
                            tokio::select! {
                                () = notified.notified() => {}
                                () = tokio::time::sleep(self.every) => {}
                                _ = &mut driver => break,
                            }
                        }
                    }
                    driver.abort();
                    drop(client);
                }
                Err(e) => {
                    self.health.failed(&e);
                    tracing::warn!(error = %e, retry_in_ms = backoff.as_millis() as u64, "shared archetype store unreachable; serving the last good index");
                }
            }
            // Still read through the pool meanwhile: it may come back before the listener.
            self.catch_up().await;
            tokio::time::sleep(backoff.min(self.every)).await;
            backoff = (backoff * 2).min(MAX_BACKOFF);
        }
    }

    /// Applies new shared changes (off the async threads: the store blocks) and queues a
    /// rebuild when there were any.
    async fn catch_up(&self) {
        let store = Arc::clone(&self.store);
        let synced = tokio::task::spawn_blocking(move || {
            let mut store = store
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            // Also what an admin call's own sync applied without rebuilding for it.
            store.sync().map(|()| store.take_unbuilt())
        })
        .await;
        match synced {
            Ok(Ok(true)) => self.reloads.send(ReloadKind::Rebuild),
            Ok(Ok(false)) => {}
            Ok(Err(e)) => tracing::debug!(error = %e, "shared archetype store catch-up failed"),
            Err(e) => tracing::error!(error = %e, "shared archetype store catch-up panicked"),
        }
    }
}
