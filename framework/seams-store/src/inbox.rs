//! The inbox: which events each consumer has applied, recorded in the same
//! transaction as their effects, so that a redelivered event is a no-op.

use seams_core::Envelope;

use crate::db::{Db, now_ms};
use crate::pipeline::Turn;
use crate::sql::{DbError, query};
use crate::tx::Tx;

/// The inbox row of an event a consumer applies; nothing if it is there.
pub(crate) const INSERT: &str = "INSERT INTO seams_inbox (consumer, event_id, handled_at_ms) \
     VALUES ($1, $2, $3) ON CONFLICT DO NOTHING";

impl Db {
    /// Starts the transaction in which consumer `consumer` applies `env`, with
    /// the event id already recorded in the inbox; `None` if it was applied
    /// before. It commits in `turn`: after the transaction of the event
    /// before it in its relay's order, or on its own ([`Turn::alone`]).
    pub async fn begin_consume(
        &self,
        consumer: &str,
        env: &Envelope,
        turn: Turn,
    ) -> Result<Option<Tx>, DbError> {
        let mut tx = self.begin_member(true).await?;
        tx.turn = Some(turn);
        // A member joining an open group on SQLite sends its deferred
        // `SAVEPOINT` just before this statement (inline, no round trip).
        // No `RETURNING`: SQLite collects returned rows in a temporary
        // B-tree it creates and drops per statement, about 10,000
        // instructions an event. If the statement fails, dropping the
        // transaction undoes the savepoint, opened or not.
        let inserted = query(INSERT)
            .bind(consumer)
            .bind(&env.id)
            .bind(now_ms())
            .execute(&mut tx)
            .await?;
        if inserted == 0 {
            tx.rollback().await?;
            return Ok(None);
        }
        Ok(Some(tx))
    }

    /// Whether consumer `consumer` has applied event `event_id`.
    pub async fn inbox_contains(&self, consumer: &str, event_id: &str) -> Result<bool, DbError> {
        let row = query("SELECT 1 FROM seams_inbox WHERE consumer = $1 AND event_id = $2")
            .bind(consumer)
            .bind(event_id)
            .fetch_optional(&mut self.read().await?)
            .await?;
        Ok(row.map(|row| row.get::<i64>(0)).transpose()?.is_some())
    }
}
