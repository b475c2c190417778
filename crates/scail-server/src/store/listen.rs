//! Wake-ups across a fleet: PostgreSQL LISTEN/NOTIFY on the job, cancel and webhook channels,
//! so an idle worker claims a new job at once and a cancel reaches the running job without
//! waiting for the next poll. Polling stays as the fallback; a lost connection is re-made.

use std::time::Duration;

use sqlx::postgres::PgListener;

use super::jobs::{CHANNEL_CANCEL, CHANNEL_JOBS, CHANNEL_WEBHOOKS};
use super::{Db, Store};

/// What a notification was about.
pub enum Wake<'a> {
    NewJob,
    Cancel(&'a str),
    Webhook,
}

impl Store {
    /// Calls `on` for each notification until `stop` fires; returns at once on the embedded
    /// store (one process, which wakes its own workers).
    pub async fn listen(
        &self,
        on: impl Fn(Wake<'_>) + Send,
        mut stop: tokio::sync::watch::Receiver<bool>,
    ) {
        let Db::Pg(pool) = &self.db else {
            return;
        };
        loop {
            let mut listener = match PgListener::connect_with(pool).await {
                Ok(l) => l,
                Err(e) => {
                    tracing::warn!("listening for store notifications: {e}");
                    tokio::select! {
                        _ = tokio::time::sleep(Duration::from_secs(2)) => continue,
                        _ = stop.changed() => return,
                    }
                }
            };
            if let Err(e) = listener
                .listen_all([CHANNEL_JOBS, CHANNEL_CANCEL, CHANNEL_WEBHOOKS])
                .await
            {
                tracing::warn!("listening for store notifications: {e}");
                continue;
            }
            // Anything missed while not listening is picked up by the pollers; wake them now.
            on(Wake::NewJob);
            on(Wake::Webhook);
            loop {
                tokio::select! {
                    n = listener.try_recv() => match n {
                        Ok(Some(n)) => match n.channel() {
                            CHANNEL_JOBS => on(Wake::NewJob),
                            CHANNEL_CANCEL => on(Wake::Cancel(n.payload())),
                            _ => on(Wake::Webhook),
                        },
                        // The connection dropped: make a new one.
                        Ok(None) | Err(_) => break,
                    },
                    _ = stop.changed() => return,
                }
            }
        }
    }
}
