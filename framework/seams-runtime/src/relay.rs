//! Delivery of committed events from a producer's outbox to a subscriber.
//!
//! One loop per subscription reads the producer's feed after the
//! subscriber's durable cursor, in commit order, and hands each event of a
//! handled type to its handler. The handler applies it in the consumer's own
//! transaction with the event id recorded in the inbox, so redelivery (after
//! a crash, a retry, or chaos) has no second effect. A failing handler is
//! retried with the backoff its event's contract declares (the bus owns
//! those retries); after the last attempt, or at once for a permanent
//! failure, the event is parked as a dead letter with its error and
//! attempts. Where the contract declares per-key ordering, later events with
//! the same key are parked behind it rather than overtaking it.
//!
//! In one process this is still asynchronous and at-least-once: the cursor is
//! saved after the batch, so a crash redelivers, and [`Chaos`] can add
//! duplicates and delays on purpose, so a consumer that depends on
//! exactly-once or immediate delivery fails in the monolith first.

use std::sync::Arc;
use std::time::Duration;

use rand::Rng;
use seams_core::Envelope;
use seams_core::decl::{Ordering, Retries, RetryPolicy};
use seams_store::Db;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::component::{HandlerError, Subscription};
use crate::consistency::Consistency;
use crate::feed::{InProcessFeed, SharedFeed};

/// Faults injected into delivery, for tests and `shop up --chaos`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Chaos {
    /// Probability that an event is delivered a second time.
    pub duplicate: f64,
    /// Lower bound of the random delay before each delivery (a slowed-down consumer).
    pub min_delay: Duration,
    /// Upper bound of the random delay before each delivery.
    pub max_delay: Duration,
}

impl Chaos {
    /// Duplicates a third of all deliveries and delays each by up to 50 ms.
    pub const DEFAULT: Chaos = Chaos {
        duplicate: 0.33,
        min_delay: Duration::ZERO,
        max_delay: Duration::from_millis(50),
    };
}

/// Tuning of delivery loops.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RelayOptions {
    /// Events read per batch.
    pub batch: u32,
    /// Longest wait for new events when no commit wakes the loop (a safety net).
    pub idle_poll: Duration,
    /// Injected faults, if any.
    pub chaos: Option<Chaos>,
}

impl Default for RelayOptions {
    fn default() -> Self {
        RelayOptions {
            batch: 256,
            idle_poll: Duration::from_secs(1),
            chaos: None,
        }
    }
}

/// What happened to one event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Applied (or skipped: not a handled type, or already in the inbox).
    Delivered,
    /// Parked as a dead letter.
    Parked,
    /// Shutdown came first; the event stays undelivered.
    Interrupted,
}

/// One subscription's delivery loop.
pub struct Relay {
    sub: Subscription,
    name: String,
    consumer: Db,
    producer: SharedFeed,
    options: RelayOptions,
    consistency: Consistency,
}

impl Relay {
    /// A loop delivering the events in `producer`'s outbox (in this process)
    /// to `sub`, whose state lives in `consumer`.
    pub fn new(sub: Subscription, consumer: Db, producer: Db, options: RelayOptions) -> Relay {
        Relay::with_feed(
            sub,
            consumer,
            Arc::new(InProcessFeed::new(producer)),
            options,
        )
    }

    /// A loop delivering the events of `feed` (wherever it is) to `sub`.
    pub fn with_feed(
        sub: Subscription,
        consumer: Db,
        feed: SharedFeed,
        options: RelayOptions,
    ) -> Relay {
        Relay {
            name: sub.name(),
            sub,
            consumer,
            producer: feed,
            options,
            consistency: Consistency::new(),
        }
    }

    /// Records lags and positions in `consistency` (the system's registry).
    pub fn with_consistency(mut self, consistency: Consistency) -> Relay {
        self.consistency = consistency;
        self
    }

    /// Delivers everything currently in the feed; returns how many events were read
    /// (0 means idle). Tests drive this instead of sleeping.
    pub async fn try_run_once(&self, shutdown: &CancellationToken) -> anyhow::Result<usize> {
        self.step(shutdown, Duration::ZERO).await
    }

    /// One batch: replays first, then the feed after the cursor, waiting up to
    /// `wait` for new events. Only the wait is cut short by `shutdown`; an
    /// event in hand is finished.
    async fn step(&self, shutdown: &CancellationToken, wait: Duration) -> anyhow::Result<usize> {
        let replayed = self.try_replay(shutdown).await?;
        let cursor = self.consumer.cursor(&self.name).await?;
        let batch = tokio::select! {
            batch = self.producer.read(&self.name, cursor, self.options.batch, wait) => batch?,
            _ = shutdown.cancelled() => return Ok(replayed),
        };
        let mut position = cursor;
        let mut read = 0;
        for env in &batch {
            match self.deliver(env, shutdown).await? {
                Outcome::Interrupted => break,
                Outcome::Delivered | Outcome::Parked => {
                    position = env.sequence.unwrap_or(position);
                    read += 1;
                }
            }
        }
        // The next read after `position` acknowledges it to the producer.
        if position > cursor {
            self.consumer.set_cursor(&self.name, position).await?;
        }
        self.consistency.advance(&self.name, position);
        Ok(read + replayed)
    }

    /// Runs until `shutdown`, finishing the event in hand.
    pub async fn run(self: Arc<Self>, shutdown: CancellationToken) {
        while !shutdown.is_cancelled() {
            // An empty read waits (long-polls) up to `idle_poll` for new events.
            if let Err(e) = self.step(&shutdown, self.options.idle_poll).await {
                tracing::error!(subscription = %self.name, error = format!("{e:#}"), "delivery loop failed; retrying");
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                    _ = shutdown.cancelled() => {}
                }
            }
        }
        tracing::debug!(subscription = %self.name, "delivery stopped");
    }

    /// Delivers the dead letters whose replay was requested, oldest first; a
    /// letter still behind an older undelivered one with the same key waits.
    /// Returns how many were delivered.
    pub async fn try_replay(&self, shutdown: &CancellationToken) -> anyhow::Result<usize> {
        let mut delivered = 0;
        loop {
            let mut progressed = false;
            for dl in self.consumer.replay_requested(&self.name).await? {
                let env = &dl.envelope;
                if self
                    .consumer
                    .parked_before(&self.name, &env.subject, dl.id)
                    .await?
                    .is_some()
                {
                    continue;
                }
                let outcome = match self
                    .sub
                    .handles
                    .iter()
                    .find(|h| h.event.event_type == env.event_type)
                {
                    Some(handles) => self.attempt(handles, env, shutdown).await?,
                    None => Outcome::Delivered,
                };
                match outcome {
                    Outcome::Delivered => {
                        tracing::info!(subscription = %self.name, dead_letter = dl.id, event = %env.id, "replayed");
                        self.consumer.mark_replayed(dl.id).await?;
                        delivered += 1;
                        progressed = true;
                    }
                    Outcome::Parked => {}
                    Outcome::Interrupted => return Ok(delivered),
                }
            }
            // A delivered replay queues the letters parked behind it; go again for those.
            if !progressed {
                return Ok(delivered);
            }
        }
    }

    async fn deliver(
        &self,
        env: &Envelope,
        shutdown: &CancellationToken,
    ) -> anyhow::Result<Outcome> {
        let Some(handles) = self
            .sub
            .handles
            .iter()
            .find(|h| h.event.event_type == env.event_type)
        else {
            return Ok(Outcome::Delivered);
        };
        if let Ordering::PerKey { .. } = handles.event.ordering
            && let Some(blocker) = self
                .consumer
                .parked_for_subject(&self.name, &env.subject)
                .await?
        {
            let reason = format!(
                "waiting behind dead letter #{blocker} with the same key (per-key ordering)"
            );
            tracing::warn!(subscription = %self.name, event = %env.id, %reason, "parking");
            self.consumer.park(&self.name, env, &reason, 0).await?;
            return Ok(Outcome::Parked);
        }
        self.attempt(handles, env, shutdown).await
    }

    /// Every attempt the event's contract allows, in the event's span.
    async fn attempt(
        &self,
        handles: &crate::component::Handles,
        env: &Envelope,
        shutdown: &CancellationToken,
    ) -> anyhow::Result<Outcome> {
        let policy = match handles.event.retries {
            Retries::Bus(p) => p,
            Retries::Caller(_) | Retries::Nobody => RetryPolicy {
                max_attempts: 1,
                ..RetryPolicy::STANDARD
            },
        };
        let span = tracing::info_span!(
            "deliver",
            subscription = %self.name,
            event_type = %env.event_type,
            event_id = %env.id,
            correlation_id = %env.correlationid,
        );
        self.attempt_all(handles, policy, env, shutdown)
            .instrument(span)
            .await
    }

    async fn attempt_all(
        &self,
        handles: &crate::component::Handles,
        policy: RetryPolicy,
        env: &Envelope,
        shutdown: &CancellationToken,
    ) -> anyhow::Result<Outcome> {
        let mut last_error = String::new();
        let mut attempt = 0;
        while attempt < policy.max_attempts {
            attempt += 1;
            let mut wait = policy.backoff(attempt);
            if let Some(chaos) = self.options.chaos {
                wait +=
                    chaos.min_delay + random_delay(chaos.max_delay.saturating_sub(chaos.min_delay));
            }
            if !wait.is_zero() {
                tokio::select! {
                    _ = tokio::time::sleep(wait) => {}
                    _ = shutdown.cancelled() => return Ok(Outcome::Interrupted),
                }
            }
            match (handles.handler)(env.clone()).await {
                Ok(()) => {
                    metrics::counter!("seams_events_applied_total", "subscription" => self.name.clone())
                        .increment(1);
                    self.consistency
                        .record_hop(&env.event_type, self.sub.consumer, &env.time);
                    if let Some(chaos) = self.options.chaos
                        && rand::rng().random_bool(chaos.duplicate.clamp(0.0, 1.0))
                    {
                        // The duplicate must be a no-op thanks to the inbox; its result is only logged.
                        let dup = (handles.handler)(env.clone()).await;
                        tracing::debug!(result = ?dup, "chaos: delivered a duplicate");
                    }
                    return Ok(Outcome::Delivered);
                }
                Err(HandlerError::Permanent(reason)) => {
                    tracing::error!(%reason, attempt, "event rejected; dead-lettered");
                    metrics::counter!("seams_events_dead_lettered_total", "subscription" => self.name.clone())
                        .increment(1);
                    self.consumer
                        .park(&self.name, env, &reason, attempt)
                        .await?;
                    return Ok(Outcome::Parked);
                }
                Err(HandlerError::Transient(reason)) if !self.consumer.reachable().await => {
                    // The consumer's own database is down (a PostgreSQL
                    // restart): not the event's fault, and no attempt is
                    // spent on it; the event waits, then is tried again.
                    tracing::warn!(%reason, "the consumer's database is unreachable; waiting for it");
                    if !self.wait_reachable(shutdown).await {
                        return Ok(Outcome::Interrupted);
                    }
                    attempt -= 1;
                }
                Err(HandlerError::Transient(reason)) => {
                    tracing::warn!(%reason, attempt, max = policy.max_attempts, "delivery failed");
                    metrics::counter!("seams_event_failures_total", "subscription" => self.name.clone())
                        .increment(1);
                    last_error = reason;
                }
            }
        }
        tracing::error!(error = %last_error, attempts = policy.max_attempts, "retries exhausted; dead-lettered");
        metrics::counter!("seams_events_dead_lettered_total", "subscription" => self.name.clone())
            .increment(1);
        self.consumer
            .park(&self.name, env, &last_error, policy.max_attempts)
            .await?;
        Ok(Outcome::Parked)
    }
}

impl Relay {
    /// Waits until the consumer's database answers again; `false` if
    /// shutdown came first.
    async fn wait_reachable(&self, shutdown: &CancellationToken) -> bool {
        loop {
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_millis(250)) => {}
                _ = shutdown.cancelled() => return false,
            }
            if self.consumer.reachable().await {
                return true;
            }
        }
    }
}

fn random_delay(max: Duration) -> Duration {
    if max.is_zero() {
        return Duration::ZERO;
    }
    Duration::from_micros(rand::rng().random_range(0..=max.as_micros() as u64))
}

#[cfg(test)]
mod tests;
