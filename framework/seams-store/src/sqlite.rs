//! SQLite called inline: a statement runs on the task that asks for it,
//! through rusqlite, instead of being handed to a connection's worker
//! thread and its answer handed back (sqlx's SQLite driver).
//!
//! Why: that hand-off is most of what a statement costs. Counted with
//! callgrind (`bench/driver-cost.sh`), a transaction of eight statements
//! costs about 160,000 instructions through sqlx and about 100,000 inline,
//! SQLite's own work included; the difference is the channel, the wake-ups
//! and the copies between the two threads. The price is that a statement
//! occupies its tokio worker while it runs. A read of committed rows in WAL
//! mode never waits for a lock (the writer is the only one that could make
//! it, and WAL readers do not wait for it), and the statements the store
//! runs are indexed and short, so this is microseconds.
//!
//! It is SQLite's [`Driver`]; the readers and the writer use it. The
//! writer's `COMMIT` is the exception: it waits for the fsync (and may
//! checkpoint the WAL), so it runs on tokio's blocking pool
//! ([`Driver::commit`]). A writer that found the file locked by another
//! process would wait up to the busy timeout on its worker; within one
//! process there is one writer per file, so only a foreign process (the
//! `sqlite3` shell) can do that.
//! Statements are prepared once per connection and kept (`prepare_cached`).
//!
//! Placeholders are `$1`…`$n`, as everywhere in the store. SQLite reads
//! `$1` as a *named* parameter and numbers names in the order they first
//! appear, so a statement runs with each `$k` written `?k`, SQLite's
//! numbered parameter ([`crate::placeholders`]), and `$k` takes the
//! `k`-th value wherever it appears. SQLite's own messages (a syntax
//! error) quote the statement as it ran, `?k`.

use std::sync::Arc;

use rusqlite::types::{ToSql, ToSqlOutput, ValueRef};
use seams_core::BoxFuture;

pub(crate) use crate::driver::Want;
use crate::driver::{Answer, Committed, Driver, Ran};
use crate::location::Location;
use crate::placeholders::Shape;
use crate::sql::{DbError, Row, Value};

/// Opens a read-only connection to `location`'s file, set up as every
/// connection of the store is ([`Location::setup`]).
pub(crate) fn open_reader(location: &Location) -> Result<rusqlite::Connection, DbError> {
    open(
        location,
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
}

/// Opens the writer's connection to `location`'s file, set up as every
/// connection of the store is. The file exists: the migrations created it.
pub(crate) fn open_writer(location: &Location) -> Result<rusqlite::Connection, DbError> {
    open(
        location,
        rusqlite::OpenFlags::SQLITE_OPEN_READ_WRITE | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
}

fn open(location: &Location, flags: rusqlite::OpenFlags) -> Result<rusqlite::Connection, DbError> {
    let Location::Sqlite { path, .. } = location else {
        return Err(DbError::Configuration(
            "an inline SQLite connection needs a SQLite location".into(),
        ));
    };
    let conn = rusqlite::Connection::open_with_flags(path, flags).map_err(error)?;
    // The store's statements: a capability's few reads and the framework's.
    conn.set_prepared_statement_cache_capacity(128);
    for statement in location.setup() {
        conn.query_row(&statement, [], |_| Ok(()))
            .or_else(|e| match e {
                rusqlite::Error::QueryReturnedNoRows => Ok(()),
                e => Err(e),
            })
            .map_err(error)?;
    }
    Ok(conn)
}

/// One row, its values copied out of SQLite.
#[derive(Debug)]
pub(crate) struct Values {
    pub(crate) columns: Arc<[String]>,
    pub(crate) values: Vec<Owned>,
}

/// A value as SQLite stores it.
#[doc(hidden)]
#[derive(Debug)]
pub enum Owned {
    Null,
    Integer(i64),
    Real(f64),
    Text(String),
    Blob(Vec<u8>),
}

/// Runs `sql` with `values` on `conn`: the rows `want` asks for, each
/// copied out of SQLite, and the rows it changed.
pub(crate) fn run(
    conn: &rusqlite::Connection,
    sql: &str,
    values: &[Value<'_>],
    want: Want,
) -> Result<Ran, DbError> {
    let shape =
        crate::placeholders::shape(sql).map_err(|e| encode(format!("the statement {e}")))?;
    let mut statement = conn.prepare_cached(&shape.numbered).map_err(error)?;
    bind(&mut statement, &shape, values)?;
    // Named only once a row is copied out: most statements the store runs
    // (writes, and reads that find nothing) return none, and the names
    // are an allocation per column.
    let mut columns: Option<Arc<[String]>> = None;
    let read_only = statement.readonly();
    let mut out = Vec::new();
    let mut rows = statement.raw_query();
    while let Some(row) = rows.next().map_err(error)? {
        if want == Want::Changes {
            // Stepped to the end, so that all of the statement's effects
            // happen whatever it returns.
            continue;
        }
        let columns = columns.get_or_insert_with(|| {
            let statement = row.as_ref();
            (0..statement.column_count())
                .map(|i| {
                    statement
                        .column_name(i)
                        .map_or_else(|_| String::new(), str::to_owned)
                })
                .collect()
        });
        let mut copied = Vec::with_capacity(columns.len());
        for i in 0..columns.len() {
            copied.push(owned(row.get_ref(i).map_err(error)?)?);
        }
        out.push(Row::sqlite(Values {
            columns: columns.clone(),
            values: copied,
        }));
        // As sqlx's `fetch_optional`: the rest is not read (SQLite has
        // done a RETURNING statement's writes by its first row).
        if want == Want::First {
            break;
        }
    }
    drop(rows);
    let changes = if read_only { 0 } else { conn.changes() };
    Ok(Ran { rows: out, changes })
}

impl Driver for rusqlite::Connection {
    fn run<'c, 'q: 'c>(
        &'c mut self,
        sql: &'q str,
        values: Vec<Value<'q>>,
        want: Want,
    ) -> Answer<'c, Ran> {
        Answer::Now(run(self, sql, &values, want))
    }

    fn exec(&mut self, sql: &'static str) -> Answer<'_, ()> {
        Answer::Now(exec(self, sql))
    }

    /// On tokio's blocking pool: it waits for the fsync, and may
    /// checkpoint the WAL, milliseconds that would hold a tokio worker.
    fn commit(self: Box<Self>) -> BoxFuture<'static, Committed> {
        Box::pin(async move {
            let committed = tokio::task::spawn_blocking(move || {
                let result = exec(&self, "COMMIT");
                (self, result)
            })
            .await;
            match committed {
                Ok((conn, result)) => (Some(conn as Box<dyn Driver>), result),
                // The connection went down with the thread that held it.
                Err(_) => (None, Err(DbError::WorkerCrashed)),
            }
        })
    }

    fn close(self: Box<Self>) -> BoxFuture<'static, ()> {
        // Whatever is open is rolled back; nothing waits for the disk.
        let _ = (*self).close();
        Box::pin(std::future::ready(()))
    }
}

/// Runs a transaction's own statements: one (`BEGIN IMMEDIATE`,
/// `SAVEPOINT`, `RELEASE`, `COMMIT`…) prepared once and kept, as the
/// store's other statements are, since it runs for every transaction;
/// several (undoing a member's work) parsed each time, which is rare.
fn exec(conn: &rusqlite::Connection, sql: &str) -> Result<(), DbError> {
    if sql.contains(';') {
        return conn.execute_batch(sql).map_err(error);
    }
    conn.prepare_cached(sql)
        .and_then(|mut statement| statement.raw_execute())
        .map(drop)
        .map_err(error)
}

/// Binds `values[k - 1]` to `?k`, refusing a statement that names a value
/// that was not bound or leaves one unused: SQLite would bind the missing
/// ones as NULL. SQLite counts `?k` parameters up to the highest `k`, and a
/// parameter of its own syntax (`?`, `:name`) would be counted besides.
fn bind(
    statement: &mut rusqlite::Statement<'_>,
    shape: &Shape,
    values: &[Value<'_>],
) -> Result<(), DbError> {
    let count = statement.parameter_count();
    if count != values.len() || count != shape.placeholders {
        return Err(encode(format!(
            "the statement has {count} parameters and {} values bound",
            values.len()
        )));
    }
    if !shape.complete {
        return Err(encode(format!(
            "a value is bound to no parameter: the statement skips one of $1…${count}"
        )));
    }
    for (index, value) in (1..).zip(values) {
        statement.raw_bind_parameter(index, value).map_err(error)?;
    }
    Ok(())
}

fn encode(message: String) -> DbError {
    DbError::Encode(message.into())
}

fn owned(value: ValueRef<'_>) -> Result<Owned, DbError> {
    Ok(match value {
        ValueRef::Null => Owned::Null,
        ValueRef::Integer(v) => Owned::Integer(v),
        ValueRef::Real(v) => Owned::Real(v),
        ValueRef::Text(bytes) => Owned::Text(
            String::from_utf8(bytes.to_vec()).map_err(|e| DbError::Decode(Box::new(e)))?,
        ),
        ValueRef::Blob(bytes) => Owned::Blob(bytes.to_vec()),
    })
}

impl ToSql for Value<'_> {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(ToSqlOutput::Borrowed(match self {
            Value::Null(_) => ValueRef::Null,
            Value::Bool(v) => ValueRef::Integer(i64::from(*v)),
            Value::Integer(v) => ValueRef::Integer(*v),
            Value::Real(v) => ValueRef::Real(*v),
            Value::Text(v) => ValueRef::Text(v.as_bytes()),
            Value::Blob(v) => ValueRef::Blob(v),
        }))
    }
}

/// rusqlite's error as the store's: a refusal by SQLite becomes a database
/// error whose kind (unique, foreign key, NOT NULL, CHECK) the store's
/// classifiers read, as they read sqlx's.
pub(crate) fn error(e: rusqlite::Error) -> DbError {
    match e {
        rusqlite::Error::SqliteFailure(failure, message) => DbError::Database(Box::new(Refusal {
            code: failure.extended_code,
            message: message.unwrap_or_else(|| failure.to_string()),
        })),
        rusqlite::Error::SqlInputError { error, msg, .. } => DbError::Database(Box::new(Refusal {
            code: error.extended_code,
            message: msg,
        })),
        rusqlite::Error::QueryReturnedNoRows => DbError::RowNotFound,
        rusqlite::Error::ToSqlConversionFailure(e) => DbError::Encode(e),
        rusqlite::Error::FromSqlConversionFailure(_, _, e) => DbError::Decode(e),
        // A misuse of the driver, not a lost connection (which `Protocol`
        // would say to the store's classifiers).
        other => DbError::InvalidArgument(other.to_string()),
    }
}

/// A statement SQLite refused, with its extended result code.
#[derive(Debug)]
struct Refusal {
    code: std::ffi::c_int,
    message: String,
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Refusal {}

impl sqlx::error::DatabaseError for Refusal {
    fn message(&self) -> &str {
        &self.message
    }

    fn code(&self) -> Option<std::borrow::Cow<'_, str>> {
        Some(self.code.to_string().into())
    }

    fn as_error(&self) -> &(dyn std::error::Error + Send + Sync + 'static) {
        self
    }

    fn as_error_mut(&mut self) -> &mut (dyn std::error::Error + Send + Sync + 'static) {
        self
    }

    fn into_error(self: Box<Self>) -> Box<dyn std::error::Error + Send + Sync + 'static> {
        self
    }

    fn kind(&self) -> sqlx::error::ErrorKind {
        use rusqlite::ffi;
        match self.code {
            ffi::SQLITE_CONSTRAINT_UNIQUE | ffi::SQLITE_CONSTRAINT_PRIMARYKEY => {
                sqlx::error::ErrorKind::UniqueViolation
            }
            ffi::SQLITE_CONSTRAINT_FOREIGNKEY => sqlx::error::ErrorKind::ForeignKeyViolation,
            ffi::SQLITE_CONSTRAINT_NOTNULL => sqlx::error::ErrorKind::NotNullViolation,
            ffi::SQLITE_CONSTRAINT_CHECK => sqlx::error::ErrorKind::CheckViolation,
            _ => sqlx::error::ErrorKind::Other,
        }
    }
}

#[cfg(test)]
mod tests;
