//! Catalog against a real SQLite file, through its public routes and its
//! served `quote-prices` operation.

use axum::http::{Method, StatusCode};
use catalog_contract::{QuoteError, QuotePrices};
use seams_core::CallContext;
use seams_runtime::{Runtime, SystemOptions, inprocess::InProcess};
use seams_testkit::oneshot::App;
use serde_json::json;
use std::sync::Arc;

struct World {
    _dir: tempfile::TempDir,
    app: App,
    component: seams_runtime::Component,
}

async fn world() -> World {
    let dir = tempfile::tempdir().unwrap();
    let env = Runtime::new(SystemOptions::default()).env(dir.path());
    let component = catalog::component(&env).await.unwrap();
    // Staff keep the catalog; the tests act as staff unless they say otherwise.
    let app = App::new("catalog", component.routes.clone()).as_staff();
    World {
        _dir: dir,
        app,
        component,
    }
}

fn tea() -> serde_json::Value {
    json!({ "sku": "TEA-1", "name": "Green tea", "price": { "amount": 450, "currency": "EUR" } })
}

#[tokio::test]
async fn adds_and_gets_a_product_and_publishes_it() {
    let w = world().await;
    let r = w.app.post("/catalog/products", &tea(), &[]).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.json);
    assert_eq!(r.json, tea());
    let r = w.app.get("/catalog/products/TEA-1").await;
    assert_eq!((r.status, &r.json), (StatusCode::OK, &tea()));
    let feed = w.component.db.read_outbox(0, 10).await.unwrap();
    assert_eq!(feed.len(), 1);
    assert_eq!(feed[0].event_type, "catalog.product-added");
    assert_eq!(feed[0].subject, "TEA-1");
}

#[tokio::test]
async fn a_duplicate_sku_is_a_conflict_and_changes_nothing() {
    let w = world().await;
    w.app.post("/catalog/products", &tea(), &[]).await;
    let mut other = tea();
    other["name"] = json!("Other");
    let r = w.app.post("/catalog/products", &other, &[]).await;
    assert_eq!(r.status, StatusCode::CONFLICT);
    assert_eq!(r.problem_type(), "urn:seams:problem:duplicate-sku");
    assert_eq!(r.content_type(), "application/problem+json");
    assert_eq!(
        w.app.get("/catalog/products/TEA-1").await.json["name"],
        "Green tea"
    );
    assert_eq!(
        w.component.db.read_outbox(0, 10).await.unwrap().len(),
        1,
        "no second event"
    );
}

#[tokio::test]
async fn bad_input_is_a_problem_naming_the_field() {
    let w = world().await;
    let cases = [
        (
            json!({ "sku": "", "name": "x", "price": { "amount": 1, "currency": "EUR" } }),
            422,
            "invalid-field",
            Some("sku"),
        ),
        (
            json!({ "sku": "A", "name": "x", "price": { "amount": -5, "currency": "EUR" } }),
            422,
            "invalid-field",
            Some("price"),
        ),
        (
            json!({ "sku": "A", "name": "x", "price": { "amount": 5, "currency": "EURO" } }),
            422,
            "invalid-field",
            Some("price"),
        ),
        (
            json!({ "sku": "A", "name": "x", "price": { "amount": 1.5, "currency": "EUR" } }),
            422,
            "invalid-body",
            Some("price.amount"),
        ),
        (
            json!({ "sku": "A", "name": "x", "price": { "amount": 1, "currency": "EUR" }, "colour": "red" }),
            422,
            "invalid-body",
            Some("colour"),
        ),
        (
            json!({ "sku": "A", "name": "x" }),
            422,
            "invalid-body",
            Some("price"),
        ),
        (json!(["not", "an", "object"]), 422, "invalid-body", None),
    ];
    for (body, status, slug, field) in cases {
        let r = w.app.post("/catalog/products", &body, &[]).await;
        assert_eq!(r.status.as_u16(), status, "{body}: {}", r.json);
        assert_eq!(
            r.problem_type(),
            format!("urn:seams:problem:{slug}"),
            "{body}"
        );
        if let Some(field) = field {
            assert_eq!(r.json["field"], field, "{body}: {}", r.json);
        }
    }
    let r = w.app.post_raw("/catalog/products", "{\"sku\": ", &[]).await;
    assert_eq!(
        (r.status, r.problem_type()),
        (StatusCode::BAD_REQUEST, "urn:seams:problem:malformed-json")
    );
    let r = w
        .app
        .send(
            Method::POST,
            "/catalog/products",
            tea().to_string(),
            &[("content-type", "text/plain")],
        )
        .await;
    assert_eq!(r.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    let huge = json!({ "sku": "A", "name": "x".repeat(70 * 1024), "price": { "amount": 1, "currency": "EUR" } });
    let r = w.app.post("/catalog/products", &huge, &[]).await;
    assert_eq!(
        (r.status, r.problem_type()),
        (
            StatusCode::PAYLOAD_TOO_LARGE,
            "urn:seams:problem:body-too-large"
        )
    );
    assert!(
        w.component.db.read_outbox(0, 10).await.unwrap().is_empty(),
        "nothing half-applied"
    );
}

#[tokio::test]
async fn unknown_products_and_routes_are_404_problems() {
    let w = world().await;
    let r = w.app.get("/catalog/products/NOPE").await;
    assert_eq!(
        (r.status, r.problem_type()),
        (StatusCode::NOT_FOUND, "urn:seams:problem:product-not-found")
    );
    let r = w.app.get("/catalog/products/%ff%fe").await;
    assert_eq!(
        (r.status, r.problem_type()),
        (StatusCode::BAD_REQUEST, "urn:seams:problem:invalid-path")
    );
    let r = w.app.get("/catalog/nothing-here").await;
    assert_eq!(
        (r.status, r.problem_type()),
        (StatusCode::NOT_FOUND, "urn:seams:problem:not-found")
    );
    let r = w
        .app
        .send(Method::DELETE, "/catalog/products/TEA-1", "", &[])
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
async fn quotes_through_the_contract_client_or_names_unknown_skus() {
    let w = world().await;
    w.app.post("/catalog/products", &tea(), &[]).await;
    let transport = InProcess::new();
    for s in &w.component.serves {
        transport.register(s);
    }
    let client = seams_core::Client::new(Arc::new(transport));
    let ctx = CallContext::new_root();
    let skus = |s: &[&str]| QuotePrices {
        skus: s.iter().map(|s| (*s).to_owned()).collect(),
    };
    let quote = client.ask(skus(&["TEA-1", "TEA-1"]), &ctx).await.unwrap();
    assert_eq!(quote.prices.len(), 1);
    assert_eq!(quote.prices[0].unit_price.amount, 450);
    let err = client
        .ask(skus(&["TEA-1", "NOPE", "bad sku"]), &ctx)
        .await
        .unwrap_err();
    assert_eq!(
        err,
        QuoteError::UnknownSkus {
            skus: vec!["NOPE".into(), "bad sku".into()]
        }
    );
}

#[tokio::test]
async fn staff_keep_the_catalog_and_customers_only_read_it() {
    let w = world().await;
    let customer = w.app.as_customer("c-1");
    let r = customer.post("/catalog/products", &tea(), &[]).await;
    assert_eq!(
        (r.status, r.problem_type()),
        (StatusCode::FORBIDDEN, "urn:seams:problem:forbidden")
    );
    let r = w
        .app
        .anonymous()
        .post("/catalog/products", &tea(), &[])
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert_eq!(r.headers["www-authenticate"], r#"Bearer realm="seams""#);
    assert!(w.component.db.read_outbox(0, 10).await.unwrap().is_empty());

    assert_eq!(
        w.app.post("/catalog/products", &tea(), &[]).await.status,
        StatusCode::CREATED
    );
    let r = customer.get("/catalog/products/TEA-1").await;
    assert_eq!((r.status, r.json.clone()), (StatusCode::OK, tea()));
    assert_eq!(
        w.app
            .anonymous()
            .get("/catalog/products/TEA-1")
            .await
            .status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        w.app
            .as_operator()
            .get("/catalog/products/TEA-1")
            .await
            .status,
        StatusCode::FORBIDDEN
    );
}

/// `get_many` answers each existing product once, however often its SKU
/// is asked for, and leaves unknown SKUs out (SQLite reads it as a join
/// of the asked SKUs with the products, not an `IN` list).
#[tokio::test]
async fn get_many_answers_each_existing_product_once() {
    use catalog::domain::Sku;
    let w = world().await;
    w.app.post("/catalog/products", &tea(), &[]).await;
    let store = catalog::store::Store::new(w.component.db.clone());
    let asked = ["TEA-1", "NOPE-1", "TEA-1"].map(|s| Sku::parse(s).unwrap());
    let found = store.get_many(&asked).await.unwrap();
    let skus: Vec<&str> = found.iter().map(|p| p.sku.as_str()).collect();
    assert_eq!(skus, ["TEA-1"]);
    assert_eq!(found[0].price.minor, 450);
}
