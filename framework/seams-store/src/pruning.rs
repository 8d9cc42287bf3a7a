//! Retention: deleting framework rows nobody needs any more.

use crate::db::Db;
use crate::sql::{DbError, query};

/// Rows removed by one [`Db::prune`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PruneReport {
    /// Outbox rows delivered to every known subscriber and older than the cutoff.
    pub outbox: u64,
    /// Inbox ids older than the cutoff.
    pub inbox: u64,
    /// Idempotency records older than the cutoff.
    pub idempotency: u64,
}

impl Db {
    /// Deletes what retention allows: outbox rows acknowledged by every one
    /// of `readers` (the declared subscriptions to this outbox, or the bus
    /// publisher) and created before `outbox_before_ms`; inbox ids handled
    /// before `inbox_before_ms`; idempotency records created before
    /// `idempotency_before_ms`.
    pub async fn prune(
        &self,
        readers: &[String],
        outbox_before_ms: i64,
        inbox_before_ms: i64,
        idempotency_before_ms: i64,
    ) -> Result<PruneReport, DbError> {
        let acked = self.acked_by_all(readers).await?.min(i64::MAX as u64) as i64;
        let mut tx = self.begin().await?;
        let outbox = query("DELETE FROM seams_outbox WHERE created_at_ms < $1 AND seq <= $2")
            .bind(outbox_before_ms)
            .bind(acked)
            .execute(&mut tx)
            .await?;
        let inbox = query("DELETE FROM seams_inbox WHERE handled_at_ms < $1")
            .bind(inbox_before_ms)
            .execute(&mut tx)
            .await?;
        let idempotency = query("DELETE FROM seams_idempotency WHERE created_at_ms < $1")
            .bind(idempotency_before_ms)
            .execute(&mut tx)
            .await?;
        tx.commit().await?;
        Ok(PruneReport {
            outbox,
            inbox,
            idempotency,
        })
    }

    /// Row counts of the framework tables (outbox, inbox, idempotency), for tests and metrics.
    pub async fn framework_counts(&self) -> Result<(i64, i64, i64), DbError> {
        let row = query(
            "SELECT (SELECT COUNT(*) FROM seams_outbox), (SELECT COUNT(*) FROM seams_inbox), \
             (SELECT COUNT(*) FROM seams_idempotency)",
        )
        .fetch_one(&mut self.read().await?)
        .await?;
        Ok((row.get(0)?, row.get(1)?, row.get(2)?))
    }
}
