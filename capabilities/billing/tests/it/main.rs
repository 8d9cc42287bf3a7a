//! Billing against a real SQLite file, through its public routes. Catalog
//! and identity are played by operations served in-process with the
//! contracts' types (their own suites test the real ones; the end-to-end
//! suite tests them together). Fulfillment is played by a stand-in database
//! the tests publish `fulfillment-failed` into; the framework's relay
//! delivers it to billing.

mod access;
mod compensation;
mod migrations;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::http::StatusCode;
use catalog_contract::{Amount, Quote, QuoteError, QuotePrices, QuotedPrice};
use fulfillment_contract::{FulfillmentFailed, Shortage};
use identity_contract::{Customer, GetCustomer, GetCustomerError};
use seams_core::{CallContext, Envelope, Ids};
use seams_runtime::inprocess::InProcess;
use seams_runtime::relay::{Relay, RelayOptions};
use seams_runtime::{Env, HandlerError, Served, Subscription};
use seams_store::Db;
use seams_testkit::oneshot::{App, Reply};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

/// The stand-in producer's database only needs the framework's tables.
static PRODUCER_MIGRATIONS: seams_store::Migrations = seams_store::Migrations {
    sqlite: sqlx::migrate!("./test-migrations/sqlite"),
    postgres: sqlx::migrate!("./test-migrations/postgres"),
};

struct World {
    _dir: tempfile::TempDir,
    app: App,
    db: Db,
    catalog_up: Arc<AtomicBool>,
    /// Billing's subscription to fulfillment's feed.
    subscription: Subscription,
    /// Stands in for fulfillment's database: tests publish into its outbox.
    fulfillment: Db,
}

/// The network between billing and the others: catalog can be switched off.
struct Network {
    catalog_up: Arc<AtomicBool>,
    inner: InProcess,
}

impl seams_core::Transport for Network {
    fn call(
        &self,
        req: seams_core::CallRequest,
    ) -> seams_core::BoxFuture<'_, Result<seams_core::CallReply, seams_core::CallError>> {
        if req.op.capability == "catalog" && !self.catalog_up.load(Ordering::SeqCst) {
            let op = req.op.id();
            return Box::pin(async move {
                Err(seams_core::CallError::Unavailable {
                    op,
                    reason: "connection refused".into(),
                })
            });
        }
        self.inner.call(req)
    }
}

fn served() -> Vec<Served> {
    let prices = |sku: &str| match sku {
        "TEA" => Some(("Green tea", 450, "EUR")),
        "MUG" => Some(("Mug", 1200, "EUR")),
        "HAT" => Some(("Hat", 2000, "USD")),
        _ => None,
    };
    vec![
        Served::answering(move |req: QuotePrices, _| async move {
            let unknown: Vec<String> = req
                .skus
                .iter()
                .filter(|s| prices(s).is_none())
                .cloned()
                .collect();
            if !unknown.is_empty() {
                return Err(QuoteError::UnknownSkus { skus: unknown });
            }
            Ok(Quote {
                prices: req
                    .skus
                    .iter()
                    .map(|s| {
                        let (name, amount, currency) = prices(s).unwrap();
                        QuotedPrice {
                            sku: s.clone(),
                            name: name.into(),
                            unit_price: Amount {
                                amount,
                                currency: currency.into(),
                            },
                        }
                    })
                    .collect(),
            })
        }),
        Served::answering(|req: GetCustomer, _| async move {
            if req.id == "cust-1" || req.id == "cust-2" {
                Ok(Customer {
                    email: format!("{}@example.com", req.id),
                    id: req.id,
                    name: "Someone".into(),
                })
            } else {
                Err(GetCustomerError::NotFound { id: req.id })
            }
        }),
    ]
}

async fn world() -> World {
    world_in(tempfile::tempdir().unwrap()).await
}

/// A world whose billing database is `billing.db` in `dir`, made or migrated.
async fn world_in(dir: tempfile::TempDir) -> World {
    let catalog_up = Arc::new(AtomicBool::new(true));
    let inprocess = InProcess::new();
    for s in served() {
        inprocess.register(&s);
    }
    let network = Network {
        catalog_up: catalog_up.clone(),
        inner: inprocess,
    };
    let transport = Arc::new(seams_runtime::governed::Governed::new(Arc::new(network)));
    let env = Env {
        data_dir: dir.path().to_owned(),
        transport,
        clock: Arc::new(seams_core::SystemClock),
        ids: Arc::new(seams_core::UuidV7Ids),
        storage: seams_runtime::Storage::Sqlite {
            durability: seams_store::Durability::Normal,
        },
        consistency: seams_runtime::Consistency::new(),
        take_over: None,
    };
    let billing = billing::component(&env).await.unwrap();
    // Ada (`cust-1`) is who the tests act as, unless they say otherwise.
    let app = App::new("billing", billing.routes.clone()).as_customer("cust-1");
    let [subscription] = <[Subscription; 1]>::try_from(billing.subscriptions.clone())
        .unwrap_or_else(|_| panic!("billing consumes one feed"));
    let fulfillment = Db::open(
        &dir.path().join("fulfillment.db"),
        "fulfillment",
        &PRODUCER_MIGRATIONS,
    )
    .await
    .unwrap();
    World {
        _dir: dir,
        app,
        db: billing.db.clone(),
        catalog_up,
        subscription,
        fulfillment,
    }
}

fn cart() -> Value {
    json!({ "customer_id": "cust-1", "lines": [{ "sku": "TEA", "quantity": 2 }, { "sku": "MUG", "quantity": 1 }] })
}

impl World {
    async fn create(&self, key: &str, body: &Value) -> Reply {
        self.app
            .post("/billing/invoices", body, &[("idempotency-key", key)])
            .await
    }

    async fn pay(&self, id: &str, key: &str, amount: i64, currency: &str) -> Reply {
        let body = json!({ "amount": { "amount": amount, "currency": currency } });
        self.app
            .post(
                &format!("/billing/invoices/{id}/payments"),
                &body,
                &[("idempotency-key", key)],
            )
            .await
    }

    async fn count(&self, table: &str) -> i64 {
        seams_store::query(&format!("SELECT COUNT(*) FROM {table}"))
            .fetch_one(&mut self.db.read().await.unwrap())
            .await
            .unwrap()
            .get(0)
            .unwrap()
    }

    /// Creates an invoice for [`cart`] (2100 EUR) under `key`; its id.
    async fn invoice(&self, key: &str) -> String {
        let r = self.create(key, &cart()).await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.json);
        r.json["id"].as_str().unwrap().to_owned()
    }

    /// The invoice's status, read through the public route.
    async fn status(&self, id: &str) -> String {
        let r = self.app.get(&format!("/billing/invoices/{id}")).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.json);
        r.json["status"].as_str().unwrap().to_owned()
    }

    /// Commits `fulfillment-failed` for `invoice_id` to the stand-in's
    /// outbox, as fulfillment would.
    async fn fail(&self, invoice_id: &str) -> Envelope {
        let event = FulfillmentFailed {
            invoice_id: invoice_id.into(),
            customer_id: "cust-1".into(),
            reason: "out-of-stock".into(),
            shortages: vec![Shortage {
                sku: "TEA".into(),
                requested: 2,
                available: 1,
            }],
        };
        let env = Envelope::wrap(
            &event,
            seams_core::UuidV7Ids.new_id().to_string(),
            "2026-01-01T00:00:00Z".into(),
            &CallContext::new_root(),
        )
        .unwrap();
        let mut tx = self.fulfillment.begin().await.unwrap();
        tx.publish(&env).await.unwrap();
        tx.commit().await.unwrap();
        env
    }

    fn relay(&self, options: RelayOptions) -> Relay {
        Relay::new(
            self.subscription.clone(),
            self.db.clone(),
            self.fulfillment.clone(),
            options,
        )
    }

    /// Delivers everything fulfillment published so far; how many events were read.
    async fn deliver(&self) -> usize {
        self.relay(RelayOptions::default())
            .try_run_once(&CancellationToken::new())
            .await
            .unwrap()
    }

    /// Calls billing's handler for `env` directly, as the bus would.
    async fn handle(&self, env: &Envelope) -> Result<(), HandlerError> {
        self.subscription.deliver(&self.db, env.clone()).await
    }

    /// Billing's outbox, oldest first.
    async fn outbox(&self) -> Vec<Envelope> {
        self.db.read_outbox(0, 100).await.unwrap()
    }

    async fn events(&self) -> Vec<String> {
        self.db
            .read_outbox(0, 100)
            .await
            .unwrap()
            .into_iter()
            .map(|e| e.event_type)
            .collect()
    }
}

#[tokio::test]
async fn creates_a_priced_invoice_and_publishes_it() {
    let w = world().await;
    let r = w.create("k1", &cart()).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.json);
    assert_eq!(r.json["status"], "open");
    assert_eq!(r.json["customer_id"], "cust-1");
    assert_eq!(
        r.json["total"],
        json!({ "amount": 2100, "currency": "EUR" })
    );
    assert_eq!(
        r.json["lines"][0],
        json!({ "sku": "TEA", "quantity": 2, "unit_price": { "amount": 450, "currency": "EUR" }, "line_total": { "amount": 900, "currency": "EUR" } })
    );
    let id = r.json["id"].as_str().unwrap();
    let got = w.app.get(&format!("/billing/invoices/{id}")).await;
    assert_eq!(got.json, r.json);
    let feed = w.db.read_outbox(0, 10).await.unwrap();
    assert_eq!(feed.len(), 1);
    assert_eq!(
        (feed[0].event_type.as_str(), feed[0].subject.as_str()),
        ("billing.invoice-created", id)
    );
    assert_eq!(feed[0].data.to_value().unwrap()["total"]["amount"], 2100);
}

#[tokio::test]
async fn a_replay_returns_the_first_response_byte_for_byte() {
    let w = world().await;
    let first = w.create("k1", &cart()).await;
    let again = w.create("k1", &cart()).await;
    assert_eq!((again.status, &again.bytes), (first.status, &first.bytes));
    assert_eq!(again.headers["idempotent-replayed"], "true");
    assert_eq!((w.count("invoices").await, w.events().await.len()), (1, 1));
    let mut other = cart();
    other["lines"][0]["quantity"] = json!(3);
    let r = w.create("k1", &other).await;
    assert_eq!(
        (r.status, r.problem_type()),
        (
            StatusCode::UNPROCESSABLE_ENTITY,
            "urn:seams:problem:idempotency-key-reused"
        )
    );
    assert_eq!(w.count("invoices").await, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_requests_with_one_key_have_one_effect() {
    let w = Arc::new(world().await);
    let tasks: Vec<_> = (0..16)
        .map(|_| {
            let w = w.clone();
            tokio::spawn(async move { w.create("same", &cart()).await })
        })
        .collect();
    let mut bodies = Vec::new();
    for t in tasks {
        let r = t.await.unwrap();
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.json);
        bodies.push(r.bytes);
    }
    assert!(
        bodies.windows(2).all(|w| w[0] == w[1]),
        "every answer is the one recorded response"
    );
    assert_eq!((w.count("invoices").await, w.events().await.len()), (1, 1));
}

#[tokio::test]
async fn keys_are_required_and_validated() {
    let w = world().await;
    let r = w.app.post("/billing/invoices", &cart(), &[]).await;
    assert_eq!(
        (r.status, r.problem_type()),
        (
            StatusCode::PRECONDITION_REQUIRED,
            "urn:seams:problem:idempotency-key-required"
        )
    );
    let r = w.create(&"k".repeat(256), &cart()).await;
    assert_eq!(
        (r.status, r.problem_type()),
        (
            StatusCode::BAD_REQUEST,
            "urn:seams:problem:invalid-idempotency-key"
        )
    );
    let r = w
        .app
        .post("/billing/invoices/x/payments", &json!({}), &[])
        .await;
    assert_eq!(r.status, StatusCode::PRECONDITION_REQUIRED);
    assert_eq!(w.count("invoices").await, 0);
}

#[tokio::test]
async fn invalid_carts_name_the_offending_field_and_write_nothing() {
    let w = world().await;
    let cases = [
        (
            json!({ "customer_id": "nobody", "lines": [{ "sku": "TEA", "quantity": 1 }] }),
            "customer_id",
        ),
        (
            json!({ "customer_id": "cust-1", "lines": [{ "sku": "TEA", "quantity": 1 }, { "sku": "NOPE", "quantity": 1 }] }),
            "lines[1].sku",
        ),
        (
            json!({ "customer_id": "cust-1", "lines": [{ "sku": "TEA", "quantity": 0 }] }),
            "lines[0].quantity",
        ),
        (json!({ "customer_id": "cust-1", "lines": [] }), "lines"),
        (
            json!({ "customer_id": "cust-1", "lines": [{ "sku": "TEA", "quantity": 1 }, { "sku": "HAT", "quantity": 1 }] }),
            "lines[1].sku",
        ),
    ];
    for (i, (body, field)) in cases.iter().enumerate() {
        // As the customer the cart names: an unknown one is a bad field,
        // not somebody else's invoice.
        let customer = body["customer_id"].as_str().unwrap();
        let r = w
            .app
            .as_customer(customer)
            .post(
                "/billing/invoices",
                body,
                &[("idempotency-key", &format!("bad-{i}"))],
            )
            .await;
        assert_eq!(
            r.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{body}: {}",
            r.json
        );
        assert_eq!(
            (r.problem_type(), r.json["field"].as_str()),
            ("urn:seams:problem:invalid-field", Some(*field)),
            "{body}"
        );
    }
    let shapes = [
        (
            json!({ "customer_id": "cust-1", "lines": [{ "sku": "TEA", "quantity": -1 }] }),
            "lines[0].quantity",
        ),
        (
            json!({ "customer_id": "cust-1", "lines": [{ "sku": "TEA", "quantity": "2" }] }),
            "lines[0].quantity",
        ),
        (
            json!({ "customer_id": "cust-1", "lines": [], "coupon": "FREE" }),
            "coupon",
        ),
        (json!({ "lines": [] }), "customer_id"),
    ];
    for (i, (body, field)) in shapes.iter().enumerate() {
        let r = w.create(&format!("shape-{i}"), body).await;
        assert_eq!(
            (r.status, r.problem_type()),
            (
                StatusCode::UNPROCESSABLE_ENTITY,
                "urn:seams:problem:invalid-body"
            ),
            "{body}"
        );
        assert_eq!(r.json["field"], *field, "{body}: {}", r.json);
    }
    let r = w
        .app
        .post_raw("/billing/invoices", "{nope", &[("idempotency-key", "m")])
        .await;
    assert_eq!(
        (r.status, r.problem_type()),
        (StatusCode::BAD_REQUEST, "urn:seams:problem:malformed-json")
    );
    let big = format!(
        "{{\"customer_id\":\"{}\",\"lines\":[]}}",
        "x".repeat(65 * 1024)
    );
    let r = w
        .app
        .post_raw("/billing/invoices", big, &[("idempotency-key", "big")])
        .await;
    assert_eq!(
        (r.status, r.problem_type()),
        (
            StatusCode::PAYLOAD_TOO_LARGE,
            "urn:seams:problem:body-too-large"
        )
    );
    assert_eq!(
        (
            w.count("invoices").await,
            w.count("invoice_lines").await,
            w.events().await.len()
        ),
        (0, 0, 0)
    );
}

#[tokio::test]
async fn catalog_down_fails_fast_as_declared_and_leaves_the_key_usable() {
    let w = world().await;
    w.catalog_up.store(false, Ordering::SeqCst);
    let r = w.create("k1", &cart()).await;
    // create-invoice's own declared answer, naming what was down.
    assert_eq!(
        (r.status, r.problem_type()),
        (
            StatusCode::SERVICE_UNAVAILABLE,
            "urn:seams:problem:billing-unavailable"
        )
    );
    assert_eq!(r.json["unavailable"], "catalog", "{}", r.json);
    assert_eq!(r.headers["retry-after"], "2");
    assert_eq!(w.count("invoices").await, 0);
    w.catalog_up.store(true, Ordering::SeqCst);
    assert_eq!(w.create("k1", &cart()).await.status, StatusCode::CREATED);
}

#[tokio::test]
async fn an_invoice_is_paid_once_in_full() {
    let w = world().await;
    let id = w.create("k1", &cart()).await.json["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let r = w.pay(&id, "p0", 2000, "EUR").await;
    assert_eq!(
        (r.status, r.json["field"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("amount.amount"))
    );
    let r = w.pay(&id, "p0b", 2100, "USD").await;
    assert_eq!(
        (r.status, r.json["field"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("amount.currency"))
    );
    let r = w.pay(&id, "p0c", 2100, "XXQ").await;
    assert_eq!(
        (r.status, r.json["field"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("amount.currency"))
    );
    let paid = w.pay(&id, "p1", 2100, "EUR").await;
    assert_eq!(paid.status, StatusCode::CREATED, "{}", paid.json);
    assert_eq!(paid.json["invoice_id"], id.as_str());
    let replay = w.pay(&id, "p1", 2100, "EUR").await;
    assert_eq!(
        (replay.status, &replay.bytes),
        (StatusCode::CREATED, &paid.bytes)
    );
    let r = w.pay(&id, "p2", 2100, "EUR").await;
    assert_eq!(
        (r.status, r.problem_type()),
        (
            StatusCode::CONFLICT,
            "urn:seams:problem:invoice-already-paid"
        )
    );
    assert_eq!(
        w.app.get(&format!("/billing/invoices/{id}")).await.json["status"],
        "paid"
    );
    assert_eq!(
        w.events().await,
        ["billing.invoice-created", "billing.invoice-paid"]
    );
    assert_eq!(w.count("payments").await, 1);
    let r = w.pay("no-such-invoice", "p3", 2100, "EUR").await;
    assert_eq!(
        (r.status, r.problem_type()),
        (StatusCode::NOT_FOUND, "urn:seams:problem:invoice-not-found")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_payments_under_different_keys_pay_once() {
    let w = Arc::new(world().await);
    let id = w.create("k1", &cart()).await.json["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let tasks: Vec<_> = (0..12)
        .map(|i| {
            let (w, id) = (w.clone(), id.clone());
            tokio::spawn(async move { w.pay(&id, &format!("pay-{i}"), 2100, "EUR").await.status })
        })
        .collect();
    let mut statuses = Vec::new();
    for t in tasks {
        statuses.push(t.await.unwrap());
    }
    assert_eq!(
        statuses
            .iter()
            .filter(|s| **s == StatusCode::CREATED)
            .count(),
        1,
        "{statuses:?}"
    );
    assert!(
        statuses
            .iter()
            .all(|s| *s == StatusCode::CREATED || *s == StatusCode::CONFLICT),
        "{statuses:?}"
    );
    assert_eq!(w.count("payments").await, 1);
    assert_eq!(w.events().await.len(), 2);
}

#[tokio::test]
async fn unknown_invoices_are_404() {
    let w = world().await;
    let r = w.app.get("/billing/invoices/nope").await;
    assert_eq!(
        (r.status, r.problem_type()),
        (StatusCode::NOT_FOUND, "urn:seams:problem:invoice-not-found")
    );
}
