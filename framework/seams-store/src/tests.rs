//! The framework tables against a real SQLite file and a real PostgreSQL
//! server (each test runs on both): the outbox commits or rolls back with
//! the state change, the inbox dedupes, idempotency records conflict, group
//! commit keeps members apart, and pruning respects acknowledgements.

use seams_core::{CallContext, Envelope};
use seams_testkit::postgres::{PostgresServer, Shutdown};

use crate::*;

pub(crate) static NOTES: Migrations = Migrations {
    sqlite: sqlx::migrate!("./test-migrations/sqlite"),
    postgres: sqlx::migrate!("./test-migrations/postgres"),
};

/// Where one test's database lives; kept alive for the test's duration.
enum Store {
    Sqlite(tempfile::TempDir),
    Postgres(PostgresServer, String),
}

impl Store {
    fn sqlite() -> Store {
        Store::Sqlite(tempfile::tempdir().unwrap())
    }

    /// `None` when PostgreSQL is not installed (outside CI).
    async fn postgres() -> Option<Store> {
        let pg = PostgresServer::start_or_skip()?;
        let url = pg.provision("notes").await.unwrap();
        Some(Store::Postgres(pg, url))
    }

    fn location(&self) -> Location {
        match self {
            Store::Sqlite(dir) => Location::Sqlite {
                path: dir.path().join("notes.db"),
                durability: Durability::Full,
            },
            Store::Postgres(_, url) => Location::Postgres { url: url.clone() },
        }
    }

    async fn open(&self) -> Db {
        Db::connect(&self.location(), "notes", &NOTES)
            .await
            .unwrap()
    }
}

/// Runs each named test body once on SQLite and once on PostgreSQL.
macro_rules! on_both {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn sqlite() {
                super::$name(super::Store::sqlite()).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn postgres() {
                let Some(store) = super::Store::postgres().await else { return };
                super::$name(store).await
            }
        }
    )*};
}

on_both!(
    outbox_rows_exist_only_for_committed_changes,
    inbox_applies_an_event_once,
    a_rolled_back_consumer_transaction_leaves_the_event_unhandled,
    one_key_records_one_response,
    pruning_keeps_what_a_subscriber_has_not_acknowledged,
    cursors_only_move_forward_and_dead_letters_are_kept,
    reopening_keeps_data_and_migrations_are_idempotent,
    concurrent_transactions_share_group_commits_and_all_are_durable,
    a_dropped_member_rolls_back_alone,
    a_failed_statement_leaves_the_others_of_its_group_intact,
    a_read_dropped_half_way_leaves_its_connection_reading_fresh_snapshots,
    concurrent_deliveries_apply_each_event_once_and_abandoned_ones_leave_nothing,
    a_flush_waiting_on_a_group_its_only_member_abandoned_returns,
    a_batch_applies_all_its_statements_or_none,
    a_batch_that_reuses_a_key_conflicts_and_leaves_nothing,
    a_batch_with_the_wrong_values_sends_nothing,
    a_batch_committed_with_its_release_keeps_its_group_whole,
    a_consumer_in_an_open_group_needs_no_round_trip_of_its_own_to_join_or_release,
    a_consumer_behind_a_failed_commit_is_undone_even_with_its_release_in_its_batch,
    a_transaction_that_waits_too_long_for_the_writer_is_refused_as_busy,
    what_waits_after_a_position_and_undelivered_dead_letters_are_counted,
    events_go_into_the_outbox_in_the_versions_the_producer_is_told_to_write,
);

async fn a_transaction_that_waits_too_long_for_the_writer_is_refused_as_busy(store: Store) {
    let db = store.open().await;
    db.set_writer_wait(std::time::Duration::from_millis(100));
    let mut holder = db.begin().await.unwrap();
    add_note(&mut holder, "first").await;
    let started = std::time::Instant::now();
    let err = db
        .begin()
        .await
        .err()
        .expect("refused while the writer is held");
    assert!(crate::writer_busy(&err), "{err:?}");
    assert!(!crate::connection_lost(&err), "busy is not an outage");
    assert!(started.elapsed() >= std::time::Duration::from_millis(100));
    // Nothing of the refused one exists; the holder commits as usual, and
    // the writer is free again.
    holder.commit().await.unwrap();
    let mut next = db.begin().await.unwrap();
    add_note(&mut next, "second").await;
    next.commit().await.unwrap();
    assert_eq!(note_bodies(&db).await, ["first", "second"]);
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
        alternates: Default::default(),
    }
}

/// Adds a note in `tx`.
pub(crate) async fn add_note(tx: &mut Tx, body: &str) {
    sqlx::query("INSERT INTO notes (body) VALUES ($1)")
        .bind(body)
        .execute(tx.conn())
        .await
        .unwrap();
}

/// The claim of a keyed `notes.add` with key `k1`.
fn add_note_claim() -> IdempotencyClaim {
    IdempotencyClaim {
        scope: "notes.add".into(),
        key: "k1".into(),
        fingerprint: "f1".into(),
    }
}

/// The ids of the first 100 events in the outbox, in order.
async fn outbox_ids(db: &Db) -> Vec<String> {
    db.read_outbox(0, 100)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.id)
        .collect()
}

/// The notes `conn` sees.
async fn count_notes(conn: &mut sqlx::AnyConnection) -> i64 {
    let (n,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM notes")
        .fetch_one(conn)
        .await
        .unwrap();
    n
}

async fn outbox_rows_exist_only_for_committed_changes(store: Store) {
    let db = store.open().await;
    let mut changes = db.outbox_changes();
    let mut tx = db.begin().await.unwrap();
    add_note(&mut tx, "kept").await;
    tx.publish(&envelope("e1", "a")).await.unwrap();
    tx.commit().await.unwrap();
    assert!(changes.has_changed().unwrap());
    changes.mark_unchanged();

    let mut tx = db.begin().await.unwrap();
    add_note(&mut tx, "lost").await;
    tx.publish(&envelope("e2", "b")).await.unwrap();
    drop(tx);
    assert!(!changes.has_changed().unwrap());

    let mut tx = db.begin().await.unwrap();
    tx.publish(&envelope("e3", "c")).await.unwrap();
    tx.commit().await.unwrap();

    let feed = db.read_outbox(0, 10).await.unwrap();
    let ids: Vec<_> = feed.iter().map(|e| e.id.as_str()).collect();
    assert_eq!(ids, ["e1", "e3"]);
    assert_eq!(feed[0].sequence, Some(1));
    // SQLite hands e2's rolled-back position out again; a PostgreSQL
    // sequence does not (positions only ever grow, with gaps).
    let e3 = match db.backend() {
        Backend::Sqlite => 2,
        Backend::Postgres => 3,
    };
    assert_eq!(feed[1].sequence, Some(e3));
    let notes = count_notes(&mut db.read().await.unwrap()).await;
    assert_eq!(notes, 1);
    assert_eq!(db.read_outbox(1, 10).await.unwrap().len(), 1);
    assert_eq!(db.outbox_head().await.unwrap(), e3);
}

async fn inbox_applies_an_event_once(store: Store) {
    let db = store.open().await;
    let env = envelope("e1", "a");
    let mut tx = db
        .begin_consume("notes.audit", &env)
        .await
        .unwrap()
        .expect("first delivery");
    add_note(&mut tx, "applied").await;
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

async fn a_rolled_back_consumer_transaction_leaves_the_event_unhandled(store: Store) {
    let db = store.open().await;
    let env = envelope("e1", "a");
    let tx = db.begin_consume("c", &env).await.unwrap().unwrap();
    tx.rollback().await.unwrap();
    assert!(db.begin_consume("c", &env).await.unwrap().is_some());
}

async fn one_key_records_one_response(store: Store) {
    let db = store.open().await;
    let claim = add_note_claim();
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

/// 10003 rebuilt the idempotency table (rowid, unique key): what was
/// recorded before it still answers, and still blocks its key.
#[tokio::test]
async fn idempotency_records_survive_the_rowid_rebuild() {
    use sqlx::Connection;
    use sqlx::migrate::Migrator;
    let store = Store::sqlite();
    let Location::Sqlite { path, .. } = store.location() else {
        unreachable!("a SQLite store")
    };
    sqlx::any::install_default_drivers();
    let mut conn = sqlx::AnyConnection::connect(&format!("sqlite://{}?mode=rwc", path.display()))
        .await
        .unwrap();
    let before: Vec<_> = crate::db::FRAMEWORK
        .sqlite
        .migrations
        .iter()
        .filter(|m| m.version < 10003)
        .cloned()
        .collect();
    assert_eq!(before.len(), 2, "10001 and 10002");
    Migrator {
        migrations: before.into(),
        ignore_missing: true,
        ..Migrator::DEFAULT
    }
    .run_direct(&mut conn)
    .await
    .unwrap();
    sqlx::query(
        "INSERT INTO seams_idempotency (scope, key, fingerprint, status, body, created_at_ms) \
         VALUES ('notes.add', 'k1', 'f1', 201, x'7b7d', 1)",
    )
    .execute(&mut conn)
    .await
    .unwrap();
    conn.close().await.unwrap();

    let db = store.open().await;
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
        (201, &b"{}"[..], "f1")
    );
    let claim = add_note_claim();
    let mut tx = db.begin().await.unwrap();
    assert!(matches!(
        tx.save_response(&claim, 201, b"{}").await,
        Err(SaveResponseError::Conflict)
    ));
}

async fn pruning_keeps_what_a_subscriber_has_not_acknowledged(store: Store) {
    let db = store.open().await;
    for i in 1..=4 {
        let mut tx = db.begin().await.unwrap();
        tx.publish(&envelope(&format!("e{i}"), "a")).await.unwrap();
        tx.commit().await.unwrap();
    }
    let future = now_ms() + 1_000;
    let readers = ["fast".to_owned(), "slow".to_owned()];
    // Neither declared reader has acknowledged: nothing is delivered, nothing pruned.
    assert_eq!(db.prune(&readers, future, 0, 0).await.unwrap().outbox, 0);
    db.ack("fast", 4).await.unwrap();
    // One reader acknowledging is not all of them.
    assert_eq!(db.prune(&readers, future, 0, 0).await.unwrap().outbox, 0);
    db.ack("slow", 2).await.unwrap();
    db.ack("slow", 1).await.unwrap(); // acks never move back
    // An acknowledgement of anyone undeclared neither holds pruning back nor
    // lets it go further.
    db.ack("made-up", 0).await.unwrap();
    db.ack("made-up-too", 1_000_000).await.unwrap();
    // An acknowledgement returns before it is committed; pruning reads
    // committed ones.
    db.flush().await.unwrap();
    assert_eq!(db.acked_by_all(&readers).await.unwrap(), 2);
    assert_eq!(db.prune(&readers, future, 0, 0).await.unwrap().outbox, 2);
    assert_eq!(db.read_outbox(0, 10).await.unwrap().len(), 2);
    // Too young to prune even when acknowledged.
    db.ack("slow", 4).await.unwrap();
    db.flush().await.unwrap();
    assert_eq!(db.prune(&readers, 0, 0, 0).await.unwrap().outbox, 0);
    // Sequence numbers are never reused after pruning.
    assert_eq!(db.prune(&readers, future, 0, 0).await.unwrap().outbox, 2);
    let mut tx = db.begin().await.unwrap();
    tx.publish(&envelope("e5", "a")).await.unwrap();
    tx.commit().await.unwrap();
    assert_eq!(db.read_outbox(0, 10).await.unwrap()[0].sequence, Some(5));
    // An outbox nobody reads is kept for the retention, then pruned.
    assert_eq!(db.acked_by_all(&[]).await.unwrap(), u64::MAX);
    assert_eq!(db.prune(&[], 0, 0, 0).await.unwrap().outbox, 0);
    assert_eq!(db.prune(&[], future, 0, 0).await.unwrap().outbox, 1);
}

async fn what_waits_after_a_position_and_undelivered_dead_letters_are_counted(store: Store) {
    let db = store.open().await;
    assert_eq!(db.outbox_after(0).await.unwrap(), (0, None));
    let before = now_ms();
    for i in 1..=3 {
        let mut tx = db.begin().await.unwrap();
        tx.publish(&envelope(&format!("e{i}"), "a")).await.unwrap();
        tx.commit().await.unwrap();
    }
    let (rows, oldest) = db.outbox_after(1).await.unwrap();
    assert_eq!(rows, 2);
    let oldest = oldest.unwrap();
    assert!((before..=now_ms()).contains(&oldest), "{oldest}");
    assert_eq!(db.outbox_after(3).await.unwrap(), (0, None));

    db.ack("s", 2).await.unwrap();
    db.ack("t", 1).await.unwrap();
    db.flush().await.unwrap();
    let mut acks = db.acks().await.unwrap();
    acks.sort();
    assert_eq!(acks, vec![("s".to_owned(), 2), ("t".to_owned(), 1)]);

    assert!(db.undelivered_dead_letters().await.unwrap().is_empty());
    db.park("s", &envelope("e1", "a"), "boom", 1).await.unwrap();
    db.park("s", &envelope("e2", "b"), "boom", 1).await.unwrap();
    db.park("t", &envelope("e1", "a"), "boom", 1).await.unwrap();
    let mut undelivered = db.undelivered_dead_letters().await.unwrap();
    undelivered.sort();
    assert_eq!(undelivered, vec![("s".to_owned(), 2), ("t".to_owned(), 1)]);
    // Queued for replay is still undelivered; replayed is not.
    let first = db.dead_letters().await.unwrap()[0].id;
    assert!(db.request_replay(first).await.unwrap());
    assert_eq!(db.undelivered_dead_letters().await.unwrap().len(), 2);
    db.mark_replayed(first).await.unwrap();
    let mut undelivered = db.undelivered_dead_letters().await.unwrap();
    undelivered.sort();
    assert_eq!(undelivered, vec![("s".to_owned(), 1), ("t".to_owned(), 1)]);
}

async fn cursors_only_move_forward_and_dead_letters_are_kept(store: Store) {
    let db = store.open().await;
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

async fn a_read_dropped_half_way_leaves_its_connection_reading_fresh_snapshots(store: Store) {
    use futures::StreamExt;
    let db = store.open().await;
    let mut tx = db.begin().await.unwrap();
    for i in 0..300 {
        add_note(&mut tx, &format!("n{i}")).await;
    }
    tx.commit().await.unwrap();
    // Every reader abandons a read after its first row: its connection goes
    // back with the statement unfinished (nothing pings it on SQLite).
    let mut held = Vec::new();
    for _ in 0..crate::db::READERS {
        let mut conn = db.read().await.unwrap();
        {
            let mut rows = sqlx::query("SELECT body FROM notes ORDER BY id").fetch(&mut *conn);
            assert!(rows.next().await.unwrap().is_ok());
        }
        held.push(conn);
    }
    drop(held);
    let mut tx = db.begin().await.unwrap();
    add_note(&mut tx, "after").await;
    tx.commit().await.unwrap();
    // Held all at once, so each reader is a different connection: none is
    // stuck in the abandoned read's snapshot.
    let mut held = Vec::new();
    for _ in 0..crate::db::READERS {
        let mut conn = db.read().await.unwrap();
        let n = count_notes(&mut conn).await;
        assert_eq!(n, 301);
        held.push(conn);
    }
}

async fn reopening_keeps_data_and_migrations_are_idempotent(store: Store) {
    let db = store.open().await;
    let mut tx = db.begin().await.unwrap();
    tx.publish(&envelope("e1", "a")).await.unwrap();
    tx.commit().await.unwrap();
    db.close().await;
    let db = store.open().await;
    assert_eq!(db.read_outbox(0, 10).await.unwrap().len(), 1);
}

async fn concurrent_transactions_share_group_commits_and_all_are_durable(store: Store) {
    let db = store.open().await;
    let tasks: Vec<_> = (0..64)
        .map(|i| {
            let db = db.clone();
            tokio::spawn(async move {
                let mut tx = db.begin().await.unwrap();
                add_note(&mut tx, &format!("n{i}")).await;
                tx.publish(&envelope(&format!("e{i}"), "a")).await.unwrap();
                tx.commit().await.unwrap();
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    // Every commit returned only once durable: the readers see all of them.
    let n = count_notes(&mut db.read().await.unwrap()).await;
    assert_eq!(n, 64);
    assert_eq!(db.read_outbox(0, 100).await.unwrap().len(), 64);
    let commits = db.commits();
    assert!((1..=64).contains(&commits), "{commits}");
    eprintln!("64 concurrent transactions took {commits} group commits");
    db.close().await;
    let db = store.open().await;
    let n = count_notes(&mut db.read().await.unwrap()).await;
    assert_eq!(n, 64, "durable across reopen");
}

async fn a_dropped_member_rolls_back_alone(store: Store) {
    let db = store.open().await;
    let tasks: Vec<_> = (0..40)
        .map(|i| {
            let db = db.clone();
            tokio::spawn(async move {
                let mut tx = db.begin().await.unwrap();
                add_note(&mut tx, &format!("n{i}")).await;
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
        .fetch_all(&mut *db.read().await.unwrap())
        .await
        .unwrap();
    let mut kept: Vec<usize> = bodies.iter().map(|(b,)| b[1..].parse().unwrap()).collect();
    kept.sort();
    let expected: Vec<usize> = (0..40).filter(|i| i % 3 == 2).collect();
    assert_eq!(kept, expected);
    assert_eq!(outbox_ids(&db).await.len(), expected.len());
    // The writer is clean afterwards: a new transaction works.
    let mut tx = db.begin().await.unwrap();
    add_note(&mut tx, "after").await;
    tx.commit().await.unwrap();
}

/// A flush queued for the writer behind a transaction that opened the group
/// and is then dropped: the group is rolled back, never committed, and the
/// flush must still return (it waited forever before).
async fn a_flush_waiting_on_a_group_its_only_member_abandoned_returns(store: Store) {
    let db = store.open().await;
    let mut tx = db.begin().await.unwrap();
    add_note(&mut tx, "abandoned").await;
    let flush = tokio::spawn({
        let db = db.clone();
        async move { db.flush().await }
    });
    // Nothing to observe while the flush queues for the writer (fair, first
    // come first served) ahead of the committer; give it the time to.
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    drop(tx);
    tokio::time::timeout(std::time::Duration::from_secs(10), flush)
        .await
        .expect("the flush returns")
        .unwrap()
        .unwrap();
    assert_eq!(count_notes(&mut db.read().await.unwrap()).await, 0);
}

/// Consumers joining one another's groups: each of 20 events is delivered
/// three times at once, and every first delivery is abandoned after its write.
async fn concurrent_deliveries_apply_each_event_once_and_abandoned_ones_leave_nothing(
    store: Store,
) {
    let db = store.open().await;
    let tasks: Vec<_> = (0..60)
        .map(|i| {
            let db = db.clone();
            tokio::spawn(async move {
                let id = format!("ev{}", i % 20);
                let Some(mut tx) = db.begin_consume("c", &envelope(&id, "a")).await.unwrap() else {
                    return;
                };
                add_note(&mut tx, &id).await;
                if i < 20 {
                    drop(tx);
                } else {
                    tx.commit().await.unwrap();
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    let mut bodies: Vec<(String,)> = sqlx::query_as("SELECT body FROM notes")
        .fetch_all(&mut *db.read().await.unwrap())
        .await
        .unwrap();
    bodies.sort();
    let mut expected: Vec<(String,)> = (0..20).map(|i| (format!("ev{i}"),)).collect();
    expected.sort();
    assert_eq!(bodies, expected, "each event applied exactly once");
    for (id,) in &expected {
        assert!(db.inbox_contains("c", id).await.unwrap(), "{id}");
    }
}

async fn a_failed_statement_leaves_the_others_of_its_group_intact(store: Store) {
    let db = store.open().await;
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
    let n = count_notes(&mut db.read().await.unwrap()).await;
    assert_eq!(n, 2);
}

/// The notes' bodies, sorted.
pub(crate) async fn note_bodies(db: &Db) -> Vec<String> {
    sqlx::query_scalar("SELECT body FROM notes ORDER BY body")
        .fetch_all(&mut *db.read().await.unwrap())
        .await
        .unwrap()
}

async fn a_batch_applies_all_its_statements_or_none(store: Store) {
    let db = store.open().await;
    let changes = db.outbox_changes();
    let claim = add_note_claim();
    let mut tx = db.begin().await.unwrap();
    let mut batch = tx.batch();
    batch.save_response(&claim, 201, b"{}");
    // Ids away from those PostgreSQL's sequence hands `add_note`.
    for (id, body) in [(101_i64, "one"), (102, "two; with $1 in it")] {
        batch
            .statement("INSERT INTO notes (id, body) VALUES ($1, $2)")
            .bind(id)
            .bind(body);
    }
    batch.publish(&envelope("e1", "a"));
    assert_eq!(tx.run(batch).await.unwrap(), 4);
    tx.commit().await.unwrap();
    assert!(changes.has_changed().unwrap());
    assert_eq!(note_bodies(&db).await, ["one", "two; with $1 in it"]);
    assert!(
        db.stored_response("notes.add", "k1")
            .await
            .unwrap()
            .is_some()
    );

    // A member that joins an open group with a batch failing half-way:
    // what its batch ran before the failure goes, the member before it stays.
    let mut want = vec!["one".to_owned(), "two; with $1 in it".to_owned()];
    let mut tx = join_an_open_group(&db, "before", false, &mut want).await;
    let mut batch = tx.batch();
    batch
        .statement("INSERT INTO notes (id, body) VALUES ($1, $2)")
        .bind(110_i64)
        .bind("ran, then undone")
        .statement("INSERT INTO notes (id, body) VALUES ($1, $2)")
        .bind(101_i64)
        .bind("duplicate id");
    batch.publish(&envelope("e2", "b"));
    assert!(matches!(
        tx.run(batch).await,
        Err(SaveResponseError::Db(e)) if unique_violation(&e).is_some()
    ));
    drop(tx);
    db.flush().await.unwrap();
    want.sort();
    assert_eq!(note_bodies(&db).await, want);
    assert_eq!(outbox_ids(&db).await, ["e1"]);
}

async fn a_batch_that_reuses_a_key_conflicts_and_leaves_nothing(store: Store) {
    let db = store.open().await;
    let claim = add_note_claim();
    let mut first = db.begin().await.unwrap();
    first.save_response(&claim, 201, b"first").await.unwrap();
    first.commit().await.unwrap();
    let mut tx = db.begin().await.unwrap();
    let mut batch = tx.batch();
    batch
        .statement("INSERT INTO notes (body) VALUES ($1)")
        .bind("runs before the key is refused")
        .save_response(&claim, 201, b"second");
    assert!(matches!(
        tx.run(batch).await,
        Err(SaveResponseError::Conflict)
    ));
    drop(tx);
    db.flush().await.unwrap();
    assert!(note_bodies(&db).await.is_empty());
    let stored = db
        .stored_response("notes.add", "k1")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stored.body, b"first");
}

async fn a_batch_with_the_wrong_values_sends_nothing(store: Store) {
    let db = store.open().await;
    type Build = fn(&mut Batch<'static>);
    let mistakes: [(Build, &str); 5] = [
        (
            |b| {
                b.statement("INSERT INTO notes (id, body) VALUES ($1, $2)")
                    .bind(1_i64);
            },
            "2 placeholders and 1 values bound",
        ),
        (
            |b| {
                b.statement("INSERT INTO notes (body) VALUES ($1)")
                    .bind("a")
                    .bind("b");
            },
            "1 placeholders and 2 values bound",
        ),
        (
            |b| {
                b.bind("no statement yet");
            },
            "before any statement",
        ),
        (
            |b| {
                b.statement("INSERT INTO notes (body) VALUES ($1); DELETE FROM notes")
                    .bind("a");
            },
            "more than one statement",
        ),
        (
            |b| {
                b.statement("INSERT INTO notes (body) VALUES ($1)")
                    .bind("fine")
                    .statement("INSERT INTO notes (body) VALUES ($1, $2)")
                    .bind("short");
            },
            "statement 2 has 2 placeholders and 1 values bound",
        ),
    ];
    for (build, want) in mistakes {
        let mut tx = db.begin().await.unwrap();
        let mut batch = tx.batch();
        build(&mut batch);
        match tx.run(batch).await {
            Err(SaveResponseError::Db(sqlx::Error::Protocol(e))) => {
                assert!(e.contains(want), "{e} (wanted {want})")
            }
            other => panic!("{other:?} (wanted {want})"),
        }
        tx.commit().await.unwrap();
    }
    assert!(note_bodies(&db).await.is_empty());
}

/// Leaves a group open: its first member, a pipelined consumer that adds a
/// note `label`, releases without asking for a commit. The committer may
/// still commit the group, woken by an earlier request.
async fn open_a_group(db: &Db, label: &str) {
    static OPENED: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = OPENED.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let env = envelope(&format!("opener {n}"), label);
    let (released, _) = tokio::sync::oneshot::channel();
    crate::pipeline::pipelined(None, released, async {
        let mut first = db.begin_consume("opener", &env).await.unwrap().unwrap();
        add_note(&mut first, label).await;
        first.commit_eventually().await.unwrap();
    })
    .await;
}

/// How often a setup that races the committer is tried. Each try loses
/// when the committer runs between opening a group and joining it; on a
/// loaded machine most do (2 of 75 runs lost 20 tries in a row), so the
/// bound is generous: a try costs a millisecond or two.
const GROUP_RACE_TRIES: usize = 500;

/// Leaves a group open ([`open_a_group`], note `label`) and begins a
/// transaction that joins it (with its `SAVEPOINT` left to its batch if
/// `deferred`). When the committer committed the group first, the setup is
/// tried again (each try adds its note to `notes`).
async fn join_an_open_group(db: &Db, label: &str, deferred: bool, notes: &mut Vec<String>) -> Tx {
    for _ in 0..GROUP_RACE_TRIES {
        open_a_group(db, label).await;
        notes.push(label.to_owned());
        let tx = db.begin_member(deferred).await.unwrap();
        if tx.joined() {
            return tx;
        }
        tx.commit().await.unwrap();
    }
    panic!("the committer committed every group before a second member joined it");
}

/// Applies `env` as consumer `c`, pipelined behind `after` as a relay
/// would, in a transaction that joined a group another member opened
/// (note `opener`, added to `notes` for each try: the setup is tried again
/// when the committer committed that group first). `apply` gets the
/// transaction, its inbox row written; a commit is asked for once it has
/// released, as the relay does.
async fn consume_in_an_open_group<T, F, Fut>(
    db: &Db,
    env: &Envelope,
    after: Option<crate::pipeline::Applied>,
    notes: &mut Vec<String>,
    apply: F,
) -> T
where
    F: Fn(Tx) -> Fut,
    Fut: std::future::Future<Output = T>,
{
    for _ in 0..GROUP_RACE_TRIES {
        open_a_group(db, "opener").await;
        notes.push("opener".to_owned());
        let (released, applied) = tokio::sync::oneshot::channel();
        let run = crate::pipeline::pipelined(after.clone(), released, async {
            let tx = db
                .begin_consume("c", env)
                .await
                .unwrap()
                .expect("not applied before");
            if !tx.joined() {
                return None;
            }
            Some(apply(tx).await)
        });
        let commit = async {
            if applied.await.is_ok() {
                db.request_commit();
            }
        };
        if let (Some(out), ()) = tokio::join!(run, commit) {
            return out;
        }
    }
    panic!("the committer committed every group before the consumer joined it");
}

/// A consumer that joins an open group sends its `SAVEPOINT` with its inbox
/// row and, on SQLite, its `RELEASE` with its batch; the inbox still
/// refuses the event a second time, and a consumer that joined and gave up
/// leaves no inbox row.
async fn a_consumer_in_an_open_group_needs_no_round_trip_of_its_own_to_join_or_release(
    store: Store,
) {
    let db = store.open().await;
    let mut want = vec!["e1".to_owned()];
    let first = envelope("e1", "a");
    consume_in_an_open_group(&db, &first, None, &mut want, |tx| async move {
        assert!(!tx.savepoint_deferred(), "sent with the inbox row");
        assert_eq!(tx.can_release_in_batch(), tx.backend() == Backend::Sqlite);
        let mut batch = tx.batch();
        batch
            .statement("INSERT INTO notes (body) VALUES ($1)")
            .bind("e1");
        tx.commit_with(batch).await.unwrap();
    })
    .await;
    open_a_group(&db, "opener").await;
    want.push("opener".to_owned());
    assert!(db.begin_consume("c", &first).await.unwrap().is_none());
    let second = envelope("e2", "a");
    consume_in_an_open_group(&db, &second, None, &mut want, |tx| async move {
        drop(tx);
    })
    .await;
    db.flush().await.unwrap();
    assert!(db.inbox_contains("c", "e1").await.unwrap());
    assert!(!db.inbox_contains("c", "e2").await.unwrap());
    want.sort();
    assert_eq!(note_bodies(&db).await, want);
}

/// A consumer pipelined behind an event whose group failed to commit is
/// undone, also when it joined a later group and its batch could have
/// released its savepoint: otherwise it would be applied before the event
/// it follows is retried.
async fn a_consumer_behind_a_failed_commit_is_undone_even_with_its_release_in_its_batch(
    store: Store,
) {
    let db = store.open().await;
    let (released, applied) = tokio::sync::oneshot::channel();
    crate::pipeline::pipelined(None, released, async {
        let mut tx = db
            .begin_consume("c", &envelope("e1", "a"))
            .await
            .unwrap()
            .unwrap();
        // Checked only at COMMIT: the group fails after every statement succeeded.
        sqlx::query("INSERT INTO children (parent_id) VALUES (42)")
            .execute(tx.conn())
            .await
            .unwrap();
        tx.commit_eventually().await.unwrap();
    })
    .await;
    let after = applied.await.expect("event 1 released");
    let _ = db.flush().await;
    assert!(
        !db.inbox_contains("c", "e1").await.unwrap(),
        "event 1's group failed"
    );

    let mut want = Vec::new();
    let outcome = consume_in_an_open_group(
        &db,
        &envelope("e2", "a"),
        Some(after),
        &mut want,
        |tx| async move {
            let mut batch = tx.batch();
            batch
                .statement("INSERT INTO notes (body) VALUES ($1)")
                .bind("e2");
            tx.commit_with(batch).await
        },
    )
    .await;
    assert!(outcome.is_err(), "event 2 must not commit before event 1");
    db.flush().await.unwrap();
    assert!(!db.inbox_contains("c", "e2").await.unwrap());
    want.sort();
    assert_eq!(
        note_bodies(&db).await,
        want,
        "the group's other members commit"
    );
}

/// `Tx::commit_with` and `Db::commit_batch` in members that join an open
/// group, where on SQLite the batch also carries the member's `RELEASE`
/// (and, through `commit_batch`, its `SAVEPOINT`): a member that fails, at
/// any statement or before sending anything, leaves nothing behind and the
/// writer usable.
async fn a_batch_committed_with_its_release_keeps_its_group_whole(store: Store) {
    let db = store.open().await;
    type Build = fn(&mut Batch<'static>);
    let steps: [(&str, Build, bool); 4] = [
        (
            "joined",
            |b| {
                b.statement("INSERT INTO notes (body) VALUES ($1)")
                    .bind("joined");
            },
            true,
        ),
        ("empty", |_| {}, true),
        (
            "duplicate",
            |b| {
                b.statement("INSERT INTO notes (body) VALUES ($1)")
                    .bind("undone")
                    .statement("INSERT INTO notes (id, body) VALUES ($1, $2)")
                    .bind(1_i64)
                    .bind("duplicate id");
            },
            false,
        ),
        (
            "unbound",
            |b| {
                b.statement("INSERT INTO notes (body) VALUES ($1)");
            },
            false,
        ),
    ];
    let mut want = vec!["after".to_owned()];
    for whole in [false, true] {
        for (step, build, succeeds) in steps {
            let tx = join_an_open_group(&db, &format!("before {step}"), whole, &mut want).await;
            assert_eq!(
                tx.savepoint_deferred(),
                whole && db.backend() == Backend::Sqlite
            );
            let mut batch = tx.batch();
            build(&mut batch);
            let outcome = if whole {
                tx.commit_with_savepoint(batch).await
            } else {
                tx.commit_with(batch).await
            };
            assert_eq!(
                outcome.is_ok(),
                succeeds,
                "{step}, whole {whole}: {outcome:?}"
            );
            if step == "joined" {
                want.push("joined".to_owned());
            }
        }
    }
    // The writer is still usable after all of it, and every group committed.
    let mut last = db.begin().await.unwrap();
    add_note(&mut last, "after").await;
    last.commit().await.unwrap();
    want.sort();
    assert_eq!(note_bodies(&db).await, want);
}

/// PostgreSQL alone: what the server enforces for the split.
mod postgres_only {
    use super::*;
    use std::sync::Arc;
    use std::time::Duration;

    #[tokio::test]
    async fn a_capability_role_cannot_open_another_capabilitys_database() {
        let Some(pg) = PostgresServer::start_or_skip() else {
            return;
        };
        let billing = pg.provision("billing").await.unwrap();
        let identity = pg.provision("identity").await.unwrap();
        use sqlx::Connection;
        // Each role reaches its own database...
        sqlx::PgConnection::connect(&billing).await.unwrap();
        sqlx::PgConnection::connect(&identity).await.unwrap();
        // ...and billing's credentials cannot read identity's.
        let mut cross = url::Url::parse(&billing).unwrap();
        cross.set_path("/identity");
        let err = sqlx::PgConnection::connect(cross.as_str())
            .await
            .expect_err("billing must not open identity's database");
        assert!(
            err.to_string()
                .contains("permission denied for database \"identity\""),
            "{err}"
        );
        // Nor may it make itself a new database to share.
        let mut own = sqlx::PgConnection::connect(&billing).await.unwrap();
        let err = sqlx::query("CREATE DATABASE shared")
            .execute(&mut own)
            .await
            .expect_err("no CREATEDB");
        assert!(err.to_string().contains("permission denied"), "{err}");
        // Provisioning again is harmless (it only rotates the password).
        let again = pg.provision("billing").await.unwrap();
        assert!(
            sqlx::PgConnection::connect(&billing).await.is_err(),
            "old password"
        );
        sqlx::PgConnection::connect(&again).await.unwrap();
    }

    #[tokio::test]
    async fn provisioning_sends_the_server_a_verifier_never_the_password() {
        let Some(pg) = PostgresServer::start_or_skip() else {
            return;
        };
        use sqlx::Connection;
        let mut admin = sqlx::PgConnection::connect(&pg.admin_url()).await.unwrap();
        // Every statement into the server's log, to read what it was sent.
        sqlx::query("ALTER SYSTEM SET log_statement = 'all'")
            .execute(&mut admin)
            .await
            .unwrap();
        sqlx::query("SELECT pg_reload_conf()")
            .execute(&mut admin)
            .await
            .unwrap();
        let url = pg.provision("billing").await.unwrap();
        let password = url::Url::parse(&url)
            .unwrap()
            .password()
            .unwrap()
            .to_owned();
        let (stored,): (String,) =
            sqlx::query_as("SELECT rolpassword FROM pg_authid WHERE rolname = 'billing'")
                .fetch_one(&mut admin)
                .await
                .unwrap();
        assert!(stored.starts_with("SCRAM-SHA-256$4096:"), "{stored}");
        // The role logs in with the password the server never saw.
        sqlx::PgConnection::connect(&url).await.unwrap();
        let log = pg.log();
        assert!(
            log.contains("PASSWORD 'SCRAM-SHA-256$"),
            "statements are logged: {log}"
        );
        assert!(
            !log.contains(&password),
            "the password reached the server's log"
        );
        // The verifier is salted: the same password twice, two verifiers.
        assert_ne!(
            crate::postgres::scram_verifier("same"),
            crate::postgres::scram_verifier("same")
        );
    }

    #[tokio::test]
    async fn a_second_writer_of_one_database_is_refused() {
        let Some(store) = Store::postgres().await else {
            return;
        };
        let first = store.open().await;
        let err = Db::connect(&store.location(), "notes", &NOTES)
            .await
            .expect_err("one writer per database");
        assert!(
            format!("{err:#}").contains("another process is the writer"),
            "{err:#}"
        );
        first.close().await;
        // Once the first let go, a new writer may start.
        store.open().await;
    }

    #[tokio::test]
    async fn a_successor_taking_over_waits_for_its_predecessor_s_writer_lock() {
        let Some(store) = Store::postgres().await else {
            return;
        };
        let first = store.open().await;
        let told = Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
        let take_over = crate::TakeOver {
            within: Duration::from_secs(20),
            waiting: Arc::new({
                let told = told.clone();
                move |name: &str| told.lock().unwrap().push(name.to_owned())
            }),
        };
        assert_eq!(
            format!("{take_over:?}"),
            "TakeOver { within: 20s, .. }",
            "its callback is not shown"
        );
        let location = store.location();
        let successor = tokio::spawn({
            let take_over = take_over.clone();
            async move {
                Db::connect_taking_over(
                    &location,
                    "notes",
                    &NOTES,
                    Machinery::default(),
                    Some(&take_over),
                )
                .await
            }
        });
        // It says once that it waits, and waits while the predecessor writes.
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while told.lock().unwrap().is_empty() {
            assert!(std::time::Instant::now() < deadline, "never said it waits");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let mut tx = first.begin().await.unwrap();
        tx.publish(&envelope("last-of-the-first", "a"))
            .await
            .unwrap();
        tx.commit().await.unwrap();
        assert!(!successor.is_finished(), "the successor waits for the lock");
        first.close().await;
        let second = successor.await.unwrap().unwrap();
        assert_eq!(*told.lock().unwrap(), ["notes"]);
        let mut tx = second.begin().await.unwrap();
        tx.publish(&envelope("first-of-the-second", "a"))
            .await
            .unwrap();
        tx.commit().await.unwrap();
        let ids: Vec<String> = second
            .read_outbox(0, 10)
            .await
            .unwrap()
            .into_iter()
            .map(|e| e.id)
            .collect();
        assert_eq!(ids, ["last-of-the-first", "first-of-the-second"]);

        // A predecessor that does not let go in time is an error naming it.
        let short = crate::TakeOver {
            within: Duration::from_millis(200),
            ..take_over
        };
        let err = Db::connect_taking_over(
            &store.location(),
            "notes",
            &NOTES,
            Machinery::default(),
            Some(&short),
        )
        .await
        .expect_err("the second still holds it");
        assert!(
            format!("{err:#}").contains("did not let go within 200 ms"),
            "{err:#}"
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn the_writer_reconnects_after_a_server_restart_and_loses_only_uncommitted_work() {
        let Some(Store::Postgres(mut pg, url)) = Store::postgres().await else {
            return;
        };
        let db = Db::connect(&Location::Postgres { url }, "notes", &NOTES)
            .await
            .unwrap();
        let mut tx = db.begin().await.unwrap();
        tx.publish(&envelope("before", "a")).await.unwrap();
        tx.commit().await.unwrap();

        // A transaction open across a crash of the server is lost, and says so.
        let mut open = db.begin().await.unwrap();
        open.publish(&envelope("in-flight", "a")).await.unwrap();
        tokio::task::block_in_place(|| pg.stop(Shutdown::Immediate));
        assert!(open.commit().await.is_err());
        // While the server is down, transactions fail rather than hang.
        assert!(db.begin().await.is_err());
        tokio::task::block_in_place(|| pg.resume()).unwrap();

        // The first transaction after the restart reconnects by itself.
        let mut tx = db.begin().await.unwrap();
        tx.publish(&envelope("after", "a")).await.unwrap();
        tx.commit().await.unwrap();
        let ids = outbox_ids(&db).await;
        assert_eq!(ids, ["before", "after"]);
    }
}

/// The benchmark switches do what they say (and nothing else).
#[tokio::test]
async fn switched_off_machinery_records_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let location = Location::Sqlite {
        path: dir.path().join("off.db"),
        durability: Durability::Normal,
    };
    let off = Machinery {
        inbox: false,
        idempotency: false,
    };
    let db = Db::connect_with(&location, "notes", &NOTES, off)
        .await
        .unwrap();
    let env = envelope("e1", "a");
    for _ in 0..2 {
        let tx = db.begin_consume("c", &env).await.unwrap();
        tx.expect("without an inbox every delivery applies")
            .commit()
            .await
            .unwrap();
    }
    let claim = add_note_claim();
    for _ in 0..2 {
        let mut tx = db.begin().await.unwrap();
        tx.save_response(&claim, 201, b"{}").await.unwrap();
        tx.commit().await.unwrap();
    }
    assert!(
        db.stored_response("notes.add", "k1")
            .await
            .unwrap()
            .is_none()
    );
    assert_eq!(db.framework_counts().await.unwrap(), (0, 0, 0));
}

/// `notes.note-added` at version 2, which added `tag`; v1 is v2 without
/// it, and a note tagged `v2-only` has no v1 form.
static NOTE_ADDED_V2: seams_core::decl::EventContract = seams_core::decl::EventContract::new(
    "notes.note-added",
    "A note was added.",
    seams_core::decl::no_body,
    seams_core::decl::EventAnswers {
        versioning: seams_core::decl::Versioning {
            current: 2,
            accepts: &[1, 2],
        },
        ..seams_core::decl::EventAnswers::per_key("notes", "id")
    },
)
.with_downcast(|to, mut data| {
    let tag = data.as_object_mut()?.remove("tag")?;
    (to == 1 && tag != "v2-only").then_some(data)
});

fn envelope_v2(id: &str, tag: &str) -> Envelope {
    Envelope {
        dataversion: 2,
        data: serde_json::json!({ "id": id, "tag": tag }),
        ..envelope(id, id)
    }
}

async fn events_go_into_the_outbox_in_the_versions_the_producer_is_told_to_write(store: Store) {
    let db = store.open().await;
    let publish = async |env: Envelope| {
        let mut tx = db.begin().await.unwrap();
        tx.publish(&env).await?;
        tx.commit().await
    };
    publish(envelope_v2("current", "a")).await.unwrap();
    db.write_events_as(&NOTE_ADDED_V2, &[1]).unwrap();
    publish(envelope_v2("older", "b")).await.unwrap();
    db.write_events_as(&NOTE_ADDED_V2, &[2, 1]).unwrap();
    let mut batch = db.batch();
    batch.publish(&envelope_v2("both", "c"));
    db.commit_batch(batch).await.unwrap();
    // One that has no v1 form is refused whole, by either path.
    let err = publish(envelope_v2("lost", "v2-only")).await.unwrap_err();
    assert!(err.to_string().contains("cannot be written as v1"), "{err}");
    let mut batch = db.batch();
    batch.publish(&envelope_v2("lost-too", "v2-only"));
    assert!(db.commit_batch(batch).await.is_err());
    // Refused settings leave the setting as it was.
    assert!(db.write_events_as(&NOTE_ADDED_V2, &[3]).is_err());
    assert!(db.write_events_as(&NOTE_ADDED_V2, &[]).is_err());
    db.write_events_as(&NOTE_ADDED_V2, &[2]).unwrap();
    publish(envelope_v2("current-again", "d")).await.unwrap();

    let feed = db.read_outbox(0, 10).await.unwrap();
    let written: Vec<_> = feed
        .iter()
        .map(|e| {
            (
                e.id.as_str(),
                e.dataversion,
                e.data.clone(),
                e.alternates.clone(),
            )
        })
        .collect();
    let none = std::collections::BTreeMap::new();
    assert_eq!(
        written,
        [
            (
                "current",
                2,
                serde_json::json!({"id": "current", "tag": "a"}),
                none.clone()
            ),
            ("older", 1, serde_json::json!({"id": "older"}), none.clone()),
            (
                "both",
                2,
                serde_json::json!({"id": "both", "tag": "c"}),
                [(1, serde_json::json!({"id": "both"}))].into()
            ),
            (
                "current-again",
                2,
                serde_json::json!({"id": "current-again", "tag": "d"}),
                none
            ),
        ]
    );
}
