//! A write transaction: one member of its database's next group commit.

use seams_core::Envelope;
use tokio::sync::{OwnedMutexGuard, watch};
use tracing::Instrument;

use crate::batch::Batch;
use crate::db::{Db, now_ms};
use crate::idempotency::SaveResponseError;
use crate::location::Backend;
use crate::pipeline::Turn;
use crate::sql::{DbError, Target, query};
use crate::writer::{RELEASE, SAVEPOINT, Undo, Writer};

/// A write transaction in a capability's database.
///
/// Statements whose answers the caller reads run on it at once
/// (`query(SQL).fetch_one(&mut tx)`, [`crate::query`]); statements that
/// need no answer go into [`Tx::later`] and run with the commit (the
/// savepoint's `SAVEPOINT` and, on SQLite, `RELEASE` with them when nothing
/// needed an answer first). Either way the transaction is the only way to
/// write.
///
/// Dropping it without [`Tx::commit`] rolls back, outbox rows included.
/// It holds the writer until it commits or is dropped, so keep it short and
/// never wait on another service inside it.
pub struct Tx {
    pub(crate) writer: Option<OwnedMutexGuard<Writer>>,
    pub(crate) db: Db,
    pub(crate) published: bool,
    /// Its place in a relay's order, if it applies an event
    /// ([`Db::begin_consume`], [`crate::pipeline`]): `None` for any other.
    pub(crate) turn: Option<Turn>,
    /// How to take this member's work back out.
    pub(crate) undo: Undo,
    /// Its savepoint was released already, by the last statement of a
    /// batch ([`Tx::later`]).
    pub(crate) released: bool,
    /// Its `SAVEPOINT` has not been sent: it goes with its first statement.
    pub(crate) savepoint_deferred: bool,
    /// Statements sent with the commit ([`Tx::later`]).
    pub(crate) later: Option<Batch<'static>>,
}

impl Tx {
    /// The connection, for statements whose answers are read (a row, a
    /// count of changed rows): sends this transaction's `SAVEPOINT` first
    /// if it has not gone yet. Statements in [`Tx::later`] are not sent
    /// before the commit, so what they write is not seen here.
    pub(crate) async fn target(&mut self) -> Result<Target<'_>, DbError> {
        if self.take_deferred_savepoint() {
            self.writer
                .as_mut()
                .expect("a live transaction holds the writer")
                .exec(SAVEPOINT)
                .await?;
        }
        Ok(self.raw_target())
    }

    /// Statements that need no answer, sent with the commit in order
    /// ([`Batch`]): `tx.later().statement(SQL).bind(v)…`. They bind owned
    /// values, since they are kept until then; a failing one fails the
    /// commit, which then leaves nothing of the transaction.
    pub fn later(&mut self) -> &mut Batch<'static> {
        let emit = self.db.emit();
        self.later.get_or_insert_with(|| Batch::new(emit))
    }

    /// Whether a `SAVEPOINT` must open the next statement sent; from here
    /// on the savepoint counts as sent (if that statement fails, undoing
    /// one that is not open is harmless, [`Writer::undo`]).
    pub(crate) fn take_deferred_savepoint(&mut self) -> bool {
        std::mem::take(&mut self.savepoint_deferred)
    }

    /// The connection as it is, for the store's own statements that send
    /// the deferred `SAVEPOINT` themselves.
    pub(crate) fn raw_target(&mut self) -> Target<'_> {
        self.writer
            .as_mut()
            .expect("a live transaction holds the writer")
            .target()
    }

    /// The SQL dialect of this transaction's database.
    pub fn backend(&self) -> Backend {
        self.db.backend()
    }

    /// The database this transaction writes.
    pub fn db(&self) -> &Db {
        &self.db
    }

    /// Appends `env` to the outbox; it is published only if this transaction
    /// commits. Returns its position in the outbox, which is final at commit
    /// (one writer), and is what a consistency token names.
    pub async fn publish(&mut self, env: &Envelope) -> Result<u64, DbError> {
        let emit = self.db.emit();
        let env = emit.written(env).map_err(|e| DbError::Encode(e.into()))?;
        let json = serde_json::to_string(&env).map_err(|e| DbError::Encode(Box::new(e)))?;
        let seq: i64 = query(
            "INSERT INTO seams_outbox (event_id, event_type, subject, envelope, created_at_ms) \
             VALUES ($1, $2, $3, $4, $5) RETURNING seq",
        )
        .bind(&env.id)
        .bind(&env.event_type)
        .bind(&env.subject)
        .bind(json)
        .bind(now_ms())
        .fetch_one(self)
        .await?
        .get(0)?;
        self.published = true;
        Ok(seq as u64)
    }

    /// Remembers that this transaction wrote outbox rows, so its commit
    /// wakes the feed readers.
    pub(crate) fn mark_published(&mut self) {
        self.published = true;
    }

    /// Whether this transaction's savepoint can be released by the last
    /// statement of a batch: it has one (it joined an open group), the
    /// database runs a batch in one call (SQLite), and, if it applies an
    /// event, the event before it did not fail to commit (then its release
    /// must undo it instead, [`crate::pipeline`]). That outcome cannot
    /// change while this transaction holds the writer, so checking it
    /// before the batch is sent is as good as checking it at the release.
    pub(crate) fn can_release_in_batch(&self) -> bool {
        self.undo == Undo::Savepoint
            && self.backend() == Backend::Sqlite
            && !self.predecessor_failed()
    }

    /// Whether the event before this one's (in its relay's order) failed
    /// to commit; always `false` for a transaction that applies no event.
    fn predecessor_failed(&self) -> bool {
        match (&self.turn, &self.writer) {
            (Some(turn), Some(w)) => turn.predecessor_failed(&w.group),
            _ => false,
        }
    }

    /// Whether this transaction joined a group others had opened (its work
    /// is undone to its savepoint, not by rolling the group back).
    #[cfg(test)]
    pub(crate) fn joined(&self) -> bool {
        self.undo == Undo::Savepoint
    }

    /// Whether this transaction's `SAVEPOINT` has not been sent yet.
    #[cfg(test)]
    pub(crate) fn savepoint_deferred(&self) -> bool {
        self.savepoint_deferred
    }

    /// Whether this transaction has work in the group to take back out:
    /// it opened the transaction, or its savepoint was (or may have been) sent.
    fn has_work(&self) -> bool {
        self.undo == Undo::Transaction || !self.savepoint_deferred
    }

    /// Sends what [`Tx::later`] holds, opened by the deferred `SAVEPOINT`
    /// and, on SQLite, closed by the `RELEASE` when nothing can still
    /// need the savepoint.
    async fn send_later(&mut self) -> Result<(), SaveResponseError> {
        let Some(mut batch) = self.later.take() else {
            return Ok(());
        };
        if self.take_deferred_savepoint() {
            batch.before_raw(SAVEPOINT);
        }
        let release = self.can_release_in_batch();
        if release {
            batch.then_raw(RELEASE);
        }
        self.run(batch).await?;
        // Nothing between here and the commit can fail: a savepoint
        // released this way is never rolled back to.
        self.released |= release;
        Ok(())
    }

    /// Commits: sends what [`Tx::later`] holds, then returns once the group
    /// this transaction joined is durable (then feed readers are woken if
    /// events were published). A keyed response that another request
    /// recorded first is [`SaveResponseError::Conflict`], and nothing of
    /// this transaction stays.
    pub async fn commit(mut self) -> Result<(), SaveResponseError> {
        self.send_later().await?;
        self.commit_sent().await.map_err(SaveResponseError::Db)
    }

    /// [`Tx::commit`] of what has been sent.
    async fn commit_sent(mut self) -> Result<(), DbError> {
        // For traces only (DEBUG, which the default log filter leaves off):
        // the wait for the group's COMMIT, and how many members had
        // released into the group before this one, plus one.
        let span = tracing::debug_span!(
            "commit",
            database = %self.db.inner.name,
            group_member = tracing::field::Empty,
            otel.status_code = tracing::field::Empty,
        );
        let outcome = async {
            let (mut done, member) = self.release().await?;
            tracing::Span::current().record("group_member", member);
            let outcome = done
                .wait_for(|r| r.is_some())
                .await
                .map_err(|_| DbError::PoolClosed)?
                .clone();
            match outcome {
                Some(Ok(())) => Ok(()),
                Some(Err(e)) => Err(DbError::Protocol(format!("group commit failed: {e}"))),
                None => Err(DbError::PoolClosed),
            }
        }
        .instrument(span.clone())
        .await;
        if outcome.is_err() {
            span.record("otel.status_code", "ERROR");
        }
        outcome
    }

    /// Joins the next group commit and returns without waiting for it:
    /// for bookkeeping whose loss in a crash is harmless because it is
    /// written again (a cursor behind its effects redelivers into the
    /// inbox; an acknowledgement is repeated on the next read).
    pub async fn commit_eventually(mut self) -> Result<(), DbError> {
        self.send_later()
            .await
            .map_err(SaveResponseError::into_db)?;
        self.release().await.map(drop)
    }

    /// Releases this member's savepoint into the open group and asks for a
    /// commit; the receiver learns the group's outcome, the number is this
    /// member's place in the order of release into the group (1: first).
    async fn release(
        &mut self,
    ) -> Result<(watch::Receiver<Option<Result<(), String>>>, u32), DbError> {
        let mut w = self
            .writer
            .take()
            .expect("a live transaction holds the writer");
        if self
            .turn
            .as_ref()
            .is_some_and(|turn| turn.predecessor_failed(&w.group))
        {
            // The previous event did not commit; this one must not be
            // applied before it is retried.
            if w.undo(self.undo).await.is_err() {
                w.dirty = Some(self.undo);
            }
            drop(w);
            self.db.inner.commit_wanted.notify_one();
            return Err(DbError::Protocol(
                "the previous event's transaction did not commit; this one is undone to keep their order".into(),
            ));
        }
        if self.undo == Undo::Savepoint
            && !self.released
            && !self.savepoint_deferred
            && let Err(e) = w.exec(RELEASE).await
        {
            w.dirty = Some(self.undo);
            return Err(e);
        }
        let group = w.group.clone();
        let member = group
            .members
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
            .saturating_add(1);
        if self.published {
            group
                .published
                .store(true, std::sync::atomic::Ordering::SeqCst);
        }
        let done = group.done.subscribe();
        let pipelined = self.turn.as_ref().is_some_and(Turn::pipelined);
        if let Some(turn) = &self.turn {
            turn.released(&group);
        }
        drop(w);
        if !pipelined {
            self.db.inner.commit_wanted.notify_one();
        }
        Ok((done, member))
    }

    /// Rolls back explicitly.
    pub async fn rollback(mut self) -> Result<(), DbError> {
        let has_work = self.has_work();
        let mut w = self
            .writer
            .take()
            .expect("a live transaction holds the writer");
        let res = if has_work {
            w.undo(self.undo).await
        } else {
            Ok(())
        };
        if res.is_err() {
            w.dirty = Some(self.undo);
        }
        drop(w);
        self.db.inner.commit_wanted.notify_one();
        res.map(|_| ())
    }
}

impl Drop for Tx {
    fn drop(&mut self) {
        let has_work = self.has_work();
        if let Some(mut w) = self.writer.take() {
            // Undone by the next user of the writer (or the committer): no async in Drop.
            if has_work {
                w.dirty = Some(self.undo);
            }
            drop(w);
            self.db.inner.commit_wanted.notify_one();
        }
    }
}
