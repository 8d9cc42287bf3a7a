//! The outbox read as a feed, consumers' cursors and acknowledgements, dead
//! letters, and retention pruning of every framework table.

use seams_core::Envelope;
use sqlx::Row;

use std::time::Duration;

use crate::db::{Backend, Db, Tx, now_ms};

/// How often a feed's readers write a subscriber's acknowledgement at most.
const ACK_EVERY: Duration = Duration::from_millis(250);

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

fn dead_letter(row: &sqlx::any::AnyRow) -> Result<DeadLetter, sqlx::Error> {
    Ok(DeadLetter {
        id: row.get("id"),
        subscription: row.get("subscription"),
        envelope: decode(row.get::<&str, _>("envelope"))?,
        error: row.get("error"),
        attempts: row.get("attempts"),
        status: row.get("status"),
        created_at_ms: row.get("created_at_ms"),
    })
}

fn decode(json: &str) -> Result<Envelope, sqlx::Error> {
    serde_json::from_str(json).map_err(|e| sqlx::Error::Decode(Box::new(e)))
}

impl Db {
    /// Up to `limit` outbox events after position `after`, in commit order.
    pub async fn read_outbox(&self, after: u64, limit: u32) -> Result<Vec<Envelope>, sqlx::Error> {
        let rows = sqlx::query(
            "SELECT seq, envelope FROM seams_outbox WHERE seq > $1 ORDER BY seq LIMIT $2",
        )
        .bind(after as i64)
        .bind(limit as i64)
        .fetch_all(&mut *self.read().await?)
        .await?;
        rows.iter()
            .map(|row| {
                let mut env = decode(row.get::<&str, _>("envelope"))?;
                env.sequence = Some(row.get::<i64, _>("seq") as u64);
                Ok(env)
            })
            .collect()
    }

    /// The newest outbox position (0 if nothing was ever published).
    pub async fn outbox_head(&self) -> Result<u64, sqlx::Error> {
        // The highest position ever handed out, which pruning does not lower.
        let sql = match self.backend() {
            Backend::Sqlite => {
                "SELECT COALESCE((SELECT seq FROM sqlite_sequence WHERE name = 'seams_outbox'), 0)"
            }
            Backend::Postgres => {
                "SELECT CASE WHEN is_called THEN last_value ELSE 0 END FROM seams_outbox_seq_seq"
            }
        };
        let (seq,): (i64,) = sqlx::query_as(sql)
            .fetch_one(&mut *self.read().await?)
            .await?;
        Ok(seq as u64)
    }

    /// Records that `subscriber` has everything up to `seq` (it never moves
    /// back). Returns before the record is durable: an acknowledgement only
    /// lets pruning go further, and a subscriber repeats it with every read.
    /// An acknowledgement this process already wrote is not written again.
    pub async fn ack(&self, subscriber: &str, seq: u64) -> Result<(), sqlx::Error> {
        self.ack_every(subscriber, seq, Duration::ZERO).await
    }

    /// [`Db::ack`], written at most once per 250 ms per subscriber: what a
    /// feed does on every read. The newest acknowledgement is written by a
    /// read after the interval (a subscriber polls at least once a second).
    pub async fn ack_lazily(&self, subscriber: &str, seq: u64) -> Result<(), sqlx::Error> {
        self.ack_every(subscriber, seq, ACK_EVERY).await
    }

    async fn ack_every(
        &self,
        subscriber: &str,
        seq: u64,
        interval: Duration,
    ) -> Result<(), sqlx::Error> {
        if !self.ack_is_news(subscriber, seq, interval) {
            return Ok(());
        }
        let mut tx = self.begin().await?;
        sqlx::query(
            "INSERT INTO seams_feed_acks (subscriber, acked_seq, updated_at_ms) VALUES ($1, $2, $3) \
             ON CONFLICT (subscriber) DO UPDATE SET acked_seq = CASE \
             WHEN seams_feed_acks.acked_seq > excluded.acked_seq THEN seams_feed_acks.acked_seq \
             ELSE excluded.acked_seq END, \
             updated_at_ms = excluded.updated_at_ms",
        )
        .bind(subscriber)
        .bind(seq as i64)
        .bind(now_ms())
        .execute(tx.conn())
        .await?;
        tx.commit_eventually().await?;
        self.ack_written(subscriber, seq);
        Ok(())
    }

    /// This database's position in the feed `subscription` (0 at first).
    pub async fn cursor(&self, subscription: &str) -> Result<u64, sqlx::Error> {
        let row: Option<(i64,)> =
            sqlx::query_as("SELECT position FROM seams_cursors WHERE subscription = $1")
                .bind(subscription)
                .fetch_optional(&mut *self.read().await?)
                .await?;
        Ok(row.map_or(0, |(p,)| p as u64))
    }

    /// Moves the cursor of `subscription` forward to `position`, durably.
    pub async fn set_cursor(&self, subscription: &str, position: u64) -> Result<(), sqlx::Error> {
        self.write_cursor(subscription, position)
            .await?
            .commit()
            .await
    }

    /// Moves the cursor of `subscription` forward to `position` with the
    /// next group commit, without waiting for it: for a relay that keeps
    /// its position in memory, where a cursor lost in a crash only means
    /// redelivery of events the inbox has already seen.
    pub async fn set_cursor_eventually(
        &self,
        subscription: &str,
        position: u64,
    ) -> Result<(), sqlx::Error> {
        self.write_cursor(subscription, position)
            .await?
            .commit_eventually()
            .await
    }

    async fn write_cursor(&self, subscription: &str, position: u64) -> Result<Tx, sqlx::Error> {
        let mut tx = self.begin().await?;
        sqlx::query(
            "INSERT INTO seams_cursors (subscription, position, updated_at_ms) VALUES ($1, $2, $3) \
             ON CONFLICT (subscription) DO UPDATE SET position = CASE \
             WHEN seams_cursors.position > excluded.position THEN seams_cursors.position \
             ELSE excluded.position END, \
             updated_at_ms = excluded.updated_at_ms",
        )
        .bind(subscription)
        .bind(position as i64)
        .bind(now_ms())
        .execute(tx.conn())
        .await?;
        Ok(tx)
    }

    /// Parks `env` as a dead letter of `subscription` (once per event).
    pub async fn park(
        &self,
        subscription: &str,
        env: &Envelope,
        error: &str,
        attempts: u32,
    ) -> Result<(), sqlx::Error> {
        let json = serde_json::to_string(env).map_err(|e| sqlx::Error::Encode(Box::new(e)))?;
        let mut tx: Tx = self.begin().await?;
        sqlx::query(
            "INSERT INTO seams_dead_letters \
             (subscription, event_id, event_type, subject, envelope, error, attempts, created_at_ms) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8) \
             ON CONFLICT (subscription, event_id) DO UPDATE SET status = 'parked', \
             error = excluded.error, attempts = seams_dead_letters.attempts + excluded.attempts",
        )
        .bind(subscription)
        .bind(&env.id)
        .bind(&env.event_type)
        .bind(&env.subject)
        .bind(json)
        .bind(error)
        .bind(attempts as i64)
        .bind(now_ms())
        .execute(tx.conn())
        .await?;
        let committed = tx.commit().await;
        self.dead_letters_changed();
        committed
    }

    /// Whether `subscription` has any undelivered (parked or awaiting
    /// replay) dead letter: one query for a batch instead of one per event.
    pub async fn any_parked(&self, subscription: &str) -> Result<bool, sqlx::Error> {
        let row: Option<(i64,)> = sqlx::query_as(
            "SELECT 1 FROM seams_dead_letters WHERE subscription = $1 \
             AND status IN ('parked', 'replay') LIMIT 1",
        )
        .bind(subscription)
        .fetch_optional(&mut *self.read().await?)
        .await?;
        Ok(row.is_some())
    }

    /// The id of an undelivered (parked or awaiting replay) dead letter of
    /// `subscription` with this ordering key, if any.
    pub async fn parked_for_subject(
        &self,
        subscription: &str,
        subject: &str,
    ) -> Result<Option<i64>, sqlx::Error> {
        self.parked_before(subscription, subject, i64::MAX).await
    }

    /// The oldest undelivered dead letter of `subscription` with this ordering key and an id below `before`.
    pub async fn parked_before(
        &self,
        subscription: &str,
        subject: &str,
        before: i64,
    ) -> Result<Option<i64>, sqlx::Error> {
        let row: Option<(i64,)> = sqlx::query_as(
            "SELECT id FROM seams_dead_letters WHERE subscription = $1 AND subject = $2 \
             AND status IN ('parked', 'replay') AND id < $3 ORDER BY id LIMIT 1",
        )
        .bind(subscription)
        .bind(subject)
        .bind(before)
        .fetch_optional(&mut *self.read().await?)
        .await?;
        Ok(row.map(|(id,)| id))
    }

    /// Asks for dead letter `id` to be delivered again; `Ok(false)` if there is
    /// no parked dead letter with that id.
    pub async fn request_replay(&self, id: i64) -> Result<bool, sqlx::Error> {
        let mut tx = self.begin().await?;
        let n = sqlx::query(
            "UPDATE seams_dead_letters SET status = 'replay' WHERE id = $1 AND status = 'parked'",
        )
        .bind(id)
        .execute(tx.conn())
        .await?
        .rows_affected();
        let committed = tx.commit().await;
        self.dead_letters_changed();
        committed?;
        Ok(n == 1)
    }

    /// Dead letters of `subscription` awaiting replay, oldest first.
    pub async fn replay_requested(
        &self,
        subscription: &str,
    ) -> Result<Vec<DeadLetter>, sqlx::Error> {
        let rows = sqlx::query(
            "SELECT id, subscription, envelope, error, attempts, status, created_at_ms \
             FROM seams_dead_letters WHERE subscription = $1 AND status = 'replay' ORDER BY id",
        )
        .bind(subscription)
        .fetch_all(&mut *self.read().await?)
        .await?;
        rows.iter().map(dead_letter).collect()
    }

    /// Marks dead letter `id` delivered, and queues the later ones with the
    /// same key for replay too: they were parked behind it (per-key order).
    pub async fn mark_replayed(&self, id: i64) -> Result<(), sqlx::Error> {
        let mut tx = self.begin().await?;
        sqlx::query("UPDATE seams_dead_letters SET status = 'replayed' WHERE id = $1")
            .bind(id)
            .execute(tx.conn())
            .await?;
        sqlx::query(
            "UPDATE seams_dead_letters SET status = 'replay' WHERE status = 'parked' AND id > $1 \
             AND subscription = (SELECT subscription FROM seams_dead_letters WHERE id = $1) \
             AND subject = (SELECT subject FROM seams_dead_letters WHERE id = $1)",
        )
        .bind(id)
        .execute(tx.conn())
        .await?;
        let committed = tx.commit().await;
        self.dead_letters_changed();
        committed
    }

    /// One dead letter.
    pub async fn dead_letter(&self, id: i64) -> Result<Option<DeadLetter>, sqlx::Error> {
        let row = sqlx::query(
            "SELECT id, subscription, envelope, error, attempts, status, created_at_ms \
             FROM seams_dead_letters WHERE id = $1",
        )
        .bind(id)
        .fetch_optional(&mut *self.read().await?)
        .await?;
        row.as_ref().map(dead_letter).transpose()
    }

    /// At most `limit` dead letters with ids above `after`, oldest first.
    pub async fn dead_letters_after(
        &self,
        after: i64,
        limit: u32,
    ) -> Result<Vec<DeadLetter>, sqlx::Error> {
        let rows = sqlx::query(
            "SELECT id, subscription, envelope, error, attempts, status, created_at_ms \
             FROM seams_dead_letters WHERE id > $1 ORDER BY id LIMIT $2",
        )
        .bind(after)
        .bind(i64::from(limit))
        .fetch_all(&mut *self.read().await?)
        .await?;
        rows.iter().map(dead_letter).collect()
    }

    /// Every dead letter, oldest first.
    pub async fn dead_letters(&self) -> Result<Vec<DeadLetter>, sqlx::Error> {
        let rows = sqlx::query(
            "SELECT id, subscription, envelope, error, attempts, status, created_at_ms \
             FROM seams_dead_letters ORDER BY id",
        )
        .fetch_all(&mut *self.read().await?)
        .await?;
        rows.iter().map(dead_letter).collect()
    }

    /// How far every one of `readers` has acknowledged this outbox: the
    /// lowest of their acknowledgements, 0 for a reader that never
    /// acknowledged (an acknowledgement row of anyone else counts for
    /// nothing). With no readers, everything counts as read: nobody will.
    pub async fn acked_by_all(&self, readers: &[String]) -> Result<u64, sqlx::Error> {
        if readers.is_empty() {
            return Ok(u64::MAX);
        }
        let acks = self.acks().await?;
        Ok(readers
            .iter()
            .map(|r| acks.iter().find(|(s, _)| s == r).map_or(0, |(_, n)| *n))
            .min()
            .unwrap_or(0))
    }

    /// What waits in the outbox after position `after`: how many rows, and
    /// when the oldest of them was committed (ms since the epoch; `None`
    /// when none waits). Two range reads on the outbox's primary key, for
    /// the gauges an operator alerts on; the count costs as many index
    /// entries as wait, which a healthy system keeps small.
    pub async fn outbox_after(&self, after: u64) -> Result<(u64, Option<i64>), sqlx::Error> {
        let after = after.min(i64::MAX as u64) as i64;
        let mut conn = self.read().await?;
        let (rows,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM seams_outbox WHERE seq > $1")
            .bind(after)
            .fetch_one(&mut *conn)
            .await?;
        let oldest: Option<(i64,)> = sqlx::query_as(
            "SELECT created_at_ms FROM seams_outbox WHERE seq > $1 ORDER BY seq LIMIT 1",
        )
        .bind(after)
        .fetch_optional(&mut *conn)
        .await?;
        Ok((rows.max(0) as u64, oldest.map(|(ms,)| ms)))
    }

    /// Each subscriber's acknowledged position in this outbox, as written.
    pub async fn acks(&self) -> Result<Vec<(String, u64)>, sqlx::Error> {
        let rows: Vec<(String, i64)> =
            sqlx::query_as("SELECT subscriber, acked_seq FROM seams_feed_acks")
                .fetch_all(&mut *self.read().await?)
                .await?;
        Ok(rows
            .into_iter()
            .map(|(s, n)| (s, n.max(0) as u64))
            .collect())
    }

    /// Undelivered dead letters (parked or awaiting replay), by subscription;
    /// a subscription without any is absent.
    pub async fn undelivered_dead_letters(&self) -> Result<Vec<(String, u64)>, sqlx::Error> {
        let rows: Vec<(String, i64)> = sqlx::query_as(
            "SELECT subscription, COUNT(*) FROM seams_dead_letters \
             WHERE status IN ('parked', 'replay') GROUP BY subscription",
        )
        .fetch_all(&mut *self.read().await?)
        .await?;
        Ok(rows
            .into_iter()
            .map(|(s, n)| (s, n.max(0) as u64))
            .collect())
    }

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
    ) -> Result<PruneReport, sqlx::Error> {
        let acked = self.acked_by_all(readers).await?.min(i64::MAX as u64) as i64;
        let mut tx = self.begin().await?;
        let outbox = sqlx::query("DELETE FROM seams_outbox WHERE created_at_ms < $1 AND seq <= $2")
            .bind(outbox_before_ms)
            .bind(acked)
            .execute(tx.conn())
            .await?
            .rows_affected();
        let inbox = sqlx::query("DELETE FROM seams_inbox WHERE handled_at_ms < $1")
            .bind(inbox_before_ms)
            .execute(tx.conn())
            .await?
            .rows_affected();
        let idempotency = sqlx::query("DELETE FROM seams_idempotency WHERE created_at_ms < $1")
            .bind(idempotency_before_ms)
            .execute(tx.conn())
            .await?
            .rows_affected();
        tx.commit().await?;
        Ok(PruneReport {
            outbox,
            inbox,
            idempotency,
        })
    }

    /// Row counts of the framework tables (outbox, inbox, idempotency), for tests and metrics.
    pub async fn framework_counts(&self) -> Result<(i64, i64, i64), sqlx::Error> {
        sqlx::query_as(
            "SELECT (SELECT COUNT(*) FROM seams_outbox), (SELECT COUNT(*) FROM seams_inbox), \
             (SELECT COUNT(*) FROM seams_idempotency)",
        )
        .fetch_one(&mut *self.read().await?)
        .await
    }
}
