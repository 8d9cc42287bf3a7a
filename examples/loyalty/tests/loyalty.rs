//! Loyalty against a real SQLite file: billing's payments come from a
//! stand-in producer through the framework's relay, balances are read
//! through the public route as a client would.

use billing_contract::InvoicePaid;
use catalog_contract::Amount;
use loyalty_contract::PointsAwarded;
use seams_runtime::{Runtime, SystemOptions};
use seams_testkit::consumer::Harness;
use seams_testkit::oneshot::App;
use serde_json::json;

struct World {
    _dir: tempfile::TempDir,
    billing: Harness,
    app: App,
}

async fn world() -> World {
    let dir = tempfile::tempdir().unwrap();
    let env = Runtime::new(SystemOptions::default()).env(dir.path());
    let mut c = loyalty::component(&env).await.unwrap();
    let billing = Harness::new(c.subscriptions.remove(0), c.db.clone())
        .await
        .unwrap();
    let app = App::new(loyalty::NAME, c.routes);
    World {
        _dir: dir,
        billing,
        app,
    }
}

fn paid(invoice_id: &str, customer_id: &str, minor_units: i64) -> InvoicePaid {
    InvoicePaid {
        invoice_id: invoice_id.into(),
        customer_id: customer_id.into(),
        payment_id: format!("pay-{invoice_id}"),
        amount: Amount {
            amount: minor_units,
            currency: "EUR".into(),
        },
    }
}

async fn points(w: &World, customer_id: &str) -> serde_json::Value {
    let reply = w
        .app
        .as_staff()
        .get(&format!("/loyalty/balances/{customer_id}"))
        .await;
    assert_eq!(reply.status, 200, "{:?}", reply.json);
    reply.json["points"].clone()
}

#[tokio::test]
async fn a_paid_invoice_awards_its_points_once_and_announces_the_balance() {
    let w = world().await;
    let first = w
        .billing
        .publish(&paid("inv-1", "c-1", 1250))
        .await
        .unwrap();
    w.billing
        .publish(&paid("inv-2", "c-1", 3000))
        .await
        .unwrap();
    assert_eq!(w.billing.deliver().await.unwrap(), 2);
    w.billing.redeliver(&first).await.unwrap();
    assert_eq!(points(&w, "c-1").await, json!(42));

    let published = w.billing.published().await.unwrap();
    let awarded: Vec<PointsAwarded> = published.iter().map(|e| e.decode(&[1]).unwrap()).collect();
    assert_eq!(awarded.len(), 2, "the redelivery published nothing");
    assert_eq!((awarded[0].points, awarded[0].balance), (12, 12));
    assert_eq!((awarded[1].points, awarded[1].balance), (30, 42));
    assert_eq!(published[1].subject, "c-1", "ordered per customer");
    assert_eq!(published[0].causationid.as_deref(), Some(first.id.as_str()));
}

#[tokio::test]
async fn a_payment_under_a_point_is_applied_and_changes_nothing() {
    let w = world().await;
    let sent = w.billing.publish(&paid("inv-1", "c-1", 99)).await.unwrap();
    assert_eq!(w.billing.deliver().await.unwrap(), 1);
    assert!(w.billing.applied(&sent).await.unwrap());
    assert!(w.billing.published().await.unwrap().is_empty());
    assert_eq!(points(&w, "c-1").await, json!(0));
    assert!(w.billing.dead_letters().await.unwrap().is_empty());
}

#[tokio::test]
async fn only_staff_and_the_customer_themselves_read_a_balance() {
    let w = world().await;
    w.billing.publish(&paid("inv-1", "c-1", 500)).await.unwrap();
    w.billing.deliver().await.unwrap();
    let path = "/loyalty/balances/c-1";

    let own = w.app.as_customer("c-1").get(path).await;
    assert_eq!(
        (own.status.as_u16(), &own.json),
        (200, &json!({"customer_id": "c-1", "points": 5}))
    );
    let other = w.app.as_customer("c-2").get(path).await;
    assert_eq!(
        (other.status.as_u16(), other.problem_type()),
        (403, "urn:seams:problem:forbidden")
    );
    assert_eq!(w.app.anonymous().get(path).await.status, 401);
    assert_eq!(w.app.as_operator().get(path).await.status, 403);
    assert_eq!(w.app.as_staff().get("/loyalty/balances/").await.status, 404);
}
