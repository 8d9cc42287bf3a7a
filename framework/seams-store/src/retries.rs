//! Retries aside from the feed: an event whose delivery failed for now
//! waits here for its next attempt while the relay goes on with the rest of
//! the feed, so one failing event holds up only its own key. Later events
//! with the same key (per-key ordering) wait behind it, in feed order; the
//! oldest of a key is its head, the only one tried. A head that succeeds is
//! deleted and the next of its key is tried at once; one that fails for
//! good becomes a dead letter, and the events behind it become dead letters
//! parked behind it, which is where per-key order kept them before.

use seams_core::Envelope;

use crate::db::{Db, now_ms};
use crate::outbox::decode;
use crate::sql::{DbError, query};

/// An event waiting for its next attempt, as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct Retry {
    /// Row id: feed order among a subscription's retries.
    pub id: i64,
    /// The event.
    pub envelope: Envelope,
    /// Attempts made so far (0 for one that waits behind its key).
    pub attempts: u32,
    /// When it is due (ms since the epoch).
    pub next_attempt_at_ms: i64,
    /// The last attempt's error, or why it waits.
    pub error: String,
}

/// The parking reason of an event left behind a dead letter of its key.
pub fn behind_reason(dead_letter: i64) -> String {
    format!("waiting behind dead letter #{dead_letter} with the same key (per-key ordering)")
}

impl Db {
    /// Sets `env` aside for `subscription` to be tried again at `due_ms`,
    /// after `attempts` attempts that ended in `error` (0 and why, for an
    /// event that waits behind its key). An event set aside before stays
    /// as it was.
    pub async fn defer(
        &self,
        subscription: &str,
        env: &Envelope,
        attempts: u32,
        due_ms: i64,
        error: &str,
    ) -> Result<(), DbError> {
        let json = serde_json::to_string(env).map_err(|e| DbError::Encode(Box::new(e)))?;
        let mut tx = self.begin().await?;
        tx.later()
            .statement(
                "INSERT INTO seams_retries (subscription, event_id, subject, envelope, attempts, \
                 next_attempt_at_ms, error, created_at_ms) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) \
                 ON CONFLICT (subscription, event_id) DO NOTHING",
            )
            .bind(subscription.to_owned())
            .bind(env.id.clone())
            .bind(env.subject.clone())
            .bind(json)
            .bind(i64::from(attempts))
            .bind(due_ms)
            .bind(error.to_owned())
            .bind(now_ms());
        let committed = tx.commit().await;
        self.dead_letters_changed();
        Ok(committed?)
    }

    /// Whether `subscription` has any event set aside.
    pub async fn any_retrying(&self, subscription: &str) -> Result<bool, DbError> {
        let row = query("SELECT 1 FROM seams_retries WHERE subscription = $1 LIMIT 1")
            .bind(subscription)
            .fetch_optional(&mut self.read().await?)
            .await?;
        Ok(row.map(|row| row.get::<i64>(0)).transpose()?.is_some())
    }

    /// Whether an event of `subscription` with this key is set aside.
    pub async fn retrying_for_subject(
        &self,
        subscription: &str,
        subject: &str,
    ) -> Result<bool, DbError> {
        let row =
            query("SELECT 1 FROM seams_retries WHERE subscription = $1 AND subject = $2 LIMIT 1")
                .bind(subscription)
                .bind(subject)
                .fetch_optional(&mut self.read().await?)
                .await?;
        Ok(row.map(|row| row.get::<i64>(0)).transpose()?.is_some())
    }

    /// The oldest `limit` events `subscription` has set aside, in feed order.
    pub async fn retries(&self, subscription: &str, limit: u32) -> Result<Vec<Retry>, DbError> {
        let rows = query(
            "SELECT id, envelope, attempts, next_attempt_at_ms, error FROM seams_retries \
             WHERE subscription = $1 ORDER BY id LIMIT $2",
        )
        .bind(subscription)
        .bind(i64::from(limit))
        .fetch_all(&mut self.read().await?)
        .await?;
        rows.iter()
            .map(|row| {
                Ok(Retry {
                    id: row.get("id")?,
                    envelope: decode(row.get::<&str>("envelope")?)?,
                    attempts: u32::try_from(row.get::<i64>("attempts")?).unwrap_or(u32::MAX),
                    next_attempt_at_ms: row.get("next_attempt_at_ms")?,
                    error: row.get("error")?,
                })
            })
            .collect()
    }

    /// Events set aside, by subscription; a subscription without any is absent.
    pub async fn retrying(&self) -> Result<Vec<(String, u64)>, DbError> {
        self.counts("SELECT subscription, COUNT(*) FROM seams_retries GROUP BY subscription")
            .await
    }

    /// Records another failed attempt of retry `id`: due again at `due_ms`.
    pub async fn retry_failed(
        &self,
        id: i64,
        attempts: u32,
        due_ms: i64,
        error: &str,
    ) -> Result<(), DbError> {
        let mut tx = self.begin().await?;
        tx.later()
            .statement(
                "UPDATE seams_retries SET attempts = $1, next_attempt_at_ms = $2, error = $3 \
                 WHERE id = $4",
            )
            .bind(i64::from(attempts))
            .bind(due_ms)
            .bind(error.to_owned())
            .bind(id);
        Ok(tx.commit().await?)
    }

    /// Retry `id` was delivered: forgets it, and makes the next event of its
    /// key due at once.
    pub async fn retry_delivered(&self, id: i64) -> Result<(), DbError> {
        let mut tx = self.begin().await?;
        tx.later()
            .statement(
                "UPDATE seams_retries SET next_attempt_at_ms = 0 WHERE id = \
                 (SELECT MIN(r.id) FROM seams_retries r, seams_retries head \
                  WHERE head.id = $1 AND r.subscription = head.subscription \
                  AND r.subject = head.subject AND r.id > head.id)",
            )
            .bind(id)
            .statement("DELETE FROM seams_retries WHERE id = $1")
            .bind(id);
        let committed = tx.commit().await;
        self.dead_letters_changed();
        Ok(committed?)
    }

    /// Retry `id` failed for good after `attempts` attempts: it becomes a
    /// dead letter of `subscription` with `error`, and, `with_its_key`
    /// (per-key ordering), every event set aside behind it with its key
    /// becomes a dead letter parked behind it, in order; all in one
    /// transaction. Returns the dead letter's id.
    pub async fn retry_gave_up(
        &self,
        subscription: &str,
        id: i64,
        attempts: u32,
        error: &str,
        with_its_key: bool,
    ) -> Result<i64, DbError> {
        let mut tx = self.begin().await?;
        let rows = query(
            "SELECT id, event_id, subject, envelope FROM seams_retries WHERE subscription = $1 \
             AND subject = (SELECT subject FROM seams_retries WHERE id = $2) \
             AND (id = $2 OR ($3 AND id > $2)) ORDER BY id",
        )
        .bind(subscription)
        .bind(id)
        .bind(with_its_key)
        .fetch_all(&mut tx)
        .await?;
        let mut head = None;
        for row in &rows {
            let envelope: &str = row.get("envelope")?;
            let env = decode(envelope)?;
            let (reason, tried) = match head {
                None => (error.to_owned(), i64::from(attempts)),
                Some(dead) => (behind_reason(dead), 0),
            };
            let dead: i64 = query(
                "INSERT INTO seams_dead_letters \
                 (subscription, event_id, event_type, subject, envelope, error, attempts, created_at_ms) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8) \
                 ON CONFLICT (subscription, event_id) DO UPDATE SET status = 'parked', \
                 error = excluded.error, attempts = seams_dead_letters.attempts + excluded.attempts \
                 RETURNING id",
            )
            .bind(subscription)
            .bind(&env.id)
            .bind(&env.event_type)
            .bind(&env.subject)
            .bind(envelope)
            .bind(&reason)
            .bind(tried)
            .bind(now_ms())
            .fetch_one(&mut tx)
            .await?
            .get(0)?;
            head.get_or_insert(dead);
            tx.later()
                .statement("DELETE FROM seams_retries WHERE id = $1")
                .bind(row.get::<i64>("id")?);
        }
        let committed = tx.commit().await;
        self.dead_letters_changed();
        committed?;
        head.ok_or(DbError::RowNotFound)
    }
}
