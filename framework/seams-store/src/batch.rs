//! Several statements of one transaction sent to the database together.
//!
//! A transaction holds its database's single writer from `begin` to
//! `commit`, and every statement in between is a round trip: on SQLite to
//! the connection's worker thread and back to a tokio worker, which under
//! load is busy with HTTP and answers late. Under create-invoice at 1,000/s
//! on the benchmark machine, billing's transactions queued for the writer
//! 1.4-1.5 ms on average (p99 up to 25 ms) with one round trip per
//! statement, and 0.15-0.24 ms with the same statements sent as one
//! (`seams_db_writer_wait_seconds`, BENCHMARKS.md). Statements that need no
//! answer until the end (inserts whose results nobody reads) can therefore
//! go into the transaction's [`Batch`] ([`Tx::later`]), sent with the
//! commit: one round trip on SQLite, which runs a query string of several
//! statements in order and stops at the first that fails.
//!
//! The same query carries the `RELEASE` of the transaction's savepoint,
//! and its `SAVEPOINT` too if no statement needed an answer before: a
//! command that joins an open group and only writes holds the writer for
//! one round trip in all. A batch stops at its first failing statement, so
//! a member whose `SAVEPOINT` went with it either opened it or ran nothing.
//!
//! PostgreSQL refuses several statements with parameters in one query, so
//! there a batch runs its statements one after another: the same effects
//! and errors, without the saving (its writer is a network connection, not
//! a thread of this process, and is not where PostgreSQL deployments wait).
//!
//! Statements are written as they would be alone, placeholders from `$1`;
//! the batch renumbers them. A statement that leaves a placeholder unbound,
//! or binds more values than it has placeholders, fails the batch before
//! anything is sent: SQLite would otherwise bind the missing ones as NULL.
//!
//! No crate offers this: sqlx runs one query string with one argument list,
//! and its argument lists cannot be joined through its public API, so the
//! batch binds every value straight into the list it will send.

use seams_core::Envelope;
use sqlx::any::AnyArguments;
use sqlx::{Any, Arguments, Encode, Type};

use crate::db::now_ms;
use crate::idempotency::{IdempotencyClaim, SaveResponseError};
use crate::location::Backend;
use crate::tx::Tx;

/// Statements sent together: a transaction's [`Tx::later`], `tx.later().statement(SQL).bind(v)…`.
pub struct Batch<'q> {
    backend: Backend,
    /// SQLite: one part, every statement joined with placeholders
    /// renumbered, every value. PostgreSQL: one part per statement.
    parts: Vec<Part<'q>>,
    /// Placeholders of the statement being bound, and values bound to it.
    expected: usize,
    bound: usize,
    /// Values bound before the statement being bound began.
    offset: usize,
    statements: usize,
    published: bool,
    /// The first mistake, reported at the commit before anything is sent.
    error: Option<String>,
    /// Which versions of events go into the outbox.
    emit: std::sync::Arc<crate::emit::Emit>,
}

struct Part<'q> {
    sql: String,
    args: AnyArguments<'q>,
}

impl std::fmt::Debug for Batch<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Batch")
            .field("backend", &self.backend)
            .field("statements", &self.statements)
            .finish_non_exhaustive()
    }
}

const SAVE_RESPONSE: &str = "INSERT INTO seams_idempotency \
     (scope, key, fingerprint, status, body, created_at_ms) VALUES ($1, $2, $3, $4, $5, $6)";
const PUBLISH: &str = "INSERT INTO seams_outbox \
     (event_id, event_type, subject, envelope, created_at_ms) VALUES ($1, $2, $3, $4, $5)";

impl<'q> Batch<'q> {
    pub(crate) fn new(backend: Backend, emit: std::sync::Arc<crate::emit::Emit>) -> Batch<'q> {
        Batch {
            backend,
            parts: Vec::new(),
            expected: 0,
            bound: 0,
            offset: 0,
            statements: 0,
            published: false,
            error: None,
            emit,
        }
    }

    /// Starts the next statement: one statement, placeholders `$1`…`$n`,
    /// each bound next with [`Batch::bind`] in order.
    pub fn statement(&mut self, sql: &str) -> &mut Self {
        self.close_statement();
        if self.error.is_some() {
            return self;
        }
        let statement = self.statements + 1;
        let (sql, placeholders) = match renumber(sql, self.offset) {
            Ok(renumbered) => renumbered,
            Err(e) => {
                self.error = Some(format!("batch statement {statement}: {e}"));
                return self;
            }
        };
        match (self.backend, self.parts.last_mut()) {
            (Backend::Sqlite, Some(part)) => {
                part.sql.push_str(";\n");
                part.sql.push_str(&sql);
            }
            _ => self.parts.push(Part {
                sql,
                args: AnyArguments::default(),
            }),
        }
        self.statements = statement;
        self.expected = placeholders;
        self.bound = 0;
        self
    }

    /// Binds the next placeholder of the current statement.
    pub fn bind<T>(&mut self, value: T) -> &mut Self
    where
        T: 'q + Encode<'q, Any> + Type<Any>,
    {
        if self.error.is_some() {
            return self;
        }
        let Some(part) = self.parts.last_mut() else {
            self.error = Some("a value was bound before any statement".into());
            return self;
        };
        if let Err(e) = part.args.add(value) {
            self.error = Some(format!(
                "batch statement {}, value {}: {e}",
                self.statements,
                self.bound + 1
            ));
        }
        self.bound += 1;
        self
    }

    /// Records the response to `claim`, as [`Tx::save_response`] does.
    /// Another request that recorded one for the same key first makes
    /// [`Tx::commit`] fail with [`SaveResponseError::Conflict`] (by the
    /// unique key, where `save_response` counts the rows it inserted: a
    /// batch learns nothing until its end).
    pub fn save_response(
        &mut self,
        claim: &IdempotencyClaim,
        status: u16,
        body: &[u8],
    ) -> &mut Self {
        self.statement(SAVE_RESPONSE)
            .bind(claim.scope.clone())
            .bind(claim.key.clone())
            .bind(claim.fingerprint.clone())
            .bind(i64::from(status))
            .bind(body.to_vec())
            .bind(now_ms())
    }

    /// Appends `env` to the outbox, as [`Tx::publish`] does, without
    /// learning its position.
    pub fn publish(&mut self, env: &Envelope) -> &mut Self {
        let written = match self.emit.written(env) {
            Ok(written) => written,
            Err(e) => {
                self.error
                    .get_or_insert(format!("writing event {}: {e}", env.id));
                return self;
            }
        };
        let env = &*written;
        let json = match serde_json::to_string(env) {
            Ok(json) => json,
            Err(e) => {
                self.error
                    .get_or_insert(format!("encoding event {}: {e}", env.id));
                return self;
            }
        };
        self.published = true;
        self.statement(PUBLISH)
            .bind(env.id.clone())
            .bind(env.event_type.clone())
            .bind(env.subject.clone())
            .bind(json)
            .bind(now_ms())
    }

    /// Puts `sql`, which takes no values, before the statements so far
    /// (SQLite only: its batch is one query).
    pub(crate) fn before_raw(&mut self, sql: &str) {
        match self.parts.first_mut() {
            Some(part) => part.sql.insert_str(0, &format!("{sql};\n")),
            None => self.parts.push(Part {
                sql: sql.to_owned(),
                args: AnyArguments::default(),
            }),
        }
    }

    /// Appends `sql`, which takes no values, after the statements so far
    /// (SQLite only: its batch is one query).
    pub(crate) fn then_raw(&mut self, sql: &str) {
        match self.parts.last_mut() {
            Some(part) => {
                part.sql.push_str(";\n");
                part.sql.push_str(sql);
            }
            None => self.parts.push(Part {
                sql: sql.to_owned(),
                args: AnyArguments::default(),
            }),
        }
    }

    /// Checks the statement being bound got exactly its values.
    fn close_statement(&mut self) {
        if self.statements == 0 || self.error.is_some() {
            return;
        }
        if self.bound != self.expected {
            self.error = Some(format!(
                "batch statement {} has {} placeholders and {} values bound",
                self.statements, self.expected, self.bound
            ));
        }
        self.offset = match self.backend {
            Backend::Sqlite => self.offset + self.bound,
            Backend::Postgres => 0,
        };
        // Closed: closing again changes nothing, and a value bound now
        // counts as one too many.
        self.expected = 0;
        self.bound = 0;
    }
}

impl Tx {
    /// Runs `batch`'s statements in order, as part of this transaction; the
    /// first that fails stops the rest and is the error (then drop or roll
    /// back the transaction, as after any failed statement). Returns the
    /// rows they changed, all together.
    pub(crate) async fn run(&mut self, mut batch: Batch<'_>) -> Result<u64, SaveResponseError> {
        batch.close_statement();
        if let Some(e) = batch.error {
            return Err(SaveResponseError::Db(sqlx::Error::Protocol(e)));
        }
        let mut changed = 0;
        for part in batch.parts {
            match sqlx::query_with(&part.sql, part.args)
                .execute(self.raw_conn())
                .await
            {
                Ok(done) => changed += done.rows_affected(),
                Err(e)
                    if crate::unique_violation(&e)
                        .is_some_and(|c| c.contains("seams_idempotency")) =>
                {
                    return Err(SaveResponseError::Conflict);
                }
                Err(e) => return Err(SaveResponseError::Db(e)),
            }
        }
        if batch.published {
            self.mark_published();
        }
        Ok(changed)
    }
}

/// `sql` with every placeholder `$k` made `$(k + offset)`, and the number of
/// placeholders (the highest `k`). Quoted text is left alone. One statement
/// only: a `;` outside quotes is refused, since PostgreSQL runs each
/// statement of a batch on its own.
fn renumber(sql: &str, offset: usize) -> Result<(String, usize), String> {
    let mut out = String::with_capacity(sql.len() + 8);
    let mut highest = 0;
    let mut quote: Option<char> = None;
    let mut chars = sql.char_indices().peekable();
    while let Some((_, c)) = chars.next() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), _) => {}
            (None, '\'' | '"') => quote = Some(c),
            (None, ';') => return Err("holds more than one statement".into()),
            (None, '$') => {
                let mut digits = String::new();
                while let Some((_, d)) = chars.peek().filter(|(_, d)| d.is_ascii_digit()) {
                    digits.push(*d);
                    chars.next();
                }
                let k: usize = digits
                    .parse()
                    .map_err(|_| "has a `$` that is not a placeholder `$n`".to_owned())?;
                if k == 0 {
                    return Err("has the placeholder $0; they start at $1".into());
                }
                highest = highest.max(k);
                out.push('$');
                out.push_str(&(k + offset).to_string());
                continue;
            }
            _ => {}
        }
        out.push(c);
    }
    if quote.is_some() {
        return Err("has an unclosed quote".into());
    }
    Ok((out, highest))
}

#[cfg(test)]
mod tests {
    use super::renumber;

    #[test]
    fn placeholders_move_by_the_offset_and_quoted_text_stays() {
        assert_eq!(
            renumber("INSERT INTO t (a, b) VALUES ($1, $2)", 4).unwrap(),
            ("INSERT INTO t (a, b) VALUES ($5, $6)".to_owned(), 2)
        );
        assert_eq!(
            renumber("UPDATE t SET a = '$1;' WHERE \"b$2\" = $3 OR c = $1", 10).unwrap(),
            (
                "UPDATE t SET a = '$1;' WHERE \"b$2\" = $13 OR c = $11".to_owned(),
                3
            )
        );
        assert_eq!(renumber("SELECT 1", 3).unwrap(), ("SELECT 1".to_owned(), 0));
    }

    #[test]
    fn what_cannot_be_renumbered_is_refused() {
        for bad in [
            "SELECT 1; SELECT 2",
            "SELECT $a",
            "SELECT $",
            "SELECT $0",
            "SELECT 'open",
        ] {
            assert!(renumber(bad, 0).is_err(), "{bad}");
        }
    }
}
