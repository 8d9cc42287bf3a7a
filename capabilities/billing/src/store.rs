//! Billing's SQL. Only this module knows the tables.
//!
//! Every write stores the state change, its outbox event and the keyed
//! command's response in one transaction. Compensation works inside
//! the transaction the framework opened for the failure event
//! ([`seams_runtime::Applying`]), which already holds its inbox row: the new status, the refund and the outbox event commit with
//! it or not at all.

use catalog_contract::{Currency, Money};
use seams_core::Envelope;
use seams_store::{Db, DbError, IdempotencyClaim, On, SaveResponseError, Tx, query};

use crate::domain::{Invoice, Line, Payment, Refund, Status};

/// Billing's database.
#[derive(Clone, Debug)]
pub struct Store {
    db: Db,
}

/// Why a write did not happen.
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    /// Another request with the same idempotency key committed first.
    #[error("idempotency key already used")]
    KeyConflict,
    /// The invoice was paid (or paid and refunded) meanwhile: the database
    /// refused a second payment.
    #[error("invoice already paid")]
    AlreadyPaid,
    /// The invoice was voided meanwhile (fulfillment failed while the
    /// payment was being decided): the database refused the payment.
    #[error("invoice voided")]
    Voided,
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

/// The response a keyed command records with its effect.
pub struct Response<'a> {
    /// Whose response.
    pub claim: &'a IdempotencyClaim,
    /// HTTP status.
    pub status: u16,
    /// Exact body bytes.
    pub body: &'a [u8],
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

    /// Inserts a new invoice, its event and the response, atomically.
    ///
    /// Nothing here needs an answer before the commit, so the statements go
    /// as one batch, with the transaction's savepoint and its release: it
    /// holds billing's single writer for one round trip instead of one per
    /// row, which is what lets invoices arriving together share the writer
    /// (`seams_store::Batch`).
    pub async fn insert_invoice(
        &self,
        inv: &Invoice,
        event: &Envelope,
        response: Response<'_>,
    ) -> Result<(), WriteError> {
        let mut tx = self.db.begin().await?;
        let batch = tx.later();
        batch
            .save_response(response.claim, response.status, response.body)
            .statement(
                "INSERT INTO invoices (id, customer_id, currency, total_minor, status, created_at) \
                 VALUES ($1, $2, $3, $4, $5, $6)",
            )
            .bind(inv.id.clone())
            .bind(inv.customer_id.clone())
            .bind(inv.total.currency.code())
            .bind(inv.total.minor)
            .bind(inv.status.as_str())
            .bind(inv.created_at.clone());
        for (i, l) in inv.lines.iter().enumerate() {
            batch
                .statement(
                    "INSERT INTO invoice_lines (invoice_id, line_no, sku, quantity, unit_minor, line_total_minor) \
                     VALUES ($1, $2, $3, $4, $5, $6)",
                )
                .bind(inv.id.clone())
                .bind(i as i64)
                .bind(l.sku.clone())
                .bind(l.quantity as i64)
                .bind(l.unit_price.minor)
                .bind(l.line_total.minor);
        }
        batch.publish(event);
        tx.commit().await?;
        Ok(())
    }

    /// Records a payment: marks the invoice paid (only if still open), stores
    /// the payment, its event and the response, atomically.
    ///
    /// The payment was decided on a snapshot read before this transaction,
    /// so the conditional update is what decides a race with a second payment
    /// or with a compensation: whichever commits first wins, and this one is
    /// refused with the status the invoice has now.
    pub async fn record_payment(
        &self,
        payment: &Payment,
        event: &Envelope,
        response: Response<'_>,
    ) -> Result<(), WriteError> {
        let mut tx = self.db.begin().await?;
        tx.save_response(response.claim, response.status, response.body)
            .await?;
        let updated =
            query("UPDATE invoices SET status = 'paid' WHERE id = $1 AND status = 'open'")
                .bind(&payment.invoice_id)
                .execute(&mut tx)
                .await?;
        if updated == 0 {
            let status: String = query("SELECT status FROM invoices WHERE id = $1")
                .bind(&payment.invoice_id)
                .fetch_one(&mut tx)
                .await?
                .get(0)?;
            return Err(match Status::parse(&status) {
                Some(Status::Voided) => WriteError::Voided,
                _ => WriteError::AlreadyPaid,
            });
        }
        let res = query("INSERT INTO payments (id, invoice_id, amount_minor, currency, paid_at) VALUES ($1, $2, $3, $4, $5)")
            .bind(&payment.id)
            .bind(&payment.invoice_id)
            .bind(payment.amount.minor)
            .bind(payment.amount.currency.code())
            .bind(&payment.paid_at)
            .execute(&mut tx)
            .await;
        match res {
            Err(e)
                if seams_store::unique_violation(&e).is_some_and(|c| c.contains("invoice_id")) =>
            {
                return Err(WriteError::AlreadyPaid);
            }
            other => other?,
        };
        tx.publish(event).await?;
        tx.commit().await?;
        Ok(())
    }

    /// One invoice with its lines, as last committed.
    pub async fn get(&self, id: &str) -> anyhow::Result<Option<Invoice>> {
        load_invoice(&mut self.db.read().await?, id).await
    }
}

// What compensating one failure writes, in the transaction the framework
// opened for the failure event ([`seams_runtime::Applying`]). It reads on
// the writer, inside that transaction, so it decides on the state no
// payment can change before it commits.

/// One invoice with its lines, as the compensating transaction `tx` sees it.
pub async fn invoice_in(tx: &mut Tx, id: &str) -> anyhow::Result<Option<Invoice>> {
    load_invoice(tx, id).await
}

/// The payment of invoice `invoice_id`, if it was paid, as `tx` sees it.
pub async fn payment_in(tx: &mut Tx, invoice_id: &str) -> anyhow::Result<Option<Payment>> {
    let Some(row) = query(
        "SELECT id, invoice_id, amount_minor, currency, paid_at FROM payments WHERE invoice_id = $1",
    )
    .bind(invoice_id)
    .fetch_optional(tx)
    .await?
    else {
        return Ok(None);
    };
    Ok(Some(Payment {
        id: row.get("id")?,
        invoice_id: row.get("invoice_id")?,
        amount: Money::new(
            row.get("amount_minor")?,
            Currency::parse(row.get("currency")?)?,
        )?,
        paid_at: row.get("paid_at")?,
    }))
}

/// Marks `voided` voided, only if still open.
pub async fn void(tx: &mut Tx, voided: &Invoice) -> anyhow::Result<()> {
    transition(tx, &voided.id, Status::Open, Status::Voided).await
}

/// Marks `refunded` refunded (only if still paid) and stores `refund` (at
/// most one per invoice).
pub async fn refund(tx: &mut Tx, refunded: &Invoice, refund: &Refund) -> anyhow::Result<()> {
    transition(tx, &refunded.id, Status::Paid, Status::Refunded).await?;
    query(
        "INSERT INTO refunds (id, invoice_id, payment_id, amount_minor, currency, reason, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(&refund.id)
    .bind(&refund.invoice_id)
    .bind(&refund.payment_id)
    .bind(refund.amount.minor)
    .bind(refund.amount.currency.code())
    .bind(&refund.reason)
    .bind(&refund.created_at)
    .execute(tx)
    .await?;
    Ok(())
}

/// Moves invoice `id` from `from` to `to`; an error if it is not in `from`.
async fn transition(tx: &mut Tx, id: &str, from: Status, to: Status) -> anyhow::Result<()> {
    let updated = query("UPDATE invoices SET status = $1 WHERE id = $2 AND status = $3")
        .bind(to.as_str())
        .bind(id)
        .bind(from.as_str())
        .execute(tx)
        .await?;
    anyhow::ensure!(
        updated == 1,
        "invoice {id} is no longer {} (its compensation was decided on a stale read)",
        from.as_str()
    );
    Ok(())
}

/// One invoice with its lines, read on `on`.
async fn load_invoice(on: &mut impl On, id: &str) -> anyhow::Result<Option<Invoice>> {
    let Some(row) = query(
        "SELECT id, customer_id, currency, total_minor, status, created_at FROM invoices WHERE id = $1",
    )
    .bind(id)
    .fetch_optional(&mut *on)
    .await?
    else {
        return Ok(None);
    };
    let currency = Currency::parse(row.get("currency")?)?;
    let lines = query(
        "SELECT sku, quantity, unit_minor, line_total_minor FROM invoice_lines WHERE invoice_id = $1 ORDER BY line_no",
    )
    .bind(id)
    .fetch_all(on)
    .await?
    .iter()
    .map(|l| {
        Ok(Line {
            sku: l.get("sku")?,
            quantity: u32::try_from(l.get::<i64>("quantity")?)?,
            unit_price: Money::new(l.get("unit_minor")?, currency)?,
            line_total: Money::new(l.get("line_total_minor")?, currency)?,
        })
    })
    .collect::<anyhow::Result<Vec<Line>>>()?;
    let status: String = row.get("status")?;
    let invoice = Invoice {
        id: row.get("id")?,
        customer_id: row.get("customer_id")?,
        lines,
        total: Money::new(row.get("total_minor")?, currency)?,
        status: Status::parse(&status).ok_or_else(|| anyhow::anyhow!("stored status {status}"))?,
        created_at: row.get("created_at")?,
    };
    anyhow::ensure!(
        invoice.total_matches_lines(),
        "invoice {id}: stored total differs from its lines"
    );
    Ok(Some(invoice))
}
