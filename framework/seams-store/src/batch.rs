//! Several statements of one transaction, kept until its commit.
//!
//! A transaction holds its database's single writer from `begin` to
//! `commit`. Statements that need no answer until the end (inserts whose
//! results nobody reads) can go into the transaction's [`Batch`]
//! ([`Tx::later`]) and are run with the commit, in order, stopping at the
//! first that fails. The batch also carries the transaction's savepoint:
//! its `SAVEPOINT` first if no statement needed an answer before, and on
//! SQLite its `RELEASE` last. A batch stops at its first failing
//! statement, so a member whose `SAVEPOINT` went with it either opened it
//! or ran nothing.
//!
//! On SQLite the statements run inline on the writer's connection
//! ([`crate::sqlite`]), each prepared once and kept, so a batch is no
//! cheaper per statement than the same statements sent one by one; what it
//! still gives is that a command which only writes holds the writer for
//! one uninterrupted run, with nothing awaited in between. On PostgreSQL,
//! which refuses several statements with parameters in one query, the
//! statements go one after another.
//!
//! Statements are written as they would be alone, placeholders `$1`…`$n`.
//! A statement that leaves a placeholder unbound, or binds more values
//! than it has placeholders, fails the batch before anything is sent:
//! SQLite would otherwise bind the missing ones as NULL.

use seams_core::Envelope;

use crate::db::now_ms;
use crate::driver::Want;
use crate::idempotency::{IdempotencyClaim, SaveResponseError};
use crate::sql::{DbError, Param, Target, Value};
use crate::tx::Tx;

/// Statements sent together: a transaction's [`Tx::later`], `tx.later().statement(SQL).bind(v)…`.
pub struct Batch<'q> {
    statements: Vec<Statement<'q>>,
    /// Placeholders of the statement being bound.
    expected: usize,
    published: bool,
    /// The first mistake, reported at the commit before anything is sent.
    error: Option<String>,
    /// Which versions of events go into the outbox.
    emit: std::sync::Arc<crate::emit::Emit>,
}

struct Statement<'q> {
    sql: String,
    values: Vec<Value<'q>>,
}

impl std::fmt::Debug for Batch<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Batch")
            .field("statements", &self.statements.len())
            .finish_non_exhaustive()
    }
}

const SAVE_RESPONSE: &str = "INSERT INTO seams_idempotency \
     (scope, key, fingerprint, status, body, created_at_ms) VALUES ($1, $2, $3, $4, $5, $6)";
const PUBLISH: &str = "INSERT INTO seams_outbox \
     (event_id, event_type, subject, envelope, created_at_ms) VALUES ($1, $2, $3, $4, $5)";

impl<'q> Batch<'q> {
    pub(crate) fn new(emit: std::sync::Arc<crate::emit::Emit>) -> Batch<'q> {
        Batch {
            statements: Vec::new(),
            expected: 0,
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
        let statement = self.statements.len() + 1;
        match crate::placeholders::shape(sql) {
            Ok(shape) => {
                let placeholders = shape.placeholders;
                self.expected = placeholders;
                self.statements.push(Statement {
                    sql: sql.to_owned(),
                    values: Vec::with_capacity(placeholders),
                });
            }
            Err(e) => self.error = Some(format!("batch statement {statement}: {e}")),
        }
        self
    }

    /// Binds the next placeholder of the current statement.
    pub fn bind(&mut self, value: impl Param<'q>) -> &mut Self {
        if self.error.is_some() {
            return self;
        }
        match self.statements.last_mut() {
            Some(statement) => statement.values.push(value.value()),
            None => self.error = Some("a value was bound before any statement".into()),
        }
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

    /// Puts `sql`, which takes no values, before the statements so far.
    pub(crate) fn before_raw(&mut self, sql: &str) {
        self.statements.insert(
            0,
            Statement {
                sql: sql.to_owned(),
                values: Vec::new(),
            },
        );
    }

    /// Appends `sql`, which takes no values, after the statements so far.
    pub(crate) fn then_raw(&mut self, sql: &str) {
        self.close_statement();
        self.statements.push(Statement {
            sql: sql.to_owned(),
            values: Vec::new(),
        });
        self.expected = 0;
    }

    /// Checks the statement being bound got exactly its values.
    fn close_statement(&mut self) {
        if self.error.is_some() {
            return;
        }
        let Some(statement) = self.statements.last() else {
            return;
        };
        if statement.values.len() != self.expected {
            self.error = Some(format!(
                "batch statement {} has {} placeholders and {} values bound",
                self.statements.len(),
                self.expected,
                statement.values.len()
            ));
        }
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
            return Err(SaveResponseError::Db(DbError::Protocol(e)));
        }
        let mut changed = 0;
        for statement in batch.statements {
            let Target(driver) = self.raw_target();
            let result = driver
                .run(&statement.sql, statement.values, Want::Changes)
                .get()
                .await
                .map(|ran| ran.changes);
            match result {
                Ok(n) => changed += n,
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
