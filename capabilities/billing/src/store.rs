//! Billing's SQL. Only this module knows the tables.
//!
//! Every write stores the state change, its outbox event and the keyed
//! command's response in one transaction.

use catalog_contract::{Currency, Money};
use seams_core::Envelope;
use seams_sqlite::{Db, IdempotencyClaim, SaveResponseError};
use sqlx::Row;

use crate::domain::{Invoice, Line, Payment, Status};

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
    /// The invoice was paid meanwhile (the database refused a second payment).
    #[error("invoice already paid")]
    AlreadyPaid,
    /// The database failed.
    #[error(transparent)]
    Db(#[from] sqlx::Error),
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
    pub async fn insert_invoice(
        &self,
        inv: &Invoice,
        event: &Envelope,
        response: Response<'_>,
    ) -> Result<(), WriteError> {
        let mut tx = self.db.begin().await?;
        tx.save_response(response.claim, response.status, response.body)
            .await?;
        sqlx::query("INSERT INTO invoices (id, customer_id, currency, total_minor, status, created_at) VALUES (?, ?, ?, ?, ?, ?)")
            .bind(&inv.id)
            .bind(&inv.customer_id)
            .bind(inv.total.currency.code())
            .bind(inv.total.minor)
            .bind(inv.status.as_str())
            .bind(&inv.created_at)
            .execute(tx.conn())
            .await?;
        for (i, l) in inv.lines.iter().enumerate() {
            sqlx::query(
                "INSERT INTO invoice_lines (invoice_id, line_no, sku, quantity, unit_minor, line_total_minor) \
                 VALUES (?, ?, ?, ?, ?, ?)",
            )
            .bind(&inv.id)
            .bind(i as i64)
            .bind(&l.sku)
            .bind(l.quantity as i64)
            .bind(l.unit_price.minor)
            .bind(l.line_total.minor)
            .execute(tx.conn())
            .await?;
        }
        tx.publish(event).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Records a payment: marks the invoice paid (only if still open), stores
    /// the payment, its event and the response, atomically.
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
            sqlx::query("UPDATE invoices SET status = 'paid' WHERE id = ? AND status = 'open'")
                .bind(&payment.invoice_id)
                .execute(tx.conn())
                .await?
                .rows_affected();
        if updated == 0 {
            return Err(WriteError::AlreadyPaid);
        }
        let res = sqlx::query("INSERT INTO payments (id, invoice_id, amount_minor, currency, paid_at) VALUES (?, ?, ?, ?, ?)")
            .bind(&payment.id)
            .bind(&payment.invoice_id)
            .bind(payment.amount.minor)
            .bind(payment.amount.currency.code())
            .bind(&payment.paid_at)
            .execute(tx.conn())
            .await;
        match res {
            Err(e)
                if seams_sqlite::unique_violation(&e).is_some_and(|c| c.contains("invoice_id")) =>
            {
                return Err(WriteError::AlreadyPaid);
            }
            other => other?,
        };
        tx.publish(event).await?;
        tx.commit().await?;
        Ok(())
    }

    /// One invoice with its lines.
    pub async fn get(&self, id: &str) -> anyhow::Result<Option<Invoice>> {
        let Some(row) = sqlx::query("SELECT id, customer_id, currency, total_minor, status, created_at FROM invoices WHERE id = ?")
            .bind(id)
            .fetch_optional(self.db.reader())
            .await?
        else {
            return Ok(None);
        };
        let currency = Currency::parse(row.get("currency"))?;
        let lines = sqlx::query(
            "SELECT sku, quantity, unit_minor, line_total_minor FROM invoice_lines WHERE invoice_id = ? ORDER BY line_no",
        )
        .bind(id)
        .fetch_all(self.db.reader())
        .await?
        .iter()
        .map(|l| {
            Ok(Line {
                sku: l.get("sku"),
                quantity: u32::try_from(l.get::<i64, _>("quantity"))?,
                unit_price: Money::new(l.get("unit_minor"), currency)?,
                line_total: Money::new(l.get("line_total_minor"), currency)?,
            })
        })
        .collect::<anyhow::Result<Vec<Line>>>()?;
        let status: String = row.get("status");
        let invoice = Invoice {
            id: row.get("id"),
            customer_id: row.get("customer_id"),
            lines,
            total: Money::new(row.get("total_minor"), currency)?,
            status: Status::parse(&status)
                .ok_or_else(|| anyhow::anyhow!("stored status {status}"))?,
            created_at: row.get("created_at"),
        };
        anyhow::ensure!(
            invoice.total_matches_lines(),
            "invoice {id}: stored total differs from its lines"
        );
        Ok(Some(invoice))
    }
}
