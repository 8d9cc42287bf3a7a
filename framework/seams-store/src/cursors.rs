//! Consumers' cursors: how far each subscription has read its feed.

use crate::db::{Db, now_ms};
use crate::sql::{DbError, query};
use crate::tx::Tx;

impl Db {
    /// This database's position in the feed `subscription` (0 at first).
    pub async fn cursor(&self, subscription: &str) -> Result<u64, DbError> {
        let row = query("SELECT position FROM seams_cursors WHERE subscription = $1")
            .bind(subscription)
            .fetch_optional(&mut self.read().await?)
            .await?;
        Ok(row
            .map(|row| row.get::<i64>(0))
            .transpose()?
            .map_or(0, |p| p as u64))
    }

    /// Moves the cursor of `subscription` forward to `position`, durably.
    pub async fn set_cursor(&self, subscription: &str, position: u64) -> Result<(), DbError> {
        Ok(self
            .write_cursor(subscription, position)
            .await?
            .commit()
            .await?)
    }

    /// Moves the cursor of `subscription` forward to `position` with the
    /// next group commit, without waiting for it: for a relay that keeps
    /// its position in memory, where a cursor lost in a crash only means
    /// redelivery of events the inbox has already seen.
    pub async fn set_cursor_eventually(
        &self,
        subscription: &str,
        position: u64,
    ) -> Result<(), DbError> {
        self.write_cursor(subscription, position)
            .await?
            .commit_eventually()
            .await
    }

    async fn write_cursor(&self, subscription: &str, position: u64) -> Result<Tx, DbError> {
        let mut tx = self.begin().await?;
        tx.later()
            .statement(
                "INSERT INTO seams_cursors (subscription, position, updated_at_ms) VALUES ($1, $2, $3) \
                 ON CONFLICT (subscription) DO UPDATE SET position = CASE \
                 WHEN seams_cursors.position > excluded.position THEN seams_cursors.position \
                 ELSE excluded.position END, \
                 updated_at_ms = excluded.updated_at_ms",
            )
            .bind(subscription.to_owned())
            .bind(position as i64)
            .bind(now_ms());
        Ok(tx)
    }
}
