//! A consumer under test, fed by a stand-in producer: what every
//! capability's consumer tests need, written once.
//!
//! [`Harness`] gives a subscription a producer of its own (a throwaway
//! database whose outbox the test publishes into), delivers through a
//! real [`Relay`] (cursor, inbox, retries, dead letters, per-key order, as
//! in production), hands an event again directly (as after a crash before
//! the cursor was saved), and reads what the consumer published in turn.
//!
//! ```no_run
//! # async fn example(subscription: seams_runtime::Subscription, db: seams_store::Db,
//! #                  event: impl seams_core::Event) -> anyhow::Result<()> {
//! let h = seams_testkit::consumer::Harness::new(subscription, db).await?;
//! let sent = h.publish(&event).await?;
//! assert_eq!(h.deliver().await?, 1);
//! h.redeliver(&sent).await?; // applied before: a no-op
//! let published = h.published().await?;
//! # Ok(()) }
//! ```

use anyhow::Context;
use seams_core::{CallContext, Clock, Envelope, Event};
use seams_runtime::relay::{Relay, RelayOptions};
use seams_runtime::{HandlerError, Subscription};
use seams_store::{Db, DeadLetter, Migrations};
use tokio_util::sync::CancellationToken;

/// The stand-in producer keeps only the framework's tables.
static NO_MIGRATIONS: Migrations = Migrations {
    sqlite: sqlx::migrate!("./no-migrations/sqlite"),
    postgres: sqlx::migrate!("./no-migrations/postgres"),
};

/// A subscription under test, its consumer's database, and a stand-in
/// producer.
pub struct Harness {
    _dir: tempfile::TempDir,
    producer: Db,
    consumer: Db,
    subscription: Subscription,
    options: RelayOptions,
    shutdown: CancellationToken,
}

impl Harness {
    /// `subscription` consuming into `consumer`, fed by a new stand-in for
    /// its producer.
    pub async fn new(subscription: Subscription, consumer: Db) -> anyhow::Result<Harness> {
        let dir = tempfile::tempdir().context("a directory for the stand-in producer")?;
        let producer = Db::open(
            &dir.path().join("producer.db"),
            subscription.producer,
            &NO_MIGRATIONS,
        )
        .await?;
        Ok(Harness {
            _dir: dir,
            producer,
            consumer,
            subscription,
            options: RelayOptions::default(),
            shutdown: CancellationToken::new(),
        })
    }

    /// Delivers with `options` from now on (chaos: duplicates and delays).
    pub fn with_options(mut self, options: RelayOptions) -> Harness {
        self.options = options;
        self
    }

    /// Publishes `event` from the stand-in producer, as the start of a new
    /// chain; returns its envelope (id, sequence).
    pub async fn publish<E: Event>(&self, event: &E) -> anyhow::Result<Envelope> {
        let mut env = Envelope::wrap(
            event,
            uuid::Uuid::now_v7().to_string(),
            seams_core::SystemClock.now_rfc3339(),
            &CallContext::new_root(),
        )?;
        let mut tx = self.producer.begin().await?;
        env.sequence = Some(tx.publish(&env).await?);
        tx.commit().await?;
        Ok(env)
    }

    /// Delivers everything published so far through a relay, retries and
    /// dead letters included; how many events it read.
    pub async fn deliver(&self) -> anyhow::Result<usize> {
        Relay::new(
            self.subscription.clone(),
            self.consumer.clone(),
            self.producer.clone(),
            self.options,
        )
        .try_run_once(&self.shutdown)
        .await
    }

    /// Hands `env` to its handler once more, as after a crash before the
    /// cursor was saved: a no-op if it was applied.
    pub async fn redeliver(&self, env: &Envelope) -> Result<(), HandlerError> {
        self.subscription.deliver(&self.consumer, env.clone()).await
    }

    /// What the consumer published, oldest first.
    pub async fn published(&self) -> anyhow::Result<Vec<Envelope>> {
        Ok(self.consumer.read_outbox(0, u32::MAX).await?)
    }

    /// The subscription's dead letters, oldest first.
    pub async fn dead_letters(&self) -> anyhow::Result<Vec<DeadLetter>> {
        Ok(self.consumer.dead_letters().await?)
    }

    /// Whether the subscription's inbox holds `env`: it was applied.
    pub async fn applied(&self, env: &Envelope) -> anyhow::Result<bool> {
        Ok(self
            .consumer
            .inbox_contains(&self.subscription.name(), &env.id)
            .await?)
    }
}

#[cfg(test)]
mod tests;
