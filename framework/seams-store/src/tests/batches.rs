//! Batches and pipelined consumers: statements sent together apply all or
//! none, a joining member's SAVEPOINT and RELEASE ride with them, and a
//! consumer behind a failed commit is undone.

use super::*;

on_both!(
    a_batch_applies_all_its_statements_or_none,
    a_batch_that_reuses_a_key_conflicts_and_leaves_nothing,
    a_batch_with_the_wrong_values_sends_nothing,
    a_consumer_in_an_open_group_needs_no_round_trip_of_its_own_to_join_or_release,
    a_consumer_behind_a_failed_commit_is_undone_even_with_its_release_in_its_batch,
    a_batch_committed_with_its_release_keeps_its_group_whole,
    a_consumer_behind_one_in_its_own_open_group_commits_with_it,
);

async fn a_batch_applies_all_its_statements_or_none(store: Store) {
    let db = store.open().await;
    let changes = db.outbox_changes();
    let claim = add_note_claim();
    let mut tx = db.begin().await.unwrap();
    let batch = tx.later();
    batch.save_response(&claim, 201, b"{}");
    // Ids away from those PostgreSQL's sequence hands `add_note`.
    for (id, body) in [(101_i64, "one"), (102, "two; with $1 in it")] {
        batch
            .statement("INSERT INTO notes (id, body) VALUES ($1, $2)")
            .bind(id)
            .bind(body);
    }
    batch.publish(&envelope("e1", "a"));
    // Nothing is sent before the commit.
    assert_eq!(count_notes(&mut db.read().await.unwrap()).await, 0);
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
    tx.later()
        .statement("INSERT INTO notes (id, body) VALUES ($1, $2)")
        .bind(110_i64)
        .bind("ran, then undone")
        .statement("INSERT INTO notes (id, body) VALUES ($1, $2)")
        .bind(101_i64)
        .bind("duplicate id")
        .publish(&envelope("e2", "b"));
    assert!(matches!(
        tx.commit().await,
        Err(SaveResponseError::Db(e)) if unique_violation(&e).is_some()
    ));
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
    tx.later()
        .statement("INSERT INTO notes (body) VALUES ($1)")
        .bind("runs before the key is refused")
        .save_response(&claim, 201, b"second");
    assert!(matches!(
        tx.commit().await,
        Err(SaveResponseError::Conflict)
    ));
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
        build(tx.later());
        match tx.commit().await {
            Err(SaveResponseError::Db(sqlx::Error::Protocol(e))) => {
                assert!(e.contains(want), "{e} (wanted {want})")
            }
            other => panic!("{other:?} (wanted {want})"),
        }
    }
    // The writer is still usable after all of it.
    let mut tx = db.begin().await.unwrap();
    add_note(&mut tx, "after").await;
    tx.commit().await.unwrap();
    assert_eq!(note_bodies(&db).await, ["after"]);
    let mut tx = db.begin().await.unwrap();
    tx.later()
        .statement("DELETE FROM notes WHERE body = $1")
        .bind("after");
    tx.commit().await.unwrap();
    assert!(note_bodies(&db).await.is_empty());
}

/// Leaves a group open: its first member, a pipelined consumer that adds a
/// note `label`, releases without asking for a commit. The committer may
/// still commit the group, woken by an earlier request.
async fn open_a_group(db: &Db, label: &str) {
    static OPENED: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = OPENED.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let env = envelope(&format!("opener {n}"), label);
    let (turn, _released) = Turn::after(None);
    let mut first = db
        .begin_consume("opener", &env, turn)
        .await
        .unwrap()
        .unwrap();
    add_note(&mut first, label).await;
    first.commit_eventually().await.unwrap();
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
        let (turn, mut released) = Turn::after(after.clone());
        let run = async {
            let tx = db
                .begin_consume("c", env, turn)
                .await
                .unwrap()
                .expect("not applied before");
            if !tx.joined() {
                return None;
            }
            Some(apply(tx).await)
        };
        let commit = async {
            if released.wait().await.is_some() {
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
        let mut tx = tx;
        tx.later()
            .statement("INSERT INTO notes (body) VALUES ($1)")
            .bind("e1");
        tx.commit().await.unwrap();
    })
    .await;
    open_a_group(&db, "opener").await;
    want.push("opener".to_owned());
    assert!(
        db.begin_consume("c", &first, Turn::alone())
            .await
            .unwrap()
            .is_none()
    );
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
    let (turn, mut released) = Turn::after(None);
    {
        let mut tx = db
            .begin_consume("c", &envelope("e1", "a"), turn)
            .await
            .unwrap()
            .unwrap();
        // Checked only at COMMIT: the group fails after every statement succeeded.
        query("INSERT INTO children (parent_id) VALUES (42)")
            .execute(&mut tx)
            .await
            .unwrap();
        tx.commit_eventually().await.unwrap();
    }
    let after = released.wait().await.expect("event 1 released");
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
            let mut tx = tx;
            tx.later()
                .statement("INSERT INTO notes (body) VALUES ($1)")
                .bind("e2");
            tx.commit().await
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

/// Members that join an open group and commit what [`Tx::later`] holds,
/// where on SQLite the batch also carries the member's `RELEASE` (and,
/// when its `SAVEPOINT` was deferred, that too): a member that fails, at
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
            let mut tx = join_an_open_group(&db, &format!("before {step}"), whole, &mut want).await;
            assert_eq!(
                tx.savepoint_deferred(),
                whole && db.backend() == Backend::Sqlite
            );
            build(tx.later());
            let outcome = tx.commit().await;
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

/// A consumer that follows one whose group is still open (its own) does
/// not wait for that group: they commit together. Also what a turn shows
/// of itself.
async fn a_consumer_behind_one_in_its_own_open_group_commits_with_it(store: Store) {
    let db = store.open().await;
    assert_eq!(
        format!("{:?}", Turn::alone()),
        "Turn { follows: false, pipelined: false }"
    );
    let (turn, mut released) = Turn::after(None);
    assert_eq!(
        format!("{turn:?}"),
        "Turn { follows: false, pipelined: true }"
    );
    let first = db
        .begin_consume("c", &envelope("e1", "a"), turn)
        .await
        .unwrap()
        .unwrap();
    // Pipelined: released without asking for a commit, so the group stays open.
    first.commit_eventually().await.unwrap();
    let after = released.wait().await.expect("event 1 released");
    assert_eq!(format!("{after:?}"), "Applied { .. }");
    let (turn, mut released) = Turn::after(Some(after));
    assert_eq!(
        format!("{turn:?}"),
        "Turn { follows: true, pipelined: true }"
    );
    let second = db
        .begin_consume("c", &envelope("e2", "a"), turn)
        .await
        .unwrap()
        .unwrap();
    second.commit_eventually().await.unwrap();
    assert!(released.wait().await.is_some(), "event 2 released");
    db.flush().await.unwrap();
    assert!(db.inbox_contains("c", "e1").await.unwrap());
    assert!(db.inbox_contains("c", "e2").await.unwrap());
    assert_eq!(db.commits(), 1, "one group commit for both");
}
