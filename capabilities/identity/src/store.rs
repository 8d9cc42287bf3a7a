//! Identity's SQL. Only this module knows the tables.

use seams_core::Envelope;
use seams_sqlite::Db;
use sqlx::Row;

use crate::domain::{Customer, CustomerId, Email, Name};

/// Identity's database.
#[derive(Clone, Debug)]
pub struct Store {
    db: Db,
}

/// Why a customer was not inserted.
#[derive(Debug, thiserror::Error)]
pub enum InsertError {
    /// Another customer has the address (the UNIQUE constraint on `customers.email`).
    #[error("duplicate email")]
    DuplicateEmail,
    /// The database failed.
    #[error(transparent)]
    Db(#[from] sqlx::Error),
}

/// The columns a violated email uniqueness names (see `migrations/`).
const EMAIL_UNIQUE: &str = "customers.email";

fn customer(row: &sqlx::sqlite::SqliteRow) -> anyhow::Result<Customer> {
    let stored = |field: &str, e: crate::domain::Invalid| {
        anyhow::anyhow!("stored {field} is invalid: {}", e.reason)
    };
    Ok(Customer {
        id: CustomerId::parse(row.get("id")).map_err(|e| stored("id", e))?,
        email: Email::parse(row.get("email")).map_err(|e| stored("email", e))?,
        name: Name::parse(row.get("name")).map_err(|e| stored("name", e))?,
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

    /// Inserts `c` and publishes `event` in one transaction; a taken address
    /// rolls both back.
    pub async fn insert(
        &self,
        c: &Customer,
        created_at: &str,
        event: &Envelope,
    ) -> Result<(), InsertError> {
        let mut tx = self.db.begin().await?;
        let res =
            sqlx::query("INSERT INTO customers (id, email, name, created_at) VALUES (?, ?, ?, ?)")
                .bind(c.id.as_str())
                .bind(c.email.as_str())
                .bind(c.name.as_str())
                .bind(created_at)
                .execute(tx.conn())
                .await;
        match res {
            // Only the email's uniqueness is a client error; a clash of ids
            // would be a bug in the id source and stays a database failure.
            Err(e) if seams_sqlite::unique_violation(&e).as_deref() == Some(EMAIL_UNIQUE) => {
                return Err(InsertError::DuplicateEmail);
            }
            other => other?,
        };
        tx.publish(event).await?;
        tx.commit().await?;
        Ok(())
    }

    /// One customer.
    pub async fn get(&self, id: &CustomerId) -> anyhow::Result<Option<Customer>> {
        let row = sqlx::query("SELECT id, email, name FROM customers WHERE id = ?")
            .bind(id.as_str())
            .fetch_optional(self.db.reader())
            .await?;
        row.as_ref().map(customer).transpose()
    }
}
