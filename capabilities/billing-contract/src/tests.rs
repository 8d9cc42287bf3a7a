//! `invoice-created` across its two versions: written as v1 it loses only
//! the lines' names, and a v1 payload reads as v2 naming nothing.

use seams_core::{CallContext, Envelope};

use super::*;

fn created() -> InvoiceCreated {
    let eur = |amount| Amount {
        amount,
        currency: "EUR".into(),
    };
    InvoiceCreated {
        invoice_id: "inv-1".into(),
        customer_id: "c-1".into(),
        lines: vec![
            CreatedLine {
                sku: "TEA".into(),
                quantity: 2,
                unit_price: eur(450),
                line_total: eur(900),
                name: Some("Green tea".into()),
            },
            CreatedLine {
                sku: "MUG".into(),
                quantity: 1,
                unit_price: eur(1200),
                line_total: eur(1200),
                name: Some("Mug".into()),
            },
        ],
        total: eur(2100),
    }
}

#[test]
fn written_as_v1_the_lines_lose_their_names_and_nothing_else() {
    let env = Envelope::wrap(
        &created(),
        "e-1".into(),
        "t".into(),
        &CallContext::new_root(),
    )
    .unwrap();
    assert_eq!(env.dataversion, 2);
    let v1 = env.written_as(&INVOICE_CREATED, &[1]).unwrap();
    assert_eq!(v1.dataversion, 1);
    let mut expected = serde_json::to_value(created()).unwrap();
    for line in expected["lines"].as_array_mut().unwrap() {
        line.as_object_mut().unwrap().remove("name");
    }
    assert_eq!(v1.data.to_value().unwrap(), expected);
    // Read back by a v2 consumer: the same invoice, naming nothing.
    let read: InvoiceCreated = v1.decode(&[1, 2]).unwrap();
    let mut unnamed = created();
    unnamed.lines.iter_mut().for_each(|l| l.name = None);
    assert_eq!(read, unnamed);
    // A v1-only consumer of both versions in one event reads v1; a v2 one, v2.
    let both = env.written_as(&INVOICE_CREATED, &[1, 2]).unwrap();
    assert_eq!(both.decode::<InvoiceCreated>(&[1]).unwrap(), unnamed);
    assert_eq!(both.decode::<InvoiceCreated>(&[1, 2]).unwrap(), created());
}

#[test]
fn only_versions_one_and_two_exist() {
    assert_eq!(
        invoice_created_as(2, serde_json::json!({"lines": []})),
        None
    );
    assert_eq!(
        invoice_created_as(1, serde_json::json!({})),
        None,
        "no lines"
    );
    assert_eq!(
        invoice_created_as(1, serde_json::json!({"lines": [{"sku": "A", "name": "a"}]})),
        Some(serde_json::json!({"lines": [{"sku": "A"}]}))
    );
    let payload = serde_json::to_value(created()).unwrap();
    assert_eq!(InvoiceCreated::upcast(2, payload.clone()).unwrap(), payload);
    assert_eq!(InvoiceCreated::upcast(1, payload.clone()).unwrap(), payload);
    assert!(matches!(
        InvoiceCreated::upcast(3, payload),
        Err(DecodeError::NoUpcaster { version: 3, .. })
    ));
}
