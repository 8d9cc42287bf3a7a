//! Fulfillment's decisions, table-driven, no I/O: receipts, the
//! all-or-nothing reservation, shipping and dispatching.

use std::time::Duration;

use catalog_contract::Amount;
use time::macros::datetime;

use super::*;

fn line(sku: &str, quantity: u32) -> CreatedLine {
    let eur = |amount| Amount {
        amount,
        currency: "EUR".into(),
    };
    CreatedLine {
        sku: sku.into(),
        quantity,
        unit_price: eur(100),
        line_total: eur(100 * i64::from(quantity)),
        name: None,
    }
}

fn level(sku: &str, on_hand: u64, reserved: u64) -> Level {
    Level {
        sku: sku.into(),
        on_hand,
        reserved,
    }
}

fn reserve(lines: &[(&str, u32)]) -> Decision {
    Decision::Reserve(
        lines
            .iter()
            .map(|(sku, quantity)| Line {
                sku: (*sku).into(),
                quantity: *quantity,
            })
            .collect(),
    )
}

fn short(shortages: &[(&str, u64, u64)]) -> Decision {
    Decision::Short(
        shortages
            .iter()
            .map(|(sku, requested, available)| Shortage {
                sku: (*sku).into(),
                requested: *requested,
                available: *available,
            })
            .collect(),
    )
}

#[test]
fn reservation_is_all_or_nothing() {
    // (invoice lines, stock levels, decision)
    let cases: Vec<(Vec<CreatedLine>, Vec<Level>, Decision)> = vec![
        // Enough of everything: one reservation line per SKU, in SKU order.
        (
            vec![line("TEA", 2), line("MUG", 1)],
            vec![level("TEA", 5, 0), level("MUG", 1, 0)],
            reserve(&[("MUG", 1), ("TEA", 2)]),
        ),
        // Exactly what is available, after other invoices' reservations.
        (
            vec![line("TEA", 3)],
            vec![level("TEA", 5, 2)],
            reserve(&[("TEA", 3)]),
        ),
        // Short on one SKU: nothing is reserved, and only that SKU is named.
        (
            vec![line("TEA", 2), line("MUG", 2)],
            vec![level("TEA", 5, 0), level("MUG", 3, 2)],
            short(&[("MUG", 2, 1)]),
        ),
        // The same SKU on two lines is summed: 2 + 2 > 3.
        (
            vec![line("TEA", 2), line("TEA", 2)],
            vec![level("TEA", 3, 0)],
            short(&[("TEA", 4, 3)]),
        ),
        // ... and reserved as one line when the sum fits.
        (
            vec![line("TEA", 2), line("MUG", 1), line("TEA", 1)],
            vec![level("TEA", 3, 0), level("MUG", 1, 0)],
            reserve(&[("MUG", 1), ("TEA", 3)]),
        ),
        // Zero stock, whether the row exists or the SKU was never received.
        (
            vec![line("TEA", 1), line("GHOST", 1)],
            vec![level("TEA", 4, 4)],
            short(&[("GHOST", 1, 0), ("TEA", 1, 0)]),
        ),
    ];
    for (lines, levels, expected) in cases {
        let demand = Demand::of(&lines).unwrap();
        assert_eq!(decide(&demand, &levels), expected, "{lines:?} / {levels:?}");
    }
}

#[test]
fn a_broken_invoice_is_refused_not_guessed_at() {
    assert_eq!(
        Demand::of(&[]),
        Err(BadInvoice("the invoice has no lines".into()))
    );
    assert_eq!(
        Demand::of(&[line("TEA", 1), line("MUG", 0)]),
        Err(BadInvoice("lines[1].quantity is 0".into()))
    );
    assert!(Demand::of(&[line("TEA", u32::MAX), line("TEA", 1)]).is_err());
    assert_eq!(
        Demand::of(&[line("TEA", 1), line("MUG", 1)])
            .unwrap()
            .skus(),
        ["MUG", "TEA"]
    );
}

#[test]
fn available_is_on_hand_minus_reserved_and_never_negative() {
    assert_eq!(level("TEA", 5, 3).available(), 2);
    assert_eq!(level("TEA", 5, 5).available(), 0);
    // Cannot be stored (a CHECK refuses it), and still reads as zero.
    assert_eq!(level("TEA", 1, 3).available(), 0);
    assert_eq!(Level::empty("TEA"), level("TEA", 0, 0));
}

#[test]
fn receipts_name_the_offending_field() {
    let long = "x".repeat(65);
    let cases: &[(&str, u32, Option<&str>)] = &[
        ("TEA-1_b.2", 1, None),
        ("TEA", MAX_QUANTITY, None),
        ("", 1, Some("sku")),
        (&long, 1, Some("sku")),
        ("TEA 1", 1, Some("sku")),
        ("TÉ", 1, Some("sku")),
        ("TEA", 0, Some("quantity")),
        ("TEA", MAX_QUANTITY + 1, Some("quantity")),
    ];
    for (sku, quantity, field) in cases {
        let cmd = ReceiveStock {
            sku: (*sku).into(),
            quantity: *quantity,
        };
        assert_eq!(
            Receipt::try_from(&cmd).err().map(|e| e.field),
            field.map(str::to_owned),
            "{cmd:?}"
        );
    }
    let ok = Receipt::try_from(&ReceiveStock {
        sku: "TEA".into(),
        quantity: 3,
    })
    .unwrap();
    assert_eq!((ok.sku.as_str(), ok.quantity), ("TEA", 3));
}

fn paid() -> InvoicePaid {
    InvoicePaid {
        invoice_id: "inv-1".into(),
        customer_id: "c-1".into(),
        payment_id: "p-1".into(),
        amount: Amount {
            amount: 300,
            currency: "EUR".into(),
        },
    }
}

#[test]
fn a_paid_invoice_ships_what_was_reserved_and_nothing_else() {
    assert_eq!(
        ship("s-1".into(), &paid(), Vec::new(), "t1".into(), "t0".into()),
        None,
        "nothing reserved (failed or released): nothing to ship"
    );
    let reserved = vec![Line {
        sku: "TEA".into(),
        quantity: 3,
    }];
    let (shipment, event) = ship(
        "s-1".into(),
        &paid(),
        reserved.clone(),
        "t1".into(),
        "t0".into(),
    )
    .unwrap();
    assert_eq!(
        shipment,
        Shipment {
            id: "s-1".into(),
            invoice_id: "inv-1".into(),
            customer_id: "c-1".into(),
            lines: reserved,
            status: Status::Created,
            created_at: "t1".into(),
            dispatched_at: None,
            paid_event_time: "t0".into(),
        }
    );
    assert_eq!(
        event,
        ShipmentCreated {
            shipment_id: "s-1".into(),
            invoice_id: "inv-1".into(),
            customer_id: "c-1".into(),
            lines: vec![ShipmentLine {
                sku: "TEA".into(),
                quantity: 3
            }],
        }
    );
}

#[test]
fn a_shipment_is_dispatched_once() {
    let (created, _) = ship(
        "s-1".into(),
        &paid(),
        vec![Line {
            sku: "TEA".into(),
            quantity: 1,
        }],
        "t1".into(),
        "t0".into(),
    )
    .unwrap();
    let (dispatched, event) = created.dispatch("t2".into()).unwrap();
    assert_eq!(
        (dispatched.status, dispatched.dispatched_at.as_deref()),
        (Status::Dispatched, Some("t2"))
    );
    assert_eq!(
        (event.shipment_id.as_str(), event.dispatched_at.as_str()),
        ("s-1", "t2")
    );
    assert_eq!(dispatched.dispatch("t3".into()), None);
    for status in [Status::Created, Status::Dispatched] {
        assert_eq!(Status::parse(status.as_str()), Some(status));
    }
    assert_eq!(Status::parse("lost"), None);
}

#[test]
fn the_dispatch_lag_is_measured_from_billings_commit() {
    let now = datetime!(2026-01-01 00:00:01.5 UTC);
    assert_eq!(
        lag_since("2026-01-01T00:00:00Z", now),
        Some(Duration::from_millis(1500))
    );
    assert_eq!(
        lag_since("2026-01-01T00:00:02Z", now),
        Some(Duration::ZERO),
        "a clock behind billing's is not a negative lag"
    );
    assert_eq!(lag_since("yesterday", now), None);
}

#[test]
fn the_document_states_the_receipt_rules() {
    let doc = serde_json::to_value(crate::http::openapi()).unwrap();
    let quantity = &doc["components"]["schemas"]["ReceiveStock"]["properties"]["quantity"];
    assert_eq!(quantity["minimum"], 1);
    assert_eq!(quantity["maximum"], MAX_QUANTITY);
    let sku = &doc["components"]["schemas"]["ReceiveStock"]["properties"]["sku"];
    assert_eq!(sku["maxLength"], 64);
    assert_eq!(sku["pattern"], "^[A-Za-z0-9._-]+$");
}
