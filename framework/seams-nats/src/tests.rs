//! Against a real `nats-server -js`: committed outbox rows reach a
//! subscriber through JetStream in order and once, a republish is
//! deduplicated, an unacknowledged event is redelivered and the inbox keeps
//! it harmless, and an outage only delays delivery. Over TLS, with a
//! certificate from a throwaway CA: the same round trip works for a client
//! trusting that CA; one trusting another CA (or the system's roots) never
//! gets a connection, and one given a CA will not talk to a server without TLS.

use std::sync::Arc;
use std::time::{Duration, Instant};

use seams_core::decl::*;
use seams_core::{CallContext, Event};
use seams_runtime::relay::{Relay, RelayOptions};
use seams_runtime::{Handles, Subscription};
use seams_testkit::nats::NatsServer;
use seams_testkit::tls::TestCa;
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
    schema: || serde_json::json!({"type": "object", "required": ["key"], "properties": {"key": {"type": "string"}}}),
    downcast: None,
};

#[derive(Debug, Serialize, Deserialize)]
struct Ticked {
    key: String,
    n: i64,
}

impl Event for Ticked {
    const CONTRACT: &'static EventContract = &TICKED;
}

async fn publish(db: &Db, n: i64) {
    let env = Envelope::wrap(
        &Ticked { key: "k".into(), n },
        uuid::Uuid::now_v7().to_string(),
        "2026-11-26T00:00:00Z".into(),
        &CallContext::new_root(),
    )
    .unwrap();
    let mut tx = db.begin().await.unwrap();
    tx.publish(&env).await.unwrap();
    tx.commit().await.unwrap();
}

fn subscription() -> Subscription {
    let handles = Handles::new::<Ticked, _>(&[1], move |ev, tx| {
        Box::pin(async move {
            let id = tx.envelope().id.clone();
            seams_store::query("INSERT INTO applied (event_id, subject, n) VALUES ($1, $2, $3)")
                .bind(id)
                .bind(&ev.key)
                .bind(ev.n)
                .execute(tx.tx())
                .await?;
            Ok(())
        })
    });
    Subscription {
        consumer: "watch",
        producer: "clock",
        handles: vec![handles],
    }
}

async fn applied(db: &Db) -> Vec<i64> {
    let rows = seams_store::query("SELECT n FROM applied ORDER BY rowid")
        .fetch_all(&mut db.read().await.unwrap())
        .await
        .unwrap();
    rows.iter().map(|r| r.get(0).unwrap()).collect()
}

struct World {
    _dir: tempfile::TempDir,
    server: NatsServer,
    producer: Db,
    consumer: Db,
}

async fn world() -> Option<World> {
    Some(world_on(NatsServer::start_or_skip()?).await)
}

async fn world_on(server: NatsServer) -> World {
    let dir = tempfile::tempdir().unwrap();
    let producer = Db::open(&dir.path().join("p.db"), "clock", &MIGRATIONS)
        .await
        .unwrap();
    let consumer = Db::open(&dir.path().join("c.db"), "watch", &MIGRATIONS)
        .await
        .unwrap();
    World {
        _dir: dir,
        server,
        producer,
        consumer,
    }
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
    // A crash before the cursor moved republishes: JetStream drops the
    // duplicates by id. The publisher of the restarted process reads the
    // cursor from the database; a running one keeps its own.
    let mut tx = w.producer.begin().await.unwrap();
    seams_store::query(
        "UPDATE seams_cursors SET position = 0 WHERE subscription = 'nats-publisher:clock'",
    )
    .execute(&mut tx)
    .await
    .unwrap();
    tx.commit().await.unwrap();
    assert_eq!(publisher.try_publish_once().await.unwrap(), 0);
    let restarted = Publisher::new(nats.clone(), w.producer.clone(), "clock");
    assert_eq!(
        restarted.try_publish_once().await.unwrap(),
        5,
        "republished"
    );
    let relay = Relay::with_feed(
        subscription(),
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
        subscription(),
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
async fn a_reader_that_stops_gives_back_what_it_held_so_its_successor_waits_for_nothing() {
    let Some(w) = world().await else { return };
    let nats = Nats::connect(&w.server.url()).await.unwrap();
    // The ack wait is long: only a release lets the successor in soon.
    let long = Duration::from_secs(30);
    let stopping = NatsFeed::new(nats.clone(), "clock").with_ack_wait(long);
    // A read given up on while it waits (a relay stopping) still finishes,
    // and what it receives is held, not lost in a dead subscription.
    let abandoned = tokio::time::timeout(
        Duration::from_millis(200),
        stopping.read("watch<-clock", 0, 10, Duration::from_secs(2)),
    )
    .await;
    assert!(abandoned.is_err(), "nothing was published yet");
    for n in 1..=3 {
        publish(&w.producer, n).await;
    }
    Publisher::new(nats.clone(), w.producer.clone(), "clock")
        .try_publish_once()
        .await
        .unwrap();
    // Another read hands out what the abandoned one received, or the next.
    let got = stopping
        .read("watch<-clock", 0, 10, Duration::from_secs(2))
        .await
        .unwrap();
    assert_eq!(got.len(), 1);
    // The reader stops having applied nothing: it gives the event back.
    stopping.release("watch<-clock", 0).await.unwrap();
    drop(stopping);

    let started = Instant::now();
    let successor: Arc<dyn Feed> =
        Arc::new(NatsFeed::new(nats.clone(), "clock").with_ack_wait(long));
    let relay = Relay::with_feed(
        subscription(),
        w.consumer.clone(),
        successor,
        RelayOptions::default(),
    );
    drain(&relay, &w.consumer, 3).await;
    assert_eq!(applied(&w.consumer).await, [1, 2, 3]);
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "the successor waited {:?}, as for an ack wait",
        started.elapsed()
    );
}

/// A running publisher keeps its stream and its position; after a failure
/// (here: its stream deleted under it) it forgets both, creates the stream
/// again and goes on from the cursor in the database.
#[tokio::test]
async fn a_publisher_that_failed_recreates_its_stream_and_goes_on_from_its_cursor() {
    let Some(w) = world().await else { return };
    let nats = Nats::connect(&w.server.url()).await.unwrap();
    let publisher = Publisher::new(nats.clone(), w.producer.clone(), "clock");
    publish(&w.producer, 1).await;
    assert_eq!(publisher.try_publish_once().await.unwrap(), 1);
    // The cursor is written with the next group commit: wait for it.
    w.producer.flush().await.unwrap();
    assert_eq!(
        w.producer.cursor(&publisher_name("clock")).await.unwrap(),
        1
    );
    nats.js.delete_stream(stream_name("clock")).await.unwrap();
    publish(&w.producer, 2).await;
    // No stream takes the subject now: the publish is refused.
    assert!(publisher.try_publish_once().await.is_err());
    assert_eq!(publisher.try_publish_once().await.unwrap(), 1);
    let stream = nats.js.get_stream(stream_name("clock")).await.unwrap();
    assert_eq!(stream.cached_info().state.messages, 1);
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
        subscription(),
        w.consumer.clone(),
        feed(nats, "clock"),
        RelayOptions::default(),
    );
    drain(&relay, &w.consumer, 4).await;
    assert_eq!(applied(&w.consumer).await, [1, 2, 3, 4]);
}

#[tokio::test]
async fn events_travel_over_tls_to_a_client_trusting_the_servers_ca() {
    let ca = TestCa::new().unwrap();
    let Some(server) = NatsServer::start_tls_or_skip(&ca) else {
        return;
    };
    let w = world_on(server).await;
    assert!(w.server.url().starts_with("tls://"), "{}", w.server.url());
    let tls = NatsTls {
        ca_file: Some(ca.ca_file()),
    };
    let nats = Nats::connect_with(&w.server.url(), &tls).await.unwrap();
    for n in 1..=3 {
        publish(&w.producer, n).await;
    }
    let publisher = Publisher::new(nats.clone(), w.producer.clone(), "clock");
    assert_eq!(publisher.try_publish_once().await.unwrap(), 3);
    let relay = Relay::with_feed(
        subscription(),
        w.consumer.clone(),
        feed(nats.clone(), "clock"),
        RelayOptions::default(),
    );
    drain(&relay, &w.consumer, 3).await;
    assert_eq!(applied(&w.consumer).await, [1, 2, 3]);
    // The server let this client in only over TLS.
    assert!(nats.js.client().server_info().tls_required);
    assert!(gets_through(&nats, &w).await);
}

/// Whether `nats` ever gets to publish: within a few seconds, and its
/// client connected.
async fn gets_through(nats: &Nats, w: &World) -> bool {
    let publisher = Publisher::new(nats.clone(), w.producer.clone(), "clock");
    let published = tokio::time::timeout(Duration::from_secs(8), publisher.try_publish_once())
        .await
        .is_ok_and(|r| r.is_ok());
    published || nats.js.client().connection_state() == async_nats::connection::State::Connected
}

#[tokio::test]
async fn a_client_trusting_another_ca_never_connects() {
    let ca = TestCa::new().unwrap();
    let Some(server) = NatsServer::start_tls_or_skip(&ca) else {
        return;
    };
    let w = world_on(server).await;
    publish(&w.producer, 1).await;
    let other = TestCa::new().unwrap();
    let trusting_other = Nats::connect_with(
        &w.server.url(),
        &NatsTls {
            ca_file: Some(other.ca_file()),
        },
    )
    .await
    .unwrap();
    // Without a CA of its own, the system's roots: they did not issue it either.
    let trusting_the_system = Nats::connect(&w.server.url()).await.unwrap();
    let (a, b) = tokio::join!(
        gets_through(&trusting_other, &w),
        gets_through(&trusting_the_system, &w)
    );
    assert!(!a, "a client trusting another CA got through");
    assert!(!b, "a client trusting the system's roots got through");
    // It was the handshake that failed, not the network.
    let log = w.server.log();
    assert!(log.contains("TLS handshake error"), "{log}");
    assert_eq!(applied(&w.consumer).await, Vec::<i64>::new());
}

#[tokio::test]
async fn a_client_given_a_ca_will_not_talk_to_a_server_without_tls() {
    let Some(w) = world().await else { return };
    publish(&w.producer, 1).await;
    let ca = TestCa::new().unwrap();
    let tls = NatsTls {
        ca_file: Some(ca.ca_file()),
    };
    let nats = Nats::connect_with(&w.server.url(), &tls).await.unwrap();
    assert!(w.server.url().starts_with("nats://"));
    assert!(!gets_through(&nats, &w).await, "downgraded to plain text");
}

#[tokio::test]
async fn a_ca_file_that_holds_no_certificate_is_an_error_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let empty = dir.path().join("empty.pem");
    std::fs::write(&empty, "").unwrap();
    for ca_file in [empty, dir.path().join("missing.pem")] {
        let tls = NatsTls {
            ca_file: Some(ca_file.clone()),
        };
        let err = Nats::connect_with("tls://127.0.0.1:1", &tls)
            .await
            .err()
            .expect("refused before connecting");
        assert!(
            format!("{err:#}").contains(&ca_file.display().to_string()),
            "{err:#}"
        );
    }
}
