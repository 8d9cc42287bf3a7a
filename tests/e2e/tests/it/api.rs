//! The public API over a real socket: documents, health, and the error
//! shapes every client meets before reaching a capability.

use e2e::{Mode, Shop};
use reqwest::StatusCode;
use serde_json::json;

#[tokio::test]
async fn documents_health_and_edge_errors() {
    let shop = Shop::start(Mode::Monolith).unwrap();
    assert_eq!(shop.get("/healthz").await.unwrap().status, StatusCode::OK);
    let ready = shop.get("/readyz").await.unwrap();
    assert_eq!(
        (ready.status, &ready.json["status"]),
        (StatusCode::OK, &json!("ready"))
    );

    let doc = shop.get("/openapi.json").await.unwrap();
    assert_eq!(doc.status, StatusCode::OK);
    let paths = doc.json["paths"].as_object().unwrap();
    for p in [
        "/identity/customers",
        "/identity/customers/{id}",
        "/catalog/products",
        "/catalog/products/{sku}",
        "/billing/invoices",
        "/billing/invoices/{id}",
        "/billing/invoices/{id}/payments",
        "/notification/deliveries",
    ] {
        assert!(
            paths.contains_key(p),
            "OpenAPI lacks {p}: {:?}",
            paths.keys().collect::<Vec<_>>()
        );
    }
    let contracts = shop.get("/_seams/contracts").await.unwrap();
    assert!(contracts.json.as_array().unwrap().len() >= 8);

    let r = shop.get("/nowhere").await.unwrap();
    assert_eq!(
        (r.status, r.problem_type()),
        (StatusCode::NOT_FOUND, "urn:seams:problem:not-found")
    );
    assert_eq!(r.headers["content-type"], "application/problem+json");
    let r = shop
        .post(
            "/billing/invoices",
            &json!({ "customer_id": "x", "lines": [] }),
            None,
        )
        .await
        .unwrap();
    assert_eq!(r.status, StatusCode::PRECONDITION_REQUIRED);
    let big = json!({ "email": "a@b.co", "name": "x".repeat(100 * 1024) });
    let r = shop.post("/identity/customers", &big, None).await.unwrap();
    assert_eq!(
        (r.status, r.problem_type()),
        (
            StatusCode::PAYLOAD_TOO_LARGE,
            "urn:seams:problem:body-too-large"
        )
    );
    let r = shop
        .post(
            "/identity/customers",
            &json!({ "email": "not-an-email", "name": "x" }),
            None,
        )
        .await
        .unwrap();
    assert_eq!(
        (r.status, &r.json["field"]),
        (StatusCode::UNPROCESSABLE_ENTITY, &json!("email"))
    );
}

#[tokio::test]
async fn correlation_ids_are_accepted_and_echoed() {
    let shop = Shop::start(Mode::Monolith).unwrap();
    let r = shop
        .send(
            reqwest::Client::new()
                .get(format!("{}/healthz", shop.url()))
                .header("X-Correlation-Id", "order-42"),
        )
        .await
        .unwrap();
    assert_eq!(r.headers["x-correlation-id"], "order-42");
    let tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    let r = shop
        .send(
            reqwest::Client::new()
                .get(format!("{}/healthz", shop.url()))
                .header("traceparent", tp),
        )
        .await
        .unwrap();
    assert_eq!(
        r.headers["x-correlation-id"],
        "4bf92f3577b34da6a3ce929d0e0e4736"
    );
    assert!(
        r.headers["traceparent"]
            .to_str()
            .unwrap()
            .starts_with("00-4bf92f3577b34da6a3ce929d0e0e4736-")
    );
}
