//! Who may do what with invoices: a customer bills and pays only themself
//! and sees only their own invoices, staff read any and pay none, and an
//! idempotency key belongs to the caller who sent it.

use axum::http::StatusCode;
use serde_json::json;

use super::{cart, world};

#[tokio::test]
async fn a_customer_invoices_only_themself() {
    let w = world().await;
    // Ada (cust-1) billing Bob (cust-2) is refused outright, and writes nothing.
    let bobs_cart = json!({ "customer_id": "cust-2", "lines": [{ "sku": "TEA", "quantity": 1 }] });
    let r = w.create("k-1", &bobs_cart).await;
    assert_eq!(
        (r.status, r.problem_type()),
        (StatusCode::FORBIDDEN, "urn:seams:problem:forbidden"),
        "{}",
        r.json
    );
    // Staff and operators create no invoices; nobody at all is not let in.
    for (app, status) in [
        (w.app.as_staff(), StatusCode::FORBIDDEN),
        (w.app.as_operator(), StatusCode::FORBIDDEN),
        (w.app.anonymous(), StatusCode::UNAUTHORIZED),
    ] {
        let r = app
            .post("/billing/invoices", &cart(), &[("idempotency-key", "k-2")])
            .await;
        assert_eq!(r.status, status, "{}", r.json);
    }
    assert_eq!(w.count("invoices").await, 0);
    assert!(w.events().await.is_empty());
}

#[tokio::test]
async fn another_customer_s_invoice_is_not_found_and_cannot_be_paid() {
    let w = world().await;
    let id = w.invoice("ada-1").await;
    let path = format!("/billing/invoices/{id}");
    let bob = w.app.as_customer("cust-2");
    let r = bob.get(&path).await;
    assert_eq!(
        (r.status, r.problem_type()),
        (StatusCode::NOT_FOUND, "urn:seams:problem:invoice-not-found"),
        "as if it did not exist"
    );
    let r = bob
        .post(
            &format!("{path}/payments"),
            &json!({ "amount": { "amount": 2100, "currency": "EUR" } }),
            &[("idempotency-key", "bob-pays")],
        )
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "{}", r.json);
    assert_eq!(w.count("payments").await, 0);
    // Staff read any invoice, and pay none.
    let staff = w.app.as_staff();
    let r = staff.get(&path).await;
    assert_eq!((r.status, &r.json["id"]), (StatusCode::OK, &json!(id)));
    let r = staff
        .post(
            &format!("{path}/payments"),
            &json!({ "amount": { "amount": 2100, "currency": "EUR" } }),
            &[("idempotency-key", "staff-pays")],
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert_eq!(w.status(&id).await, "open");
}

#[tokio::test]
async fn an_idempotency_key_belongs_to_the_caller_who_sent_it() {
    let w = world().await;
    let ada = w.app.clone();
    let bob = w.app.as_customer("cust-2");
    let bobs_cart = json!({ "customer_id": "cust-2", "lines": [{ "sku": "MUG", "quantity": 1 }] });
    let adas = ada
        .post(
            "/billing/invoices",
            &cart(),
            &[("idempotency-key", "shared")],
        )
        .await;
    assert_eq!(adas.status, StatusCode::CREATED);
    // Bob's request under Ada's key is his own: not a replay of hers (which
    // would show him her invoice), nor a conflict with it.
    let bobs = bob
        .post(
            "/billing/invoices",
            &bobs_cart,
            &[("idempotency-key", "shared")],
        )
        .await;
    assert_eq!(bobs.status, StatusCode::CREATED, "{}", bobs.json);
    assert!(bobs.headers.get("idempotent-replayed").is_none());
    assert_ne!(bobs.json["id"], adas.json["id"]);
    assert_eq!(bobs.json["customer_id"], "cust-2");
    // And each one's replay is still their own.
    let again = ada
        .post(
            "/billing/invoices",
            &cart(),
            &[("idempotency-key", "shared")],
        )
        .await;
    assert_eq!(again.bytes, adas.bytes);
    assert_eq!(again.headers["idempotent-replayed"], "true");
    assert_eq!(w.count("invoices").await, 2);
}
