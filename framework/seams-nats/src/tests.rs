//! Against a real `nats-server -js`: committed outbox rows reach a
//! subscriber through JetStream in order and once, a republish is
//! deduplicated, an unacknowledged event is redelivered and the inbox keeps
//! it harmless, and an outage only delays delivery.

use std::sync::Arc;
use std::time::{Duration, Instant};

use seams_core::decl::*;
use seams_core::{CallContext, Event};
use seams_runtime::relay::{Relay, RelayOptions};
use seams_runtime::{Handles, Subscription};
use seams_testkit::nats::NatsServer;
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

use super::*;

static MIGRATIONS: seams_store::Migrations = seams_store::Migrations {
    sqlite: sqlx::migrate!("./test-migrations/sqlite"),
    postgres: sqlx::migrate!("./test-migrations/postgres"),
};

static TICKED: EventContract = EventContract {
    producer: "clock",
    event_type: "clock.ticked",
    summary: "",
    retries: Retries::Bus(RetryPolicy {
        max_attempts: 2,
        initial_backoff: Duration::from_millis(1),
        max_backoff: Duration::from_millis(1),
    }),
    idempotency: Idempotency::InboxByEventId,
    ordering: Ordering::PerKey { field: "key" },
    when_down: WhenDown::QueueAndDeliverLater,
    versioning: Versioning {
        current: 1,
        accepts: &[1],
    },
};

#[derive(Debug, Serialize, Deserialize)]
struct Ticked {
    key: String,
    n: i64,
}

impl Event for Ticked {
    const CONTRACT: &'static EventContract = &TICKED;
    fn key(&self) -> String {
        self.key.clone()
    }
}

async fn publish(db: &Db, n: i64) {
    let env = Envelope::wrap(
        &Ticked { key: "k".into(), n },
        uuid::Uuid::now_v7().to_string(),
        "2026-11-26T00:00:00Z".into(),
        &CallContext::new_root(),
    );
    let mut tx = db.begin().await.unwrap();
    tx.publish(&env).await.unwrap();
    tx.commit().await.unwrap();
}

fn subscription(db: Db) -> Subscription {
    let handles = Handles::new::<Ticked, _, _>(&[1], move |ev, env| {
        let db = db.clone();
        async move {
            let Some(mut tx) = db.begin_consume("watch.ticked", &env).await? else {
                return Ok(());
            };
            sqlx::query("INSERT INTO applied (event_id, subject, n) VALUES ($1, $2, $3)")
                .bind(&env.id)
                .bind(&ev.key)
                .bind(ev.n)
                .execute(tx.conn())
                .await?;
            tx.commit().await?;
            Ok(())
        }
    });
    Subscription {
        consumer: "watch",
        producer: "clock",
        handles: vec![handles],
    }
}

async fn applied(db: &Db) -> Vec<i64> {
    let rows: Vec<(i64,)> = sqlx::query_as("SELECT n FROM applied ORDER BY rowid")
        .fetch_all(&mut *db.read().await.unwrap())
        .await
        .unwrap();
    rows.into_iter().map(|(n,)| n).collect()
}

struct World {
    _dir: tempfile::TempDir,
    server: NatsServer,
    producer: Db,
    consumer: Db,
}

async fn world() -> Option<World> {
    let server = NatsServer::start_or_skip()?;
    let dir = tempfile::tempdir().unwrap();
    let producer = Db::open(&dir.path().join("p.db"), "clock", &MIGRATIONS)
        .await
        .unwrap();
    let consumer = Db::open(&dir.path().join("c.db"), "watch", &MIGRATIONS)
        .await
        .unwrap();
    Some(World {
        _dir: dir,
        server,
        producer,
        consumer,
    })
}

async fn drain(relay: &Relay, db: &Db, want: usize) {
    let deadline = Instant::now() + Duration::from_secs(20);
    let stop = CancellationToken::new();
    while applied(db).await.len() < want {
        assert!(
            Instant::now() < deadline,
            "only {:?} applied",
            applied(db).await
        );
        relay.try_run_once(&stop).await.unwrap();
    }
}

#[tokio::test]
async fn events_travel_through_jetstream_in_order_and_once() {
    let Some(w) = world().await else { return };
    let nats = Nats::connect(&w.server.url()).await.unwrap();
    for n in 1..=5 {
        publish(&w.producer, n).await;
    }
    let publisher = Publisher::new(nats.clone(), w.producer.clone(), "clock");
    assert_eq!(publisher.try_publish_once().await.unwrap(), 5);
    assert_eq!(publisher.try_publish_once().await.unwrap(), 0);
    // A crash before the cursor moved republishes: JetStream drops the duplicates by id.
    let mut tx = w.producer.begin().await.unwrap();
    sqlx::query(
        "UPDATE seams_cursors SET position = 0 WHERE subscription = 'nats-publisher:clock'",
    )
    .execute(tx.conn())
    .await
    .unwrap();
    tx.commit().await.unwrap();
    assert_eq!(
        publisher.try_publish_once().await.unwrap(),
        5,
        "republished"
    );
    let relay = Relay::with_feed(
        subscription(w.consumer.clone()),
        w.consumer.clone(),
        feed(nats.clone(), "clock"),
        RelayOptions::default(),
    );
    drain(&relay, &w.consumer, 5).await;
    let stop = CancellationToken::new();
    relay.try_run_once(&stop).await.unwrap();
    assert_eq!(applied(&w.consumer).await, [1, 2, 3, 4, 5]);
    let info = nats
        .stream("clock")
        .await
        .unwrap()
        .info()
        .await
        .unwrap()
        .state
        .messages;
    assert_eq!(info, 5);
}

#[tokio::test]
async fn an_unacknowledged_event_is_redelivered_and_applied_once() {
    let Some(w) = world().await else { return };
    let nats = Nats::connect(&w.server.url()).await.unwrap();
    for n in 1..=3 {
        publish(&w.producer, n).await;
    }
    Publisher::new(nats.clone(), w.producer.clone(), "clock")
        .try_publish_once()
        .await
        .unwrap();
    // A subscriber reads and "crashes" before acknowledging anything; it
    // was handed one event only (one unacknowledged event at a time).
    let first = NatsFeed::new(nats.clone(), "clock").with_ack_wait(Duration::from_millis(500));
    let got = first
        .read("watch<-clock", 0, 10, Duration::from_millis(500))
        .await
        .unwrap();
    assert_eq!(got.len(), 1);
    drop(first);
    // Its replacement gets them again after the ack wait.
    let feed: Arc<dyn Feed> =
        Arc::new(NatsFeed::new(nats.clone(), "clock").with_ack_wait(Duration::from_millis(500)));
    let relay = Relay::with_feed(
        subscription(w.consumer.clone()),
        w.consumer.clone(),
        feed,
        RelayOptions::default(),
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    let stop = CancellationToken::new();
    while applied(&w.consumer).await.len() < 3 {
        assert!(Instant::now() < deadline);
        relay.try_run_once(&stop).await.unwrap();
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(applied(&w.consumer).await, [1, 2, 3]);
}

#[tokio::test]
async fn a_nats_outage_only_delays_delivery() {
    let Some(mut w) = world().await else { return };
    let nats = Nats::connect(&w.server.url()).await.unwrap();
    let publisher = Publisher::new(nats.clone(), w.producer.clone(), "clock");
    publish(&w.producer, 1).await;
    publisher.try_publish_once().await.unwrap();
    w.server.stop();
    // The outbox fills while NATS is down; publishing fails and loses nothing.
    for n in 2..=4 {
        publish(&w.producer, n).await;
    }
    assert!(
        tokio::time::timeout(Duration::from_secs(10), publisher.try_publish_once())
            .await
            .map_or(true, |r| r.is_err())
    );
    w.server.resume().unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut published = 0;
    while published < 3 {
        assert!(Instant::now() < deadline, "the publisher never caught up");
        match publisher.try_publish_once().await {
            Ok(n) => published += n,
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
    let relay = Relay::with_feed(
        subscription(w.consumer.clone()),
        w.consumer.clone(),
        feed(nats, "clock"),
        RelayOptions::default(),
    );
    drain(&relay, &w.consumer, 4).await;
    assert_eq!(applied(&w.consumer).await, [1, 2, 3, 4]);
}
