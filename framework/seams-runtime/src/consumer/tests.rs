//! The framework's consumer transaction: what commits with the inbox row,
//! what rolls back with it, and under which name the inbox remembers.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering as AtomicOrdering};

use seams_core::decl::*;
use seams_core::{CallContext, Envelope, Event};
use serde::{Deserialize, Serialize};

use super::*;
use crate::component::{Handles, Subscription};

static MIGRATIONS: seams_store::Migrations = seams_store::Migrations {
    sqlite: sqlx::migrate!("./test-migrations/sqlite"),
    postgres: sqlx::migrate!("./test-migrations/postgres"),
};

static TICKED: EventContract = EventContract {
    producer: "clock",
    event_type: "clock.ticked",
    summary: "",
    retries: Retries::Bus(RetryPolicy::STANDARD),
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

async fn db() -> (tempfile::TempDir, Db) {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(&dir.path().join("c.db"), "watch", &MIGRATIONS)
        .await
        .unwrap();
    (dir, db)
}

fn ticked(n: i64) -> Envelope {
    Envelope::wrap(
        &Ticked { key: "a".into(), n },
        uuid::Uuid::now_v7().to_string(),
        "2026-12-04T00:00:00Z".into(),
        &CallContext::new_root(),
    )
    .unwrap()
}

/// The `n` of every row in `applied`, in insertion order.
async fn applied(db: &Db) -> Vec<i64> {
    let rows = seams_store::query("SELECT n FROM applied ORDER BY rowid")
        .fetch_all(&mut db.read().await.unwrap())
        .await
        .unwrap();
    rows.iter().map(|r| r.get(0).unwrap()).collect()
}

async fn outbox(db: &Db) -> Vec<String> {
    let rows = seams_store::query("SELECT event_type FROM seams_outbox ORDER BY seq")
        .fetch_all(&mut db.read().await.unwrap())
        .await
        .unwrap();
    rows.iter().map(|r| r.get(0).unwrap()).collect()
}

/// A subscription of `watch` to `clock` whose handler records the event's
/// `n` (through the transaction and the batch sent with the commit),
/// publishes one event caused by it, and asks to be told after the
/// commit; `fail` makes it fail after writing all that.
fn watching(fail: Option<HandlerError>, told: Arc<AtomicU32>) -> Subscription {
    let handles = Handles::new::<Ticked, _>(&[1], move |ev, tx| {
        let fail = fail.clone();
        let told = told.clone();
        Box::pin(async move {
            let id = tx.envelope().id.clone();
            seams_store::query("INSERT INTO applied (event_id, subject, n) VALUES ($1, $2, $3)")
                .bind(&id)
                .bind(&ev.key)
                .bind(ev.n)
                .execute(tx.tx())
                .await?;
            tx.later()
                .statement("INSERT INTO applied (event_id, subject, n) VALUES ($1, $2, $3)")
                .bind(id)
                .bind("later")
                .bind(ev.n * 10);
            let out = tx.publish(
                &Ticked {
                    key: ev.key.clone(),
                    n: ev.n + 1,
                },
                uuid::Uuid::now_v7().to_string(),
                "2026-12-04T00:00:01Z".into(),
            )?;
            assert_eq!(out.causationid.as_deref(), Some(tx.envelope().id.as_str()));
            assert_eq!(out.correlationid, tx.envelope().correlationid);
            tx.after_commit(move || {
                told.fetch_add(1, AtomicOrdering::SeqCst);
            });
            match fail {
                Some(e) => Err(e),
                None => Ok(()),
            }
        })
    });
    Subscription {
        consumer: "watch",
        producer: "clock",
        handles: vec![handles],
    }
}

#[tokio::test]
async fn ok_commits_the_effect_the_batch_the_event_and_the_inbox_row_once() {
    let (_dir, db) = db().await;
    let told = Arc::new(AtomicU32::new(0));
    let sub = watching(None, told.clone());
    let env = ticked(1);

    sub.deliver(&db, env.clone()).await.unwrap();
    assert_eq!(applied(&db).await, [1, 10]);
    assert_eq!(outbox(&db).await, ["clock.ticked"]);
    assert!(db.inbox_contains("watch<-clock", &env.id).await.unwrap());
    assert_eq!(
        told.load(AtomicOrdering::SeqCst),
        1,
        "told after the commit"
    );

    // Delivered again: the handler never runs, nothing changes.
    sub.deliver(&db, env).await.unwrap();
    assert_eq!(applied(&db).await, [1, 10]);
    assert_eq!(outbox(&db).await.len(), 1);
    assert_eq!(told.load(AtomicOrdering::SeqCst), 1);
}

#[tokio::test]
async fn an_error_rolls_back_everything_and_is_returned_as_the_handler_classified_it() {
    let (_dir, db) = db().await;
    for error in [
        HandlerError::Transient("not yet".into()),
        HandlerError::Permanent("never".into()),
    ] {
        let told = Arc::new(AtomicU32::new(0));
        let env = ticked(1);
        let res = watching(Some(error.clone()), told.clone())
            .deliver(&db, env.clone())
            .await;
        assert_eq!(res, Err(error));
        assert!(applied(&db).await.is_empty());
        assert!(outbox(&db).await.is_empty());
        assert!(!db.inbox_contains("watch<-clock", &env.id).await.unwrap());
        assert_eq!(told.load(AtomicOrdering::SeqCst), 0, "no commit, not told");
    }
    // The writer is free again: the next event applies.
    let env = ticked(2);
    watching(None, Arc::new(AtomicU32::new(0)))
        .deliver(&db, env)
        .await
        .unwrap();
    assert_eq!(applied(&db).await, [2, 20]);
}

#[tokio::test]
async fn a_commit_that_breaks_a_constraint_is_permanent_and_leaves_nothing() {
    let (_dir, db) = db().await;
    let mut tx = db.begin().await.unwrap();
    seams_store::query("CREATE UNIQUE INDEX applied_once ON applied (n)")
        .execute(&mut tx)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    let sub = Subscription {
        consumer: "watch",
        producer: "clock",
        handles: vec![Handles::new::<Ticked, _>(&[1], |ev, tx| {
            // Twice the same n: only the batch sent with the commit fails.
            for _ in 0..2 {
                tx.later()
                    .statement("INSERT INTO applied (event_id, subject, n) VALUES ($1, $2, $3)")
                    .bind("e")
                    .bind("k")
                    .bind(ev.n);
            }
            Box::pin(std::future::ready(Ok(())))
        })],
    };
    let env = ticked(7);
    let res = sub.deliver(&db, env.clone()).await;
    assert!(
        matches!(&res, Err(HandlerError::Permanent(m)) if m.contains("UNIQUE")),
        "{res:?}"
    );
    assert!(applied(&db).await.is_empty());
    assert!(!db.inbox_contains("watch<-clock", &env.id).await.unwrap());
}

#[tokio::test]
async fn a_panicking_handler_is_transient_and_leaves_nothing() {
    let (_dir, db) = db().await;
    let sub = Subscription {
        consumer: "watch",
        producer: "clock",
        handles: vec![Handles::new::<Ticked, _>(&[1], |ev, tx| {
            Box::pin(async move {
                tx.later()
                    .statement("INSERT INTO applied (event_id, subject, n) VALUES ($1, $2, $3)")
                    .bind("e")
                    .bind("k")
                    .bind(ev.n);
                panic!("a bug in the handler");
            })
        })],
    };
    let env = ticked(3);
    let res = sub.deliver(&db, env.clone()).await;
    assert_eq!(res, Err(HandlerError::Transient("handler panicked".into())));
    assert!(!db.inbox_contains("watch<-clock", &env.id).await.unwrap());
    // The dropped transaction is undone before the writer's next use.
    watching(None, Arc::new(AtomicU32::new(0)))
        .deliver(&db, ticked(4))
        .await
        .unwrap();
    assert_eq!(applied(&db).await, [4, 40]);
}

#[tokio::test]
async fn each_subscription_remembers_under_its_own_name() {
    let (_dir, db) = db().await;
    let from_clock = watching(None, Arc::new(AtomicU32::new(0)));
    let from_tower = Subscription {
        producer: "tower",
        ..watching(None, Arc::new(AtomicU32::new(0)))
    };
    assert_eq!(from_clock.inbox(&db).name(), "watch<-clock");
    assert_eq!(from_tower.inbox(&db).name(), "watch<-tower");
    let env = ticked(5);
    from_clock.deliver(&db, env.clone()).await.unwrap();
    assert!(db.inbox_contains("watch<-clock", &env.id).await.unwrap());
    assert!(!db.inbox_contains("watch<-tower", &env.id).await.unwrap());
    // `Inbox::begin` opens under the same name: applied before, so none.
    assert!(from_clock.inbox(&db).begin(&env).await.unwrap().is_none());
    assert!(from_tower.inbox(&db).begin(&env).await.unwrap().is_some());
}

#[tokio::test]
async fn an_event_type_not_handled_is_skipped() {
    let (_dir, db) = db().await;
    let mut env = ticked(6);
    env.event_type = "clock.stopped".into();
    watching(None, Arc::new(AtomicU32::new(0)))
        .deliver(&db, env.clone())
        .await
        .unwrap();
    assert!(applied(&db).await.is_empty());
    assert!(!db.inbox_contains("watch<-clock", &env.id).await.unwrap());
}
