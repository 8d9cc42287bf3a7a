//! Where a subscription reads its producer's events from.
//!
//! The producer's outbox is the log in both modes: in one process the relay
//! reads it directly ([`InProcessFeed`]); split, it reads it over HTTP from
//! the producer's service ([`HttpFeed`]), pulling with its durable cursor and
//! long-polling when there is nothing new, so no broker is needed. Reading
//! after position `n` also acknowledges `n`, which is what lets the producer
//! prune what every subscriber has read.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use seams_core::{BoxFuture, Envelope};
use seams_store::Db;
use serde::{Deserialize, Serialize};

/// A producer's event log, as a subscriber sees it.
pub trait Feed: Send + Sync + 'static {
    /// Up to `limit` events after position `after`, in commit order; when there
    /// are none, waits up to `wait` for some. Records that `subscriber` has read up to `after`.
    fn read(
        &self,
        subscriber: &str,
        after: u64,
        limit: u32,
        wait: Duration,
    ) -> BoxFuture<'_, anyhow::Result<Vec<Envelope>>>;

    /// Called once when `subscriber`'s relay stops, having applied
    /// everything up to `after`: a feed that hands events out and waits for
    /// acknowledgements (a broker) gives back at once what it handed out and
    /// was not applied, so the next reader (a successor process) gets it
    /// without waiting for a timeout. Feeds read by position hold nothing.
    fn release(&self, subscriber: &str, after: u64) -> BoxFuture<'_, anyhow::Result<()>> {
        let _ = (subscriber, after);
        Box::pin(async { Ok(()) })
    }
}

/// The producer's outbox in this process.
#[derive(Clone)]
pub struct InProcessFeed {
    db: Db,
}

impl InProcessFeed {
    /// Reads `db`'s outbox.
    pub fn new(db: Db) -> InProcessFeed {
        InProcessFeed { db }
    }
}

/// Reads `db`'s outbox after `after`, waiting up to `wait` for a commit when empty;
/// the serving side of both feeds.
pub async fn read_outbox(
    db: &Db,
    subscriber: &str,
    after: u64,
    limit: u32,
    wait: Duration,
) -> anyhow::Result<Vec<Envelope>> {
    let mut changes = db.outbox_changes();
    db.ack_lazily(subscriber, after).await?;
    let events = db.read_outbox(after, limit).await?;
    if !events.is_empty() || wait.is_zero() {
        return Ok(events);
    }
    // Subscribed before reading, so a commit between the read and this wait still wakes us.
    let _ = tokio::time::timeout(wait, changes.changed()).await;
    Ok(db.read_outbox(after, limit).await?)
}

impl Feed for InProcessFeed {
    fn read(
        &self,
        subscriber: &str,
        after: u64,
        limit: u32,
        wait: Duration,
    ) -> BoxFuture<'_, anyhow::Result<Vec<Envelope>>> {
        let subscriber = subscriber.to_owned();
        Box::pin(async move { read_outbox(&self.db, &subscriber, after, limit, wait).await })
    }
}

/// What `GET /_seams/feed/{producer}` answers.
#[derive(Debug, Serialize, Deserialize)]
pub struct FeedPage {
    /// Events in commit order, each with its `sequence`.
    pub events: Vec<Envelope>,
}

/// Query of `GET /_seams/feed/{producer}`.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FeedQuery {
    /// The subscription reading (its acknowledgement is recorded).
    pub subscriber: String,
    /// Read after this position.
    pub after: u64,
    /// At most this many events (capped by the server).
    pub limit: u32,
    /// Long-poll: wait up to this many milliseconds when there is nothing new (capped).
    #[serde(default)]
    pub wait_ms: u64,
}

/// The longest a feed read waits for new events (`wait_ms` is capped to it):
/// well inside the server's request timeout.
pub const MAX_WAIT_MS: u64 = 20_000;

/// Path of a producer's feed.
pub fn feed_path(producer: &str) -> String {
    format!("/_seams/feed/{producer}")
}

/// A producer's outbox in another service, pulled over HTTP with this
/// service's token (only a declared subscriber may read a feed).
#[derive(Clone)]
pub struct HttpFeed {
    base: String,
    producer: String,
    client: reqwest::Client,
    credential: Option<Arc<dyn seams_auth::Credential>>,
}

impl HttpFeed {
    /// The feed of `producer`, served at `base`.
    pub fn new(base: &str, producer: &str, client: reqwest::Client) -> HttpFeed {
        HttpFeed {
            base: base.trim_end_matches('/').to_owned(),
            producer: producer.to_owned(),
            client,
            credential: None,
        }
    }

    /// Presents `credential` (this service's token) on every read.
    pub fn with_credential(mut self, credential: Arc<dyn seams_auth::Credential>) -> HttpFeed {
        self.credential = Some(credential);
        self
    }
}

impl Feed for HttpFeed {
    fn read(
        &self,
        subscriber: &str,
        after: u64,
        limit: u32,
        wait: Duration,
    ) -> BoxFuture<'_, anyhow::Result<Vec<Envelope>>> {
        let query = FeedQuery {
            subscriber: subscriber.to_owned(),
            after,
            limit,
            wait_ms: wait.as_millis() as u64,
        };
        Box::pin(async move {
            let url = format!("{}{}", self.base, feed_path(&self.producer));
            let mut request = self
                .client
                .get(&url)
                .query(&query)
                .timeout(wait + Duration::from_secs(10));
            if let Some(credential) = &self.credential {
                request = request.header(seams_auth::PEER_HEADER, &*credential.token()?);
            }
            let res = request.send().await.with_context(|| {
                format!(
                    "reading the feed of {} at {}",
                    self.producer,
                    seams_core::redact(&url)
                )
            })?;
            anyhow::ensure!(
                res.status().is_success(),
                "feed of {} answered {}",
                self.producer,
                res.status()
            );
            let page: FeedPage = res
                .json()
                .await
                .with_context(|| format!("decoding the feed of {}", self.producer))?;
            // Positions must grow: a producer that answers out of order would
            // make the cursor skip events.
            let mut last = after;
            for e in &page.events {
                let seq = e.sequence.context("feed event without a sequence")?;
                anyhow::ensure!(
                    seq > last,
                    "feed of {} is out of order at {seq}",
                    self.producer
                );
                last = seq;
            }
            Ok(page.events)
        })
    }
}

/// A shared feed.
pub type SharedFeed = Arc<dyn Feed>;
