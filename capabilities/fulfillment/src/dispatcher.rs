//! The dispatcher: the worker that sends created shipments out of the
//! warehouse and measures how long a paid invoice waited for that.
//!
//! In a real warehouse this step would book a carrier and print a label;
//! here dispatching *is* the state change: the shipment becomes
//! `dispatched` and `shipment-dispatched` is published, in one transaction.
//! It is kept apart from the invoice-paid consumer all the same, so a slow
//! carrier would never hold up billing's event feed, and the shape is the
//! one a real integration would need.
//!
//! One step ([`Dispatcher::try_dispatch_due`]) takes a small batch of
//! `created` shipments, oldest first, and dispatches each; after each commit
//! it records the lag from billing's payment commit (the invoice-paid
//! envelope's time) to now under [`crate::DISPATCH_LAG`], the measure of
//! the `paid-invoice-dispatched` invariant. [`Dispatcher::run`] repeats the
//! step until shutdown, sleeping until the invoice-paid consumer creates a
//! shipment (a [`Notify`]) or the poll interval passes (a safety net, e.g.
//! for shipments created before a restart). Two dispatchers on one database
//! are safe: the conditional update lets one of them win each shipment.

use std::sync::Arc;
use std::time::Duration;

use seams_core::{CallContext, Clock, Envelope, Ids, TraceContext};
use seams_runtime::Consistency;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::domain;
use crate::store::{Cause, Due, Store};

/// The dispatching worker; cheap to clone (tests keep a clone to drive it).
#[derive(Clone)]
pub struct Dispatcher {
    /// Where shipments are read and updated.
    store: Store,
    /// Time, for `dispatched_at` and the lag.
    clock: Arc<dyn Clock>,
    /// Ids of the events it publishes.
    ids: Arc<dyn Ids>,
    /// Where the dispatch lag is recorded.
    consistency: Consistency,
    /// Shipments taken per step.
    batch: u32,
    /// Longest sleep when nothing wakes the dispatcher.
    poll: Duration,
    /// Signalled by the invoice-paid consumer after creating a shipment.
    wake: Arc<Notify>,
}

/// The context of a `shipment-dispatched` event: the same chain as the
/// shipment's creation, caused by the `shipment-created` event.
fn context(cause: &Cause) -> CallContext {
    let trace = cause
        .traceparent
        .as_deref()
        .and_then(TraceContext::parse)
        .map(|t| t.child())
        .unwrap_or_else(TraceContext::new_root);
    CallContext {
        correlation_id: cause.correlation_id.clone(),
        causation_id: Some(cause.event_id.clone()),
        trace,
        deadline: None,
    }
}

impl Dispatcher {
    /// A dispatcher over `store`, recording lags in `consistency`.
    pub fn new(
        store: Store,
        clock: Arc<dyn Clock>,
        ids: Arc<dyn Ids>,
        consistency: Consistency,
        options: &crate::Options,
        wake: Arc<Notify>,
    ) -> Dispatcher {
        Dispatcher {
            store,
            clock,
            ids,
            consistency,
            batch: options.batch.max(1),
            poll: options.poll,
            wake,
        }
    }

    /// Dispatches the shipments waiting now (one batch); returns how many
    /// it dispatched, 0 meaning idle. Tests drive this instead of sleeping.
    pub async fn try_dispatch_due(&self) -> anyhow::Result<usize> {
        let due = self.store.due(self.batch).await?;
        let mut dispatched = 0;
        for d in due {
            if self.dispatch(&d).await? {
                dispatched += 1;
            }
        }
        Ok(dispatched)
    }

    /// Dispatches `d` in a span continuing the handling that created the
    /// shipment: its log lines name that trace, and exported, the
    /// `shipment-dispatched` event continues this span.
    async fn dispatch(&self, d: &Due) -> anyhow::Result<bool> {
        let mut ctx = context(&d.cause);
        let parent = d.cause.traceparent.as_deref().and_then(TraceContext::parse);
        let span = tracing::info_span!(
            "dispatch",
            shipment_id = %d.shipment.id,
            invoice_id = %d.shipment.invoice_id,
            trace_id = tracing::field::Empty,
            correlation_id = %ctx.correlation_id,
        );
        if let Some(own) = seams_telemetry::continue_from(&span, parent.as_ref()) {
            ctx.trace = own;
        }
        span.record("trace_id", ctx.trace.trace_id_hex());
        self.dispatch_in(d, &ctx).instrument(span).await
    }

    async fn dispatch_in(&self, d: &Due, ctx: &CallContext) -> anyhow::Result<bool> {
        let now = self.clock.now();
        let Some((dispatched, event)) = d.shipment.dispatch(seams_core::clock::rfc3339(now)) else {
            return Ok(false);
        };
        let env = Envelope::wrap(
            &event,
            self.ids.new_id().to_string(),
            event.dispatched_at.clone(),
            ctx,
        )?;
        if !self.store.dispatch(&dispatched, &env).await? {
            tracing::debug!("dispatched by someone else meanwhile");
            return Ok(false);
        }
        // Recorded after the commit: the lag is how long the customer's paid
        // invoice waited for a dispatch that really happened.
        match domain::lag_since(&d.shipment.paid_event_time, now) {
            Some(lag) => {
                self.consistency.record(crate::DISPATCH_LAG, lag);
                tracing::info!(?lag, "shipment dispatched");
            }
            None => tracing::warn!(
                paid_event_time = %d.shipment.paid_event_time,
                "shipment dispatched; its payment time does not parse, so no lag is recorded"
            ),
        }
        Ok(true)
    }

    /// Dispatches until `shutdown`, finishing the shipment in hand.
    pub async fn run(self, shutdown: CancellationToken) {
        let stop = shutdown.clone();
        seams_runtime::component::run_steps(
            "fulfillment.dispatcher",
            &self.wake,
            self.poll,
            stop,
            || self.try_dispatch_due(),
        )
        .await
    }
}
