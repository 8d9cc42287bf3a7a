//! Compensating fulfillment's failures: an open invoice is voided and can no
//! longer be paid, a paid one is refunded in full, each exactly once under
//! duplicates and repeated failures; a failure for an invoice billing never
//! created is dead-lettered; and a payment racing the failure ends as either
//! a void (the payment refused) or a refund, never both and never neither.

use std::time::Duration;

use billing::store::{Response, Store, WriteError};
use seams_runtime::relay::Chaos;
use seams_store::IdempotencyClaim;

use super::*;

fn types(events: &[Envelope]) -> Vec<&str> {
    events.iter().map(|e| e.event_type.as_str()).collect()
}

/// Whether `effect` was caused by `cause`, in its chain.
fn caused_by(effect: &Envelope, cause: &Envelope) -> bool {
    effect.correlationid == cause.correlationid
        && effect.causationid.as_deref() == Some(cause.id.as_str())
}

#[tokio::test]
async fn an_open_invoice_is_voided_and_can_no_longer_be_paid() {
    let w = world().await;
    let id = w.invoice("k1").await;
    let failure = w.fail(&id).await;

    assert_eq!(w.deliver().await, 1);

    assert_eq!(w.status(&id).await, "voided");
    let outbox = w.outbox().await;
    assert_eq!(
        types(&outbox),
        ["billing.invoice-created", "billing.invoice-voided"]
    );
    let voided = &outbox[1];
    assert_eq!(voided.subject, id);
    assert_eq!(
        voided.data.to_value().unwrap(),
        json!({ "invoice_id": id, "customer_id": "cust-1", "reason": "out-of-stock" })
    );
    assert!(caused_by(voided, &failure), "{voided:?}");

    let r = w.pay(&id, "p1", 2100, "EUR").await;
    assert_eq!(
        (r.status, r.problem_type()),
        (StatusCode::CONFLICT, "urn:seams:problem:invoice-voided")
    );
    assert_eq!(r.json["invoice_id"], id.as_str());
    assert_eq!(
        (w.count("payments").await, w.count("refunds").await),
        (0, 0)
    );
    assert_eq!(
        w.outbox().await.len(),
        2,
        "nothing published for the refusal"
    );
    assert_eq!(w.db.dead_letters().await.unwrap(), []);
}

/// Also the race in which the payment commits before the failure is handled.
#[tokio::test]
async fn a_paid_invoice_is_refunded_in_full() {
    let w = world().await;
    let id = w.invoice("k1").await;
    let paid = w.pay(&id, "p1", 2100, "EUR").await;
    assert_eq!(paid.status, StatusCode::CREATED, "{}", paid.json);
    let payment_id = paid.json["id"].as_str().unwrap().to_owned();
    let failure = w.fail(&id).await;

    assert_eq!(w.deliver().await, 1);

    assert_eq!(w.status(&id).await, "refunded");
    let outbox = w.outbox().await;
    assert_eq!(
        types(&outbox),
        [
            "billing.invoice-created",
            "billing.invoice-paid",
            "billing.invoice-refunded"
        ]
    );
    let refunded = &outbox[2];
    assert_eq!(refunded.subject, id);
    assert_eq!(
        refunded.data.to_value().unwrap(),
        json!({
            "invoice_id": id,
            "customer_id": "cust-1",
            "payment_id": payment_id,
            "amount": { "amount": 2100, "currency": "EUR" },
            "reason": "out-of-stock",
        })
    );
    assert!(caused_by(refunded, &failure), "{refunded:?}");
    let row = seams_store::query(
        "SELECT invoice_id, payment_id, amount_minor, currency, reason FROM refunds",
    )
    .fetch_one(&mut w.db.read().await.unwrap())
    .await
    .unwrap();
    let row: (String, String, i64, String, String) = (
        row.get(0).unwrap(),
        row.get(1).unwrap(),
        row.get(2).unwrap(),
        row.get(3).unwrap(),
        row.get(4).unwrap(),
    );
    assert_eq!(
        row,
        (
            id.clone(),
            payment_id,
            2100,
            "EUR".into(),
            "out-of-stock".into()
        )
    );

    let r = w.pay(&id, "p2", 2100, "EUR").await;
    assert_eq!(
        (r.status, r.problem_type()),
        (
            StatusCode::CONFLICT,
            "urn:seams:problem:invoice-already-paid"
        ),
        "a refunded invoice was paid"
    );
    let replay = w.pay(&id, "p1", 2100, "EUR").await;
    assert_eq!(
        (replay.status, &replay.bytes),
        (StatusCode::CREATED, &paid.bytes),
        "the first payment's key still replays its response"
    );
    assert_eq!(
        (w.count("payments").await, w.count("refunds").await),
        (1, 1)
    );
}

#[tokio::test]
async fn a_failure_delivered_again_and_again_compensates_once() {
    let w = world().await;
    let open = w.invoice("k1").await;
    let paid = w.invoice("k2").await;
    assert_eq!(
        w.pay(&paid, "p1", 2100, "EUR").await.status,
        StatusCode::CREATED
    );
    let failures = [w.fail(&open).await, w.fail(&paid).await];
    let chaos = RelayOptions {
        chaos: Some(Chaos {
            duplicate: 1.0,
            max_delay: Duration::ZERO,
            ..Chaos::DEFAULT
        }),
        ..RelayOptions::default()
    };

    // The bus delivers every failure twice...
    assert_eq!(
        w.relay(chaos)
            .try_run_once(&CancellationToken::new())
            .await
            .unwrap(),
        2
    );
    // ...once more, as after a crash before the cursor was saved...
    for f in &failures {
        w.handle(f).await.unwrap();
    }
    // ...and again after retention pruned the inbox: then the invoice's
    // status is the guard.
    w.db.prune(&[], 0, i64::MAX, 0).await.unwrap();
    assert!(
        !w.db
            .inbox_contains("billing<-fulfillment", &failures[0].id)
            .await
            .unwrap(),
        "the inbox row is gone"
    );
    for f in &failures {
        w.handle(f).await.unwrap();
    }

    assert_eq!(
        (w.status(&open).await, w.status(&paid).await),
        ("voided".into(), "refunded".into())
    );
    let mut events = w.events().await;
    events.sort();
    assert_eq!(
        events,
        [
            "billing.invoice-created",
            "billing.invoice-created",
            "billing.invoice-paid",
            "billing.invoice-refunded",
            "billing.invoice-voided",
        ]
    );
    assert_eq!(w.count("refunds").await, 1);
}

#[tokio::test]
async fn a_second_failure_for_a_compensated_invoice_changes_nothing() {
    let w = world().await;
    let voided = w.invoice("k1").await;
    let refunded = w.invoice("k2").await;
    assert_eq!(
        w.pay(&refunded, "p1", 2100, "EUR").await.status,
        StatusCode::CREATED
    );
    w.fail(&voided).await;
    w.fail(&refunded).await;
    assert_eq!(w.deliver().await, 2);
    let before = w.outbox().await.len();

    // Fulfillment fails them again (a new event each, not a redelivery).
    let again = [w.fail(&voided).await, w.fail(&refunded).await];
    assert_eq!(w.deliver().await, 2);

    assert_eq!(w.status(&voided).await, "voided");
    assert_eq!(w.status(&refunded).await, "refunded");
    assert_eq!(w.outbox().await.len(), before, "no second compensation");
    assert_eq!(w.count("refunds").await, 1);
    for f in &again {
        assert!(
            w.db.inbox_contains("billing<-fulfillment", &f.id)
                .await
                .unwrap(),
            "applied, as nothing to do"
        );
    }
    assert_eq!(w.db.dead_letters().await.unwrap(), []);
}

#[tokio::test]
async fn a_failure_for_an_unknown_invoice_is_dead_lettered_with_the_reason() {
    let w = world().await;
    let id = w.invoice("k1").await;
    let unknown = w.fail("no-such-invoice").await;
    w.fail(&id).await;

    assert_eq!(
        w.deliver().await,
        2,
        "the dead letter does not hold up other invoices"
    );

    let dead = w.db.dead_letters().await.unwrap();
    assert_eq!(dead.len(), 1, "{dead:?}");
    assert_eq!(
        (
            dead[0].subscription.as_str(),
            dead[0].envelope.id.as_str(),
            dead[0].attempts
        ),
        ("billing<-fulfillment", unknown.id.as_str(), 1),
        "parked at once: retrying cannot help"
    );
    assert!(
        dead[0].error.contains("no-such-invoice") && dead[0].error.contains("never created"),
        "{}",
        dead[0].error
    );
    assert!(
        !w.db
            .inbox_contains("billing<-fulfillment", &unknown.id)
            .await
            .unwrap(),
        "not applied, so a replay runs it again"
    );
    assert_eq!(w.status(&id).await, "voided");
    assert_eq!(
        w.events().await,
        ["billing.invoice-created", "billing.invoice-voided"]
    );
}

/// The race the other way round: the payment read the invoice open, then the
/// failure was compensated, then the payment tried to commit.
#[tokio::test]
async fn a_payment_decided_before_a_void_is_refused_by_the_database() {
    let w = world().await;
    let id = w.invoice("k1").await;
    let store = Store::new(w.db.clone());
    // What `pay_invoice` read before deciding...
    let stale = store.get(&id).await.unwrap().unwrap();
    // ...the failure is compensated meanwhile...
    w.fail(&id).await;
    w.deliver().await;
    assert_eq!(w.status(&id).await, "voided");
    // ...and the decision, taken on the stale read, is still "pay".
    let (_, payment, event) = stale
        .pay(
            "pay-late".into(),
            stale.total,
            "2026-01-01T00:00:01Z".into(),
        )
        .unwrap();
    let env = Envelope::wrap(
        &event,
        seams_core::UuidV7Ids.new_id().to_string(),
        "2026-01-01T00:00:01Z".into(),
        &CallContext::new_root(),
    )
    .unwrap();
    let claim = IdempotencyClaim {
        scope: "billing.pay-invoice".into(),
        key: "late".into(),
        fingerprint: "f".into(),
    };

    let res = store
        .record_payment(
            &payment,
            &env,
            Response {
                claim: &claim,
                status: 201,
                body: b"{}",
            },
        )
        .await;

    assert!(matches!(res, Err(WriteError::Voided)), "{res:?}");
    assert_eq!(w.status(&id).await, "voided");
    assert_eq!(w.count("payments").await, 0);
    assert_eq!(
        w.events().await,
        ["billing.invoice-created", "billing.invoice-voided"]
    );
    assert_eq!(
        w.db.stored_response(&claim.scope, &claim.key)
            .await
            .unwrap(),
        None,
        "the refused payment's response is not recorded: the key stays usable"
    );
}

/// Whatever the interleaving, a failure racing payments ends as a void with
/// no payment, or as one payment refunded in full.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn payments_racing_a_failure_end_voided_or_refunded_never_both() {
    for round in 0..8u64 {
        let w = Arc::new(world().await);
        let id = w.invoice("k1").await;
        w.fail(&id).await;
        // The delivery starts first and the payers after a delay growing
        // with the round, so rounds end both ways (which way is up to the
        // scheduler; the tests above pin each order deterministically).
        let head_start = Duration::from_millis(round / 2);
        let delivery = {
            let w = w.clone();
            tokio::spawn(async move { w.deliver().await })
        };
        let payers: Vec<_> = (0..4)
            .map(|i| {
                let (w, id) = (w.clone(), id.clone());
                tokio::spawn(async move {
                    tokio::time::sleep(head_start).await;
                    w.pay(&id, &format!("p{i}"), 2100, "EUR").await
                })
            })
            .collect();
        let mut replies = Vec::new();
        for p in payers {
            replies.push(p.await.unwrap());
        }
        assert_eq!(delivery.await.unwrap(), 1);

        let paid = replies
            .iter()
            .filter(|r| r.status == StatusCode::CREATED)
            .count();
        for r in replies.iter().filter(|r| r.status != StatusCode::CREATED) {
            assert_eq!(r.status, StatusCode::CONFLICT, "round {round}: {}", r.json);
            assert!(
                [
                    "urn:seams:problem:invoice-voided",
                    "urn:seams:problem:invoice-already-paid"
                ]
                .contains(&r.problem_type()),
                "round {round}: {}",
                r.json
            );
        }
        let status = w.status(&id).await;
        let events = w.events().await;
        let n = |t: &str| events.iter().filter(|e| *e == t).count();
        let expected = match status.as_str() {
            "voided" => (0, 0, 0, 1, 0),
            "refunded" => (1, 1, 1, 0, 1),
            other => panic!("round {round}: the invoice ended {other}"),
        };
        assert_eq!(
            (
                paid as i64,
                w.count("payments").await,
                w.count("refunds").await,
                n("billing.invoice-voided") as i64,
                n("billing.invoice-refunded") as i64,
            ),
            expected,
            "round {round}: {status}, {events:?}"
        );
        assert_eq!(n("billing.invoice-paid") as i64, expected.0);
    }
}
