//! One backend per database, behind one trait: [`Driver`] is what the store
//! asks of a connection (run a statement, run a transaction's own
//! statements, commit, close), implemented once for SQLite called inline
//! ([`crate::sqlite`]) and once for PostgreSQL through sqlx ([`crate::pg`]).
//!
//! The writer, the readers, a transaction and a batch hold a `dyn Driver`
//! and never ask which database is underneath. What still differs is SQL
//! text (`BEGIN IMMEDIATE`, the outbox's head, the migrations), chosen by
//! [`crate::location::Backend`], and how a connection is opened
//! ([`crate::sqlite::open_writer`], [`crate::pg::open_writer`]).
//!
//! An answer comes at once from SQLite ([`Answer::Now`]: the statement ran
//! on the caller's task) and later from PostgreSQL ([`Answer::Later`]: the
//! server replies over the network), so the inline driver allocates no
//! future per statement.

use seams_core::BoxFuture;

use crate::sql::{DbError, Row, Value};

/// What a statement is run for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Want {
    /// The rows it changed.
    Changes,
    /// Its first row, if any.
    First,
    /// All its rows.
    All,
}

/// What a statement returned: the rows asked for (at most one for
/// [`Want::First`], none for [`Want::Changes`]) and the rows it changed.
#[derive(Debug)]
pub(crate) struct Ran {
    pub(crate) rows: Vec<Row>,
    pub(crate) changes: u64,
}

/// An answer, now or once the database replies.
pub(crate) enum Answer<'c, T> {
    /// The statement has run.
    Now(Result<T, DbError>),
    /// It runs when this is awaited.
    Later(BoxFuture<'c, Result<T, DbError>>),
}

impl<T> Answer<'_, T> {
    /// The answer, waiting for it if it is not in yet.
    pub(crate) async fn get(self) -> Result<T, DbError> {
        match self {
            Answer::Now(result) => result,
            Answer::Later(future) => future.await,
        }
    }
}

/// A commit's result and the connection it ran on (`None` if it was lost).
pub(crate) type Committed = (Option<Box<dyn Driver>>, Result<(), DbError>);

/// A connection to one database, as the store uses it.
pub(crate) trait Driver: Send + 'static {
    /// Runs `sql`, one statement, with `values` bound to `$1`…`$n`. The
    /// caller has checked that they match ([`crate::sql::Query`]).
    fn run<'c, 'q: 'c>(
        &'c mut self,
        sql: &'q str,
        values: Vec<Value<'q>>,
        want: Want,
    ) -> Answer<'c, Ran>;

    /// Runs `sql`, statements without values: a transaction's own
    /// (`BEGIN`, `SAVEPOINT`, `ROLLBACK TO`…).
    fn exec(&mut self, sql: &'static str) -> Answer<'_, ()>;

    /// Commits the open transaction. A commit waits for the disk, which a
    /// driver that runs statements inline must not do on the caller's
    /// task: it may hand itself to tokio's blocking pool and back, so the
    /// connection comes back with the result (`None` if it was lost).
    fn commit(self: Box<Self>) -> BoxFuture<'static, Committed>;

    /// Closes the connection.
    fn close(self: Box<Self>) -> BoxFuture<'static, ()>;
}
