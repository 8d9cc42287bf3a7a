//! Billing's decisions, table-driven, no I/O.

use catalog_contract::{Amount, Currency, Money, QuotedPrice};

use super::*;

fn price(sku: &str, amount: i64, currency: &str) -> QuotedPrice {
    QuotedPrice {
        sku: sku.into(),
        name: format!("{sku} (name)"),
        unit_price: Amount {
            amount,
            currency: currency.into(),
        },
    }
}

fn eur(minor: i64) -> Money {
    Money::new(minor, Currency::parse("EUR").unwrap()).unwrap()
}

fn cart(lines: &[(&str, u32)]) -> Result<Cart, Invalid> {
    let lines: Vec<(String, u32)> = lines.iter().map(|(s, q)| (s.to_string(), *q)).collect();
    Cart::parse("cust-1", &lines)
}

type CartCase<'a> = (&'a [(&'a str, u32)], Option<&'a str>);

#[test]
fn carts_name_the_offending_field() {
    let long = "x".repeat(65);
    let cases: &[CartCase] = &[
        (&[("TEA", 1)], None),
        (&[], Some("lines")),
        (&[("TEA", 0)], Some("lines[0].quantity")),
        (&[("TEA", 1), ("", 1)], Some("lines[1].sku")),
        (&[("TEA", 1), (&long, 1)], Some("lines[1].sku")),
        (&[("TEA", MAX_QUANTITY + 1)], Some("lines[0].quantity")),
    ];
    for (lines, field) in cases {
        assert_eq!(
            cart(lines).err().map(|e| e.field),
            field.map(str::to_owned),
            "{lines:?}"
        );
    }
    assert_eq!(
        Cart::parse(" ", &[("A".into(), 1)]).unwrap_err().field,
        "customer_id"
    );
    let many: Vec<(String, u32)> = (0..=MAX_LINES).map(|i| (format!("S{i}"), 1)).collect();
    assert_eq!(Cart::parse("c", &many).unwrap_err().field, "lines");
}

#[test]
fn invoices_are_priced_from_the_quote() {
    let c = cart(&[("TEA", 2), ("MUG", 1), ("TEA", 1)]).unwrap();
    assert_eq!(c.skus(), ["MUG", "TEA"]);
    let prices = [price("TEA", 450, "EUR"), price("MUG", 1200, "EUR")];
    let (inv, event) = Invoice::build("inv-1".into(), &c, &prices, "t".into()).unwrap();
    let totals: Vec<i64> = inv.lines.iter().map(|l| l.line_total.minor).collect();
    assert_eq!(totals, [900, 1200, 450]);
    assert_eq!(inv.total, eur(2550));
    assert_eq!(inv.status, Status::Open);
    assert!(inv.total_matches_lines());
    assert_eq!(event.total.amount, 2550);
    // The event names each line's product as quoted (version 2).
    let named: Vec<(&str, u32, i64, Option<&str>)> = event
        .lines
        .iter()
        .map(|l| {
            (
                l.sku.as_str(),
                l.quantity,
                l.line_total.amount,
                l.name.as_deref(),
            )
        })
        .collect();
    assert_eq!(
        named,
        [
            ("TEA", 2, 900, Some("TEA (name)")),
            ("MUG", 1, 1200, Some("MUG (name)")),
            ("TEA", 1, 450, Some("TEA (name)")),
        ]
    );
}

#[test]
fn pricing_refuses_mixed_currencies_missing_prices_and_overflow() {
    let c = cart(&[("TEA", 1), ("MUG", 1)]).unwrap();
    let mixed = [price("TEA", 450, "EUR"), price("MUG", 1200, "USD")];
    assert_eq!(
        Invoice::build("i".into(), &c, &mixed, "t".into())
            .unwrap_err()
            .field,
        "lines[1].sku"
    );
    let missing = [price("TEA", 450, "EUR")];
    assert_eq!(
        Invoice::build("i".into(), &c, &missing, "t".into())
            .unwrap_err()
            .field,
        "lines[1].sku"
    );
    let c = cart(&[("GOLD", MAX_QUANTITY)]).unwrap();
    let huge = [price("GOLD", i64::MAX / 2, "EUR")];
    assert_eq!(
        Invoice::build("i".into(), &c, &huge, "t".into())
            .unwrap_err()
            .field,
        "lines[0].quantity"
    );
}

#[test]
fn an_invoice_is_paid_once_in_full_in_its_currency() {
    let c = cart(&[("TEA", 2)]).unwrap();
    let (inv, _) =
        Invoice::build("inv-1".into(), &c, &[price("TEA", 450, "EUR")], "t".into()).unwrap();
    let usd = Money::new(900, Currency::parse("USD").unwrap()).unwrap();
    assert_eq!(
        inv.pay("p".into(), usd, "t".into()).unwrap_err(),
        PayError::WrongCurrency { expected: eur(900) }
    );
    assert_eq!(
        inv.pay("p".into(), eur(899), "t".into()).unwrap_err(),
        PayError::WrongAmount { expected: eur(900) }
    );
    let (paid, payment, event) = inv.pay("p".into(), eur(900), "t".into()).unwrap();
    assert_eq!(paid.status, Status::Paid);
    assert_eq!((payment.amount, event.payment_id.as_str()), (eur(900), "p"));
    assert_eq!(
        paid.pay("p2".into(), eur(900), "t".into()).unwrap_err(),
        PayError::AlreadyPaid
    );
}

/// An invoice of 900 EUR in `status`, and the payment a paid one has.
fn invoice_in(status: Status) -> (Invoice, Payment) {
    let c = cart(&[("TEA", 2)]).unwrap();
    let (inv, _) =
        Invoice::build("inv-1".into(), &c, &[price("TEA", 450, "EUR")], "t0".into()).unwrap();
    let payment = Payment {
        id: "pay-1".into(),
        invoice_id: "inv-1".into(),
        amount: eur(900),
        paid_at: "t1".into(),
    };
    (Invoice { status, ..inv }, payment)
}

/// What a compensation came to, without the values: `void`, `refund`, `nothing` or the error.
fn outcome(c: &Result<Compensation, CompensateError>) -> &'static str {
    match c {
        Ok(Compensation::Void(..)) => "void",
        Ok(Compensation::Refund(..)) => "refund",
        Ok(Compensation::Nothing) => "nothing",
        Err(CompensateError::PaymentMissing { .. }) => "payment-missing",
    }
}

#[test]
fn a_failed_invoice_is_compensated_by_its_status() {
    // (status, whether its payment is given, outcome, status after)
    let cases = [
        (Status::Open, false, "void", Some(Status::Voided)),
        (Status::Open, true, "void", Some(Status::Voided)),
        (Status::Paid, true, "refund", Some(Status::Refunded)),
        (Status::Paid, false, "payment-missing", None),
        (Status::Voided, false, "nothing", None),
        (Status::Voided, true, "nothing", None),
        (Status::Refunded, true, "nothing", None),
        (Status::Refunded, false, "nothing", None),
    ];
    for (status, with_payment, expected, after) in cases {
        let (inv, payment) = invoice_in(status);
        let res = inv.compensate(
            with_payment.then_some(&payment),
            "out-of-stock",
            "t2".into(),
            "ref-1".into(),
        );
        assert_eq!(
            outcome(&res),
            expected,
            "{status:?}, payment {with_payment}"
        );
        let got = match &res {
            Ok(Compensation::Void(inv, _)) | Ok(Compensation::Refund(inv, _, _)) => {
                Some(inv.status)
            }
            _ => None,
        };
        assert_eq!(got, after, "{status:?}");
    }
}

#[test]
fn voiding_keeps_the_invoice_and_says_why() {
    let (inv, _) = invoice_in(Status::Open);
    let Ok(Compensation::Void(voided, event)) =
        inv.compensate(None, "out-of-stock", "t2".into(), "ref-1".into())
    else {
        panic!("an open invoice is voided")
    };
    assert_eq!(
        voided,
        Invoice {
            status: Status::Voided,
            ..inv.clone()
        }
    );
    assert_eq!(
        event,
        InvoiceVoided {
            invoice_id: "inv-1".into(),
            customer_id: "cust-1".into(),
            reason: "out-of-stock".into(),
        }
    );
}

#[test]
fn refunding_returns_the_whole_payment() {
    let (inv, payment) = invoice_in(Status::Paid);
    let Ok(Compensation::Refund(refunded, refund, event)) =
        inv.compensate(Some(&payment), "out-of-stock", "t2".into(), "ref-1".into())
    else {
        panic!("a paid invoice is refunded")
    };
    assert_eq!(refunded.status, Status::Refunded);
    assert_eq!(
        refund,
        Refund {
            id: "ref-1".into(),
            invoice_id: "inv-1".into(),
            payment_id: "pay-1".into(),
            amount: eur(900),
            reason: "out-of-stock".into(),
            created_at: "t2".into(),
        }
    );
    assert_eq!(
        (
            event.payment_id.as_str(),
            event.amount.amount,
            event.amount.currency.as_str(),
            event.reason.as_str(),
            event.customer_id.as_str()
        ),
        ("pay-1", 900, "EUR", "out-of-stock", "cust-1")
    );
    let other = Payment {
        invoice_id: "inv-2".into(),
        ..payment
    };
    assert_eq!(
        inv.compensate(Some(&other), "out-of-stock", "t2".into(), "ref-1".into()),
        Err(CompensateError::PaymentMissing {
            invoice_id: "inv-1".into()
        }),
        "another invoice's payment is not this one's"
    );
}

#[test]
fn only_an_open_invoice_can_be_paid() {
    let cases = [
        (Status::Open, None),
        (Status::Paid, Some(PayError::AlreadyPaid)),
        (Status::Refunded, Some(PayError::AlreadyPaid)),
        (Status::Voided, Some(PayError::Voided)),
    ];
    for (status, expected) in cases {
        let (inv, _) = invoice_in(status);
        assert_eq!(
            inv.pay("p".into(), eur(900), "t".into()).err(),
            expected,
            "{status:?}"
        );
    }
}

#[test]
fn statuses_round_trip_through_their_stored_form() {
    for status in [Status::Open, Status::Paid, Status::Voided, Status::Refunded] {
        assert_eq!(Status::parse(status.as_str()), Some(status));
    }
    assert_eq!(Status::parse("cancelled"), None);
}

#[test]
fn the_document_states_the_cart_rules() {
    let doc = serde_json::to_value(crate::http::openapi()).unwrap();
    let schemas = &doc["components"]["schemas"];
    let lines = &schemas["CreateInvoice"]["properties"]["lines"];
    assert_eq!(lines["minItems"], 1);
    assert_eq!(lines["maxItems"], MAX_LINES);
    let quantity = &schemas["CartLine"]["properties"]["quantity"];
    assert_eq!(quantity["minimum"], 1);
    assert_eq!(quantity["maximum"], MAX_QUANTITY);
}
