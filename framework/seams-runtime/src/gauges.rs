//! The gauges an operator alerts on, sampled from the databases by one
//! background task per process: what waits in each outbox, how far behind
//! each subscription is, and how many dead letters each one holds.
//!
//! They are sampled on an interval rather than at scrape time: a scrape is
//! a request, and a scrape that queried every database would cost the
//! writer's neighbours whatever the scraper's rate is. Between samples a
//! gauge is up to [`crate::system::SystemOptions::gauges_every`] old.
//!
//! "Unpublished" is what has not left the producer's hands: an outbox row
//! past the position every reader of that outbox has acknowledged. The
//! readers are the ones whose acknowledgements let the outbox be pruned:
//! the declared subscriptions (in one process, and over HTTP feeds split)
//! or, with a bus, its publisher (a row JetStream has acknowledged is
//! published). An outbox nobody reads has no backlog.
//!
//! Lag per subscription is measured at the producer, from the
//! acknowledgement the subscription's reads leave there (reading after `n`
//! acknowledges `n`, and only what is durably applied is read past), so it
//! keeps growing while a consumer is stopped, which a consumer could not
//! report about itself. With a bus, subscriptions read JetStream, not the
//! outbox, so there is no acknowledgement here to measure from: their lag
//! is JetStream's to report (its consumers' pending counts).

use std::time::Duration;

use seams_store::Db;
use tokio_util::sync::CancellationToken;

/// Outbox rows not yet published, by `database`.
pub const OUTBOX_BACKLOG: &str = "seams_outbox_backlog_events";
/// Age of the oldest unpublished outbox row, by `database`.
pub const OUTBOX_OLDEST_AGE: &str = "seams_outbox_oldest_unpublished_age_seconds";
/// Events a subscription has not yet applied, by `subscription`.
pub const SUBSCRIPTION_LAG: &str = "seams_subscription_lag_events";
/// Age of the oldest event a subscription has not yet applied, by `subscription`.
pub const SUBSCRIPTION_LAG_AGE: &str = "seams_subscription_lag_age_seconds";
/// Undelivered dead letters, by `subscription`.
pub const DEAD_LETTERS: &str = "seams_dead_letters";
/// Events set aside for their next attempt (or behind one of their key), by `subscription`.
pub const RETRYING: &str = "seams_events_retrying";

/// What one database is sampled for.
pub(crate) struct Sampled {
    pub(crate) db: Db,
    /// Whose acknowledgements mark an event published (see the module docs).
    pub(crate) readers: Vec<String>,
    /// Whether `readers` are the subscriptions themselves (no bus), so
    /// their lag is measured here.
    pub(crate) readers_are_subscriptions: bool,
    /// The subscriptions whose state (dead letters) lives in `db`.
    pub(crate) subscriptions: Vec<String>,
}

/// Samples every database in `dbs` now, then every `every`, until `stop`.
pub(crate) async fn sample_loop(dbs: Vec<Sampled>, every: Duration, stop: CancellationToken) {
    // The dead letters change only through this process (each database's
    // one writer): counted again only when their generation moved.
    let mut generations: Vec<Option<u64>> = vec![None; dbs.len()];
    loop {
        for (sampled, seen) in dbs.iter().zip(generations.iter_mut()) {
            if let Err(e) = sample(sampled, seen).await {
                tracing::debug!(capability = sampled.db.name(), error = %e, "sampling gauges failed");
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = stop.cancelled() => return,
        }
    }
}

async fn sample(s: &Sampled, seen: &mut Option<u64>) -> Result<(), sqlx::Error> {
    let now = seams_store::now_ms();
    let age = |oldest: Option<i64>| oldest.map_or(0.0, |ms| (now - ms).max(0) as f64 / 1000.0);
    let database = s.db.name().to_owned();
    let acks = s.db.acks().await?;
    let acked = |reader: &str| {
        acks.iter()
            .find(|(r, _)| r == reader)
            .map_or(0, |(_, n)| *n)
    };
    let published = s.readers.iter().map(|r| acked(r)).min();
    let (backlog, oldest) = match published {
        Some(after) => s.db.outbox_after(after).await?,
        None => (0, None),
    };
    metrics::gauge!(OUTBOX_BACKLOG, "database" => database.clone()).set(backlog as f64);
    metrics::gauge!(OUTBOX_OLDEST_AGE, "database" => database).set(age(oldest));
    if s.readers_are_subscriptions {
        for reader in &s.readers {
            let (lag, oldest) = s.db.outbox_after(acked(reader)).await?;
            metrics::gauge!(SUBSCRIPTION_LAG, "subscription" => reader.clone()).set(lag as f64);
            metrics::gauge!(SUBSCRIPTION_LAG_AGE, "subscription" => reader.clone())
                .set(age(oldest));
        }
    }
    let generation = s.db.dead_letter_generation();
    if *seen != Some(generation) {
        let counts = s.db.undelivered_dead_letters().await?;
        let retrying = s.db.retrying().await?;
        let of = |counts: &[(String, u64)], subscription: &str| {
            counts
                .iter()
                .find(|(name, _)| name == subscription)
                .map_or(0, |(_, n)| *n) as f64
        };
        for subscription in &s.subscriptions {
            metrics::gauge!(DEAD_LETTERS, "subscription" => subscription.clone())
                .set(of(&counts, subscription));
            metrics::gauge!(RETRYING, "subscription" => subscription.clone())
                .set(of(&retrying, subscription));
        }
        *seen = Some(generation);
    }
    Ok(())
}
