//! Consuming billing's invoice events through the relay: the whole journey
//! to a dispatched shipment, out of stock (fulfillment-failed, nothing
//! reserved, nothing shipped), voiding, all-or-nothing under contention,
//! duplicates, and an event that breaks billing's contract.

use std::time::Duration;

use seams_runtime::relay::Chaos;

use super::*;

#[tokio::test]
async fn a_paid_invoice_is_reserved_shipped_and_dispatched() {
    let w = world().await;
    w.env
        .consistency
        .declare(w.f.component.invariants.iter().copied());
    w.receive("TEA", 5).await;

    w.invoice_created("inv-1", &[("TEA", 3)]).await;
    assert_eq!(w.deliver().await, 1);

    assert_eq!(w.stock("TEA").await, (5, 3, 2));
    assert_eq!(
        w.reservations("inv-1").await,
        [("TEA".to_owned(), 3, "reserved".to_owned())]
    );
    assert!(w.published().await.is_empty(), "a reservation is not news");
    assert!(w.shipments("inv-1").await.is_empty(), "not paid yet");

    let paid = w.invoice_paid("inv-1").await;
    w.deliver().await;

    assert_eq!(
        w.stock("TEA").await,
        (2, 0, 2),
        "shipped units left the stock"
    );
    assert_eq!(
        w.reservations("inv-1").await,
        [("TEA".to_owned(), 3, "shipped".to_owned())]
    );
    let shipments = w.shipments("inv-1").await;
    assert_eq!(shipments.len(), 1);
    let s = &shipments[0];
    assert_eq!(
        (&s["status"], &s["customer_id"], &s["dispatched_at"]),
        (&json!("created"), &json!("c-1"), &Value::Null)
    );
    assert_eq!(s["lines"], json!([{ "sku": "TEA", "quantity": 3 }]));
    let outbox = w.outbox().await;
    assert_eq!(outbox.len(), 1);
    let shipment_created = &outbox[0];
    assert_eq!(
        (
            shipment_created.event_type.as_str(),
            shipment_created.subject.as_str()
        ),
        ("fulfillment.shipment-created", "inv-1")
    );
    assert_eq!(
        shipment_created.data.to_value().unwrap()["shipment_id"],
        s["id"]
    );
    assert_eq!(
        shipment_created.causationid.as_deref(),
        Some(paid.id.as_str())
    );
    assert_eq!(shipment_created.correlationid, paid.correlationid);

    // The dispatcher runs 1.5 s after billing committed the payment.
    w.clock.advance(Duration::from_millis(1500));
    assert_eq!(w.dispatch().await, 1);
    assert_eq!(w.dispatch().await, 0, "nothing left to dispatch");

    let s = w.shipments("inv-1").await.remove(0);
    assert_eq!(s["status"], "dispatched");
    assert!(s["dispatched_at"].is_string(), "{s}");
    assert_eq!(
        w.published().await,
        [
            "fulfillment.shipment-created",
            "fulfillment.shipment-dispatched"
        ]
    );
    let dispatched = w.outbox().await.remove(1);
    assert_eq!(dispatched.data.to_value().unwrap()["shipment_id"], s["id"]);
    assert_eq!(
        dispatched.data.to_value().unwrap()["dispatched_at"],
        s["dispatched_at"]
    );
    assert_eq!(
        dispatched.causationid.as_deref(),
        Some(shipment_created.id.as_str()),
        "caused by the shipment's creation"
    );
    assert_eq!(
        dispatched.correlationid, paid.correlationid,
        "the payment's chain, across the worker"
    );

    let report = w.env.consistency.report();
    let lag = &report["lags"][fulfillment::DISPATCH_LAG];
    assert_eq!(lag["samples"], 1, "{report}");
    assert_eq!(lag["max_ms"], 1500.0, "{report}");
    let invariant = report["invariants"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["invariant"] == "fulfillment.paid-invoice-dispatched")
        .expect("declared");
    assert_eq!(
        (&invariant["status"], &invariant["bound_ms"]),
        (&json!("holds"), &json!(5000))
    );
}

#[tokio::test]
async fn out_of_stock_publishes_fulfillment_failed_and_reserves_nothing() {
    let w = world().await;
    w.receive("TEA", 2).await;
    w.receive("MUG", 5).await;

    // MUG alone could be reserved; TEA is short, so neither is.
    let created = w.invoice_created("inv-1", &[("MUG", 1), ("TEA", 3)]).await;
    w.deliver().await;

    assert_eq!(w.stock("TEA").await, (2, 0, 2));
    assert_eq!(w.stock("MUG").await, (5, 0, 5));
    assert!(w.reservations("inv-1").await.is_empty());
    let outbox = w.outbox().await;
    assert_eq!(outbox.len(), 1);
    let failed = &outbox[0];
    assert_eq!(
        (failed.event_type.as_str(), failed.subject.as_str()),
        ("fulfillment.fulfillment-failed", "inv-1")
    );
    assert_eq!(
        failed.data.to_value().unwrap(),
        json!({
            "invoice_id": "inv-1",
            "customer_id": "c-1",
            "reason": "out-of-stock",
            "shortages": [{ "sku": "TEA", "requested": 3, "available": 2 }],
        })
    );
    assert_eq!(failed.causationid.as_deref(), Some(created.id.as_str()));
    assert_eq!(failed.correlationid, created.correlationid);

    // Billing raced the failure and took the payment: fulfillment ships
    // nothing (billing refunds on fulfillment-failed).
    let paid = w.invoice_paid("inv-1").await;
    w.deliver().await;

    assert!(w.shipments("inv-1").await.is_empty());
    assert_eq!(w.dispatch().await, 0);
    assert_eq!(w.published().await, ["fulfillment.fulfillment-failed"]);
    assert!(
        w.db().inbox_contains(INBOX, &paid.id).await.unwrap(),
        "handled, by doing nothing"
    );
    assert_eq!(
        (w.stock("TEA").await, w.stock("MUG").await),
        ((2, 0, 2), (5, 0, 5))
    );
}

#[tokio::test]
async fn a_sku_never_received_is_a_shortage_of_everything() {
    let w = world().await;
    w.invoice_created("inv-1", &[("GHOST", 1)]).await;
    w.deliver().await;

    let failed = w.outbox().await.remove(0);
    assert_eq!(
        failed.data.to_value().unwrap()["shortages"],
        json!([{ "sku": "GHOST", "requested": 1, "available": 0 }])
    );
}

#[tokio::test]
async fn voiding_releases_the_reservation() {
    let w = world().await;
    w.receive("TEA", 5).await;
    w.invoice_created("inv-1", &[("TEA", 3)]).await;
    w.deliver().await;
    assert_eq!(w.stock("TEA").await, (5, 3, 2));

    w.invoice_voided("inv-1").await;
    w.deliver().await;

    assert_eq!(w.stock("TEA").await, (5, 0, 5));
    assert_eq!(
        w.reservations("inv-1").await,
        [("TEA".to_owned(), 3, "released".to_owned())]
    );
    // The released units are available to the next invoice...
    w.invoice_created("inv-2", &[("TEA", 5)]).await;
    // ...and a payment of the voided one ships nothing.
    w.invoice_paid("inv-1").await;
    w.deliver().await;
    assert_eq!(w.stock("TEA").await, (5, 5, 0));
    assert!(w.shipments("inv-1").await.is_empty());
    assert!(w.published().await.is_empty());
}

#[tokio::test]
async fn eight_invoices_for_three_units_reserve_three_and_fail_five() {
    let w = world().await;
    w.receive("TEA", 3).await;
    for i in 0..8 {
        w.invoice_created(&format!("inv-{i}"), &[("TEA", 1)]).await;
    }

    assert_eq!(w.deliver().await, 8);

    assert_eq!(w.stock("TEA").await, (3, 3, 0));
    assert_eq!(w.count("reservations").await, 3);
    let published = w.published().await;
    assert_eq!(published.len(), 5, "{published:?}");
    assert!(
        published
            .iter()
            .all(|t| t == "fulfillment.fulfillment-failed")
    );
    // In billing's commit order: the first three got the units.
    for i in 0..8 {
        assert_eq!(
            w.reservations(&format!("inv-{i}")).await.len(),
            usize::from(i < 3),
            "inv-{i}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_deliveries_never_oversell() {
    let w = world().await;
    w.receive("TEA", 3).await;
    let handler = w.subscription().handles[0].handler.clone();
    let inbox = w.subscription().inbox(w.db());
    // Eight invoices handed to the handler at once, as eight consumers of a
    // partitioned bus would: the single writer serializes them, and each
    // decides on the levels its own transaction reads.
    let tasks: Vec<_> = (0..8)
        .map(|i| {
            let env = w.wrap(&invoice_created(&format!("inv-{i}"), &[("TEA", 1)]));
            assert_eq!(env.event_type, "billing.invoice-created");
            tokio::spawn(handler(env.into(), inbox.clone()))
        })
        .collect();
    for t in tasks {
        t.await.unwrap().unwrap();
    }

    assert_eq!(w.stock("TEA").await, (3, 3, 0));
    assert_eq!(w.count("reservations").await, 3);
    assert_eq!(w.count("failed_invoices").await, 5);
    assert_eq!(w.published().await.len(), 5);
}

#[tokio::test]
async fn duplicated_events_reserve_and_ship_once() {
    let w = world().await;
    w.receive("TEA", 5).await;
    let created = w.invoice_created("inv-1", &[("TEA", 2)]).await;
    let short = w.invoice_created("inv-2", &[("TEA", 100)]).await;
    let paid = w.invoice_paid("inv-1").await;
    let chaos = RelayOptions {
        chaos: Some(Chaos {
            duplicate: 1.0,
            max_delay: Duration::ZERO,
            ..Chaos::DEFAULT
        }),
        ..RelayOptions::default()
    };

    // Every event is delivered twice by the bus...
    w.relay(chaos).try_run_once(&w.shutdown).await.unwrap();
    // ...and once more, as after a crash before the cursor was saved...
    for env in [&created, &short, &paid] {
        w.handle(env).await.unwrap();
    }
    // ...and again after the inbox forgot them, which only a redelivery
    // past the inbox's horizon could meet: the keys of reservations and
    // failures refuse a second application (a permanent error, so a dead
    // letter, never a second effect), and a paid invoice has nothing left
    // to ship.
    w.db().prune(&[], 0, i64::MAX, 0).await.unwrap();
    assert!(
        !w.db().inbox_contains(INBOX, &created.id).await.unwrap(),
        "the inbox row is gone"
    );
    for env in [&created, &short] {
        let res = w.handle(env).await;
        assert!(
            matches!(&res, Err(HandlerError::Permanent(m)) if m.contains("UNIQUE")),
            "{res:?}"
        );
    }
    w.handle(&paid).await.unwrap();

    assert_eq!(w.stock("TEA").await, (3, 0, 3), "reserved and shipped once");
    assert_eq!(w.shipments("inv-1").await.len(), 1);
    assert_eq!(w.count("shipments").await, 1);
    assert_eq!(
        w.published().await,
        [
            "fulfillment.fulfillment-failed",
            "fulfillment.shipment-created"
        ]
    );
    assert_eq!(w.dispatch().await, 1);
}

#[tokio::test]
async fn an_invoice_that_breaks_billings_contract_is_dead_lettered() {
    let w = world().await;
    w.receive("TEA", 5).await;
    let env = w.invoice_created("inv-1", &[]).await;

    let res = w.handle(&env).await;
    assert!(
        matches!(&res, Err(HandlerError::Permanent(reason)) if reason.contains("no lines")),
        "{res:?}"
    );
    w.deliver().await;

    let dead = w.db().dead_letters().await.unwrap();
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].envelope.id, env.id);
    assert!(
        !w.db().inbox_contains(INBOX, &env.id).await.unwrap(),
        "rolled back: not applied"
    );
    assert_eq!(w.stock("TEA").await, (5, 0, 5));
    assert!(w.published().await.is_empty());
}
