//! NATS JetStream as the event transport of a split deployment.
//!
//! The outbox stays the source of truth: a [`Publisher`] per producing
//! capability reads its committed outbox rows in order and publishes each to
//! the producer's stream (`SEAMS_<PRODUCER>`, subject `seams.<producer>.events`)
//! with `Nats-Msg-Id` set to the event id, so a republish after a crash is
//! deduplicated by JetStream; its cursor moves only after JetStream
//! acknowledged. Subscribers read through a [`NatsFeed`]: a durable pull
//! consumer per subscription, explicit acks sent only after the relay has
//! applied the events (in the consumer's inbox transaction), so an unacked
//! event is redelivered after `ack_wait` and the inbox makes that harmless.
//! One pull consumer per subscription, processed in order, keeps per-key order.
//!
//! JetStream acknowledges before fsync by default (see the README); the
//! outbox keeps rows until they are acknowledged and past retention.
//!
//! TLS is async-nats's own (rustls): a `tls://` URL, or a server that
//! requires TLS, gets it with the system's roots; [`NatsTls::ca_file`]
//! trusts that CA instead and refuses to go on without TLS, whatever the
//! URL's scheme, so a server that stops offering TLS cannot downgrade the
//! connection to plain text.
//!
//! ```no_run
//! # async fn demo(db: seams_store::Db) -> anyhow::Result<()> {
//! let nats = seams_nats::Nats::connect("nats://127.0.0.1:4222").await?;
//! let tls = seams_nats::NatsTls { ca_file: Some("/etc/seams/nats-ca.pem".into()) };
//! let _secured = seams_nats::Nats::connect_with("tls://nats.internal:4222", &tls).await?;
//! let publisher = seams_nats::Publisher::new(nats.clone(), db, "billing");
//! publisher.try_publish_once().await?;
//! let feed = seams_nats::NatsFeed::new(nats, "billing");
//! # Ok(()) }
//! ```
#![warn(missing_docs)]
#![deny(unreachable_pub)]

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use async_nats::jetstream::{self, consumer, stream};
use futures::StreamExt;
use seams_core::{BoxFuture, Envelope};
use seams_runtime::feed::Feed;
use seams_store::Db;
use tokio::sync::Mutex;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

/// How long past its own expiry a pull may go unanswered before it is
/// abandoned and asked again.
const PULL_GRACE: Duration = Duration::from_secs(5);

/// How long the server keeps a read's no-wait request (well inside [`PULL_GRACE`]).
const FETCH_EXPIRES: Duration = Duration::from_secs(1);

/// The longest a read waits on the server for the next event.
const LONGEST_PULL: Duration = Duration::from_millis(250);

/// How long JetStream waits for an ack before redelivering.
pub const ACK_WAIT: Duration = Duration::from_secs(30);

/// How the connection to NATS is secured, beyond what the URL says.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NatsTls {
    /// A PEM file of the CA certificate(s) that issued the server's
    /// certificate, trusted instead of the system's roots. Setting it
    /// requires TLS, even for a `nats://` URL.
    pub ca_file: Option<PathBuf>,
}

/// A connection to NATS with JetStream; cheap to clone.
#[derive(Clone)]
pub struct Nats {
    js: jetstream::Context,
}

/// The stream of `producer`.
pub fn stream_name(producer: &str) -> String {
    format!("SEAMS_{}", producer.to_uppercase().replace('-', "_"))
}

/// The subject `producer`'s events are published on.
pub fn subject(producer: &str) -> String {
    format!("seams.{producer}.events")
}

fn consumer_name(subscriber: &str) -> String {
    // Durable names may not contain `.`, `*`, `>` or whitespace.
    subscriber
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

impl Nats {
    /// Connects to the server at `url` (TLS if it is `tls://` or the server
    /// requires it, verified against the system's roots).
    pub async fn connect(url: &str) -> anyhow::Result<Nats> {
        Nats::connect_with(url, &NatsTls::default()).await
    }

    /// Connects to the server at `url`, secured as `tls` says.
    ///
    /// The connection is made in the background and retried until it
    /// succeeds, so a server that is not up yet is not an error here; nor is
    /// a certificate the CA did not issue, which shows as operations that
    /// time out. A CA file that cannot be read or holds no certificate is an
    /// error at once.
    pub async fn connect_with(url: &str, tls: &NatsTls) -> anyhow::Result<Nats> {
        let mut options = async_nats::ConnectOptions::new()
            .connection_timeout(Duration::from_secs(5))
            .retry_on_initial_connect();
        if let Some(ca_file) = &tls.ca_file {
            check_ca_file(ca_file)?;
            options = options
                .add_root_certificates(ca_file.clone())
                .require_tls(true);
        }
        let client = options
            .connect(url)
            .await
            .with_context(|| format!("connecting to NATS at {}", seams_store::redact(url)))?;
        Ok(Nats {
            js: jetstream::new(client),
        })
    }

    /// The stream of `producer`, created if missing (both sides call this).
    pub async fn stream(&self, producer: &str) -> anyhow::Result<stream::Stream> {
        self.js
            .get_or_create_stream(stream::Config {
                name: stream_name(producer),
                subjects: vec![format!("seams.{producer}.>")],
                storage: stream::StorageType::File,
                duplicate_window: Duration::from_secs(120),
                ..Default::default()
            })
            .await
            .with_context(|| format!("creating stream {}", stream_name(producer)))
    }
}

/// Checks that `path` holds at least one PEM certificate. async-nats reads
/// the file at each connection attempt, and as those are retried in the
/// background, a wrong path would otherwise only ever show as a stalled
/// connection.
fn check_ca_file(path: &Path) -> anyhow::Result<()> {
    use async_nats::rustls::pki_types::CertificateDer;
    use async_nats::rustls::pki_types::pem::PemObject;
    let certs = CertificateDer::pem_file_iter(path)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .with_context(|| format!("reading the NATS CA file {}", path.display()))?;
    anyhow::ensure!(
        !certs.is_empty(),
        "the NATS CA file {} holds no certificate",
        path.display()
    );
    Ok(())
}

/// Publishes a producer's committed outbox rows to its stream, in order.
#[derive(Clone)]
pub struct Publisher {
    nats: Nats,
    db: Db,
    producer: String,
    known: Arc<std::sync::Mutex<Known>>,
}

/// What a publisher keeps between steps, so that a step costs one outbox
/// read: that the stream exists, and how far JetStream has acknowledged
/// (`None`: read the cursor from the database). Forgotten after a failure,
/// when the stream may be gone or a publish half done.
#[derive(Debug, Default)]
struct Known {
    stream: bool,
    position: Option<u64>,
}

impl Publisher {
    /// Publishes `producer`'s outbox in `db`.
    pub fn new(nats: Nats, db: Db, producer: &str) -> Publisher {
        Publisher {
            nats,
            db,
            producer: producer.to_owned(),
            known: Arc::default(),
        }
    }

    fn known(&self) -> std::sync::MutexGuard<'_, Known> {
        self.known
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn cursor_name(&self) -> String {
        publisher_name(&self.producer)
    }

    /// Publishes what is committed and not yet acknowledged by JetStream; returns how many.
    pub async fn try_publish_once(&self) -> anyhow::Result<usize> {
        let published = self.publish_once().await;
        if published.is_err() {
            *self.known() = Known::default();
        }
        published
    }

    async fn publish_once(&self) -> anyhow::Result<usize> {
        let (stream, position) = {
            let known = self.known();
            (known.stream, known.position)
        };
        if !stream {
            self.nats.stream(&self.producer).await?;
            self.known().stream = true;
        }
        let name = self.cursor_name();
        let cursor = match position {
            Some(position) => position,
            None => self.db.cursor(&name).await?,
        };
        let events = self.db.read_outbox(cursor, 256).await?;
        if events.is_empty() {
            self.known().position = Some(cursor);
            self.db.ack_lazily(&name, cursor).await?;
            return Ok(0);
        }
        // Pipelined: every publish is sent, then the acks are awaited in order.
        let mut acks = Vec::with_capacity(events.len());
        for env in &events {
            let mut headers = async_nats::HeaderMap::new();
            headers.insert("Nats-Msg-Id", env.id.as_str());
            let payload = serde_json::to_vec(env)?;
            // For traces (DEBUG): the hand-over to the bus, in the trace of
            // the work that committed the event. The event keeps its own
            // `traceparent`: its consumers continue the producer's span.
            let span = tracing::debug_span!(
                "publish",
                event_id = %env.id,
                event_type = %env.event_type,
                otel.kind = "producer",
                otel.name = tracing::field::Empty,
            );
            let parent = env
                .traceparent
                .as_deref()
                .and_then(seams_core::TraceContext::parse);
            let _ = seams_telemetry::continue_named(&span, parent.as_ref(), || {
                format!("{} publish", self.producer)
            });
            let ack = self
                .nats
                .js
                .publish_with_headers(subject(&self.producer), headers, payload.into())
                .instrument(span)
                .await
                .with_context(|| format!("publishing {}", env.id))?;
            acks.push((env.sequence.unwrap_or(0), ack));
        }
        let mut published = cursor;
        for (seq, ack) in acks {
            ack.await.context("waiting for JetStream's ack")?;
            published = seq;
        }
        // JetStream holds them now. The cursor moves with the next group
        // commit, not a commit of its own: if it is lost in a crash, the
        // events are published again, and JetStream's duplicate window
        // and the consumers' inboxes drop the copies. Rows JetStream holds
        // count as delivered for outbox pruning.
        self.known().position = Some(published);
        self.db.set_cursor_eventually(&name, published).await?;
        self.db.ack_lazily(&name, published).await?;
        Ok(events.len())
    }

    /// Publishes until `shutdown`, woken by commits; backs off while NATS is unreachable.
    pub async fn run(self, shutdown: CancellationToken) {
        let mut changes = self.db.outbox_changes();
        let mut backoff = Duration::from_millis(100);
        while !shutdown.is_cancelled() {
            changes.mark_unchanged();
            match self.try_publish_once().await {
                Ok(0) => {
                    backoff = Duration::from_millis(100);
                    tokio::select! {
                        _ = changes.changed() => {}
                        _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                        _ = shutdown.cancelled() => {}
                    }
                }
                Ok(_) => backoff = Duration::from_millis(100),
                Err(e) => {
                    tracing::warn!(producer = %self.producer, error = format!("{e:#}"), ?backoff, "publishing to NATS failed; the outbox keeps the events");
                    tokio::select! {
                        _ = tokio::time::sleep(backoff) => {}
                        _ = shutdown.cancelled() => {}
                    }
                    backoff = (backoff * 2).min(Duration::from_secs(10));
                }
            }
        }
    }
}

/// A producer's stream, read by subscribers through durable pull consumers.
///
/// A read runs as a task of its own, which finishes even when its reader
/// gives up on it (a relay stopping): a message the server hands to a pull
/// nobody finishes would count as handed out until the ack wait, and with
/// one unacknowledged message per consumer, hold the subscription up that
/// long. Whatever a read receives is held until applied, and
/// [`Feed::release`] gives back what was not.
pub struct NatsFeed {
    shared: Arc<Shared>,
}

struct Shared {
    nats: Nats,
    producer: String,
    ack_wait: Duration,
    consumers: Mutex<HashMap<String, consumer::PullConsumer>>,
    /// Messages handed out and not yet acknowledged, per subscriber.
    held: Mutex<HashMap<String, Vec<(u64, jetstream::Message)>>>,
    /// Subscribers whose reader stopped: a read of theirs still to start
    /// (its task spawned just before) pulls nothing. Looked at and changed
    /// only while `held` is locked.
    released: std::sync::Mutex<std::collections::HashSet<String>>,
}

impl NatsFeed {
    /// The feed of `producer`.
    pub fn new(nats: Nats, producer: &str) -> NatsFeed {
        NatsFeed {
            shared: Arc::new(Shared {
                nats,
                producer: producer.to_owned(),
                ack_wait: ACK_WAIT,
                consumers: Mutex::new(HashMap::new()),
                held: Mutex::new(HashMap::new()),
                released: Default::default(),
            }),
        }
    }

    /// Sets how long JetStream waits for an ack before redelivering (default
    /// [`ACK_WAIT`]). Before the first read.
    pub fn with_ack_wait(mut self, ack_wait: Duration) -> NatsFeed {
        match Arc::get_mut(&mut self.shared) {
            Some(shared) => shared.ack_wait = ack_wait,
            None => tracing::warn!("with_ack_wait after a read: ignored"),
        }
        self
    }
}

impl Shared {
    async fn consumer(&self, subscriber: &str) -> anyhow::Result<consumer::PullConsumer> {
        let mut consumers = self.consumers.lock().await;
        if let Some(c) = consumers.get(subscriber) {
            return Ok(c.clone());
        }
        let stream = self.nats.stream(&self.producer).await?;
        let name = consumer_name(subscriber);
        let c = stream
            .get_or_create_consumer(
                &name,
                consumer::pull::Config {
                    durable_name: Some(name.clone()),
                    ack_policy: consumer::AckPolicy::Explicit,
                    ack_wait: self.ack_wait,
                    // One unacknowledged event at a time. With more, an event
                    // handed out but neither applied nor acknowledged (a
                    // crash, an ack lost in an outage) comes back only after
                    // the ack wait, by which time later events were applied
                    // and the cursor has passed it: it would be skipped as
                    // "applied before". One at a time keeps the stream's order
                    // and costs throughput per subscription.
                    max_ack_pending: 1,
                    ..Default::default()
                },
            )
            .await
            .with_context(|| {
                format!(
                    "creating consumer {name} on {}",
                    stream_name(&self.producer)
                )
            })?;
        consumers.insert(subscriber.to_owned(), c.clone());
        Ok(c)
    }

    async fn read_inner(
        &self,
        subscriber: &str,
        after: u64,
        // The consumer hands out one event at a time (see `max_ack_pending`),
        // so a read never returns more than one, whatever the caller allows.
        _limit: u32,
        wait: Duration,
    ) -> anyhow::Result<Vec<Envelope>> {
        let mut held = self.held.lock().await;
        if self
            .released
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .contains(subscriber)
        {
            return Ok(Vec::new());
        }
        let mine = held.entry(subscriber.to_owned()).or_default();
        // Everything up to `after` is applied: acknowledge it. What is left
        // was handed out but not applied (shutdown came first, or the relay
        // went back to an older cursor): hand it out again. A message whose
        // ack fails (NATS is down) stays held and is acked by a later read:
        // dropped, it would stay unacknowledged on the server, which hands
        // out nothing else meanwhile (`max_ack_pending` is 1).
        let mut pending = Vec::new();
        let mut failed = None;
        for (seq, msg) in std::mem::take(mine) {
            if seq <= after && failed.is_none() {
                if let Err(e) = msg.double_ack().await {
                    failed = Some(anyhow::anyhow!("acking {seq}: {e}"));
                    mine.push((seq, msg));
                }
            } else if seq <= after {
                mine.push((seq, msg));
            } else {
                pending.push((seq, msg));
            }
        }
        if let Some(e) = failed {
            mine.extend(pending);
            return Err(e);
        }
        if !pending.is_empty() {
            let events = pending
                .iter()
                .map(|(_, m)| decode(m))
                .collect::<anyhow::Result<Vec<_>>>()?;
            *mine = pending;
            return Ok(events);
        }
        let consumer = self.consumer(subscriber).await?;
        // What is there now, without waiting...
        let request = consumer
            .fetch()
            // More than the one the consumer may have unacknowledged
            // would leave the request open, waiting for the rest.
            .max_messages(1)
            // The server may hold even a no-wait request while an event is
            // out unacknowledged (after a restart: to a request that died
            // with the old connection). Without an expiry it held every
            // request we gave up on, and the redelivered event went to the
            // oldest of those, dead, again and again: the subscription
            // stalled for good. Expiring before we give up means it only
            // ever goes to a request someone still waits on.
            .expires(FETCH_EXPIRES)
            .messages();
        let mut messages = self.pull(request, PULL_GRACE).await?;
        if messages.is_empty() && !wait.is_zero() {
            // ...else wait for the next one, for a short while only: a
            // relay that stops waits for its read to end (see `NatsFeed`),
            // and asks again soon enough otherwise.
            let wait = wait.min(LONGEST_PULL);
            let request = consumer.batch().max_messages(1).expires(wait).messages();
            messages = self.pull(request, wait + PULL_GRACE).await?;
        }
        let mut events = Vec::new();
        for msg in messages {
            let msg = msg.map_err(|e| {
                anyhow::anyhow!("pulling from {}: {e}", stream_name(&self.producer))
            })?;
            let env = decode(&msg)?;
            let seq = env.sequence.context("event without its outbox position")?;
            if seq <= after {
                // Applied before (a redelivery after a crash or an ack lost): done with it.
                if let Err(e) = msg.double_ack().await {
                    // Held, so the next read acks it (see above).
                    mine.push((seq, msg));
                    return Err(anyhow::anyhow!("acking {seq}: {e}"));
                }
                continue;
            }
            if events
                .last()
                .is_some_and(|e: &Envelope| e.sequence >= Some(seq))
            {
                // Out of order or duplicated within the batch: leave it for redelivery.
                continue;
            }
            events.push(env);
            mine.push((seq, msg));
        }
        Ok(events)
    }

    /// Sends a pull `request` and collects what it answers. Every pull has a
    /// deadline of its own (`limit`), past the server-side expiry, so a read
    /// never waits forever on an answer that does not come; the relay then
    /// simply asks again.
    async fn pull<S, E>(
        &self,
        request: impl std::future::Future<Output = Result<S, E>>,
        limit: Duration,
    ) -> anyhow::Result<Vec<S::Item>>
    where
        S: futures::Stream,
        E: std::fmt::Display,
    {
        let producer = stream_name(&self.producer);
        tokio::time::timeout(limit, async {
            let messages = request
                .await
                .map_err(|e| anyhow::anyhow!("pulling from {producer}: {e}"))?;
            anyhow::Ok(messages.collect().await)
        })
        .await
        .map_err(|elapsed| {
            anyhow::anyhow!("pulling from {producer}: no answer within {limit:?} ({elapsed})")
        })?
    }
}

fn decode(msg: &jetstream::Message) -> anyhow::Result<Envelope> {
    serde_json::from_slice(&msg.payload).context("a message on a Seams stream is not an envelope")
}

impl Shared {
    /// Acknowledges what `subscriber` applied (up to `after`) and gives
    /// back the rest at once (a NAK), once any read still running ended.
    async fn release(&self, subscriber: &str, after: u64) -> anyhow::Result<()> {
        let mut held = self.held.lock().await;
        self.released
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(subscriber.to_owned());
        let Some(mine) = held.remove(subscriber) else {
            return Ok(());
        };
        let (mut acked, mut given_back) = (0, 0);
        for (seq, msg) in mine {
            let kind = if seq <= after {
                acked += 1;
                jetstream::AckKind::Ack
            } else {
                given_back += 1;
                jetstream::AckKind::Nak(None)
            };
            // Confirmed by the server: a plain ack is a publish that may
            // still sit in the client's buffer when the process exits.
            msg.double_ack_with(kind)
                .await
                .map_err(|e| anyhow::anyhow!("releasing {seq}: {e}"))?;
        }
        tracing::debug!(
            subscriber,
            acked,
            given_back,
            "released what this reader held"
        );
        Ok(())
    }
}

impl Feed for NatsFeed {
    fn read(
        &self,
        subscriber: &str,
        after: u64,
        limit: u32,
        wait: Duration,
    ) -> BoxFuture<'_, anyhow::Result<Vec<Envelope>>> {
        let (shared, subscriber) = (self.shared.clone(), subscriber.to_owned());
        let read = tokio::spawn(
            async move { shared.read_inner(&subscriber, after, limit, wait).await }
                .in_current_span(),
        );
        Box::pin(async move { read.await.context("a read of the stream panicked")? })
    }

    fn release(&self, subscriber: &str, after: u64) -> BoxFuture<'_, anyhow::Result<()>> {
        let subscriber = subscriber.to_owned();
        Box::pin(async move { self.shared.release(&subscriber, after).await })
    }
}

/// A shared NATS feed.
pub fn feed(nats: Nats, producer: &str) -> Arc<dyn Feed> {
    Arc::new(NatsFeed::new(nats, producer))
}

/// Every subscription of a system reads from JetStream.
pub struct NatsFeeds {
    nats: Nats,
}

impl NatsFeeds {
    /// Feeds from `nats`.
    pub fn new(nats: Nats) -> NatsFeeds {
        NatsFeeds { nats }
    }
}

impl seams_runtime::FeedSource for NatsFeeds {
    fn feed(&self, producer: &str) -> Arc<dyn Feed> {
        feed(self.nats.clone(), producer)
    }

    fn readers(&self, producer: &str) -> Vec<String> {
        vec![publisher_name(producer)]
    }
}

/// The name under which `producer`'s publisher keeps its cursor and
/// acknowledges the outbox: once JetStream holds a row, it counts as read.
pub fn publisher_name(producer: &str) -> String {
    format!("nats-publisher:{producer}")
}

/// The background worker publishing `producer`'s outbox (in `db`) to JetStream.
pub fn publisher_worker(nats: Nats, db: Db, producer: &str) -> seams_runtime::Worker {
    let publisher = Publisher::new(nats, db, producer);
    seams_runtime::Worker {
        name: format!("{producer}.nats-publisher"),
        run: Box::new(move |shutdown| Box::pin(publisher.run(shutdown))),
    }
}

#[cfg(test)]
mod tests;
