//! The framework tables against a real SQLite file: the outbox commits or
//! rolls back with the state change, the inbox dedupes, idempotency records
//! conflict, and pruning respects acknowledgements.

use seams_core::{CallContext, Envelope};
use sqlx::migrate::Migrator;

use crate::*;

static NOTES: Migrator = sqlx::migrate!("./test-migrations");

async fn db() -> (tempfile::TempDir, Db) {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(&dir.path().join("notes.db"), "notes", &NOTES)
        .await
        .unwrap();
    (dir, db)
}

fn envelope(id: &str, subject: &str) -> Envelope {
    Envelope {
        specversion: "1.0".into(),
        id: id.into(),
        source: "/seams/notes".into(),
        event_type: "notes.note-added".into(),
        subject: subject.into(),
        time: "2026-11-26T00:00:00Z".into(),
        datacontenttype: "application/json".into(),
        dataversion: 1,
        traceparent: None,
        correlationid: CallContext::new_root().correlation_id,
        causationid: None,
        sequence: None,
        data: serde_json::json!({ "id": subject }),
    }
}

#[tokio::test]
async fn outbox_rows_exist_only_for_committed_changes() {
    let (_dir, db) = db().await;
    let mut changes = db.outbox_changes();
    let mut tx = db.begin().await.unwrap();
    sqlx::query("INSERT INTO notes (body) VALUES ('kept')")
        .execute(tx.conn())
        .await
        .unwrap();
    tx.publish(&envelope("e1", "a")).await.unwrap();
    tx.commit().await.unwrap();
    assert!(changes.has_changed().unwrap());
    changes.mark_unchanged();

    let mut tx = db.begin().await.unwrap();
    sqlx::query("INSERT INTO notes (body) VALUES ('lost')")
        .execute(tx.conn())
        .await
        .unwrap();
    tx.publish(&envelope("e2", "b")).await.unwrap();
    drop(tx);
    assert!(!changes.has_changed().unwrap());

    let mut tx = db.begin().await.unwrap();
    tx.publish(&envelope("e3", "c")).await.unwrap();
    tx.commit().await.unwrap();

    let feed = db.read_outbox(0, 10).await.unwrap();
    let ids: Vec<_> = feed.iter().map(|e| (e.id.as_str(), e.sequence)).collect();
    assert_eq!(ids, [("e1", Some(1)), ("e3", Some(2))]);
    let (notes,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM notes")
        .fetch_one(db.reader())
        .await
        .unwrap();
    assert_eq!(notes, 1);
    assert_eq!(db.read_outbox(1, 10).await.unwrap().len(), 1);
    assert_eq!(db.outbox_head().await.unwrap(), 2);
}

#[tokio::test]
async fn inbox_applies_an_event_once() {
    let (_dir, db) = db().await;
    let env = envelope("e1", "a");
    let mut tx = db
        .begin_consume("notes.audit", &env)
        .await
        .unwrap()
        .expect("first delivery");
    sqlx::query("INSERT INTO notes (body) VALUES ('applied')")
        .execute(tx.conn())
        .await
        .unwrap();
    tx.commit().await.unwrap();
    assert!(
        db.begin_consume("notes.audit", &env)
            .await
            .unwrap()
            .is_none()
    );
    // Another consumer has its own inbox.
    assert!(
        db.begin_consume("notes.other", &env)
            .await
            .unwrap()
            .is_some()
    );
    assert!(db.inbox_contains("notes.audit", "e1").await.unwrap());
}

#[tokio::test]
async fn a_rolled_back_consumer_transaction_leaves_the_event_unhandled() {
    let (_dir, db) = db().await;
    let env = envelope("e1", "a");
    let tx = db.begin_consume("c", &env).await.unwrap().unwrap();
    tx.rollback().await.unwrap();
    assert!(db.begin_consume("c", &env).await.unwrap().is_some());
}

#[tokio::test]
async fn one_key_records_one_response() {
    let (_dir, db) = db().await;
    let claim = IdempotencyClaim {
        scope: "notes.add".into(),
        key: "k1".into(),
        fingerprint: "f1".into(),
    };
    let mut first = db.begin().await.unwrap();
    first
        .save_response(&claim, 201, b"{\"id\":1}")
        .await
        .unwrap();
    first.commit().await.unwrap();
    let mut second = db.begin().await.unwrap();
    assert!(matches!(
        second.save_response(&claim, 201, b"{}").await,
        Err(SaveResponseError::Conflict)
    ));
    drop(second);
    let stored = db
        .stored_response("notes.add", "k1")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (
            stored.status,
            stored.body.as_slice(),
            stored.fingerprint.as_str()
        ),
        (201, &b"{\"id\":1}"[..], "f1")
    );
    assert!(
        db.stored_response("notes.other", "k1")
            .await
            .unwrap()
            .is_none()
    );
}

#[tokio::test]
async fn pruning_keeps_what_a_subscriber_has_not_acknowledged() {
    let (_dir, db) = db().await;
    for i in 1..=4 {
        let mut tx = db.begin().await.unwrap();
        tx.publish(&envelope(&format!("e{i}"), "a")).await.unwrap();
        tx.commit().await.unwrap();
    }
    let future = now_ms() + 1_000;
    // No subscriber known: nothing is delivered, nothing pruned.
    assert_eq!(db.prune(future, 0, 0).await.unwrap().outbox, 0);
    db.ack("fast", 4).await.unwrap();
    db.ack("slow", 2).await.unwrap();
    db.ack("slow", 1).await.unwrap(); // acks never move back
    assert_eq!(db.prune(future, 0, 0).await.unwrap().outbox, 2);
    assert_eq!(db.read_outbox(0, 10).await.unwrap().len(), 2);
    // Too young to prune even when acknowledged.
    db.ack("slow", 4).await.unwrap();
    assert_eq!(db.prune(0, 0, 0).await.unwrap().outbox, 0);
    // Sequence numbers are never reused after pruning.
    assert_eq!(db.prune(future, 0, 0).await.unwrap().outbox, 2);
    let mut tx = db.begin().await.unwrap();
    tx.publish(&envelope("e5", "a")).await.unwrap();
    tx.commit().await.unwrap();
    assert_eq!(db.read_outbox(0, 10).await.unwrap()[0].sequence, Some(5));
}

#[tokio::test]
async fn cursors_only_move_forward_and_dead_letters_are_kept() {
    let (_dir, db) = db().await;
    assert_eq!(db.cursor("s").await.unwrap(), 0);
    db.set_cursor("s", 5).await.unwrap();
    db.set_cursor("s", 3).await.unwrap();
    assert_eq!(db.cursor("s").await.unwrap(), 5);

    let env = envelope("e1", "inv-1");
    db.park("s", &env, "boom", 5).await.unwrap();
    db.park("s", &env, "boom again", 2).await.unwrap();
    let dead = db.dead_letters().await.unwrap();
    assert_eq!(dead.len(), 1);
    assert_eq!(
        (
            dead[0].attempts,
            dead[0].error.as_str(),
            dead[0].status.as_str()
        ),
        (7, "boom again", "parked")
    );
    assert_eq!(
        db.parked_for_subject("s", "inv-1").await.unwrap(),
        Some(dead[0].id)
    );
    assert_eq!(db.parked_for_subject("s", "inv-2").await.unwrap(), None);
}

#[tokio::test]
async fn reopening_keeps_data_and_migrations_are_idempotent() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("n.db");
    let db = Db::open(&path, "notes", &NOTES).await.unwrap();
    let mut tx = db.begin().await.unwrap();
    tx.publish(&envelope("e1", "a")).await.unwrap();
    tx.commit().await.unwrap();
    db.close().await;
    let db = Db::open(&path, "notes", &NOTES).await.unwrap();
    assert_eq!(db.read_outbox(0, 10).await.unwrap().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_transactions_share_group_commits_and_all_are_durable() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("g.db");
    let db = Db::open(&path, "notes", &NOTES).await.unwrap();
    let tasks: Vec<_> = (0..64)
        .map(|i| {
            let db = db.clone();
            tokio::spawn(async move {
                let mut tx = db.begin().await.unwrap();
                sqlx::query("INSERT INTO notes (body) VALUES (?)")
                    .bind(format!("n{i}"))
                    .execute(tx.conn())
                    .await
                    .unwrap();
                tx.publish(&envelope(&format!("e{i}"), "a")).await.unwrap();
                tx.commit().await.unwrap();
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    // Every commit returned only once durable: the readers see all of them.
    let (n,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM notes")
        .fetch_one(db.reader())
        .await
        .unwrap();
    assert_eq!(n, 64);
    assert_eq!(db.read_outbox(0, 100).await.unwrap().len(), 64);
    let commits = db.commits();
    assert!((1..=64).contains(&commits), "{commits}");
    eprintln!("64 concurrent transactions took {commits} group commits");
    db.close().await;
    let db = Db::open(&path, "notes", &NOTES).await.unwrap();
    let (n,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM notes")
        .fetch_one(db.reader())
        .await
        .unwrap();
    assert_eq!(n, 64, "durable across reopen");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_dropped_member_rolls_back_alone() {
    let (_dir, db) = db().await;
    let tasks: Vec<_> = (0..40)
        .map(|i| {
            let db = db.clone();
            tokio::spawn(async move {
                let mut tx = db.begin().await.unwrap();
                sqlx::query("INSERT INTO notes (body) VALUES (?)")
                    .bind(format!("n{i}"))
                    .execute(tx.conn())
                    .await
                    .unwrap();
                tx.publish(&envelope(&format!("e{i}"), "a")).await.unwrap();
                match i % 3 {
                    0 => drop(tx),
                    1 => tx.rollback().await.unwrap(),
                    _ => tx.commit().await.unwrap(),
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    let bodies: Vec<(String,)> = sqlx::query_as("SELECT body FROM notes")
        .fetch_all(db.reader())
        .await
        .unwrap();
    let mut kept: Vec<usize> = bodies.iter().map(|(b,)| b[1..].parse().unwrap()).collect();
    kept.sort();
    let expected: Vec<usize> = (0..40).filter(|i| i % 3 == 2).collect();
    assert_eq!(kept, expected);
    let events: Vec<String> = db
        .read_outbox(0, 100)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.id)
        .collect();
    assert_eq!(events.len(), expected.len());
    // The writer is clean afterwards: a new transaction works.
    let mut tx = db.begin().await.unwrap();
    sqlx::query("INSERT INTO notes (body) VALUES ('after')")
        .execute(tx.conn())
        .await
        .unwrap();
    tx.commit().await.unwrap();
}

#[tokio::test]
async fn a_failed_statement_leaves_the_others_of_its_group_intact() {
    let (_dir, db) = db().await;
    let mut first = db.begin().await.unwrap();
    sqlx::query("INSERT INTO notes (id, body) VALUES (1, 'one')")
        .execute(first.conn())
        .await
        .unwrap();
    first.commit().await.unwrap();
    let mut dup = db.begin().await.unwrap();
    assert!(
        sqlx::query("INSERT INTO notes (id, body) VALUES (1, 'again')")
            .execute(dup.conn())
            .await
            .is_err()
    );
    drop(dup);
    let mut ok = db.begin().await.unwrap();
    sqlx::query("INSERT INTO notes (id, body) VALUES (2, 'two')")
        .execute(ok.conn())
        .await
        .unwrap();
    ok.commit().await.unwrap();
    let (n,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM notes")
        .fetch_one(db.reader())
        .await
        .unwrap();
    assert_eq!(n, 2);
}
