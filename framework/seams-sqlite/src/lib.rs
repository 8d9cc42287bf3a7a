//! A capability's SQLite database, with the framework's tables in it: the
//! transactional outbox, the inbox, feed cursors and acknowledgements, dead
//! letters and idempotency records.
//!
//! Each capability gets its own file; nothing outside the capability (and the
//! framework acting on its behalf) opens it. Writes go through one connection
//! because SQLite has one writer anyway: serializing in the pool instead of
//! in SQLite's lock means no `SQLITE_BUSY` under load, and it makes outbox
//! sequence order equal to commit order, which consumers' cursors rely on.
//! Reads use a separate pool and see committed snapshots (WAL).
//!
//! ```no_run
//! # async fn demo() -> anyhow::Result<()> {
//! static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");
//! let db = seams_sqlite::Db::open(std::path::Path::new("data/billing.db"), "billing", &MIGRATOR).await?;
//! let mut tx = db.begin().await?;
//! sqlx::query("SELECT 1").execute(tx.conn()).await?;
//! tx.commit().await?;
//! # Ok(()) }
//! ```
#![warn(missing_docs)]
#![deny(unreachable_pub)]

mod db;
mod feed;
mod idempotency;

pub use db::{Db, Durability, Tx, now_ms};
pub use feed::{DeadLetter, PruneReport};
pub use idempotency::{IdempotencyClaim, SaveResponseError, StoredResponse};

/// The `table.column` list of a violated unique constraint, if `err` is one.
///
/// The database enforces uniqueness; callers translate the violation into
/// their own domain error (a duplicate email, a duplicate SKU).
pub fn unique_violation(err: &sqlx::Error) -> Option<String> {
    match err {
        sqlx::Error::Database(db) if db.is_unique_violation() => Some(
            db.message()
                .strip_prefix("UNIQUE constraint failed: ")
                .unwrap_or(db.message())
                .to_owned(),
        ),
        _ => None,
    }
}

/// Whether `err` is a violated CHECK constraint whose text mentions `name`.
pub fn check_violation(err: &sqlx::Error, name: &str) -> bool {
    matches!(err, sqlx::Error::Database(db) if db.is_check_violation() && db.message().contains(name))
}

#[cfg(test)]
mod tests;
