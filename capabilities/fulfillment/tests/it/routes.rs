//! The public routes: receiving stock as a keyed command (replays, reused
//! keys, concurrent retries), bad input that writes nothing, the stock
//! query, and the shipments query's answers to good and bad queries.

use axum::http::{Method, StatusCode};
use seams_testkit::oneshot::Reply;

use super::*;

impl World {
    async fn post_stock(&self, key: &str, body: &Value) -> Reply {
        self.app
            .post("/fulfillment/stock", body, &[("idempotency-key", key)])
            .await
    }
}

fn receipt(sku: &str, quantity: u32) -> Value {
    json!({ "sku": sku, "quantity": quantity })
}

#[tokio::test]
async fn receiving_stock_answers_the_level_after_receipt() {
    let w = world().await;

    let r = w.post_stock("k1", &receipt("TEA-1", 5)).await;

    assert_eq!(r.status, StatusCode::CREATED, "{}", r.json);
    assert_eq!(r.content_type(), "application/json");
    assert_eq!(
        r.json,
        json!({ "sku": "TEA-1", "on_hand": 5, "reserved": 0, "available": 5 })
    );
    let r = w.post_stock("k2", &receipt("TEA-1", 3)).await;
    assert_eq!(r.json["on_hand"], 8, "a second delivery adds up");
    assert_eq!(w.stock("TEA-1").await, (8, 0, 8));
    assert_eq!(w.stock("MUG").await, (0, 0, 0), "other SKUs untouched");
}

#[tokio::test]
async fn a_replay_returns_the_first_response_and_counts_once() {
    let w = world().await;
    let first = w.post_stock("k1", &receipt("TEA", 5)).await;
    w.receive("TEA", 1).await;

    let again = w.post_stock("k1", &receipt("TEA", 5)).await;

    assert_eq!((again.status, &again.bytes), (first.status, &first.bytes));
    assert_eq!(again.headers["idempotent-replayed"], "true");
    assert_eq!(w.stock("TEA").await, (6, 0, 6), "counted once");
    let r = w.post_stock("k1", &receipt("TEA", 7)).await;
    assert_eq!(
        (r.status, r.problem_type()),
        (
            StatusCode::UNPROCESSABLE_ENTITY,
            "urn:seams:problem:idempotency-key-reused"
        )
    );
    assert_eq!(w.stock("TEA").await, (6, 0, 6));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_receipts_with_one_key_count_once() {
    let w = world().await;
    let tasks: Vec<_> = (0..16)
        .map(|_| {
            let app = w.app.clone();
            tokio::spawn(async move {
                app.post(
                    "/fulfillment/stock",
                    &receipt("TEA", 5),
                    &[("idempotency-key", "same")],
                )
                .await
            })
        })
        .collect();
    let mut bodies = Vec::new();
    for t in tasks {
        let r = t.await.unwrap();
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.json);
        bodies.push(r.bytes);
    }
    assert!(
        bodies.windows(2).all(|b| b[0] == b[1]),
        "every answer is the one recorded response"
    );
    assert_eq!(w.stock("TEA").await, (5, 0, 5));
}

#[tokio::test]
async fn keys_are_required_and_validated() {
    let w = world().await;
    let r = w
        .app
        .post("/fulfillment/stock", &receipt("TEA", 5), &[])
        .await;
    assert_eq!(
        (r.status, r.problem_type()),
        (
            StatusCode::PRECONDITION_REQUIRED,
            "urn:seams:problem:idempotency-key-required"
        )
    );
    let r = w.post_stock(&"k".repeat(256), &receipt("TEA", 5)).await;
    assert_eq!(
        (r.status, r.problem_type()),
        (
            StatusCode::BAD_REQUEST,
            "urn:seams:problem:invalid-idempotency-key"
        )
    );
    assert_eq!(w.count("stock").await, 0);
}

#[tokio::test]
async fn bad_receipts_are_problems_and_write_nothing() {
    let w = world().await;
    let long = "x".repeat(65);
    let invalid = [
        (receipt("", 1), "sku"),
        (receipt("TEA 1", 1), "sku"),
        (receipt("TEA/1", 1), "sku"),
        (receipt(&long, 1), "sku"),
        (receipt("TEA", 0), "quantity"),
        (receipt("TEA", 1_000_001), "quantity"),
    ];
    for (i, (body, field)) in invalid.iter().enumerate() {
        let r = w.post_stock(&format!("bad-{i}"), body).await;
        assert_eq!(
            (r.status, r.problem_type(), r.json["field"].as_str()),
            (
                StatusCode::UNPROCESSABLE_ENTITY,
                "urn:seams:problem:invalid-field",
                Some(*field)
            ),
            "{body}: {}",
            r.json
        );
    }
    let shapes = [
        (
            json!({ "sku": "TEA", "quantity": 1, "colour": "green" }),
            "colour",
        ),
        (json!({ "sku": "TEA", "quantity": -1 }), "quantity"),
        (json!({ "sku": "TEA", "quantity": "2" }), "quantity"),
        (json!({ "quantity": 2 }), "sku"),
    ];
    for (i, (body, field)) in shapes.iter().enumerate() {
        let r = w.post_stock(&format!("shape-{i}"), body).await;
        assert_eq!(
            (r.status, r.problem_type()),
            (
                StatusCode::UNPROCESSABLE_ENTITY,
                "urn:seams:problem:invalid-body"
            ),
            "{body}: {}",
            r.json
        );
        assert_eq!(r.json["field"], *field, "{body}: {}", r.json);
    }
    let r = w
        .app
        .post_raw("/fulfillment/stock", "{nope", &[("idempotency-key", "m")])
        .await;
    assert_eq!(
        (r.status, r.problem_type()),
        (StatusCode::BAD_REQUEST, "urn:seams:problem:malformed-json")
    );
    let big = format!("{{\"sku\":\"{}\",\"quantity\":1}}", "x".repeat(65 * 1024));
    let r = w
        .app
        .post_raw("/fulfillment/stock", big, &[("idempotency-key", "big")])
        .await;
    assert_eq!(
        (r.status, r.problem_type()),
        (
            StatusCode::PAYLOAD_TOO_LARGE,
            "urn:seams:problem:body-too-large"
        )
    );

    assert_eq!(
        (w.count("stock").await, w.count("seams_idempotency").await),
        (0, 0),
        "nothing stored, no response recorded"
    );
    // A refused request does not use up its key.
    let r = w.post_stock("bad-4", &receipt("TEA", 2)).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.json);
}

#[tokio::test]
async fn a_sku_never_received_has_zero_stock_and_a_non_sku_is_400() {
    let w = world().await;

    let r = w.app.get("/fulfillment/stock/NEVER-SEEN").await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(
        r.json,
        json!({ "sku": "NEVER-SEEN", "on_hand": 0, "reserved": 0, "available": 0 })
    );

    let r = w.app.get("/fulfillment/stock/TEA%201").await;
    assert_eq!(
        (r.status, r.problem_type(), r.json["field"].as_str()),
        (
            StatusCode::BAD_REQUEST,
            "urn:seams:problem:invalid-path",
            Some("sku")
        ),
        "{}",
        r.json
    );
    assert_eq!(w.count("stock").await, 0, "a query writes nothing");
}

#[tokio::test]
async fn an_invoice_without_shipments_lists_none() {
    let w = world().await;
    let r = w.app.get("/fulfillment/shipments?invoice_id=inv-1").await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.json, json!({ "shipments": [] }));
}

#[tokio::test]
async fn bad_shipment_queries_are_400_problems() {
    let w = world().await;
    let cases = [
        ("/fulfillment/shipments", "invoice_id"),
        ("/fulfillment/shipments?invoice_id=", "invoice_id"),
        // Unknown parameters are rejected, not ignored: a misspelt name
        // would otherwise look like an invoice with no shipment.
        ("/fulfillment/shipments?invoice-id=inv-1", "invoice-id"),
        (
            "/fulfillment/shipments?invoice_id=inv-1&status=created",
            "status",
        ),
    ];
    for (uri, mentioned) in cases {
        let r = w.app.get(uri).await;
        assert_eq!(
            (r.status, r.problem_type()),
            (StatusCode::BAD_REQUEST, "urn:seams:problem:invalid-query"),
            "{uri}: {}",
            r.json
        );
        assert_eq!(r.content_type(), "application/problem+json", "{uri}");
        assert!(
            r.json["detail"].as_str().unwrap_or("").contains(mentioned),
            "{uri}: {}",
            r.json
        );
    }
}

#[tokio::test]
async fn other_methods_are_problems() {
    let w = world().await;
    let r = w
        .app
        .send(Method::DELETE, "/fulfillment/stock/TEA", "", &[])
        .await;
    assert_eq!(
        (r.status, r.problem_type()),
        (
            StatusCode::METHOD_NOT_ALLOWED,
            "urn:seams:problem:method-not-allowed"
        )
    );
}

#[tokio::test]
async fn a_customer_sees_their_own_shipments_and_reads_stock_but_staff_receive_it() {
    let w = world().await;
    w.receive("TEA", 5).await;
    w.invoice_created("inv-1", &[("TEA", 1)]).await;
    w.invoice_paid("inv-1").await;
    w.deliver().await;
    let path = "/fulfillment/shipments?invoice_id=inv-1";
    // The invoices in these tests are c-1's.
    let r = w.app.as_customer("c-1").get(path).await;
    assert_eq!(
        r.json["shipments"].as_array().unwrap().len(),
        1,
        "{}",
        r.json
    );
    // To another customer, somebody else's invoice has no shipments: the
    // same answer as an unknown invoice, so ids cannot be probed.
    let r = w.app.as_customer("c-2").get(path).await;
    assert_eq!(
        (r.status, r.json.clone()),
        (StatusCode::OK, json!({ "shipments": [] }))
    );
    assert_eq!(
        w.app.anonymous().get(path).await.status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        w.app.as_operator().get(path).await.status,
        StatusCode::FORBIDDEN
    );

    // Customers see what is available, and receive nothing.
    let customer = w.app.as_customer("c-1");
    assert_eq!(
        customer.get("/fulfillment/stock/TEA").await.status,
        StatusCode::OK
    );
    let r = customer
        .post(
            "/fulfillment/stock",
            &receipt("TEA", 100),
            &[("idempotency-key", "c-1-stock")],
        )
        .await;
    assert_eq!(
        (r.status, r.problem_type()),
        (StatusCode::FORBIDDEN, "urn:seams:problem:forbidden")
    );
    assert_eq!(w.stock("TEA").await, (4, 0, 4), "unchanged");
}
