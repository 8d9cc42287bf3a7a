//! Fulfillment's SQL. Only this module knows the tables.
//!
//! Every write is one transaction with its consequences: a stock receipt
//! with its keyed response, a consumer's change with the event's inbox row
//! and any event it publishes (in the transaction the framework opens for
//! the event, [`seams_runtime::Applying`]), a dispatch
//! with its `shipment-dispatched` event. The stock table's CHECK
//! constraints are the last word on "stock never goes negative": a
//! statement that would break it fails, and its transaction rolls back.

use seams_core::Envelope;
use seams_store::{
    Backend, Batch, Db, DbError, IdempotencyClaim, Row, SaveResponseError, Tx, query,
};

use crate::domain::{Level, Line, Receipt, Shipment, Status};

/// Fulfillment's database.
#[derive(Clone, Debug)]
pub struct Store {
    db: Db,
}

/// Why a receipt was not stored.
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    /// Another request with the same idempotency key committed first.
    #[error("idempotency key already used")]
    KeyConflict,
    /// The database failed.
    #[error(transparent)]
    Db(#[from] DbError),
}

impl From<SaveResponseError> for WriteError {
    fn from(e: SaveResponseError) -> Self {
        match e {
            SaveResponseError::Conflict => WriteError::KeyConflict,
            SaveResponseError::Db(e) => WriteError::Db(e),
        }
    }
}

/// What [`before_deciding`] read: the stock of the SKUs asked about; SKUs
/// never received are absent.
pub type BeforeDeciding = Vec<Level>;

/// The event a shipment was announced with, so that the event announcing
/// its dispatch continues the same causal chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cause {
    /// The `shipment-created` event's id: the dispatch's causation.
    pub event_id: String,
    /// The chain's correlation id.
    pub correlation_id: String,
    /// The W3C trace context of that event.
    pub traceparent: Option<String>,
}

/// A shipment waiting for the dispatcher.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Due {
    /// The shipment, status `created`.
    pub shipment: Shipment,
    /// What announced it.
    pub cause: Cause,
}

fn decode(e: std::num::TryFromIntError) -> DbError {
    DbError::Decode(Box::new(e))
}

fn level(row: &Row) -> Result<Level, DbError> {
    Ok(Level {
        sku: row.get("sku")?,
        on_hand: u64::try_from(row.get::<i64>("on_hand")?).map_err(decode)?,
        reserved: u64::try_from(row.get::<i64>("reserved")?).map_err(decode)?,
    })
}

fn line(row: &Row) -> Result<Line, DbError> {
    Ok(Line {
        sku: row.get("sku")?,
        quantity: u32::try_from(row.get::<i64>("quantity")?).map_err(decode)?,
    })
}

/// The column that orders `shipments` oldest first: SQLite's implicit rowid
/// (existing files have no other), PostgreSQL's explicit `seq`, which plays
/// the same part there.
fn insertion_order(backend: Backend) -> &'static str {
    match backend {
        Backend::Sqlite => "rowid",
        Backend::Postgres => "seq",
    }
}

/// Every column of `shipments` a [`Shipment`] and its [`Cause`] are read from.
const SHIPMENT_COLUMNS: &str = "id, invoice_id, customer_id, status, created_at, dispatched_at, \
     paid_event_time, cause_event_id, correlation_id, traceparent";

impl Store {
    /// Over `db`.
    pub fn new(db: Db) -> Store {
        Store { db }
    }

    /// The database.
    pub fn db(&self) -> &Db {
        &self.db
    }

    /// Adds `receipt` to its SKU's stock and records the keyed response
    /// `respond` makes of the new level, atomically; returns that response.
    pub async fn receive(
        &self,
        receipt: &Receipt,
        claim: &IdempotencyClaim,
        status: u16,
        respond: impl FnOnce(&Level) -> Vec<u8>,
    ) -> Result<Vec<u8>, WriteError> {
        let mut tx = self.db.begin().await?;
        let row = query(
            "INSERT INTO stock (sku, on_hand, reserved) VALUES ($1, $2, 0) \
             ON CONFLICT (sku) DO UPDATE SET on_hand = stock.on_hand + excluded.on_hand \
             RETURNING sku, on_hand, reserved",
        )
        .bind(receipt.sku.as_str())
        .bind(i64::from(receipt.quantity))
        .fetch_one(&mut tx)
        .await?;
        let level = level(&row)?;
        let body = respond(&level);
        tx.save_response(claim, status, &body).await?;
        tx.commit().await?;
        Ok(body)
    }

    /// One SKU's stock, as committed; `None` if it was never received.
    pub async fn level(&self, sku: &str) -> anyhow::Result<Option<Level>> {
        let row = query("SELECT sku, on_hand, reserved FROM stock WHERE sku = $1")
            .bind(sku)
            .fetch_optional(&mut self.db.read().await?)
            .await?;
        Ok(row.as_ref().map(level).transpose()?)
    }

    /// The shipments of an invoice (at most one), oldest first.
    pub async fn shipments_for(&self, invoice_id: &str) -> anyhow::Result<Vec<Shipment>> {
        let rows = query(&format!(
            "SELECT {SHIPMENT_COLUMNS} FROM shipments WHERE invoice_id = $1 ORDER BY {}",
            insertion_order(self.db.backend())
        ))
        .bind(invoice_id)
        .fetch_all(&mut self.db.read().await?)
        .await?;
        let mut shipments = Vec::with_capacity(rows.len());
        for row in &rows {
            shipments.push(self.shipment(row).await?.shipment);
        }
        Ok(shipments)
    }

    /// Shipments waiting to be dispatched, oldest first, at most `limit`.
    pub async fn due(&self, limit: u32) -> anyhow::Result<Vec<Due>> {
        let rows = query(&format!(
            "SELECT {SHIPMENT_COLUMNS} FROM shipments WHERE status = 'created' \
             ORDER BY {} LIMIT $1",
            insertion_order(self.db.backend())
        ))
        .bind(i64::from(limit))
        .fetch_all(&mut self.db.read().await?)
        .await?;
        let mut due = Vec::with_capacity(rows.len());
        for row in &rows {
            due.push(self.shipment(row).await?);
        }
        Ok(due)
    }

    async fn shipment(&self, row: &Row) -> anyhow::Result<Due> {
        let id: String = row.get("id")?;
        let lines = query(
            "SELECT sku, quantity FROM shipment_lines WHERE shipment_id = $1 ORDER BY line_no",
        )
        .bind(&id)
        .fetch_all(&mut self.db.read().await?)
        .await?
        .iter()
        .map(line)
        .collect::<Result<Vec<Line>, DbError>>()?;
        let status: String = row.get("status")?;
        Ok(Due {
            shipment: Shipment {
                id,
                invoice_id: row.get("invoice_id")?,
                customer_id: row.get("customer_id")?,
                lines,
                status: Status::parse(&status)
                    .ok_or_else(|| anyhow::anyhow!("stored shipment status {status:?}"))?,
                created_at: row.get("created_at")?,
                dispatched_at: row.get("dispatched_at")?,
                paid_event_time: row.get("paid_event_time")?,
            },
            cause: Cause {
                event_id: row.get("cause_event_id")?,
                correlation_id: row.get("correlation_id")?,
                traceparent: row.get("traceparent")?,
            },
        })
    }

    /// Marks `dispatched` (the decision's new state) dispatched and publishes
    /// `event`, atomically; `false` if it was no longer `created` (another
    /// dispatcher won), in which case nothing is published.
    pub async fn dispatch(&self, dispatched: &Shipment, event: &Envelope) -> Result<bool, DbError> {
        let mut tx = self.db.begin().await?;
        let updated = query(
            "UPDATE shipments SET status = $1, dispatched_at = $2 WHERE id = $3 AND status = 'created'",
        )
        .bind(dispatched.status.as_str())
        .bind(&dispatched.dispatched_at)
        .bind(&dispatched.id)
        .execute(&mut tx)
        .await?;
        if updated == 0 {
            tx.rollback().await?;
            return Ok(false);
        }
        tx.publish(event).await?;
        tx.commit().await?;
        Ok(true)
    }
}

/// Fails unless exactly one row changed: every statement here targets one
/// known row, and touching none means the state is not what the decision
/// was made on.
fn one_row(affected: u64, what: &str) -> Result<(), DbError> {
    if affected == 1 {
        Ok(())
    } else {
        Err(DbError::Protocol(format!(
            "{what}: expected one row, changed {affected}"
        )))
    }
}

// What a consumer writes, in the transaction the framework opened for the
// event ([`seams_runtime::Applying`]): reads go through its `Tx`, writes
// that need no answer into the batch sent with its commit.

/// The stock of each of `skus` that was ever received, as the consuming
/// transaction `tx` sees it (read on the writer, so no other write can
/// slip in between this read and the reservation).
pub async fn before_deciding(tx: &mut Tx, skus: &[String]) -> Result<BeforeDeciding, DbError> {
    if skus.is_empty() {
        return Ok(Vec::new());
    }
    let mut sql = String::from("SELECT sku, on_hand, reserved FROM stock WHERE sku IN (");
    for i in 0..skus.len() {
        if i > 0 {
            sql.push_str(", ");
        }
        sql.push_str(&format!("${}", i + 1));
    }
    sql.push(')');
    let mut select = query(&sql);
    for sku in skus {
        select = select.bind(sku);
    }
    select.fetch_all(tx).await?.iter().map(level).collect()
}

/// Reserves `lines` for the invoice (raises each SKU's `reserved` and
/// records the reservation), sent with the commit.
///
/// Availability is decided beforehand, from [`before_deciding`]; the store
/// refuses a wrong decision whatever made it: the CHECKs on `stock` a line
/// that is not available, the reservation's foreign key a SKU with no
/// stock row (which is what an `UPDATE` that changed nothing would mean).
/// Either error fails the commit, which rolls everything back.
pub fn reserve(later: &mut Batch<'static>, invoice_id: &str, lines: &[Line], now: &str) {
    for l in lines {
        later
            .statement("UPDATE stock SET reserved = reserved + $1 WHERE sku = $2")
            .bind(i64::from(l.quantity))
            .bind(l.sku.clone())
            .statement(
                "INSERT INTO reservations (invoice_id, sku, quantity, status, reserved_at) \
                 VALUES ($1, $2, $3, 'reserved', $4)",
            )
            .bind(invoice_id.to_owned())
            .bind(l.sku.clone())
            .bind(i64::from(l.quantity))
            .bind(now.to_owned());
    }
}

/// Records that nothing could be reserved for the invoice, announced by
/// event `failed_event_id` (published in the same transaction). A second
/// failure of the same invoice breaks the primary key: an invoice-created
/// applied twice (only possible past the inbox's horizon) is refused and
/// dead-lettered rather than announced twice.
pub fn fail(later: &mut Batch<'static>, invoice_id: &str, failed_event_id: &str, now: &str) {
    later
        .statement(
            "INSERT INTO failed_invoices (invoice_id, event_id, failed_at) \
             VALUES ($1, $2, $3)",
        )
        .bind(invoice_id.to_owned())
        .bind(failed_event_id.to_owned())
        .bind(now.to_owned());
}

/// What is still reserved (not shipped, not released) for the invoice, in SKU order.
pub async fn reserved_for(tx: &mut Tx, invoice_id: &str) -> Result<Vec<Line>, DbError> {
    query(
        "SELECT sku, quantity FROM reservations \
         WHERE invoice_id = $1 AND status = 'reserved' ORDER BY sku",
    )
    .bind(invoice_id)
    .fetch_all(tx)
    .await?
    .iter()
    .map(line)
    .collect()
}

/// Ships `shipment`'s lines out of their reservations: each reservation
/// becomes `shipped`, its units leave `on_hand` and `reserved`, and the
/// shipment is stored with `created_event` (published in the same
/// transaction) as its cause.
pub async fn ship(
    tx: &mut Tx,
    shipment: &Shipment,
    created_event: &Envelope,
) -> Result<(), DbError> {
    for l in &shipment.lines {
        let affected = query(
            "UPDATE reservations SET status = 'shipped' \
             WHERE invoice_id = $1 AND sku = $2 AND status = 'reserved' AND quantity = $3",
        )
        .bind(&shipment.invoice_id)
        .bind(&l.sku)
        .bind(i64::from(l.quantity))
        .execute(tx)
        .await?;
        one_row(affected, &format!("shipping the reservation of {}", l.sku))?;
        let affected = query(
            "UPDATE stock SET on_hand = on_hand - $1, reserved = reserved - $1 WHERE sku = $2",
        )
        .bind(i64::from(l.quantity))
        .bind(&l.sku)
        .execute(tx)
        .await?;
        one_row(affected, &format!("taking {} out of stock", l.sku))?;
    }
    query(
        "INSERT INTO shipments (id, invoice_id, customer_id, status, created_at, \
         dispatched_at, paid_event_time, cause_event_id, correlation_id, traceparent) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
    )
    .bind(&shipment.id)
    .bind(&shipment.invoice_id)
    .bind(&shipment.customer_id)
    .bind(shipment.status.as_str())
    .bind(&shipment.created_at)
    .bind(&shipment.dispatched_at)
    .bind(&shipment.paid_event_time)
    .bind(&created_event.id)
    .bind(&created_event.correlationid)
    .bind(&created_event.traceparent)
    .execute(tx)
    .await?;
    for (i, l) in shipment.lines.iter().enumerate() {
        query(
            "INSERT INTO shipment_lines (shipment_id, line_no, sku, quantity) VALUES ($1, $2, $3, $4)",
        )
        .bind(&shipment.id)
        .bind(i as i64)
        .bind(&l.sku)
        .bind(i64::from(l.quantity))
        .execute(tx)
        .await?;
    }
    Ok(())
}

/// Releases what is still reserved for the invoice back to available
/// stock; returns the released lines (none if it was shipped, released or
/// never reserved).
pub async fn release(tx: &mut Tx, invoice_id: &str) -> Result<Vec<Line>, DbError> {
    let lines = reserved_for(tx, invoice_id).await?;
    for l in &lines {
        let affected = query("UPDATE stock SET reserved = reserved - $1 WHERE sku = $2")
            .bind(i64::from(l.quantity))
            .bind(&l.sku)
            .execute(tx)
            .await?;
        one_row(affected, &format!("releasing {}", l.sku))?;
    }
    query(
        "UPDATE reservations SET status = 'released' \
         WHERE invoice_id = $1 AND status = 'reserved'",
    )
    .bind(invoice_id)
    .execute(tx)
    .await?;
    Ok(lines)
}
