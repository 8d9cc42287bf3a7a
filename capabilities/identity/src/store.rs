//! Identity's SQL. Only this module knows the tables.
//!
//! Every write runs in one transaction with its outbox row: a customer is
//! registered or re-addressed together with the event announcing it, or not
//! at all. Writes return the event's outbox position, which the routes hand
//! back as a consistency token.

use seams_core::Envelope;
use seams_store::{Db, DbError, Row, Tx, query};

use crate::domain::{Customer, CustomerId, Email, Name};

/// Identity's database.
#[derive(Clone, Debug)]
pub struct Store {
    db: Db,
}

/// A write transaction over the customers table.
///
/// Dropping it without [`Writing::commit`] rolls back, outbox rows included.
pub struct Writing {
    tx: Tx,
}

/// Why a customer was not written.
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    /// Another customer has the address (the UNIQUE constraint on `customers.email`).
    #[error("duplicate email")]
    DuplicateEmail,
    /// The database failed.
    #[error(transparent)]
    Db(#[from] DbError),
}

/// What names a violated email uniqueness (see `migrations/`): SQLite
/// reports `customers.email`, PostgreSQL `customers_email_unique`.
const EMAIL_UNIQUE: &str = "email";

/// Turns a violation of the email's uniqueness into [`WriteError::DuplicateEmail`].
///
/// Only the email's uniqueness is a client error; a clash of ids would be a
/// bug in the id source and stays a database failure.
fn on_email_unique<T>(res: Result<T, DbError>) -> Result<T, WriteError> {
    match res {
        Err(e) if seams_store::unique_violation(&e).is_some_and(|c| c.contains(EMAIL_UNIQUE)) => {
            Err(WriteError::DuplicateEmail)
        }
        other => Ok(other?),
    }
}

fn customer(row: &Row) -> anyhow::Result<Customer> {
    let stored = |field: &str, e: crate::domain::Invalid| {
        anyhow::anyhow!("stored {field} is invalid: {}", e.reason)
    };
    Ok(Customer {
        id: CustomerId::parse(row.get("id")?).map_err(|e| stored("id", e))?,
        email: Email::parse(row.get("email")?).map_err(|e| stored("email", e))?,
        name: Name::parse(row.get("name")?).map_err(|e| stored("name", e))?,
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

    /// Starts a write transaction.
    pub async fn begin(&self) -> Result<Writing, DbError> {
        Ok(Writing {
            tx: self.db.begin().await?,
        })
    }

    /// Inserts `c` with its password hash and publishes `event` in one
    /// transaction; a taken address rolls both back. Returns the event's
    /// outbox position.
    pub async fn insert(
        &self,
        c: &Customer,
        password_hash: &str,
        created_at: &str,
        event: &Envelope,
    ) -> Result<u64, WriteError> {
        let mut tx = self.begin().await?;
        let res = query(
            "INSERT INTO customers (id, email, name, created_at, password_hash) \
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(c.id.as_str())
        .bind(c.email.as_str())
        .bind(c.name.as_str())
        .bind(created_at)
        .bind(password_hash)
        .execute(&mut tx.tx)
        .await;
        on_email_unique(res)?;
        let position = tx.publish(event).await?;
        tx.commit().await?;
        Ok(position)
    }

    /// The id and password hash of the customer with this address (the
    /// hash is empty for a customer who has no password).
    pub async fn credentials(&self, email: &Email) -> anyhow::Result<Option<(CustomerId, String)>> {
        let row = query("SELECT id, password_hash FROM customers WHERE email = $1")
            .bind(email.as_str())
            .fetch_optional(&mut self.db.read().await?)
            .await?;
        row.map(|row| {
            let id = CustomerId::parse(row.get("id")?)
                .map_err(|e| anyhow::anyhow!("stored id is invalid: {}", e.reason))?;
            Ok((id, row.get("password_hash")?))
        })
        .transpose()
    }

    /// One customer.
    pub async fn get(&self, id: &CustomerId) -> anyhow::Result<Option<Customer>> {
        let row = query("SELECT id, email, name FROM customers WHERE id = $1")
            .bind(id.as_str())
            .fetch_optional(&mut self.db.read().await?)
            .await?;
        row.as_ref().map(customer).transpose()
    }
}

impl Writing {
    /// One customer, read on the writer: the state this transaction changes,
    /// which no other write can change before it commits (one writer).
    pub async fn customer(&mut self, id: &CustomerId) -> anyhow::Result<Option<Customer>> {
        let row = query("SELECT id, email, name FROM customers WHERE id = $1")
            .bind(id.as_str())
            .fetch_optional(&mut self.tx)
            .await?;
        row.as_ref().map(customer).transpose()
    }

    /// Stores `c`'s address; an address another customer has is refused.
    pub async fn update_email(&mut self, c: &Customer) -> Result<(), WriteError> {
        let res = query("UPDATE customers SET email = $1 WHERE id = $2")
            .bind(c.email.as_str())
            .bind(c.id.as_str())
            .execute(&mut self.tx)
            .await;
        let updated = on_email_unique(res)?;
        if updated != 1 {
            // The row was read in this transaction, so it cannot have gone.
            return Err(WriteError::Db(DbError::RowNotFound));
        }
        Ok(())
    }

    /// Appends `event` to the outbox; returns its position.
    pub async fn publish(&mut self, event: &Envelope) -> Result<u64, DbError> {
        self.tx.publish(event).await
    }

    /// Commits the change with its outbox rows.
    pub async fn commit(self) -> Result<(), DbError> {
        Ok(self.tx.commit().await?)
    }

    /// Rolls back explicitly.
    pub async fn rollback(self) -> Result<(), DbError> {
        self.tx.rollback().await
    }
}
