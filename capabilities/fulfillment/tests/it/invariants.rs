//! What the database enforces on its own (stock never negative, never more
//! reserved than on hand) even when the code above it is wrong, and what
//! the component declares: operations, events, its subscription, its
//! worker, its invariants and its options.

use fulfillment::domain::Line;
use fulfillment::store;
use seams_core::decl::{InvariantKind, Measure};

use super::*;

/// Runs `sql` on fulfillment's writer and returns the error it must fail with.
async fn refused(w: &World, sql: &str) -> seams_store::DbError {
    let mut tx = w.db().begin().await.unwrap();
    let err = seams_store::query(sql)
        .execute(&mut tx)
        .await
        .expect_err(sql);
    tx.rollback().await.unwrap();
    err
}

#[tokio::test]
async fn the_database_refuses_negative_or_over_reserved_stock() {
    let w = world().await;
    w.receive("TEA", 2).await;

    let cases = [
        (
            "UPDATE stock SET reserved = on_hand + 1 WHERE sku = 'TEA'",
            "stock_reserved_within_on_hand",
        ),
        (
            "UPDATE stock SET reserved = -1 WHERE sku = 'TEA'",
            "stock_reserved_non_negative",
        ),
        // Both constraints on on_hand fail here; either may be reported.
        (
            "UPDATE stock SET on_hand = on_hand - 3 WHERE sku = 'TEA'",
            "stock_",
        ),
        (
            "INSERT INTO stock (sku, on_hand, reserved) VALUES ('MUG', -1, 0)",
            "stock_",
        ),
    ];
    for (sql, constraint) in cases {
        let err = refused(&w, sql).await;
        assert!(
            seams_store::check_violation(&err, constraint),
            "{sql}: {err}"
        );
    }
    assert_eq!(w.stock("TEA").await, (2, 0, 2));
    assert_eq!(w.stock("MUG").await, (0, 0, 0));
}

/// Applies `env` by reserving `lines` for inv-1, whatever the stock.
async fn reserve(
    inbox: &seams_runtime::Inbox,
    env: &Envelope,
    lines: &[(&str, u32)],
) -> Result<(), HandlerError> {
    let lines: Vec<Line> = lines
        .iter()
        .map(|(sku, quantity)| Line {
            sku: (*sku).into(),
            quantity: *quantity,
        })
        .collect();
    inbox
        .apply(env.clone(), |tx| {
            store::reserve(tx.later(), "inv-1", &lines, "2026-01-01T00:00:00Z");
            Box::pin(std::future::ready(Ok(())))
        })
        .await
}

#[tokio::test]
async fn a_reservation_the_decision_should_have_refused_is_refused_by_the_store() {
    let w = world().await;
    w.receive("TEA", 2).await;
    let env = w.wrap(&invoice_created("inv-1", &[("TEA", 3)]));

    // Bypass `decide`, as a bug would: reserve 3 of 2, and a SKU never received.
    let inbox = w.subscription().inbox(w.db());
    assert_eq!(inbox.name(), INBOX);
    let err = reserve(&inbox, &env, &[("TEA", 3)]).await.unwrap_err();
    // A CHECK the effect breaks breaks again on every redelivery: permanent.
    assert!(
        matches!(&err, HandlerError::Permanent(m) if m.contains("stock_reserved_within_on_hand")),
        "{err}"
    );
    let err = reserve(&inbox, &env, &[("TEA", 1), ("NEVER-RECEIVED", 1)])
        .await
        .expect_err("a reservation of a SKU without stock is refused");
    // A foreign key may be met later (its row on another feed): transient.
    assert!(
        matches!(&err, HandlerError::Transient(m) if m.to_lowercase().contains("foreign key")),
        "{err}"
    );

    assert_eq!(w.stock("TEA").await, (2, 0, 2));
    assert!(w.reservations("inv-1").await.is_empty());
    assert!(
        !w.db().inbox_contains(INBOX, &env.id).await.unwrap(),
        "the whole transaction rolled back, inbox row included"
    );
}

#[tokio::test]
async fn the_component_declares_what_it_serves_consumes_runs_and_keeps() {
    let w = world().await;
    let c = &w.f.component;

    assert_eq!(c.name, "fulfillment");
    let public: Vec<String> = c.public().iter().map(|op| op.id()).collect();
    assert_eq!(
        public,
        [
            "fulfillment.receive-stock",
            "fulfillment.get-stock",
            "fulfillment.list-shipments"
        ]
    );
    assert!(c.serves.is_empty());
    let publishes: Vec<&str> = c.publishes.iter().map(|e| e.event_type).collect();
    assert_eq!(
        publishes,
        [
            "fulfillment.shipment-created",
            "fulfillment.shipment-dispatched",
            "fulfillment.fulfillment-failed"
        ]
    );
    let subs: Vec<String> = c
        .subscriptions
        .iter()
        .map(|s| {
            let handles: Vec<String> = s
                .handles
                .iter()
                .map(|h| format!("{} {:?}", h.event.event_type, h.accepts))
                .collect();
            format!("{}: {}", s.name(), handles.join(", "))
        })
        .collect();
    assert_eq!(
        subs,
        [
            "fulfillment<-billing: billing.invoice-created [1, 2], billing.invoice-paid [1], billing.invoice-voided [1]"
        ]
    );
    let workers: Vec<&str> = c.workers.iter().map(|w| w.name.as_str()).collect();
    assert_eq!(workers, ["fulfillment.dispatcher"]);

    let invariants: Vec<(String, &str)> = c
        .invariants
        .iter()
        .map(|i| {
            let kind = match i.kind {
                InvariantKind::Immediate { .. } => "immediate",
                InvariantKind::Eventual { .. } => "eventual",
            };
            (i.id(), kind)
        })
        .collect();
    assert_eq!(
        invariants,
        [
            ("fulfillment.stock-never-negative".to_owned(), "immediate"),
            (
                "fulfillment.all-or-nothing-reservation".to_owned(),
                "immediate"
            ),
            ("fulfillment.paid-invoice-dispatched".to_owned(), "eventual"),
        ]
    );
    let InvariantKind::Eventual {
        bound,
        percentile,
        measure: Measure::Recorded(name),
    } = fulfillment::PAID_INVOICE_DISPATCHED.kind
    else {
        panic!("paid-invoice-dispatched is eventual and self-recorded");
    };
    assert_eq!(
        (bound, percentile, name),
        (Duration::from_secs(5), 99.0, fulfillment::DISPATCH_LAG)
    );
}

#[tokio::test]
async fn options_default_to_a_half_second_poll_and_are_validated() {
    let opts = Options::default();
    assert_eq!((opts.poll, opts.batch), (Duration::from_millis(500), 16));
    assert!(opts.validate().is_ok());
    for (bad, key) in [
        (
            Options {
                poll: Duration::ZERO,
                ..Options::default()
            },
            "fulfillment.poll",
        ),
        (
            Options {
                batch: 0,
                ..Options::default()
            },
            "fulfillment.batch",
        ),
    ] {
        let err = bad.validate().unwrap_err().to_string();
        assert!(err.contains(key), "{err}");
    }
}
