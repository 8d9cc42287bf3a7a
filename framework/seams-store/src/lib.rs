//! A capability's database, with the framework's tables in it: the
//! transactional outbox, the inbox, feed cursors and acknowledgements, dead
//! letters and idempotency records.
//!
//! Each capability gets its own database: a SQLite file by default, or a
//! PostgreSQL database reached with the capability's own role. Nothing
//! outside the capability (and the framework acting on its behalf) opens it.
//! Both backends go through sqlx's `Any` driver, so a capability writes its
//! SQL once, in the dialect the two share (`$N` placeholders, `ON CONFLICT`,
//! `RETURNING`); [`Backend`] picks the rare statement that differs.
//!
//! Writes go through one connection per database: SQLite has one writer
//! anyway, and on PostgreSQL one writer (held by an advisory lock) keeps the
//! same guarantees. Serializing in the process instead of in the database's
//! lock means no `SQLITE_BUSY` or serialization failures under load, lets
//! concurrent commands share one commit (group commit), and makes outbox
//! sequence order equal to commit order, which consumers' cursors rely on.
//! Reads use a separate pool and see committed snapshots.
//!
//! ```no_run
//! # async fn demo() -> anyhow::Result<()> {
//! static MIGRATIONS: seams_store::Migrations = seams_store::Migrations {
//!     sqlite: sqlx::migrate!("./migrations/sqlite"),
//!     postgres: sqlx::migrate!("./migrations/postgres"),
//! };
//! let db = seams_store::Db::open(std::path::Path::new("data/billing.db"), "billing", &MIGRATIONS).await?;
//! let mut tx = db.begin().await?;
//! sqlx::query("SELECT 1").execute(tx.conn()).await?;
//! tx.commit().await?;
//! # Ok(()) }
//! ```
#![warn(missing_docs)]
#![deny(unreachable_pub)]

mod batch;
mod db;
mod emit;
mod feed;
mod idempotency;
pub mod meters;
pub mod pipeline;
pub mod postgres;
mod take_over;

pub use batch::Batch;
pub use db::{
    Backend, Db, Durability, Location, Machinery, Migrations, ReadConn, Tx, WRITER_WAIT,
    WriterBusy, connection_lost, now_ms, redact, writer_busy,
};
pub use feed::{DeadLetter, PruneReport};
pub use idempotency::{IdempotencyClaim, SaveResponseError, StoredResponse};
pub use take_over::TakeOver;

/// What names a violated unique constraint, if `err` is one: SQLite's
/// `table.column` list, or PostgreSQL's constraint name (by default
/// `table_column_key`). Both contain the column names, which is what callers
/// should look for.
///
/// The database enforces uniqueness; callers translate the violation into
/// their own domain error (a duplicate email, a duplicate SKU).
pub fn unique_violation(err: &sqlx::Error) -> Option<String> {
    match err {
        sqlx::Error::Database(db) if db.is_unique_violation() => {
            Some(db.constraint().map(str::to_owned).unwrap_or_else(|| {
                db.message()
                    .strip_prefix("UNIQUE constraint failed: ")
                    .unwrap_or(db.message())
                    .to_owned()
            }))
        }
        _ => None,
    }
}

/// Whether `err` is a violated CHECK constraint whose text mentions `name`.
pub fn check_violation(err: &sqlx::Error, name: &str) -> bool {
    matches!(err, sqlx::Error::Database(db) if db.is_check_violation() && db.message().contains(name))
}

#[cfg(test)]
mod tests;
