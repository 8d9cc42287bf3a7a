//! The outbox read as a feed: events in commit order, the newest position,
//! and what each subscriber has acknowledged (which is how far pruning may go).

use std::time::Duration;

use seams_core::Envelope;

use crate::db::{Db, now_ms};
use crate::location::Backend;
use crate::sql::{DbError, query};

/// How often a feed's readers write a subscriber's acknowledgement at most.
const ACK_EVERY: Duration = Duration::from_millis(250);

impl Db {
    /// Whether acknowledging `seq` for `subscriber` says more than this
    /// process has already written, at most once per `interval`.
    pub(crate) fn ack_is_news(&self, subscriber: &str, seq: u64, interval: Duration) -> bool {
        let acked = self
            .inner
            .acked
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        acked
            .get(subscriber)
            .is_none_or(|(known, at)| *known < seq && at.elapsed() >= interval)
    }

    /// Remembers that acknowledging `seq` for `subscriber` was written.
    pub(crate) fn ack_written(&self, subscriber: &str, seq: u64) {
        let mut acked = self
            .inner
            .acked
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let known = acked
            .entry(subscriber.to_owned())
            .or_insert((0, std::time::Instant::now()));
        *known = (known.0.max(seq), std::time::Instant::now());
    }

    /// Up to `limit` outbox events after position `after`, in commit order.
    pub async fn read_outbox(&self, after: u64, limit: u32) -> Result<Vec<Envelope>, DbError> {
        let rows =
            query("SELECT seq, envelope FROM seams_outbox WHERE seq > $1 ORDER BY seq LIMIT $2")
                .bind(after as i64)
                .bind(limit as i64)
                .fetch_all(&mut self.read().await?)
                .await?;
        rows.iter()
            .map(|row| {
                let mut env = decode(row.get::<&str>("envelope")?)?;
                env.sequence = Some(row.get::<i64>("seq")? as u64);
                Ok(env)
            })
            .collect()
    }

    /// The newest outbox position (0 if nothing was ever published).
    pub async fn outbox_head(&self) -> Result<u64, DbError> {
        // The highest position ever handed out, which pruning does not lower.
        let sql = match self.backend() {
            Backend::Sqlite => {
                "SELECT COALESCE((SELECT seq FROM sqlite_sequence WHERE name = 'seams_outbox'), 0)"
            }
            Backend::Postgres => {
                "SELECT CASE WHEN is_called THEN last_value ELSE 0 END FROM seams_outbox_seq_seq"
            }
        };
        let seq: i64 = query(sql)
            .fetch_one(&mut self.read().await?)
            .await?
            .get(0)?;
        Ok(seq as u64)
    }

    /// Records that `subscriber` has everything up to `seq` (it never moves
    /// back). Returns before the record is durable: an acknowledgement only
    /// lets pruning go further, and a subscriber repeats it with every read.
    /// An acknowledgement this process already wrote is not written again.
    pub async fn ack(&self, subscriber: &str, seq: u64) -> Result<(), DbError> {
        self.ack_every(subscriber, seq, Duration::ZERO).await
    }

    /// [`Db::ack`], written at most once per 250 ms per subscriber: what a
    /// feed does on every read. The newest acknowledgement is written by a
    /// read after the interval (a subscriber polls at least once a second).
    pub async fn ack_lazily(&self, subscriber: &str, seq: u64) -> Result<(), DbError> {
        self.ack_every(subscriber, seq, ACK_EVERY).await
    }

    async fn ack_every(
        &self,
        subscriber: &str,
        seq: u64,
        interval: Duration,
    ) -> Result<(), DbError> {
        if !self.ack_is_news(subscriber, seq, interval) {
            return Ok(());
        }
        let mut tx = self.begin().await?;
        tx.later()
            .statement(
                "INSERT INTO seams_feed_acks (subscriber, acked_seq, updated_at_ms) VALUES ($1, $2, $3) \
                 ON CONFLICT (subscriber) DO UPDATE SET acked_seq = CASE \
                 WHEN seams_feed_acks.acked_seq > excluded.acked_seq THEN seams_feed_acks.acked_seq \
                 ELSE excluded.acked_seq END, \
                 updated_at_ms = excluded.updated_at_ms",
            )
            .bind(subscriber.to_owned())
            .bind(seq as i64)
            .bind(now_ms());
        tx.commit_eventually().await?;
        self.ack_written(subscriber, seq);
        Ok(())
    }

    /// How far every one of `readers` has acknowledged this outbox: the
    /// lowest of their acknowledgements, 0 for a reader that never
    /// acknowledged (an acknowledgement row of anyone else counts for
    /// nothing). With no readers, everything counts as read: nobody will.
    pub async fn acked_by_all(&self, readers: &[String]) -> Result<u64, DbError> {
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
    pub async fn outbox_after(&self, after: u64) -> Result<(u64, Option<i64>), DbError> {
        let after = after.min(i64::MAX as u64) as i64;
        let mut conn = self.read().await?;
        let rows: i64 = query("SELECT COUNT(*) FROM seams_outbox WHERE seq > $1")
            .bind(after)
            .fetch_one(&mut conn)
            .await?
            .get(0)?;
        let oldest =
            query("SELECT created_at_ms FROM seams_outbox WHERE seq > $1 ORDER BY seq LIMIT 1")
                .bind(after)
                .fetch_optional(&mut conn)
                .await?
                .map(|row| row.get::<i64>(0))
                .transpose()?;
        Ok((rows.max(0) as u64, oldest))
    }

    /// Each subscriber's acknowledged position in this outbox, as written.
    pub async fn acks(&self) -> Result<Vec<(String, u64)>, DbError> {
        self.counts("SELECT subscriber, acked_seq FROM seams_feed_acks")
            .await
    }
}

pub(crate) fn decode(json: &str) -> Result<Envelope, DbError> {
    serde_json::from_str(json).map_err(|e| DbError::Decode(Box::new(e)))
}
