//! The relay's retries, aside from the feed: an event whose first attempt
//! failed for now is set aside with the time of its next attempt
//! ([`seams_store::Retry`]) and the relay reads on, so a failing event holds
//! up only its own key. Each step tries the events that are due, oldest
//! first; under per-key ordering only the oldest of a key (its head) is
//! tried, and the others of that key wait until it is delivered. A head
//! whose attempts are spent, or that fails permanently, becomes a dead
//! letter with those behind it parked behind it, as if it had been retried
//! in place.

use std::collections::HashSet;
use std::sync::PoisonError;
use std::time::Duration;

use seams_core::Envelope;
use seams_core::decl::{Ordering, RetryPolicy};
use seams_store::now_ms;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use super::{Outcome, Relay, handed, retry_policy};
use crate::component::HandlerError;

/// Events set aside looked at per step at most.
const PER_STEP: u32 = 256;

impl Relay {
    /// Sets `env`, whose first attempt failed with `reason`, aside for its
    /// next attempt under `policy`.
    pub(super) async fn set_aside(
        &self,
        env: &Envelope,
        policy: &RetryPolicy,
        reason: &str,
    ) -> anyhow::Result<Outcome> {
        let wait = policy.backoff(2);
        tracing::warn!(%reason, attempt = 1, max = policy.max_attempts, retry_in = ?wait, "delivery failed; set aside for retry");
        metrics::counter!("seams_event_failures_total", "subscription" => self.name.clone())
            .increment(1);
        self.consumer
            .defer(&self.name, env, 1, due(wait), reason)
            .await?;
        Ok(Outcome::Deferred)
    }

    /// How long until the earliest event set aside is due (zero if it is),
    /// at most a second; `None` when nothing is set aside.
    pub(super) fn until_next_retry(&self) -> Option<Duration> {
        let due = (*self
            .next_retry
            .lock()
            .unwrap_or_else(PoisonError::into_inner))?;
        let ms = due.saturating_sub(now_ms()).clamp(0, 1_000);
        Some(Duration::from_millis(ms as u64))
    }

    /// Tries every event set aside that is due, oldest first, one head per
    /// key under per-key ordering. Returns how many were delivered.
    pub(super) async fn try_retries(&self, shutdown: &CancellationToken) -> anyhow::Result<usize> {
        let now = now_ms();
        let mut delivered = 0;
        let mut blocked: HashSet<String> = HashSet::new();
        let mut next: Option<i64> = None;
        for retry in self.consumer.retries(&self.name, PER_STEP).await? {
            let env = &retry.envelope;
            let Some(handles) = self.handles_for(env) else {
                // No longer handled here (a narrower build): nothing to do.
                self.consumer.retry_delivered(retry.id).await?;
                continue;
            };
            let per_key = matches!(handles.event.ordering, Ordering::PerKey { .. });
            if per_key && blocked.contains(&env.subject) {
                continue;
            }
            if retry.next_attempt_at_ms > now || shutdown.is_cancelled() {
                next = Some(next.map_or(retry.next_attempt_at_ms, |n| {
                    n.min(retry.next_attempt_at_ms)
                }));
                if per_key {
                    blocked.insert(env.subject.clone());
                }
                continue;
            }
            let policy = retry_policy(handles);
            let attempt = retry.attempts.saturating_add(1);
            let (span, own) = self.traced(env);
            let result = (handles.handler)(handed(env, own), self.inbox.clone())
                .instrument(span.clone())
                .await;
            let step = async {
                match result {
                    Ok(()) => {
                        self.applied(handles, env).await;
                        self.consumer.retry_delivered(retry.id).await?;
                        tracing::info!(attempt, "delivered on retry");
                        anyhow::Ok(Step::Delivered)
                    }
                    Err(HandlerError::Transient(reason)) if !self.consumer.reachable().await => {
                        // The consumer's own database is down: no attempt
                        // is spent on it; tried again at the next step.
                        tracing::warn!(%reason, "the consumer's database is unreachable; the retry waits");
                        Ok(Step::Later(now))
                    }
                    Err(HandlerError::Transient(reason)) if attempt < policy.max_attempts => {
                        let wait = policy.backoff(attempt + 1);
                        tracing::warn!(%reason, attempt, max = policy.max_attempts, retry_in = ?wait, "delivery failed");
                        metrics::counter!("seams_event_failures_total", "subscription" => self.name.clone())
                            .increment(1);
                        let at = due(wait);
                        self.consumer
                            .retry_failed(retry.id, attempt, at, &reason)
                            .await?;
                        Ok(Step::Later(at))
                    }
                    Err(HandlerError::Transient(reason)) => {
                        tracing::error!(error = %reason, attempts = attempt, "retries exhausted; dead-lettered");
                        self.give_up(retry.id, attempt, &reason, per_key).await?;
                        Ok(Step::GaveUp)
                    }
                    Err(HandlerError::Permanent(reason)) => {
                        tracing::error!(%reason, attempt, "event rejected; dead-lettered");
                        self.give_up(retry.id, attempt, &reason, per_key).await?;
                        Ok(Step::GaveUp)
                    }
                }
            }
            .instrument(span)
            .await?;
            match step {
                Step::Delivered => delivered += 1,
                Step::Later(at) => {
                    next = Some(next.map_or(at, |n| n.min(at)));
                    if per_key {
                        blocked.insert(env.subject.clone());
                    }
                }
                // Those behind it went with it into the dead letters.
                Step::GaveUp if per_key => {
                    blocked.insert(env.subject.clone());
                }
                Step::GaveUp => {}
            }
        }
        *self
            .next_retry
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = next;
        Ok(delivered)
    }

    /// Makes retry `id` a dead letter after `attempts`; under per-key
    /// ordering, with the events of its key behind it parked behind it.
    async fn give_up(
        &self,
        id: i64,
        attempts: u32,
        reason: &str,
        per_key: bool,
    ) -> anyhow::Result<()> {
        metrics::counter!("seams_events_dead_lettered_total", "subscription" => self.name.clone())
            .increment(1);
        self.consumer
            .retry_gave_up(&self.name, id, attempts, reason, per_key)
            .await?;
        Ok(())
    }
}

/// What one attempt of an event set aside came to.
enum Step {
    Delivered,
    /// Failed for now: due again then.
    Later(i64),
    /// A dead letter now.
    GaveUp,
}

/// The time (ms since the epoch) `wait` from now.
fn due(wait: Duration) -> i64 {
    now_ms().saturating_add(i64::try_from(wait.as_millis()).unwrap_or(i64::MAX))
}
