//! The framework tables: the outbox commits or rolls back with the state
//! change, the inbox dedupes, idempotency records conflict, pruning respects
//! acknowledgements, cursors only move forward, events go out in the
//! versions the producer is told to write.

use super::*;

on_both!(
    events_set_aside_wait_per_key_and_fail_for_good_as_sequenced_dead_letters,
    outbox_rows_exist_only_for_committed_changes,
    inbox_applies_an_event_once,
    a_rolled_back_consumer_transaction_leaves_the_event_unhandled,
    one_key_records_one_response,
    pruning_keeps_what_a_subscriber_has_not_acknowledged,
    what_waits_after_a_position_and_undelivered_dead_letters_are_counted,
    cursors_only_move_forward_and_dead_letters_are_kept,
    a_read_dropped_half_way_leaves_its_connection_reading_fresh_snapshots,
    reopening_keeps_data_and_migrations_are_idempotent,
    events_go_into_the_outbox_in_the_versions_the_producer_is_told_to_write,
);

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
        .begin_consume("notes.audit", &env, Turn::alone())
        .await
        .unwrap()
        .expect("first delivery");
    add_note(&mut tx, "applied").await;
    tx.commit().await.unwrap();
    assert!(
        db.begin_consume("notes.audit", &env, Turn::alone())
            .await
            .unwrap()
            .is_none()
    );
    // Another consumer has its own inbox.
    assert!(
        db.begin_consume("notes.other", &env, Turn::alone())
            .await
            .unwrap()
            .is_some()
    );
    assert!(db.inbox_contains("notes.audit", "e1").await.unwrap());
}

async fn a_rolled_back_consumer_transaction_leaves_the_event_unhandled(store: Store) {
    let db = store.open().await;
    let env = envelope("e1", "a");
    let tx = db
        .begin_consume("c", &env, Turn::alone())
        .await
        .unwrap()
        .unwrap();
    tx.rollback().await.unwrap();
    assert!(
        db.begin_consume("c", &env, Turn::alone())
            .await
            .unwrap()
            .is_some()
    );
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

/// The inbox row costs no temporary B-tree on SQLite: `RETURNING` would
/// build one per statement (about 10,000 instructions an event).
#[tokio::test]
async fn the_inbox_insert_builds_no_temporary_btree() {
    let store = Store::sqlite();
    // Opened for the file and its tables.
    let _db = store.open().await;
    // EXPLAIN on a connection of its own: the store's readers bind every
    // placeholder, and an INSERT's plan needs none.
    let mut conn = store.location().connect(true).await.unwrap();
    let explain = |sql: &str| format!("EXPLAIN {sql}");
    let opcodes = |rows: Vec<sqlx::any::AnyRow>| -> Vec<String> {
        use sqlx::Row;
        rows.iter().map(|r| r.get::<String, _>("opcode")).collect()
    };
    let inbox = sqlx::raw_sql(&explain(crate::inbox::INSERT))
        .fetch_all(&mut conn)
        .await
        .unwrap();
    let inbox = opcodes(inbox);
    assert!(inbox.iter().any(|o| o.ends_with("Insert")), "{inbox:?}");
    assert!(!inbox.iter().any(|o| o == "OpenEphemeral"), "{inbox:?}");
    let returning = format!("{} RETURNING 1", crate::inbox::INSERT);
    let returning = sqlx::raw_sql(&explain(&returning))
        .fetch_all(&mut conn)
        .await
        .unwrap();
    assert!(opcodes(returning).iter().any(|o| o == "OpenEphemeral"));
}

/// 10003 rebuilt the idempotency table (rowid, unique key): what was
/// recorded before it still answers, and still blocks its key.
/// The writer and the readers run SQLite with the settings the location
/// asks for: what a commit survives (`synchronous`), WAL, the busy
/// timeout, foreign keys, statement journals in memory.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_connection_runs_with_the_settings_of_its_location() {
    for (durability, synchronous) in [(Durability::Full, 2), (Durability::Normal, 1)] {
        let dir = tempfile::tempdir().unwrap();
        let location = Location::Sqlite {
            path: dir.path().join("notes.db"),
            durability,
        };
        let db = Db::connect(&location, "notes", &NOTES).await.unwrap();
        let mut tx = db.begin().await.unwrap();
        settings_are(&mut tx, synchronous).await;
        tx.commit().await.unwrap();
        settings_are(&mut db.read().await.unwrap(), synchronous).await;
    }
}

/// Asserts the settings `on`'s connection runs with.
async fn settings_are(on: &mut impl On, synchronous: i64) {
    for (pragma, expected) in [
        ("PRAGMA synchronous", synchronous),
        ("PRAGMA busy_timeout", 10_000),
        ("PRAGMA foreign_keys", 1),
        ("PRAGMA temp_store", 2),
    ] {
        let row = query(pragma).fetch_one(&mut *on).await.unwrap();
        assert_eq!(row.get::<i64>(0).unwrap(), expected, "{pragma}");
    }
    let row = query("PRAGMA journal_mode").fetch_one(on).await.unwrap();
    assert_eq!(row.get::<&str>(0).unwrap(), "wal");
}

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
    let before: Vec<_> = crate::migrations::FRAMEWORK
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
    let db = store.open().await;
    let mut tx = db.begin().await.unwrap();
    for i in 0..300 {
        add_note(&mut tx, &format!("n{i}")).await;
    }
    tx.commit().await.unwrap();
    // Every reader stops reading after its first row: its connection goes
    // back with the statement unfinished (nothing pings it on SQLite).
    let mut held = Vec::new();
    for _ in 0..crate::readers::READERS {
        let mut conn = db.read().await.unwrap();
        let first = query("SELECT body FROM notes ORDER BY id")
            .fetch_optional(&mut conn)
            .await
            .unwrap();
        assert!(first.is_some());
        held.push(conn);
    }
    drop(held);
    let mut tx = db.begin().await.unwrap();
    add_note(&mut tx, "after").await;
    tx.commit().await.unwrap();
    // Held all at once, so each reader is a different connection: none is
    // stuck in the abandoned read's snapshot.
    let mut held = Vec::new();
    for _ in 0..crate::readers::READERS {
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
        data: serde_json::json!({ "id": id, "tag": tag }).into(),
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
    let mut tx = db.begin().await.unwrap();
    tx.later().publish(&envelope_v2("both", "c"));
    tx.commit().await.unwrap();
    // One that has no v1 form is refused whole, by either path.
    let err = publish(envelope_v2("lost", "v2-only")).await.unwrap_err();
    assert!(err.to_string().contains("cannot be written as v1"), "{err}");
    let mut tx = db.begin().await.unwrap();
    tx.later().publish(&envelope_v2("lost-too", "v2-only"));
    assert!(tx.commit().await.is_err());
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
                e.data.to_value().unwrap(),
                e.alternates
                    .iter()
                    .map(|(v, d)| (*v, d.to_value().unwrap()))
                    .collect::<std::collections::BTreeMap<_, _>>(),
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

/// Retries aside from the feed: in feed order per subscription, one row per
/// event, the next of a key due at once when its head is delivered, and a
/// head that fails for good a dead letter with those behind it parked
/// behind it, in order.
async fn events_set_aside_wait_per_key_and_fail_for_good_as_sequenced_dead_letters(store: Store) {
    let db = store.open().await;
    assert!(!db.any_retrying("s").await.unwrap());
    let generation = db.dead_letter_generation();
    db.defer("s", &envelope("a1", "a"), 1, 5_000, "flaky")
        .await
        .unwrap();
    assert_ne!(db.dead_letter_generation(), generation, "a change is news");
    db.defer("s", &envelope("b1", "b"), 1, 6_000, "flaky")
        .await
        .unwrap();
    db.defer("s", &envelope("a2", "a"), 0, 0, "behind a1")
        .await
        .unwrap();
    db.defer("s", &envelope("a3", "a"), 0, 0, "behind a1")
        .await
        .unwrap();
    // Set aside again (a redelivery): stays as it was.
    db.defer("s", &envelope("a1", "a"), 7, 1, "again")
        .await
        .unwrap();
    db.defer("other", &envelope("a1", "a"), 1, 1, "elsewhere")
        .await
        .unwrap();
    assert!(db.any_retrying("s").await.unwrap());
    assert!(db.retrying_for_subject("s", "a").await.unwrap());
    assert!(!db.retrying_for_subject("s", "c").await.unwrap());
    let retries = db.retries("s", 10).await.unwrap();
    let seen: Vec<_> = retries
        .iter()
        .map(|r| {
            (
                r.envelope.id.as_str(),
                r.attempts,
                r.next_attempt_at_ms,
                r.error.as_str(),
            )
        })
        .collect();
    assert_eq!(
        seen,
        [
            ("a1", 1, 5_000, "flaky"),
            ("b1", 1, 6_000, "flaky"),
            ("a2", 0, 0, "behind a1"),
            ("a3", 0, 0, "behind a1"),
        ]
    );
    assert_eq!(db.retries("s", 1).await.unwrap().len(), 1);
    let mut counts = db.retrying().await.unwrap();
    counts.sort();
    assert_eq!(counts, [("other".to_owned(), 1), ("s".to_owned(), 4)]);

    // b1 fails again; a1 is delivered: a2 is due at once.
    db.retry_failed(retries[1].id, 2, 9_000, "still")
        .await
        .unwrap();
    db.retry_delivered(retries[0].id).await.unwrap();
    let after: Vec<_> = db
        .retries("s", 10)
        .await
        .unwrap()
        .into_iter()
        .map(|r| (r.envelope.id, r.attempts, r.next_attempt_at_ms, r.error))
        .collect();
    assert_eq!(
        after,
        [
            ("b1".to_owned(), 2, 9_000, "still".to_owned()),
            ("a2".to_owned(), 0, 0, "behind a1".to_owned()),
            ("a3".to_owned(), 0, 0, "behind a1".to_owned()),
        ]
    );

    // a2 fails for good: it and a3 behind it become dead letters, in order.
    let a2 = db.retries("s", 10).await.unwrap()[1].id;
    let dead = db.retry_gave_up("s", a2, 3, "broken", true).await.unwrap();
    let letters = db.dead_letters().await.unwrap();
    let got: Vec<_> = letters
        .iter()
        .map(|d| {
            (
                d.envelope.id.as_str(),
                d.attempts,
                d.error.clone(),
                d.status.as_str(),
            )
        })
        .collect();
    assert_eq!(
        got,
        [
            ("a2", 3, "broken".to_owned(), "parked"),
            ("a3", 0, behind_reason(dead), "parked"),
        ]
    );
    assert_eq!(letters[0].id, dead);
    assert!(!db.retrying_for_subject("s", "a").await.unwrap());
    assert!(db.retrying_for_subject("s", "b").await.unwrap());
    assert_eq!(db.parked_for_subject("s", "a").await.unwrap(), Some(dead));
    assert!(
        db.retry_gave_up("s", a2, 3, "gone", true).await.is_err(),
        "nothing left to give up"
    );
    // Without its key (unordered), only the event itself.
    db.defer("u", &envelope("u1", "k"), 1, 0, "flaky")
        .await
        .unwrap();
    db.defer("u", &envelope("u2", "k"), 1, 0, "flaky")
        .await
        .unwrap();
    let u1 = db.retries("u", 10).await.unwrap()[0].id;
    db.retry_gave_up("u", u1, 2, "broken", false).await.unwrap();
    let left: Vec<_> = db
        .retries("u", 10)
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.envelope.id)
        .collect();
    assert_eq!(left, ["u2"]);
}
