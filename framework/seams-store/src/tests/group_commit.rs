//! Group commit: members share one COMMIT and stay apart; a dropped or
//! failed member takes back only its own work; a long queue is refused.

use super::*;

on_both!(
    a_transaction_that_waits_too_long_for_the_writer_is_refused_as_busy,
    concurrent_transactions_share_group_commits_and_all_are_durable,
    a_dropped_member_rolls_back_alone,
    a_flush_waiting_on_a_group_its_only_member_abandoned_returns,
    concurrent_deliveries_apply_each_event_once_and_abandoned_ones_leave_nothing,
    a_failed_statement_leaves_the_others_of_its_group_intact,
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
    let bodies = note_bodies(&db).await;
    let mut kept: Vec<usize> = bodies.iter().map(|b| b[1..].parse().unwrap()).collect();
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
                let Some(mut tx) = db
                    .begin_consume("c", &envelope(&id, "a"), Turn::alone())
                    .await
                    .unwrap()
                else {
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
    let bodies = note_bodies(&db).await;
    let mut expected: Vec<String> = (0..20).map(|i| format!("ev{i}")).collect();
    expected.sort();
    assert_eq!(bodies, expected, "each event applied exactly once");
    for id in &expected {
        assert!(db.inbox_contains("c", id).await.unwrap(), "{id}");
    }
}

async fn a_failed_statement_leaves_the_others_of_its_group_intact(store: Store) {
    let db = store.open().await;
    let mut first = db.begin().await.unwrap();
    query("INSERT INTO notes (id, body) VALUES (1, 'one')")
        .execute(&mut first)
        .await
        .unwrap();
    first.commit().await.unwrap();
    let mut dup = db.begin().await.unwrap();
    assert!(
        query("INSERT INTO notes (id, body) VALUES (1, 'again')")
            .execute(&mut dup)
            .await
            .is_err()
    );
    drop(dup);
    let mut ok = db.begin().await.unwrap();
    query("INSERT INTO notes (id, body) VALUES (2, 'two')")
        .execute(&mut ok)
        .await
        .unwrap();
    ok.commit().await.unwrap();
    let n = count_notes(&mut db.read().await.unwrap()).await;
    assert_eq!(n, 2);
}
