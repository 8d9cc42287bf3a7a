//! Delivery against real SQLite files: order, inbox dedupe under duplicates,
//! bounded retries aside from the feed (a failing key holds up only
//! itself), dead letters, per-key ordering behind a retry and a dead
//! letter, version refusal, and resuming from the cursor.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering as AtomicOrdering};
use std::time::Duration;

use seams_core::decl::*;
use seams_core::{CallContext, DecodeError, Envelope, Event};
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

use super::*;
use crate::component::{HandlerError, Handles, Subscription};
use seams_store::Tx;

static MIGRATIONS: seams_store::Migrations = seams_store::Migrations {
    sqlite: sqlx::migrate!("./test-migrations/sqlite"),
    postgres: sqlx::migrate!("./test-migrations/postgres"),
};

static TICKED: EventContract = EventContract {
    producer: "clock",
    event_type: "clock.ticked",
    summary: "",
    retries: Retries::Bus(RetryPolicy {
        max_attempts: 3,
        initial_backoff: Duration::from_millis(1),
        max_backoff: Duration::from_millis(2),
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

struct World {
    _dir: tempfile::TempDir,
    producer: Db,
    consumer: Db,
}

async fn world() -> World {
    let dir = tempfile::tempdir().unwrap();
    let producer = Db::open(&dir.path().join("p.db"), "clock", &MIGRATIONS)
        .await
        .unwrap();
    let consumer = Db::open(&dir.path().join("c.db"), "watch", &MIGRATIONS)
        .await
        .unwrap();
    World {
        _dir: dir,
        producer,
        consumer,
    }
}

async fn publish(db: &Db, key: &str, n: i64) -> Envelope {
    publish_event(db, &Ticked { key: key.into(), n }).await
}

/// Commits `event` to `db`'s outbox, as its producer would.
async fn publish_event<E: Event>(db: &Db, event: &E) -> Envelope {
    let env = Envelope::wrap(
        event,
        uuid::Uuid::now_v7().to_string(),
        "2026-11-26T00:00:00Z".into(),
        &CallContext::new_root(),
    )
    .unwrap();
    let mut tx = db.begin().await.unwrap();
    tx.publish(&env).await.unwrap();
    tx.commit().await.unwrap();
    env
}

/// A consumer that records each application, failing while `fail(n)` says so.
fn subscription(
    fail: impl Fn(i64, u32) -> Option<HandlerError> + Send + Sync + 'static,
) -> (Subscription, Arc<AtomicU32>) {
    let calls = Arc::new(AtomicU32::new(0));
    let counter = calls.clone();
    let fail = Arc::new(fail);
    let handles = Handles::new::<Ticked, _>(&[1], move |ev, tx| {
        let n = counter.fetch_add(1, AtomicOrdering::SeqCst) + 1;
        let fail = fail.clone();
        Box::pin(async move {
            if let Some(e) = fail(ev.n, n) {
                return Err(e);
            }
            let id = tx.envelope().id.clone();
            record(tx.tx(), &ev, &id).await
        })
    });
    (watching(handles), calls)
}

/// The `watch` consumer's subscription to `clock`, handling with `handles`.
fn watching(handles: Handles) -> Subscription {
    Subscription {
        consumer: "watch",
        producer: "clock",
        handles: vec![handles],
    }
}

/// Records `ev`, delivered as event `id`, in the consumer's `applied` table.
async fn record(tx: &mut Tx, ev: &Ticked, id: &str) -> Result<(), HandlerError> {
    seams_store::query("INSERT INTO applied (event_id, subject, n) VALUES ($1, $2, $3)")
        .bind(id)
        .bind(&ev.key)
        .bind(ev.n)
        .execute(tx)
        .await?;
    Ok(())
}

/// Records `ev` in the consumer's `applied` table with its inbox row,
/// opening the transaction itself;
/// `fail_commit` adds a row whose constraint is only checked at `COMMIT`
/// (no such parent), so every statement succeeds and the commit fails.
async fn apply(
    inbox: &Inbox,
    ev: &Ticked,
    env: &Envelope,
    fail_commit: bool,
) -> Result<(), HandlerError> {
    let Some(mut tx) = inbox.begin(env).await? else {
        return Ok(());
    };
    record(&mut tx, ev, &env.id).await?;
    if fail_commit {
        seams_store::query("INSERT INTO child (parent_id) VALUES (42)")
            .execute(&mut tx)
            .await?;
    }
    tx.commit().await?;
    Ok(())
}

/// The `n` of every applied event, in the order applied.
async fn applied_numbers(db: &Db) -> Vec<i64> {
    applied(db).await.into_iter().map(|(_, n)| n).collect()
}

async fn applied(db: &Db) -> Vec<(String, i64)> {
    let rows = seams_store::query("SELECT subject, n FROM applied ORDER BY rowid")
        .fetch_all(&mut db.read().await.unwrap())
        .await
        .unwrap();
    rows.iter()
        .map(|r| (r.get(0).unwrap(), r.get(1).unwrap()))
        .collect()
}

fn relay(sub: Subscription, w: &World, chaos: Option<Chaos>) -> Relay {
    let options = RelayOptions {
        chaos,
        ..RelayOptions::default()
    };
    Relay::new(sub, w.consumer.clone(), w.producer.clone(), options)
}

#[tokio::test]
async fn delivers_in_commit_order_once_even_when_duplicated() {
    let w = world().await;
    for n in 1..=5 {
        publish(&w.producer, "a", n).await;
    }
    let (mut sub, calls) = subscription(|_, _| None);
    // Counts what reaches the subscription, before its inbox.
    let delivered = Arc::new(AtomicU32::new(0));
    let inner = sub.handles[0].handler.clone();
    let counter = delivered.clone();
    sub.handles[0].handler = Arc::new(move |env, inbox| {
        counter.fetch_add(1, AtomicOrdering::SeqCst);
        inner(env, inbox)
    });
    let chaos = Chaos {
        duplicate: 1.0,
        min_delay: Duration::ZERO,
        max_delay: Duration::from_millis(2),
    };
    let r = relay(sub, &w, Some(chaos));
    let stop = CancellationToken::new();
    assert_eq!(r.try_run_once(&stop).await.unwrap(), 5);
    assert_eq!(r.try_run_once(&stop).await.unwrap(), 0);
    assert_eq!(
        delivered.load(AtomicOrdering::SeqCst),
        10,
        "every event was delivered twice"
    );
    // The duplicates stopped at the inbox, before the handler.
    assert_eq!(calls.load(AtomicOrdering::SeqCst), 5);
    let got = applied_numbers(&w.consumer).await;
    assert_eq!(got, [1, 2, 3, 4, 5]);
    assert_eq!(w.consumer.cursor("watch<-clock").await.unwrap(), 5);
}

#[tokio::test]
async fn transient_failures_are_retried_then_dead_lettered_with_their_attempts() {
    let w = world().await;
    publish(&w.producer, "a", 1).await; // fails once, then works
    publish(&w.producer, "b", 2).await; // always fails
    let (sub, _) = subscription(|n, call| match (n, call) {
        (1, 1) => Some(HandlerError::Transient("flaky".into())),
        (2, _) => Some(HandlerError::Transient("down".into())),
        _ => None,
    });
    let r = relay(sub, &w, None);
    r.try_run_once(&CancellationToken::new()).await.unwrap();
    assert_eq!(applied(&w.consumer).await, [("a".to_owned(), 1)]);
    let dead = w.consumer.dead_letters().await.unwrap();
    assert_eq!(dead.len(), 1);
    assert_eq!(
        (
            dead[0].envelope.subject.as_str(),
            dead[0].attempts,
            dead[0].error.as_str()
        ),
        ("b", 3, "down")
    );
}

/// `clock.ticked` as an event nobody redelivers.
static TICKED_ONCE: EventContract = EventContract {
    retries: Retries::Nobody,
    ..TICKED
};

#[derive(Debug, Serialize, Deserialize)]
struct TickedOnce {
    key: String,
    n: i64,
}

impl Event for TickedOnce {
    const CONTRACT: &'static EventContract = &TICKED_ONCE;
}

/// An event whose contract says nobody retries it gets one attempt: a
/// transient failure is dead-lettered at once, not set aside for another.
#[tokio::test]
async fn an_event_nobody_retries_is_dead_lettered_after_one_attempt() {
    let w = world().await;
    publish(&w.producer, "a", 1).await;
    let calls = Arc::new(AtomicU32::new(0));
    let counter = calls.clone();
    let handles = Handles::new::<TickedOnce, _>(&[1], move |_, _| {
        counter.fetch_add(1, AtomicOrdering::SeqCst);
        Box::pin(async { Err(HandlerError::Transient("down".into())) })
    });
    relay(watching(handles), &w, None)
        .try_run_once(&CancellationToken::new())
        .await
        .unwrap();
    assert_eq!(calls.load(AtomicOrdering::SeqCst), 1);
    let dead = w.consumer.dead_letters().await.unwrap();
    assert_eq!(
        dead.iter()
            .map(|d| (d.envelope.subject.as_str(), d.attempts, d.error.as_str()))
            .collect::<Vec<_>>(),
        [("a", 1, "down")]
    );
}

#[tokio::test]
async fn later_events_of_a_dead_lettered_key_wait_behind_it() {
    let w = world().await;
    publish(&w.producer, "a", 1).await;
    publish(&w.producer, "b", 2).await;
    publish(&w.producer, "a", 3).await;
    let (sub, _) = subscription(|n, _| (n == 1).then(|| HandlerError::Permanent("poison".into())));
    relay(sub, &w, None)
        .try_run_once(&CancellationToken::new())
        .await
        .unwrap();
    assert_eq!(
        applied(&w.consumer).await,
        [("b".to_owned(), 2)],
        "a/3 must not overtake a/1"
    );
    let dead = w.consumer.dead_letters().await.unwrap();
    assert_eq!(dead.len(), 2);
    assert_eq!(dead[0].attempts, 1);
    assert!(
        dead[1].error.contains("waiting behind dead letter"),
        "{}",
        dead[1].error
    );
}

#[tokio::test]
async fn unaccepted_versions_are_dead_lettered_with_the_reason() {
    let w = world().await;
    let mut env = Envelope::wrap(
        &Ticked {
            key: "a".into(),
            n: 1,
        },
        "v9".into(),
        "t".into(),
        &CallContext::new_root(),
    )
    .unwrap();
    env.dataversion = 9;
    let mut tx = w.producer.begin().await.unwrap();
    tx.publish(&env).await.unwrap();
    tx.commit().await.unwrap();
    let (sub, calls) = subscription(|_, _| None);
    relay(sub, &w, None)
        .try_run_once(&CancellationToken::new())
        .await
        .unwrap();
    let dead = w.consumer.dead_letters().await.unwrap();
    assert!(
        dead[0].error.contains("v9 is not accepted"),
        "{}",
        dead[0].error
    );
    assert_eq!(
        calls.load(AtomicOrdering::SeqCst),
        0,
        "the handler never sees an unaccepted version"
    );
    assert!(applied(&w.consumer).await.is_empty());
}

#[tokio::test]
async fn a_new_relay_resumes_after_the_cursor() {
    let w = world().await;
    publish(&w.producer, "a", 1).await;
    let (sub, _) = subscription(|_, _| None);
    relay(sub.clone(), &w, None)
        .try_run_once(&CancellationToken::new())
        .await
        .unwrap();
    publish(&w.producer, "a", 2).await;
    relay(sub, &w, None)
        .try_run_once(&CancellationToken::new())
        .await
        .unwrap();
    let got = applied_numbers(&w.consumer).await;
    assert_eq!(got, [1, 2]);
}

#[tokio::test]
async fn the_running_loop_wakes_on_commit_and_stops_on_shutdown() {
    let w = world().await;
    let (sub, _) = subscription(|_, _| None);
    let stop = CancellationToken::new();
    let options = RelayOptions {
        idle_poll: Duration::from_secs(3600),
        ..RelayOptions::default()
    };
    let task = tokio::spawn(
        Arc::new(Relay::new(
            sub,
            w.consumer.clone(),
            w.producer.clone(),
            options,
        ))
        .run(stop.clone()),
    );
    publish(&w.producer, "a", 1).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while applied(&w.consumer).await.is_empty() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "not delivered; the commit did not wake the loop"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    stop.cancel();
    tokio::time::timeout(Duration::from_secs(5), task)
        .await
        .unwrap()
        .unwrap();
}

#[tokio::test]
async fn a_replayed_dead_letter_is_delivered_with_those_parked_behind_it_in_order() {
    let w = world().await;
    publish(&w.producer, "a", 1).await;
    publish(&w.producer, "a", 2).await;
    publish(&w.producer, "b", 3).await;
    let poisoned = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let flag = poisoned.clone();
    let (sub, _) = subscription(move |n, _| {
        (n == 1 && flag.load(AtomicOrdering::SeqCst))
            .then(|| HandlerError::Permanent("poison".into()))
    });
    let r = relay(sub, &w, None);
    let stop = CancellationToken::new();
    r.try_run_once(&stop).await.unwrap();
    assert_eq!(applied(&w.consumer).await, [("b".to_owned(), 3)]);
    let dead = w.consumer.dead_letters().await.unwrap();
    assert_eq!(dead.len(), 2);

    // Replaying before the fix parks it again, with its attempts counted.
    assert!(w.consumer.request_replay(dead[0].id).await.unwrap());
    assert!(
        !w.consumer.request_replay(dead[0].id).await.unwrap(),
        "already queued"
    );
    r.try_run_once(&stop).await.unwrap();
    let again = w.consumer.dead_letter(dead[0].id).await.unwrap().unwrap();
    assert_eq!((again.status.as_str(), again.attempts), ("parked", 2));

    poisoned.store(false, AtomicOrdering::SeqCst);
    assert!(w.consumer.request_replay(dead[0].id).await.unwrap());
    assert_eq!(r.try_run_once(&stop).await.unwrap(), 2);
    let got = applied_numbers(&w.consumer).await;
    assert_eq!(got, [3, 1, 2], "a/1 then a/2, in their order");
    let statuses: Vec<String> = w
        .consumer
        .dead_letters()
        .await
        .unwrap()
        .into_iter()
        .map(|d| d.status)
        .collect();
    assert_eq!(statuses, ["replayed", "replayed"]);
    // A new event for the key flows normally once nothing is parked for it.
    publish(&w.producer, "a", 4).await;
    r.try_run_once(&stop).await.unwrap();
    assert_eq!(applied(&w.consumer).await.last().unwrap().1, 4);
}

/// What events 2 and 3 do in [`first_commit_fails`].
#[derive(Clone, Copy)]
enum Then {
    /// Apply the event as usual.
    Apply,
    /// Apply it once the group event 1 joined has ended, so its
    /// transaction is in a later group than event 1's.
    ApplyInALaterGroup,
    /// Nothing to do: no transaction at all.
    Nothing,
}

/// Publishes events 1, 2 and 3 and delivers them; event 1's first commit
/// fails (a row whose constraint is only checked at `COMMIT`), events 2 and
/// 3 do what `then` says. Returns the world, the numbers applied in order,
/// and how often event 1's handler ran.
async fn first_commit_fails(then: [Then; 2]) -> (World, Vec<i64>, u32) {
    let w = world().await;
    for n in 1..=3 {
        publish(&w.producer, "a", n).await;
    }
    let db = w.consumer.clone();
    let calls = Arc::new(AtomicU32::new(0));
    let counter = calls.clone();
    let handles = Handles::opening::<Ticked, _, _>(&[1], move |ev: Ticked, env, inbox| {
        let db = db.clone();
        let role = match ev.n {
            1 => None,
            n => Some(then[(n as usize - 2).min(1)]),
        };
        let fail_commit = role.is_none() && counter.fetch_add(1, AtomicOrdering::SeqCst) == 0;
        async move {
            match role {
                Some(Then::Nothing) => return Ok(()),
                Some(Then::ApplyInALaterGroup) => {
                    let _ = db.flush().await;
                }
                Some(Then::Apply) | None => {}
            }
            apply(&inbox, &ev, &env, fail_commit).await
        }
    });
    relay(watching(handles), &w, None)
        .try_run_once(&CancellationToken::new())
        .await
        .unwrap();
    let got = applied_numbers(&w.consumer).await;
    let runs = calls.load(AtomicOrdering::SeqCst);
    (w, got, runs)
}

/// Event 1's group commit fails after event 2 has started behind it: event
/// 2 must not commit first, and event 1 is retried before anything after it
/// is applied.
#[tokio::test]
async fn an_event_whose_commit_fails_is_retried_before_later_ones_commit() {
    let (w, got, runs) = first_commit_fails([Then::ApplyInALaterGroup, Then::Apply]).await;
    assert_eq!(got, [1, 2, 3], "event 2 must not be applied before event 1");
    assert!(w.consumer.dead_letters().await.unwrap().is_empty());
    assert_eq!(runs, 2, "event 1 ran twice");
}

/// As above, with an event between them that ends without a transaction:
/// event 3 must still follow event 1's failed commit, not start afresh.
#[tokio::test]
async fn an_event_without_a_transaction_keeps_the_order_behind_a_failed_commit() {
    let (w, got, runs) = first_commit_fails([Then::Nothing, Then::ApplyInALaterGroup]).await;
    assert_eq!(got, [1, 3], "event 3 must not be applied before event 1");
    assert!(w.consumer.dead_letters().await.unwrap().is_empty());
    assert_eq!(runs, 2, "event 1 ran twice");
}

#[tokio::test]
async fn a_long_batch_commits_a_window_at_a_time() {
    let w = world().await;
    let mut tx = w.producer.begin().await.unwrap();
    for n in 1..=200 {
        let env = Envelope::wrap(
            &Ticked { key: "a".into(), n },
            uuid::Uuid::now_v7().to_string(),
            "2026-11-26T00:00:00Z".into(),
            &CallContext::new_root(),
        )
        .unwrap();
        tx.publish(&env).await.unwrap();
    }
    tx.commit().await.unwrap();
    let (sub, _) = subscription(|_, _| None);
    let r = relay(sub, &w, None);
    let before = w.consumer.commits();
    assert_eq!(
        r.try_run_once(&CancellationToken::new()).await.unwrap(),
        200
    );
    let commits = w.consumer.commits() - before;
    assert_eq!(
        applied_numbers(&w.consumer).await,
        (1..=200).collect::<Vec<_>>()
    );
    // Four windows of at most 64, and the cursor; settling one event at a
    // time once the window was full committed nearly every event alone.
    assert!(commits <= 8, "{commits} group commits for 200 events");
}

/// `clock.ticked` as its producer's newer build knows it: v2 adds `note`;
/// v1 is read as v2 without one, and v2 written as v1 drops it.
static TICKED_V2: EventContract = EventContract {
    versioning: Versioning {
        current: 2,
        accepts: &[1, 2],
    },
    ..TICKED
}
.with_downcast(|to, mut data| {
    data.as_object_mut()?.remove("note");
    (to == 1).then_some(data)
});

#[derive(Debug, Serialize, Deserialize)]
struct TickedV2 {
    key: String,
    n: i64,
    #[serde(default)]
    note: Option<String>,
}

impl Event for TickedV2 {
    const CONTRACT: &'static EventContract = &TICKED_V2;
    fn upcast(version: u32, data: serde_json::Value) -> Result<serde_json::Value, DecodeError> {
        match version {
            1 | 2 => Ok(data),
            _ => Err(DecodeError::NoUpcaster {
                event_type: TICKED_V2.event_type,
                version,
            }),
        }
    }
}

/// A consumer built against v2 of `clock.ticked`, recording what it reads.
fn upgraded() -> Subscription {
    watching(Handles::new::<TickedV2, _>(&[1, 2], |ev, tx| {
        Box::pin(async move {
            let id = tx.envelope().id.clone();
            let n = ev.n * if ev.note.is_some() { 100 } else { 1 };
            record(tx.tx(), &Ticked { key: ev.key, n }, &id).await
        })
    }))
}

async fn publish_v2(db: &Db, n: i64) {
    let ev = TickedV2 {
        key: "a".into(),
        n,
        note: Some("new".into()),
    };
    publish_event(db, &ev).await;
}

#[tokio::test]
async fn a_version_a_consumer_does_not_know_waits_in_its_dead_letters_until_it_is_upgraded() {
    let w = world().await;
    let stop = CancellationToken::new();
    // The producer writes v1 and v2 in one event: the v1 consumer reads the
    // v1 form, the upgraded one would read v2.
    w.producer.write_events_as(&TICKED_V2, &[1, 2]).unwrap();
    publish_v2(&w.producer, 1).await;
    // Then v2 alone, which the v1 consumer cannot read.
    w.producer.write_events_as(&TICKED_V2, &[2]).unwrap();
    publish_v2(&w.producer, 2).await;
    let (old, _) = subscription(|_, _| None);
    relay(old, &w, None).try_run_once(&stop).await.unwrap();
    assert_eq!(applied_numbers(&w.consumer).await, [1]);
    let dead = w.consumer.dead_letters().await.unwrap();
    assert_eq!(dead.len(), 1);
    assert!(
        dead[0]
            .error
            .contains("clock.ticked v2 is not accepted (accepts [1])"),
        "{}",
        dead[0].error
    );

    // Upgraded, the consumer replays it and reads v2; later events flow.
    let new = relay(upgraded(), &w, None);
    assert!(w.consumer.request_replay(dead[0].id).await.unwrap());
    new.try_run_once(&stop).await.unwrap();
    publish_v2(&w.producer, 3).await;
    new.try_run_once(&stop).await.unwrap();
    assert_eq!(applied_numbers(&w.consumer).await, [1, 200, 300]);
    let replayed = w.consumer.dead_letter(dead[0].id).await.unwrap().unwrap();
    assert_eq!(replayed.status, "replayed");
}

#[tokio::test]
async fn a_consumer_narrowed_to_v1_reads_as_the_v1_build_and_widened_replays_v2() {
    let w = world().await;
    let stop = CancellationToken::new();
    w.producer.write_events_as(&TICKED_V2, &[1, 2]).unwrap();
    publish_v2(&w.producer, 1).await;
    w.producer.write_events_as(&TICKED_V2, &[2]).unwrap();
    publish_v2(&w.producer, 2).await;
    // The v2 build narrowed to v1: it reads the v1 form of the event that
    // carries both (n, not n * 100) and refuses the v2-only one by name.
    let mut narrowed = upgraded();
    narrowed.handles = vec![narrowed.handles.remove(0).narrowed(&[1]).unwrap()];
    assert_eq!(&*narrowed.handles[0].accepts, [1]);
    relay(narrowed, &w, None).try_run_once(&stop).await.unwrap();
    assert_eq!(applied_numbers(&w.consumer).await, [1]);
    let dead = w.consumer.dead_letters().await.unwrap();
    assert_eq!(dead.len(), 1);
    assert!(
        dead[0]
            .error
            .contains("clock.ticked v2 is not accepted (accepts [1])"),
        "{}",
        dead[0].error
    );
    // Restarted without the narrowing, it replays the dead letter as v2.
    let new = relay(upgraded(), &w, None);
    assert!(w.consumer.request_replay(dead[0].id).await.unwrap());
    new.try_run_once(&stop).await.unwrap();
    assert_eq!(applied_numbers(&w.consumer).await, [1, 200]);
}

#[test]
fn narrowing_never_widens_and_never_empties() {
    let h = upgraded().handles.remove(0);
    assert_eq!(
        h.clone().narrowed(&[3]).err().unwrap(),
        "clock.ticked v3 is not among the versions the code accepts ([1, 2])"
    );
    assert_eq!(
        h.clone().narrowed(&[]).err().unwrap(),
        "clock.ticked: no version to accept"
    );
    assert_eq!(&*h.clone().narrowed(&[2, 1, 2]).unwrap().accepts, [1, 2]);
}

/// `clock.ticked` with a patient retry policy: a failing event waits two
/// seconds for its next attempt, long enough to watch the others flow.
static TICKED_PATIENT: EventContract = EventContract {
    retries: Retries::Bus(RetryPolicy {
        max_attempts: 3,
        initial_backoff: Duration::from_secs(2),
        max_backoff: Duration::from_secs(2),
    }),
    ..TICKED
};

/// A failing event holds up only its own key: while it waits for its next
/// attempt the other keys are applied and the feed's position moves past
/// it, later events of its key wait behind it, and once it is delivered
/// they follow, in order.
#[tokio::test]
async fn a_failing_event_holds_up_only_its_own_key() {
    let w = world().await;
    publish(&w.producer, "a", 1).await;
    publish(&w.producer, "b", 2).await;
    publish(&w.producer, "a", 3).await;
    publish(&w.producer, "b", 4).await;
    let down = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let flag = down.clone();
    let (mut sub, calls) = subscription(move |n, _| {
        (n == 1 && flag.load(AtomicOrdering::SeqCst))
            .then(|| HandlerError::Transient("a is down".into()))
    });
    sub.handles[0].event = &TICKED_PATIENT;
    let r = relay(sub, &w, None);
    let stop = CancellationToken::new();
    // Steps, not `try_run_once`, which would wait for the retry.
    for _ in 0..5 {
        r.step(&stop, Duration::ZERO).await.unwrap();
    }
    assert_eq!(
        applied(&w.consumer).await,
        [("b".to_owned(), 2), ("b".to_owned(), 4)],
        "b flows while a/1 waits, and a/3 waits behind it"
    );
    assert_eq!(r.position().await.unwrap(), 4, "the feed is read past a/1");
    let waiting: Vec<_> = w
        .consumer
        .retries("watch<-clock", 10)
        .await
        .unwrap()
        .into_iter()
        .map(|r| (r.envelope.subject, r.attempts, r.error))
        .collect();
    assert_eq!(
        waiting,
        [
            ("a".to_owned(), 1, "a is down".to_owned()),
            ("a".to_owned(), 0, WAITS_FOR_ITS_KEY.to_owned()),
        ]
    );
    assert_eq!(calls.load(AtomicOrdering::SeqCst), 3, "a/3 was not tried");
    let due = r.until_next_retry().expect("a retry is due later");
    assert!(due > Duration::from_millis(500), "{due:?}");
    assert!(w.consumer.dead_letters().await.unwrap().is_empty());

    down.store(false, AtomicOrdering::SeqCst);
    assert_eq!(r.try_run_once(&stop).await.unwrap(), 2);
    assert_eq!(applied_numbers(&w.consumer).await, [2, 4, 1, 3]);
    assert!(!w.consumer.any_retrying("watch<-clock").await.unwrap());
    assert!(w.consumer.dead_letters().await.unwrap().is_empty());
    assert_eq!(r.until_next_retry(), None);
    assert_eq!(w.consumer.cursor("watch<-clock").await.unwrap(), 4);
}

/// A retried event whose attempts run out becomes a dead letter, and the
/// events of its key that waited behind it become dead letters parked
/// behind it, in order; replayed, they are applied in that order.
#[tokio::test]
async fn an_exhausted_retry_takes_its_key_into_the_dead_letters_in_order() {
    let w = world().await;
    publish(&w.producer, "a", 1).await;
    publish(&w.producer, "b", 2).await;
    publish(&w.producer, "a", 3).await;
    let down = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let flag = down.clone();
    let (sub, _) = subscription(move |n, _| {
        (n == 1 && flag.load(AtomicOrdering::SeqCst))
            .then(|| HandlerError::Transient("a is down".into()))
    });
    let r = relay(sub, &w, None);
    let stop = CancellationToken::new();
    r.try_run_once(&stop).await.unwrap();
    assert_eq!(applied(&w.consumer).await, [("b".to_owned(), 2)]);
    let dead = w.consumer.dead_letters().await.unwrap();
    let got: Vec<_> = dead
        .iter()
        .map(|d| (d.envelope.subject.as_str(), d.attempts, d.error.clone()))
        .collect();
    assert_eq!(
        got,
        [
            ("a", 3, "a is down".to_owned()),
            ("a", 0, seams_store::behind_reason(dead[0].id)),
        ]
    );
    assert!(!w.consumer.any_retrying("watch<-clock").await.unwrap());

    down.store(false, AtomicOrdering::SeqCst);
    assert!(w.consumer.request_replay(dead[0].id).await.unwrap());
    r.try_run_once(&stop).await.unwrap();
    assert_eq!(applied_numbers(&w.consumer).await, [2, 1, 3]);
}

/// `clock.ticked` whose backoff doubles: 300 ms before the second attempt,
/// 600 ms before the third.
static TICKED_DOUBLING: EventContract = EventContract {
    retries: Retries::Bus(RetryPolicy {
        max_attempts: 4,
        initial_backoff: Duration::from_millis(300),
        max_backoff: Duration::from_secs(10),
    }),
    ..TICKED
};

/// An event set aside waits its contract's backoff before each attempt:
/// the second attempt's, then the third's.
#[tokio::test]
async fn a_retry_waits_the_backoff_of_its_next_attempt() {
    let w = world().await;
    publish(&w.producer, "a", 1).await;
    let (mut sub, calls) = subscription(|_, _| Some(HandlerError::Transient("down".into())));
    sub.handles[0].event = &TICKED_DOUBLING;
    let r = relay(sub, &w, None);
    let stop = CancellationToken::new();
    r.step(&stop, Duration::ZERO).await.unwrap();
    r.step(&stop, Duration::ZERO).await.unwrap();
    let first = r.until_next_retry().expect("set aside");
    assert!(
        first > Duration::from_millis(150) && first <= Duration::from_millis(300),
        "{first:?}"
    );
    tokio::time::sleep(first + Duration::from_millis(20)).await;
    r.step(&stop, Duration::ZERO).await.unwrap();
    assert_eq!(
        calls.load(AtomicOrdering::SeqCst),
        2,
        "the second attempt ran"
    );
    let second = r.until_next_retry().expect("set aside again");
    assert!(second > Duration::from_millis(450), "{second:?}");
    let retry = &w.consumer.retries("watch<-clock", 1).await.unwrap()[0];
    assert_eq!((retry.attempts, retry.error.as_str()), (2, "down"));
}
