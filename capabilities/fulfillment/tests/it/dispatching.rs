//! The dispatcher: woken as soon as a shipment is created, one dispatch per
//! shipment even with two dispatchers, and the measured lag reported
//! against the declared bound when it is exceeded.

use std::time::{Duration, Instant};

use super::*;

/// Stock for and delivery of a paid invoice, leaving one created shipment.
async fn paid_and_shipped(w: &World, invoice_id: &str) {
    w.receive("TEA", 5).await;
    w.invoice_created(invoice_id, &[("TEA", 1)]).await;
    w.invoice_paid(invoice_id).await;
    w.deliver().await;
    // Created, or already dispatched if a running worker was woken.
    assert_eq!(w.shipments(invoice_id).await.len(), 1);
}

#[tokio::test]
async fn the_worker_dispatches_as_soon_as_a_shipment_is_created() {
    // A poll interval no test would wait for: only the wake-up can dispatch in time.
    let mut w = world_with(Options {
        poll: Duration::from_secs(3600),
        ..Options::default()
    })
    .await;
    let worker = w.f.component.workers.pop().unwrap();
    assert_eq!(worker.name, "fulfillment.dispatcher");
    let running = tokio::spawn((worker.run)(w.shutdown.clone()));
    // Let the worker go idle first, so it is the wake-up that moves it.
    tokio::time::sleep(Duration::from_millis(50)).await;

    paid_and_shipped(&w, "inv-1").await;

    let deadline = Instant::now() + Duration::from_secs(10);
    while w.shipments("inv-1").await[0]["status"] != "dispatched" {
        assert!(Instant::now() < deadline, "the worker was not woken");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    w.shutdown.cancel();
    tokio::time::timeout(Duration::from_secs(10), running)
        .await
        .expect("the worker stops on shutdown")
        .unwrap();
    assert_eq!(
        w.published().await,
        [
            "fulfillment.shipment-created",
            "fulfillment.shipment-dispatched"
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_dispatchers_dispatch_a_shipment_once() {
    let w = world().await;
    paid_and_shipped(&w, "inv-1").await;
    assert_eq!(w.shipments("inv-1").await[0]["status"], "created");
    let (a, b) = (w.f.dispatcher.clone(), w.f.dispatcher.clone());

    let (ra, rb) = tokio::join!(
        tokio::spawn(async move { a.try_dispatch_due().await.unwrap() }),
        tokio::spawn(async move { b.try_dispatch_due().await.unwrap() }),
    );

    assert_eq!(ra.unwrap() + rb.unwrap(), 1);
    assert_eq!(
        w.published().await,
        [
            "fulfillment.shipment-created",
            "fulfillment.shipment-dispatched"
        ]
    );
    let report = w.env.consistency.report();
    assert_eq!(
        report["lags"][fulfillment::DISPATCH_LAG]["samples"],
        1,
        "one dispatch, one sample: {report}"
    );
}

#[tokio::test]
async fn a_late_dispatch_breaks_the_declared_bound_visibly() {
    let w = world().await;
    w.env
        .consistency
        .declare(w.f.component.invariants.iter().copied());
    paid_and_shipped(&w, "inv-1").await;

    // The warehouse was stuck for 6 s: more than the 5 s bound.
    w.clock.advance(Duration::from_secs(6));
    assert_eq!(w.dispatch().await, 1);

    let report = w.env.consistency.report();
    let invariant = report["invariants"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["invariant"] == "fulfillment.paid-invoice-dispatched")
        .expect("declared")
        .clone();
    assert_eq!(
        (
            &invariant["measure"],
            &invariant["samples"],
            &invariant["status"]
        ),
        (
            &json!(fulfillment::DISPATCH_LAG),
            &json!(1),
            &json!("broken")
        ),
        "{report}"
    );
    assert_eq!(invariant["measured_ms"], 6000.0);
}
