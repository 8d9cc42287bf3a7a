//! Dead letters: the events a subscription gave up on, parked in the
//! consumer's database until an operator asks for them again, and the order
//! per key they hold up.

use seams_core::Envelope;

use crate::db::{Db, now_ms};
use crate::outbox::decode;
use crate::sql::{DbError, Row, query};
use crate::tx::Tx;

/// An event a consumer gave up on, as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct DeadLetter {
    /// Row id.
    pub id: i64,
    /// Which subscription gave up.
    pub subscription: String,
    /// The event.
    pub envelope: Envelope,
    /// The last error.
    pub error: String,
    /// How many deliveries were tried.
    pub attempts: i64,
    /// `parked` or `replayed`.
    pub status: String,
    /// When it was parked.
    pub created_at_ms: i64,
}

fn dead_letter(row: &Row) -> Result<DeadLetter, DbError> {
    Ok(DeadLetter {
        id: row.get("id")?,
        subscription: row.get("subscription")?,
        envelope: decode(row.get::<&str>("envelope")?)?,
        error: row.get("error")?,
        attempts: row.get("attempts")?,
        status: row.get("status")?,
        created_at_ms: row.get("created_at_ms")?,
    })
}

impl Db {
    /// Changes whenever a change to the dead letters commits; a relay that
    /// saw no change since its last look need not look again (this process
    /// is the database's only writer).
    pub fn dead_letter_generation(&self) -> u64 {
        self.inner
            .dead_letters
            .load(std::sync::atomic::Ordering::SeqCst)
    }

    pub(crate) fn dead_letters_changed(&self) {
        self.inner
            .dead_letters
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    }

    /// Parks `env` as a dead letter of `subscription` (once per event).
    pub async fn park(
        &self,
        subscription: &str,
        env: &Envelope,
        error: &str,
        attempts: u32,
    ) -> Result<(), DbError> {
        let json = serde_json::to_string(env).map_err(|e| DbError::Encode(Box::new(e)))?;
        let mut tx: Tx = self.begin().await?;
        tx.later()
            .statement(
                "INSERT INTO seams_dead_letters \
                 (subscription, event_id, event_type, subject, envelope, error, attempts, created_at_ms) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8) \
                 ON CONFLICT (subscription, event_id) DO UPDATE SET status = 'parked', \
                 error = excluded.error, attempts = seams_dead_letters.attempts + excluded.attempts",
            )
            .bind(subscription.to_owned())
            .bind(env.id.clone())
            .bind(env.event_type.clone())
            .bind(env.subject.clone())
            .bind(json)
            .bind(error.to_owned())
            .bind(attempts as i64)
            .bind(now_ms());
        let committed = tx.commit().await;
        self.dead_letters_changed();
        Ok(committed?)
    }

    /// Whether `subscription` has any undelivered (parked or awaiting
    /// replay) dead letter: one query for a batch instead of one per event.
    pub async fn any_parked(&self, subscription: &str) -> Result<bool, DbError> {
        let row = query(
            "SELECT 1 FROM seams_dead_letters WHERE subscription = $1 \
             AND status IN ('parked', 'replay') LIMIT 1",
        )
        .bind(subscription)
        .fetch_optional(&mut self.read().await?)
        .await?;
        Ok(row.map(|row| row.get::<i64>(0)).transpose()?.is_some())
    }

    /// The id of an undelivered (parked or awaiting replay) dead letter of
    /// `subscription` with this ordering key, if any.
    pub async fn parked_for_subject(
        &self,
        subscription: &str,
        subject: &str,
    ) -> Result<Option<i64>, DbError> {
        self.parked_before(subscription, subject, i64::MAX).await
    }

    /// The oldest undelivered dead letter of `subscription` with this ordering key and an id below `before`.
    pub async fn parked_before(
        &self,
        subscription: &str,
        subject: &str,
        before: i64,
    ) -> Result<Option<i64>, DbError> {
        let row = query(
            "SELECT id FROM seams_dead_letters WHERE subscription = $1 AND subject = $2 \
             AND status IN ('parked', 'replay') AND id < $3 ORDER BY id LIMIT 1",
        )
        .bind(subscription)
        .bind(subject)
        .bind(before)
        .fetch_optional(&mut self.read().await?)
        .await?;
        row.map(|row| row.get::<i64>(0)).transpose()
    }

    /// Asks for dead letter `id` to be delivered again; `Ok(false)` if there is
    /// no parked dead letter with that id.
    pub async fn request_replay(&self, id: i64) -> Result<bool, DbError> {
        let mut tx = self.begin().await?;
        let n = query(
            "UPDATE seams_dead_letters SET status = 'replay' WHERE id = $1 AND status = 'parked'",
        )
        .bind(id)
        .execute(&mut tx)
        .await?;
        let committed = tx.commit().await;
        self.dead_letters_changed();
        committed?;
        Ok(n == 1)
    }

    /// Dead letters of `subscription` awaiting replay, oldest first.
    pub async fn replay_requested(&self, subscription: &str) -> Result<Vec<DeadLetter>, DbError> {
        let rows = query(
            "SELECT id, subscription, envelope, error, attempts, status, created_at_ms \
             FROM seams_dead_letters WHERE subscription = $1 AND status = 'replay' ORDER BY id",
        )
        .bind(subscription)
        .fetch_all(&mut self.read().await?)
        .await?;
        rows.iter().map(dead_letter).collect()
    }

    /// Marks dead letter `id` delivered, and queues the later ones with the
    /// same key for replay too: they were parked behind it (per-key order).
    pub async fn mark_replayed(&self, id: i64) -> Result<(), DbError> {
        let mut tx = self.begin().await?;
        tx.later()
            .statement("UPDATE seams_dead_letters SET status = 'replayed' WHERE id = $1")
            .bind(id)
            .statement(
                "UPDATE seams_dead_letters SET status = 'replay' WHERE status = 'parked' AND id > $1 \
                 AND subscription = (SELECT subscription FROM seams_dead_letters WHERE id = $1) \
                 AND subject = (SELECT subject FROM seams_dead_letters WHERE id = $1)",
            )
            .bind(id);
        let committed = tx.commit().await;
        self.dead_letters_changed();
        Ok(committed?)
    }

    /// One dead letter.
    pub async fn dead_letter(&self, id: i64) -> Result<Option<DeadLetter>, DbError> {
        let row = query(
            "SELECT id, subscription, envelope, error, attempts, status, created_at_ms \
             FROM seams_dead_letters WHERE id = $1",
        )
        .bind(id)
        .fetch_optional(&mut self.read().await?)
        .await?;
        row.as_ref().map(dead_letter).transpose()
    }

    /// At most `limit` dead letters with ids above `after`, oldest first.
    pub async fn dead_letters_after(
        &self,
        after: i64,
        limit: u32,
    ) -> Result<Vec<DeadLetter>, DbError> {
        let rows = query(
            "SELECT id, subscription, envelope, error, attempts, status, created_at_ms \
             FROM seams_dead_letters WHERE id > $1 ORDER BY id LIMIT $2",
        )
        .bind(after)
        .bind(i64::from(limit))
        .fetch_all(&mut self.read().await?)
        .await?;
        rows.iter().map(dead_letter).collect()
    }

    /// Every dead letter, oldest first.
    pub async fn dead_letters(&self) -> Result<Vec<DeadLetter>, DbError> {
        let rows = query(
            "SELECT id, subscription, envelope, error, attempts, status, created_at_ms \
             FROM seams_dead_letters ORDER BY id",
        )
        .fetch_all(&mut self.read().await?)
        .await?;
        rows.iter().map(dead_letter).collect()
    }

    /// Undelivered dead letters (parked or awaiting replay), by subscription;
    /// a subscription without any is absent.
    pub async fn undelivered_dead_letters(&self) -> Result<Vec<(String, u64)>, DbError> {
        self.counts(
            "SELECT subscription, COUNT(*) FROM seams_dead_letters \
             WHERE status IN ('parked', 'replay') GROUP BY subscription",
        )
        .await
    }
}
