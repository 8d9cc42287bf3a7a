//! The sender: the worker that moves recorded deliveries out through the
//! channel and records how each attempt went.
//!
//! It is the only place that talks to a channel, and it works from the
//! delivery log alone, so everything it does is visible in that log and
//! survives a restart. One step ([`Sender::try_send_due`]) takes a small
//! batch of due pending deliveries, oldest first, sends each, then records
//! the outcomes decided by [`crate::domain::after_attempt`] in one
//! transaction (one commit per batch, not per message); [`Sender::run`]
//! repeats it until shutdown, sleeping until a consumer records a delivery
//! (a [`Notify`]) or the poll interval passes (for retries that fall due).
//!
//! Sending happens before recording, so a crash in between sends the
//! batch's messages again on restart. The channel gets the delivery id as
//! the message id: Maildir then finds the file already written and does
//! nothing, SMTP repeats the same `Message-ID`. Exactly one sender should run per database: two would both
//! send the same due row (harmlessly for Maildir, as a duplicate for SMTP).

use std::sync::Arc;
use std::time::Duration;

use seams_core::Clock;
use seams_core::decl::RetryPolicy;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::channel::{Channel, DeliveryError, Message};
use crate::domain::{self, Attempt, Delivery};
use crate::service::now_ms;
use crate::store::Store;

/// The sending worker; cheap to clone (tests keep a clone to drive it).
#[derive(Clone)]
pub struct Sender {
    /// Where deliveries are read and recorded.
    store: Store,
    /// Where messages go.
    channel: Arc<dyn Channel>,
    /// Time, for "due" and for the backoff.
    clock: Arc<dyn Clock>,
    /// Attempts and backoff of each delivery.
    retry: RetryPolicy,
    /// Deliveries taken per step.
    batch: u32,
    /// Longest sleep when nothing wakes the sender.
    poll: Duration,
    /// Signalled by consumers after recording a delivery.
    wake: Arc<Notify>,
}

impl Sender {
    /// A sender over `store` through `channel`.
    pub fn new(
        store: Store,
        channel: Arc<dyn Channel>,
        clock: Arc<dyn Clock>,
        options: &crate::Options,
        wake: Arc<Notify>,
    ) -> Sender {
        Sender {
            store,
            channel,
            clock,
            retry: options.retry,
            batch: options.batch.max(1),
            poll: options.poll,
            wake,
        }
    }

    /// The channel's name.
    pub fn channel(&self) -> &'static str {
        self.channel.name()
    }

    /// Sends the deliveries due now (one batch); returns how many were
    /// attempted, 0 meaning idle. Stops between messages once `shutdown` is
    /// cancelled. Tests drive this instead of sleeping.
    pub async fn try_send_due(&self, shutdown: &CancellationToken) -> anyhow::Result<usize> {
        let due = self
            .store
            .due(now_ms(self.clock.as_ref()), self.batch)
            .await?;
        let mut outcomes = Vec::with_capacity(due.len());
        for delivery in due {
            if shutdown.is_cancelled() {
                break;
            }
            let (attempts, next) = self.send(&delivery).await;
            outcomes.push((delivery.id, attempts, next));
        }
        self.store
            .record(&outcomes, &self.clock.now_rfc3339())
            .await?;
        Ok(outcomes.len())
    }

    /// Attempts `d` once, in a span continuing the handling that recorded
    /// it; returns the attempt's number and what follows it.
    async fn send(&self, d: &Delivery) -> (u32, domain::Next) {
        let span = tracing::info_span!(
            "send",
            delivery_id = %d.id,
            attempt = d.attempts + 1,
            channel = %d.channel,
            trace_id = d.trace_id.as_deref(),
            correlation_id = d.correlation_id.as_deref(),
            otel.kind = "client",
            otel.name = tracing::field::Empty,
        );
        let parent = d
            .traceparent
            .as_deref()
            .and_then(seams_core::TraceContext::parse);
        let _ = seams_telemetry::continue_named(&span, parent.as_ref(), || {
            format!("send {}", d.channel)
        });
        self.attempt(d).instrument(span).await
    }

    async fn attempt(&self, d: &Delivery) -> (u32, domain::Next) {
        let msg = Message {
            id: d.id.clone(),
            to_email: d.recipient.clone(),
            to_name: d.recipient_name.clone(),
            subject: d.subject.clone(),
            body: d.body.clone(),
        };
        let attempt = match self.channel.deliver(&msg).await {
            Ok(()) => Attempt::Delivered,
            Err(e @ DeliveryError::Transient(_)) => Attempt::Transient(e.to_string()),
            Err(e @ DeliveryError::Permanent(_)) => Attempt::Permanent(e.to_string()),
        };
        let attempts = d.attempts.saturating_add(1);
        let next =
            domain::after_attempt(&self.retry, attempts, attempt, now_ms(self.clock.as_ref()));
        match &next {
            domain::Next::Delivered => tracing::info!("delivered"),
            domain::Next::Retry { error, .. } => {
                tracing::warn!(%error, "delivery failed; will retry")
            }
            domain::Next::Failed { error } => tracing::error!(%error, "delivery failed; gave up"),
        }
        (attempts, next)
    }

    /// Sends until `shutdown`, finishing the message in hand.
    pub async fn run(self, shutdown: CancellationToken) {
        let stop = shutdown.clone();
        seams_runtime::component::run_steps(
            "notification.sender",
            &self.wake,
            self.poll,
            stop,
            || self.try_send_due(&shutdown),
        )
        .await
    }
}
