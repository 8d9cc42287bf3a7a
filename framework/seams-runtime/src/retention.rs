//! How long the framework keeps delivery bookkeeping, and why that long.
//!
//! - Idempotency records must outlive every client's retry horizon: a retry
//!   after the record is gone would run the command a second time.
//! - Outbox rows are deleted only once every known subscriber has read them,
//!   and only after `outbox` has passed, so a subscriber can be rewound that
//!   far.
//! - Inbox ids must outlive any redelivery: an event can come again while
//!   its outbox row exists (`outbox`) plus while the bus is still retrying it
//!   (the longest declared bus retry horizon). [`Retention::check`] refuses a
//!   configuration that breaks this, so the number is derived, not guessed.

use std::time::Duration;

use seams_core::decl::{EventContract, Retries};

/// Retention of framework tables.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention {
    /// Idempotency records.
    pub idempotency: Duration,
    /// Delivered outbox rows.
    pub outbox: Duration,
    /// Inbox ids.
    pub inbox: Duration,
    /// How often pruning runs.
    pub interval: Duration,
}

impl Default for Retention {
    fn default() -> Self {
        Retention {
            idempotency: Duration::from_secs(24 * 3600),
            outbox: Duration::from_secs(3600),
            inbox: Duration::from_secs(2 * 3600),
            interval: Duration::from_secs(60),
        }
    }
}

/// A retention that would let a duplicate through.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "inbox retention {inbox:?} is shorter than outbox retention {outbox:?} plus the longest bus retry horizon {horizon:?} ({event}); a redelivered event could be applied twice"
)]
pub struct RetentionError {
    /// Configured inbox retention.
    pub inbox: Duration,
    /// Configured outbox retention.
    pub outbox: Duration,
    /// Longest declared bus retry horizon.
    pub horizon: Duration,
    /// The event that declares it.
    pub event: String,
}

impl Retention {
    /// The longest bus retry horizon among `events`, with the event that declares it.
    pub fn longest_horizon<'a>(
        events: impl IntoIterator<Item = &'a EventContract>,
    ) -> (Duration, String) {
        events
            .into_iter()
            .filter_map(|e| match e.retries {
                Retries::Bus(p) => Some((p.horizon(), e.event_type.to_owned())),
                _ => None,
            })
            .max()
            .unwrap_or_default()
    }

    /// Checks that inbox ids outlive every possible redelivery of `events`.
    pub fn check<'a>(
        &self,
        events: impl IntoIterator<Item = &'a EventContract>,
    ) -> Result<(), RetentionError> {
        let (horizon, event) = Retention::longest_horizon(events);
        if self.inbox < self.outbox + horizon {
            return Err(RetentionError {
                inbox: self.inbox,
                outbox: self.outbox,
                horizon,
                event,
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
