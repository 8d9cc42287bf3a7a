//! How the store's failures are told apart: a full writer queue, a lost
//! connection, a violated constraint, a savepoint that is not open.

/// Whether `err` is SQLite's refusal to roll back to a savepoint that is
/// not open.
pub(crate) fn no_such_savepoint(err: &sqlx::Error) -> bool {
    matches!(err, sqlx::Error::Database(db) if db.message().starts_with("no such savepoint"))
}

/// How long a transaction waits for its turn at the single writer before it
/// is refused: long queues mean the database cannot keep up, and a caller is
/// better told so at once (503 `overloaded`) than kept waiting.
pub const WRITER_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

/// The refusal of a transaction that waited [`WRITER_WAIT`] for the writer.
#[derive(Debug, thiserror::Error)]
#[error("the writer of {0} stayed busy for {WRITER_WAIT:?}; the transaction was not started")]
pub struct WriterBusy(pub String);

/// Whether `err` is a [`WriterBusy`] refusal. sqlx has no variant for a full
/// queue, so the refusal travels as `Configuration` carrying [`WriterBusy`]
/// (a variant nothing else in the store produces, and that
/// [`connection_lost`] does not count as an outage).
pub fn writer_busy(err: &sqlx::Error) -> bool {
    matches!(err, sqlx::Error::Configuration(e) if e.is::<WriterBusy>())
}

/// Whether `err` means the connection is gone (the server restarted, the
/// network failed) rather than that a statement was refused.
pub fn connection_lost(err: &sqlx::Error) -> bool {
    match err {
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::Protocol(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed => true,
        // SQLSTATE class 08 (connection exception) and 57P (operator
        // intervention: shutdown, crash, cannot connect now).
        sqlx::Error::Database(db) => db
            .code()
            .is_some_and(|c| c.starts_with("08") || c.starts_with("57P")),
        _ => false,
    }
}

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
