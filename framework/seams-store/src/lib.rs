//! A capability's database, with the framework's tables in it: the
//! transactional outbox, the inbox, feed cursors and acknowledgements, dead
//! letters and idempotency records.
//!
//! Each capability gets its own database: a SQLite file by default, or a
//! PostgreSQL database reached with the capability's own role. Nothing
//! outside the capability (and the framework acting on its behalf) opens it.
//! A capability writes its SQL once, in the dialect the two share (`$N`
//! placeholders, `ON CONFLICT`, `RETURNING`), through this crate's own
//! surface ([`query`], [`Row`]); [`Backend`] picks the rare statement that
//! differs. Underneath, SQLite is called inline through rusqlite (the
//! `sqlite` module) and PostgreSQL through sqlx's `Any` driver, which also
//! runs the migrations on both. No capability names either.
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
//! seams_store::query("INSERT INTO notes (body) VALUES ($1)").bind("hello").execute(&mut tx).await?;
//! tx.commit().await?;
//! # Ok(()) }
//! ```
#![warn(missing_docs)]
#![deny(unreachable_pub)]

mod batch;
mod cursors;
mod db;
mod dead_letters;
mod driver;
mod emit;
mod errors;
mod idempotency;
mod inbox;
mod location;
pub mod meters;
mod migrations;
mod outbox;
mod pg;
pub mod pipeline;
mod placeholders;
pub mod postgres;
mod pruning;
mod readers;
mod retries;
mod sql;
mod sqlite;
mod take_over;
mod tx;
mod writer;

pub use batch::Batch;
pub use db::{Db, now_ms};
pub use dead_letters::DeadLetter;
pub use errors::{
    WRITER_WAIT, WriterBusy, check_violation, connection_lost, unique_violation, writer_busy,
};
pub use idempotency::{IdempotencyClaim, SaveResponseError, StoredResponse};
pub use location::{Backend, Durability, Location, redact};
pub use migrations::Migrations;
pub use pruning::PruneReport;
pub use readers::ReadConn;
pub use retries::{Retry, behind_reason};
pub use sql::{At, Column, DbError, Kind, On, Param, Query, Row, Value, query};
pub use take_over::TakeOver;
pub use tx::Tx;

#[cfg(test)]
mod tests;
