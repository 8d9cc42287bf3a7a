//! Tests of notification's pure rules: how a contact follows identity, the
//! text of each message and the retry schedule of a delivery.

use std::time::Duration;

use super::*;

fn amount(amount: i64, currency: &str) -> Amount {
    Amount {
        amount,
        currency: currency.into(),
    }
}

fn contact(name: &str) -> Contact {
    Contact {
        customer_id: "c-1".into(),
        email: "alice@example.com".into(),
        name: name.into(),
    }
}

const INVOICE: &str = "0190a6f2-7c1e-7d3a-9b2c-1234abcd5678";

fn line(sku: &str, quantity: u32, unit: i64, currency: &str) -> CreatedLine {
    CreatedLine {
        sku: sku.into(),
        quantity,
        unit_price: amount(unit, currency),
        line_total: amount(unit * i64::from(quantity), currency),
        name: None,
    }
}

fn created() -> InvoiceCreated {
    InvoiceCreated {
        invoice_id: INVOICE.into(),
        customer_id: "c-1".into(),
        lines: vec![line("TEA-1", 2, 450, "EUR"), line("MUG", 1, 350, "EUR")],
        total: amount(1250, "EUR"),
    }
}

fn paid() -> InvoicePaid {
    InvoicePaid {
        invoice_id: INVOICE.into(),
        customer_id: "c-1".into(),
        payment_id: "p-77".into(),
        amount: amount(1250, "EUR"),
    }
}

#[test]
fn invoice_created_lists_every_line_and_the_total() {
    let draft = invoice_created(&contact("Alice"), &created()).unwrap();

    assert_eq!(draft.subject, "Invoice abcd5678 for 12.50 EUR");
    assert_eq!(
        draft.body,
        "Hello Alice,\n\
         \n\
         your invoice abcd5678 is ready:\n\
         \n\
         \x20 2 x TEA-1 at 4.50 EUR = 9.00 EUR\n\
         \x20 1 x MUG at 3.50 EUR = 3.50 EUR\n\
         \n\
         Total: 12.50 EUR\n\
         \n\
         Invoice id: 0190a6f2-7c1e-7d3a-9b2c-1234abcd5678\n\
         \n\
         -- \n\
         Seams Shop\n"
    );
}

#[test]
fn invoice_paid_is_a_receipt_naming_the_payment() {
    let draft = invoice_paid(&contact("Alice"), &paid()).unwrap();

    assert_eq!(draft.subject, "Payment received for invoice abcd5678");
    assert!(
        draft.body.starts_with(
            "Hello Alice,\n\nwe received your payment of 12.50 EUR for invoice abcd5678."
        ),
        "{}",
        draft.body
    );
    assert!(draft.body.contains(&format!("Invoice id: {INVOICE}\n")));
    assert!(draft.body.contains("Payment id: p-77\n"));
}

fn voided(reason: &str) -> InvoiceVoided {
    InvoiceVoided {
        invoice_id: INVOICE.into(),
        customer_id: "c-1".into(),
        reason: reason.into(),
    }
}

fn refunded(reason: &str) -> InvoiceRefunded {
    InvoiceRefunded {
        invoice_id: INVOICE.into(),
        customer_id: "c-1".into(),
        payment_id: "p-77".into(),
        amount: amount(1250, "EUR"),
        reason: reason.into(),
    }
}

fn dispatched() -> ShipmentDispatched {
    ShipmentDispatched {
        shipment_id: "s-9".into(),
        invoice_id: INVOICE.into(),
        customer_id: "c-1".into(),
        dispatched_at: "2026-01-02T10:00:00Z".into(),
    }
}

#[test]
fn a_new_email_readdresses_the_contact_and_keeps_the_rest() {
    let before = contact("Alice");
    let after = before.with_email(&CustomerEmailChanged {
        customer_id: "c-1".into(),
        email: "alice@example.org".into(),
    });
    assert_eq!(
        after,
        Contact {
            email: "alice@example.org".into(),
            ..before
        }
    );
}

#[test]
fn invoice_voided_says_it_is_cancelled_and_why() {
    let draft = invoice_voided(&contact("Alice"), &voided("out-of-stock"));

    assert_eq!(draft.subject, "Invoice abcd5678 cancelled");
    assert_eq!(
        draft.body,
        "Hello Alice,\n\
         \n\
         your invoice abcd5678 has been cancelled: some of its items are out of stock. \
         It can no longer be paid, and nothing was charged.\n\
         \n\
         Invoice id: 0190a6f2-7c1e-7d3a-9b2c-1234abcd5678\n\
         \n\
         -- \n\
         Seams Shop\n"
    );
}

#[test]
fn invoice_refunded_names_the_amount_the_payment_and_why() {
    let draft = invoice_refunded(&contact("Alice"), &refunded("out-of-stock")).unwrap();

    assert_eq!(draft.subject, "Refund of 12.50 EUR for invoice abcd5678");
    assert!(
        draft.body.starts_with(
            "Hello Alice,\n\nwe refunded your payment of 12.50 EUR for invoice abcd5678: \
             some of its items are out of stock.\n\n"
        ),
        "{}",
        draft.body
    );
    assert!(draft.body.contains(&format!("Invoice id: {INVOICE}\n")));
    assert!(draft.body.contains("Payment id: p-77\n"));
    assert!(draft.body.ends_with(SIGNATURE));
}

#[test]
fn reasons_are_phrased_for_people_and_unknown_ones_still_shown() {
    let cases = [
        ("out-of-stock", "some of its items are out of stock"),
        (" out-of-stock ", "some of its items are out of stock"),
        ("customer-request", "customer request"),
        ("", "no reason was given"),
        ("  ", "no reason was given"),
    ];
    for (code, phrase) in cases {
        let draft = invoice_voided(&contact("A"), &voided(code));
        assert!(
            draft.body.contains(&format!("cancelled: {phrase}. ")),
            "{code:?}: {}",
            draft.body
        );
        let draft = invoice_refunded(&contact("A"), &refunded(code)).unwrap();
        assert!(
            draft.body.contains(&format!("abcd5678: {phrase}.\n")),
            "{code:?}: {}",
            draft.body
        );
    }
}

#[test]
fn shipment_dispatched_says_the_invoice_has_shipped() {
    let draft = shipment_dispatched(&contact("Alice"), &dispatched());

    assert_eq!(draft.subject, "Invoice abcd5678 has shipped");
    assert_eq!(
        draft.body,
        "Hello Alice,\n\
         \n\
         the items of invoice abcd5678 are on their way.\n\
         \n\
         Invoice id: 0190a6f2-7c1e-7d3a-9b2c-1234abcd5678\n\
         Shipment id: s-9\n\
         Dispatched at: 2026-01-02T10:00:00Z\n\
         \n\
         -- \n\
         Seams Shop\n"
    );
}

#[test]
fn amounts_use_their_currency_s_decimals() {
    let cases: &[(i64, &str, &str)] = &[
        (1250, "EUR", "12.50 EUR"),
        (5, "EUR", "0.05 EUR"),
        (0, "USD", "0.00 USD"),
        (1250, "JPY", "1250 JPY"),
        (1234, "BHD", "1.234 BHD"),
    ];
    for (minor, currency, shown) in cases {
        let ev = InvoicePaid {
            amount: amount(*minor, currency),
            ..paid()
        };
        let draft = invoice_paid(&contact("Alice"), &ev).unwrap();
        assert!(
            draft.body.contains(&format!("payment of {shown} for")),
            "{minor} {currency}: {}",
            draft.body
        );
    }
}

#[test]
fn a_blank_name_gets_a_plain_greeting() {
    for name in ["", "   "] {
        let draft = invoice_paid(&contact(name), &paid()).unwrap();
        assert!(
            draft.body.starts_with("Hello,\n\n"),
            "{name:?}: {}",
            draft.body
        );
    }
}

#[test]
fn an_amount_billing_should_never_send_is_unrenderable() {
    let mut bad_total = created();
    bad_total.total = amount(1250, "EURO");
    let mut bad_line = created();
    bad_line.lines[1].unit_price = amount(-350, "EUR");
    let bad_paid = InvoicePaid {
        amount: amount(1, "eur"),
        ..paid()
    };

    let err = invoice_created(&contact("A"), &bad_total).unwrap_err();
    assert!(err.0.starts_with("total:"), "{err}");
    let err = invoice_created(&contact("A"), &bad_line).unwrap_err();
    assert!(err.0.starts_with("unit_price:"), "{err}");
    let err = invoice_paid(&contact("A"), &bad_paid).unwrap_err();
    assert!(err.0.starts_with("amount:"), "{err}");
    let bad_refund = InvoiceRefunded {
        amount: amount(-1250, "EUR"),
        ..refunded("out-of-stock")
    };
    let err = invoice_refunded(&contact("A"), &bad_refund).unwrap_err();
    assert!(err.0.starts_with("amount:"), "{err}");
}

#[test]
fn short_ids_are_the_random_tail_of_the_id() {
    let cases = [
        (INVOICE, "abcd5678"),
        // Two UUID v7 made in the same minute share their head, not their tail.
        ("0190a6f2-7c1e-7d3a-9b2c-00000000beef", "0000beef"),
        ("abc", "abc"),
        ("", ""),
    ];
    for (id, short) in cases {
        assert_eq!(short_id(id), short, "{id}");
    }
}

#[test]
fn a_new_delivery_is_pending_and_due_at_once() {
    let ctx = seams_core::CallContext::new_root();
    let env = Envelope::wrap(&paid(), "e-1".into(), "2026-01-01T00:00:00Z".into(), &ctx).unwrap();
    let draft = invoice_paid(&contact("Alice"), &paid()).unwrap();

    let d = Delivery::pending(
        "d-1".into(),
        &env,
        "maildir",
        &contact("Alice"),
        draft.clone(),
        1_000,
        "2026-01-01T00:00:01Z".into(),
    );

    assert_eq!(
        (d.status, d.attempts, d.next_attempt_at_ms),
        (Status::Pending, 0, 1_000)
    );
    assert_eq!(
        (d.event_id.as_str(), d.event_type.as_str()),
        ("e-1", "billing.invoice-paid")
    );
    // The sender's log lines name the work that caused the message.
    assert_eq!(
        d.correlation_id.as_deref(),
        Some(ctx.correlation_id.as_str())
    );
    assert_eq!(d.trace_id, Some(ctx.trace.trace_id_hex()));
    assert_eq!(
        (d.recipient.as_str(), d.recipient_name.as_str()),
        ("alice@example.com", "Alice")
    );
    assert_eq!((d.subject, d.body), (draft.subject, draft.body));
    assert_eq!((d.last_error, d.delivered_at), (None, None));
}

#[test]
fn transient_failures_back_off_doubling_then_give_up() {
    let policy = RetryPolicy {
        max_attempts: 10,
        initial_backoff: Duration::from_millis(200),
        max_backoff: Duration::from_secs(30),
    };
    let now = 1_000_000;
    let waits: Vec<Option<i64>> = (1..=10)
        .map(
            |n| match after_attempt(&policy, n, Attempt::Transient("down".into()), now) {
                Next::Retry { at_ms, error } => {
                    assert_eq!(error, "down");
                    Some(at_ms - now)
                }
                Next::Failed { .. } => None,
                Next::Delivered => panic!("a failure is not a delivery"),
            },
        )
        .collect();
    assert_eq!(
        waits,
        [
            Some(200),
            Some(400),
            Some(800),
            Some(1_600),
            Some(3_200),
            Some(6_400),
            Some(12_800),
            Some(25_600),
            Some(30_000),
            None
        ]
    );
    assert_eq!(
        after_attempt(&policy, 10, Attempt::Transient("down".into()), now),
        Next::Failed {
            error: "gave up after 10 attempts: down".into()
        }
    );
}

#[test]
fn permanent_failures_give_up_at_once_and_success_is_final() {
    let policy = RetryPolicy {
        max_attempts: 10,
        initial_backoff: Duration::from_millis(200),
        max_backoff: Duration::from_secs(30),
    };
    assert_eq!(
        after_attempt(&policy, 1, Attempt::Permanent("no such user".into()), 0),
        Next::Failed {
            error: "no such user".into()
        }
    );
    assert_eq!(
        after_attempt(&policy, 9, Attempt::Delivered, 0),
        Next::Delivered
    );
}

#[test]
fn statuses_round_trip_through_their_stored_form() {
    for status in [Status::Pending, Status::Delivered, Status::Failed] {
        assert_eq!(Status::parse(status.as_str()), Some(status));
    }
    assert_eq!(Status::parse("sent"), None);
}
