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

use crate::db::now_ms;
use crate::idempotency::{IdempotencyClaim, SaveResponseError};
use crate::location::Backend;
use crate::sql::Param;
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
        let renumbered = match (self.backend, self.parts.last_mut()) {
            (Backend::Sqlite, Some(part)) => {
                part.sql.push_str(";\n");
                renumber_into(Some(&mut part.sql), sql, self.offset)
            }
            _ => {
                let mut own = String::with_capacity(sql.len() + 8);
                let renumbered = renumber_into(Some(&mut own), sql, self.offset);
                self.parts.push(Part {
                    sql: own,
                    args: AnyArguments::default(),
                });
                renumbered
            }
        };
        // A batch with an error is never sent, so what was appended stays unread.
        let placeholders = match renumbered {
            Ok(placeholders) => placeholders,
            Err(e) => {
                self.error = Some(format!("batch statement {statement}: {e}"));
                return self;
            }
        };
        self.statements = statement;
        self.expected = placeholders;
        self.bound = 0;
        self
    }

    /// Binds the next placeholder of the current statement.
    pub fn bind(&mut self, value: impl Param<'q>) -> &mut Self {
        if self.error.is_some() {
            return self;
        }
        let Some(part) = self.parts.last_mut() else {
            self.error = Some("a value was bound before any statement".into());
            return self;
        };
        if let Err(e) = value.value().add_to(&mut part.args) {
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

/// Appends `sql` to `out` (if there is one) with its placeholders `$k`
/// written `$(k + offset)`, and returns the highest `k` (the statement's number of placeholders).
/// Text in quotes stays as it is. Refused: a `$` that is no placeholder,
/// `$0`, an unclosed quote, and a `;` outside quotes, since PostgreSQL runs
/// each statement of a batch on its own.
///
/// Every statement of every batch passes through here, so it copies the
/// text between placeholders whole and finds the next `$`, quote or `;`
/// with `memchr` rather than pushing character by character (which cost
/// about 3,700 instructions a statement, 4 % of an invoice). All four are
/// ASCII, so byte offsets found this way are character boundaries.
pub(crate) fn renumber_into(
    mut out: Option<&mut String>,
    sql: &str,
    offset: usize,
) -> Result<usize, String> {
    let bytes = sql.as_bytes();
    let one_statement = |text: &[u8]| match memchr::memchr(b';', text) {
        Some(_) => Err("holds more than one statement".to_owned()),
        None => Ok(()),
    };
    let mut highest = 0;
    let mut copied = 0;
    let mut at = 0;
    while let Some(found) = memchr::memchr3(b'$', b'\'', b'"', &bytes[at..]) {
        one_statement(&bytes[at..at + found])?;
        let special = at + found;
        if bytes[special] != b'$' {
            let quote = bytes[special];
            let Some(close) = memchr::memchr(quote, &bytes[special + 1..]) else {
                return Err("has an unclosed quote".into());
            };
            at = special + 1 + close + 1;
            continue;
        }
        let digits = bytes[special + 1..]
            .iter()
            .take_while(|b| b.is_ascii_digit())
            .count();
        let end = special + 1 + digits;
        let k: usize = sql[special + 1..end]
            .parse()
            .map_err(|_| "has a `$` that is not a placeholder `$n`".to_owned())?;
        if k == 0 {
            return Err("has the placeholder $0; they start at $1".into());
        }
        highest = highest.max(k);
        if let Some(out) = out.as_deref_mut() {
            out.push_str(&sql[copied..=special]);
            out.push_str(itoa::Buffer::new().format(k + offset));
        }
        copied = end;
        at = end;
    }
    one_statement(&bytes[at..])?;
    if let Some(out) = out {
        out.push_str(&sql[copied..]);
    }
    Ok(highest)
}

#[cfg(test)]
mod tests {
    use super::renumber_into;

    fn renumber(sql: &str, offset: usize) -> Result<(String, usize), String> {
        let mut out = String::new();
        renumber_into(Some(&mut out), sql, offset).map(|n| (out, n))
    }

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
    fn text_around_placeholders_is_copied_whole_and_appended() {
        let mut out = "SAVEPOINT s;\n".to_owned();
        let sql = "INSERT INTO t (név, b) VALUES ('it''s $9; ok', $12)$1 RETURNING \"é\"";
        assert_eq!(renumber_into(Some(&mut out), sql, 3), Ok(12));
        assert_eq!(
            out,
            "SAVEPOINT s;\nINSERT INTO t (név, b) VALUES ('it''s $9; ok', $15)$4 RETURNING \"é\""
        );
        assert_eq!(renumber("$1$2", 0).unwrap(), ("$1$2".to_owned(), 2));
        assert_eq!(renumber("a = $7", 0).unwrap(), ("a = $7".to_owned(), 7));
    }

    #[test]
    fn what_cannot_be_renumbered_is_refused() {
        for bad in [
            "SELECT 1; SELECT 2",
            "SELECT $a",
            "SELECT $",
            "SELECT $0",
            "SELECT 'open",
            "SELECT 'a'; SELECT 2",
            "SELECT $1;",
            "SELECT \"open",
            "SELECT $99999999999999999999999",
        ] {
            assert!(renumber(bad, 0).is_err(), "{bad}");
        }
    }
}
