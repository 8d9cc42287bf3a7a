//! Notification's SQL. Only this module knows the tables.
//!
//! Consumers write inside the transaction the framework opened for the
//! event ([`seams_runtime::Applying`]), which already holds the event's
//! inbox row: the contact upsert or the delivery insert commits with it or
//! not at all. The sender reads due rows and records each attempt in
//! its own short transaction.

use seams_store::{Batch, Db, DbError, Row, Tx, query};

use crate::domain::{Contact, Delivery, Next, Status};

/// Notification's database.
#[derive(Clone, Debug)]
pub struct Store {
    db: Db,
}

/// Every column of `deliveries` a [`Delivery`] is read from.
const DELIVERY_COLUMNS: &str = "id, customer_id, event_id, event_type, channel, recipient, \
     recipient_name, subject, body, status, attempts, next_attempt_at_ms, last_error, \
     created_at, delivered_at, correlation_id, trace_id, traceparent";

fn delivery(row: &Row) -> anyhow::Result<Delivery> {
    let status: &str = row.get("status")?;
    Ok(Delivery {
        id: row.get("id")?,
        customer_id: row.get("customer_id")?,
        event_id: row.get("event_id")?,
        event_type: row.get("event_type")?,
        channel: row.get("channel")?,
        recipient: row.get("recipient")?,
        recipient_name: row.get("recipient_name")?,
        subject: row.get("subject")?,
        body: row.get("body")?,
        status: Status::parse(status)
            .ok_or_else(|| anyhow::anyhow!("stored delivery status {status:?}"))?,
        attempts: u32::try_from(row.get::<i64>("attempts")?)?,
        next_attempt_at_ms: row.get("next_attempt_at_ms")?,
        last_error: row.get("last_error")?,
        created_at: row.get("created_at")?,
        delivered_at: row.get("delivered_at")?,
        correlation_id: row.get("correlation_id")?,
        trace_id: row.get("trace_id")?,
        traceparent: row.get("traceparent")?,
    })
}

impl Store {
    /// Over `db`.
    pub fn new(db: Db) -> Store {
        Store { db }
    }

    /// The database.
    pub fn db(&self) -> &Db {
        &self.db
    }

    /// Pending deliveries due at `now_ms`, oldest first, at most `limit`.
    pub async fn due(&self, now_ms: i64, limit: u32) -> anyhow::Result<Vec<Delivery>> {
        let rows = query(&format!(
            "SELECT {DELIVERY_COLUMNS} FROM deliveries \
             WHERE status = 'pending' AND next_attempt_at_ms <= $1 \
             ORDER BY next_attempt_at_ms, seq LIMIT $2"
        ))
        .bind(now_ms)
        .bind(i64::from(limit))
        .fetch_all(&mut self.db.read().await?)
        .await?;
        rows.iter().map(delivery).collect()
    }

    /// Records the outcomes of a batch of attempts, in one transaction:
    /// `(delivery id, attempt number, what follows)`.
    ///
    /// Only a pending row changes: a delivery already delivered or failed is
    /// final, whatever a late or concurrent attempt reports. The updates go
    /// as one batch: the transaction holds notification's single writer,
    /// which the consumer recording new deliveries waits for, for one round
    /// trip instead of one per mail.
    pub async fn record(
        &self,
        outcomes: &[(String, u32, Next)],
        now_rfc3339: &str,
    ) -> Result<(), DbError> {
        if outcomes.is_empty() {
            return Ok(());
        }
        let mut tx = self.db.begin().await?;
        let batch = tx.later();
        for (id, attempts, next) in outcomes {
            match next {
                Next::Delivered => batch
                    .statement(
                        "UPDATE deliveries SET status = 'delivered', attempts = $1, delivered_at = $2 \
                         WHERE id = $3 AND status = 'pending'",
                    )
                    .bind(i64::from(*attempts))
                    .bind(now_rfc3339.to_owned()),
                Next::Retry { at_ms, error } => batch
                    .statement(
                        "UPDATE deliveries SET attempts = $1, next_attempt_at_ms = $2, last_error = $3 \
                         WHERE id = $4 AND status = 'pending'",
                    )
                    .bind(i64::from(*attempts))
                    .bind(*at_ms)
                    .bind(error.clone()),
                Next::Failed { error } => batch
                    .statement(
                        "UPDATE deliveries SET status = 'failed', attempts = $1, last_error = $2 \
                         WHERE id = $3 AND status = 'pending'",
                    )
                    .bind(i64::from(*attempts))
                    .bind(error.clone()),
            }
            .bind(id.clone());
        }
        Ok(tx.commit().await?)
    }

    /// A customer's deliveries, oldest first.
    pub async fn list(
        &self,
        customer_id: &str,
        after: i64,
        limit: u32,
    ) -> anyhow::Result<Vec<(i64, Delivery)>> {
        let rows = query(&format!(
            "SELECT seq, {DELIVERY_COLUMNS} FROM deliveries WHERE customer_id = $1 AND seq > $2 \
             ORDER BY seq LIMIT $3"
        ))
        .bind(customer_id)
        .bind(after)
        .bind(i64::from(limit))
        .fetch_all(&mut self.db.read().await?)
        .await?;
        rows.iter()
            .map(|row| Ok((row.get::<i64>("seq")?, delivery(row)?)))
            .collect()
    }

    /// One contact, as committed.
    pub async fn contact(&self, customer_id: &str) -> anyhow::Result<Option<Contact>> {
        Ok(self.contact_entry(customer_id).await?.map(|e| e.contact))
    }

    /// One contact with the time it was last written, as committed.
    pub async fn contact_entry(&self, customer_id: &str) -> anyhow::Result<Option<ContactEntry>> {
        let row = query(
            "SELECT customer_id, email, name, updated_at FROM contacts WHERE customer_id = $1",
        )
        .bind(customer_id)
        .fetch_optional(&mut self.db.read().await?)
        .await?;
        let Some(row) = row else {
            return Ok(None);
        };
        Ok(Some(ContactEntry {
            contact: contact_of(&row)?,
            updated_at: row.get("updated_at")?,
        }))
    }
}

/// A row of the contact read model.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContactEntry {
    /// The contact.
    pub contact: Contact,
    /// RFC 3339 time the row was last written (by the consumer, not by identity).
    pub updated_at: String,
}

fn contact_of(row: &Row) -> Result<Contact, DbError> {
    Ok(Contact {
        customer_id: row.get("customer_id")?,
        email: row.get("email")?,
        name: row.get("name")?,
    })
}

/// Writes `contact` as of event `source_event_id`, replacing an older
/// copy, with the consuming transaction's commit.
pub fn upsert_contact(
    later: &mut Batch<'static>,
    contact: &Contact,
    updated_at: &str,
    source_event_id: &str,
) {
    later
        .statement(
            "INSERT INTO contacts (customer_id, email, name, updated_at, source_event_id) \
             VALUES ($1, $2, $3, $4, $5) \
             ON CONFLICT (customer_id) DO UPDATE SET email = excluded.email, \
             name = excluded.name, updated_at = excluded.updated_at, \
             source_event_id = excluded.source_event_id",
        )
        .bind(contact.customer_id.clone())
        .bind(contact.email.clone())
        .bind(contact.name.clone())
        .bind(updated_at.to_owned())
        .bind(source_event_id.to_owned());
}

/// One contact, read on the writer so it is the state the consuming
/// transaction `tx` sees.
pub async fn contact(tx: &mut Tx, customer_id: &str) -> Result<Option<Contact>, DbError> {
    let row = query("SELECT customer_id, email, name FROM contacts WHERE customer_id = $1")
        .bind(customer_id)
        .fetch_optional(tx)
        .await?;
    row.as_ref().map(contact_of).transpose()
}

/// Inserts `d` with the consuming transaction's commit: a relay applies
/// its events one after another, so each round trip to the writer is one
/// more in every event's latency. Its event id is unique: a second
/// delivery for the same event (only possible past the inbox's horizon) is
/// refused and dead-lettered rather than sent twice.
pub fn insert_delivery(later: &mut Batch<'static>, d: &Delivery) {
    later
        .statement(
            "INSERT INTO deliveries (id, customer_id, event_id, event_type, channel, \
             recipient, recipient_name, subject, body, status, attempts, \
             next_attempt_at_ms, last_error, created_at, delivered_at, correlation_id, \
             trace_id, traceparent) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, \
             $17, $18)",
        )
        .bind(d.id.clone())
        .bind(d.customer_id.clone())
        .bind(d.event_id.clone())
        .bind(d.event_type.clone())
        .bind(d.channel.clone())
        .bind(d.recipient.clone())
        .bind(d.recipient_name.clone())
        .bind(d.subject.clone())
        .bind(d.body.clone())
        .bind(d.status.as_str())
        .bind(i64::from(d.attempts))
        .bind(d.next_attempt_at_ms)
        .bind(d.last_error.clone())
        .bind(d.created_at.clone())
        .bind(d.delivered_at.clone())
        .bind(d.correlation_id.clone())
        .bind(d.trace_id.clone())
        .bind(d.traceparent.clone());
}
