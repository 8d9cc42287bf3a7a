//! A whole system of two small components, started on a real socket: a
//! poison event goes through the whole path (outbox, relay, bounded
//! retries, dead letter visible over HTTP), is replayed over HTTP after the
//! fix, and is applied once; consistency is reported over HTTP.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering as AtomicOrdering};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::State;
use axum::routing::{get, post};
use seams_core::decl::*;
use seams_core::{CallContext, Envelope, Event};
use seams_runtime::relay::RelayOptions;
use seams_runtime::{Component, HandlerError, Handles, Runtime, Subscription, SystemOptions};
use seams_sqlite::Db;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sqlx::migrate::Migrator;

static MIGRATIONS: Migrator = sqlx::migrate!("./test-migrations");

static NOTED: EventContract = EventContract {
    producer: "notes",
    event_type: "notes.noted",
    summary: "A note was taken.",
    retries: Retries::Bus(RetryPolicy {
        max_attempts: 2,
        initial_backoff: Duration::from_millis(5),
        max_backoff: Duration::from_millis(5),
    }),
    idempotency: Idempotency::InboxByEventId,
    ordering: Ordering::PerKey { field: "key" },
    when_down: WhenDown::QueueAndDeliverLater,
    versioning: Versioning {
        current: 1,
        accepts: &[1],
    },
};

static AUDIT_FOLLOWS: Invariant = Invariant {
    capability: "audit",
    name: "audit-follows-notes",
    description: "A note is audited within 2 s (p99).",
    kind: InvariantKind::Eventual {
        bound: Duration::from_secs(2),
        percentile: 99.0,
        measure: Measure::Hop {
            event: &NOTED,
            consumer: "audit",
        },
    },
};

#[derive(Debug, Serialize, Deserialize)]
struct Noted {
    key: String,
}

impl Event for Noted {
    const CONTRACT: &'static EventContract = &NOTED;
    fn key(&self) -> String {
        self.key.clone()
    }
}

async fn note(
    State(db): State<Db>,
    axum::extract::Path(key): axum::extract::Path<String>,
) -> &'static str {
    let now = seams_core::clock::rfc3339(time::OffsetDateTime::now_utc());
    let env = Envelope::wrap(
        &Noted { key },
        uuid::Uuid::now_v7().to_string(),
        now,
        &CallContext::new_root(),
    );
    let mut tx = db.begin().await.unwrap();
    tx.publish(&env).await.unwrap();
    tx.commit().await.unwrap();
    "ok"
}

async fn applied(State(db): State<Db>) -> String {
    let (n,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM applied")
        .fetch_one(db.reader())
        .await
        .unwrap();
    n.to_string()
}

async fn components(dir: &std::path::Path, poisoned: Arc<AtomicBool>) -> (Component, Component) {
    let notes = Db::open(&dir.join("notes.db"), "notes", &MIGRATIONS)
        .await
        .unwrap();
    let audit = Db::open(&dir.join("audit.db"), "audit", &MIGRATIONS)
        .await
        .unwrap();
    let handler_db = audit.clone();
    let handles = Handles::new::<Noted, _, _>(&[1], move |ev, env| {
        let db = handler_db.clone();
        let poisoned = poisoned.load(AtomicOrdering::SeqCst);
        async move {
            if poisoned {
                return Err(HandlerError::Transient("cannot audit yet".into()));
            }
            let Some(mut tx) = db.begin_consume("audit.notes", &env).await? else {
                return Ok(());
            };
            sqlx::query("INSERT INTO applied (event_id, subject, n) VALUES (?, ?, 1)")
                .bind(&env.id)
                .bind(&ev.key)
                .execute(tx.conn())
                .await?;
            tx.commit().await?;
            Ok(())
        }
    });
    let empty = || utoipa::openapi::OpenApiBuilder::new().build();
    let producer = Component {
        name: "notes",
        db: notes.clone(),
        routes: Router::new().route("/{key}", post(note)).with_state(notes),
        public: vec![],
        serves: vec![],
        publishes: vec![&NOTED],
        subscriptions: vec![],
        workers: vec![],
        openapi: empty(),
        invariants: vec![],
    };
    let consumer = Component {
        name: "audit",
        db: audit.clone(),
        routes: Router::new()
            .route("/applied", get(applied))
            .with_state(audit),
        public: vec![],
        serves: vec![],
        publishes: vec![],
        subscriptions: vec![Subscription {
            consumer: "audit",
            producer: "notes",
            handles: vec![handles],
        }],
        workers: vec![],
        openapi: empty(),
        invariants: vec![&AUDIT_FOLLOWS],
    };
    (producer, consumer)
}

async fn eventually(what: &str, mut check: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !check().await {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn a_poison_event_is_dead_lettered_then_replayed_over_http() {
    let dir = tempfile::tempdir().unwrap();
    let poisoned = Arc::new(AtomicBool::new(true));
    let (producer, consumer) = components(dir.path(), poisoned.clone()).await;
    let options = SystemOptions {
        relay: RelayOptions {
            idle_poll: Duration::from_millis(20),
            ..RelayOptions::default()
        },
        ..SystemOptions::default()
    };
    let mut builder = Runtime::new(options).builder();
    builder.add(producer).add(consumer);
    let running = builder
        .start(tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap())
        .await
        .unwrap();
    let base = format!("http://{}", running.addr());
    let http = reqwest::Client::new();
    let get = |path: &str| {
        let (http, url) = (http.clone(), format!("{base}{path}"));
        async move {
            http.get(url)
                .send()
                .await
                .unwrap()
                .json::<Value>()
                .await
                .unwrap()
        }
    };

    http.post(format!("{base}/notes/k1")).send().await.unwrap();
    let mut dead = Value::Null;
    eventually("the dead letter", async || {
        dead = get("/_seams/dead-letters").await["dead_letters"][0].clone();
        !dead.is_null()
    })
    .await;
    assert_eq!(dead["id"], "audit.1");
    assert_eq!(dead["error"], "cannot audit yet");
    assert_eq!(dead["attempts"], 2);
    assert_eq!(dead["status"], "parked");
    // A later note with the same key waits behind it.
    http.post(format!("{base}/notes/k1")).send().await.unwrap();
    eventually("the second to park", async || {
        get("/_seams/dead-letters").await["dead_letters"][1]["status"] == "parked"
    })
    .await;

    let r = http
        .post(format!("{base}/_seams/dead-letters/audit.99/replay"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    let r = http
        .post(format!("{base}/_seams/dead-letters/nonsense/replay"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);

    poisoned.store(false, AtomicOrdering::SeqCst);
    let r = http
        .post(format!("{base}/_seams/dead-letters/audit.1/replay"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    let r = http
        .post(format!("{base}/_seams/dead-letters/audit.1/replay"))
        .send()
        .await
        .unwrap();
    assert!(r.status() == 409 || r.status() == 202, "{}", r.status());
    eventually("both applied", async || {
        let n = http
            .get(format!("{base}/audit/applied"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        n == "2"
    })
    .await;
    let statuses: Vec<Value> = get("/_seams/dead-letters").await["dead_letters"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["status"].clone())
        .collect();
    assert_eq!(statuses, ["replayed", "replayed"]);

    // Live events flow again, and their lag is measured against the declared bound.
    http.post(format!("{base}/notes/k2")).send().await.unwrap();
    eventually("the live event", async || {
        http.get(format!("{base}/audit/applied"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
            == "3"
    })
    .await;
    let report = get("/_seams/consistency").await;
    assert_eq!(
        report["invariants"][0]["invariant"],
        "audit.audit-follows-notes"
    );
    assert_eq!(report["invariants"][0]["status"], "holds");
    assert_eq!(report["subscriptions"]["audit<-notes"]["position"], 3);
    running.stop().await.unwrap();
}
