//! Fulfillment against real SQLite files: stock is received through the
//! public routes, billing's events are published into a stand-in billing
//! database and delivered by the framework's relay (or handed to the
//! handlers directly, as a bus that redelivers would), shipments are
//! dispatched by the dispatcher step by step, and the results are read
//! through the public routes, fulfillment's outbox and the consistency
//! registry.
//!
//! Every test builds its own [`World`] in a fresh temporary directory. Time
//! is a [`TestClock`] the test moves, so the dispatch lag is exact.

mod consuming;
mod dispatching;
mod invariants;
mod routes;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use billing_contract::{CreatedLine, InvoiceCreated, InvoicePaid, InvoiceVoided};
use catalog_contract::Amount;
use fulfillment::{Fulfillment, Options};
use seams_core::{CallContext, Clock, Envelope, Event};
use seams_runtime::relay::{Relay, RelayOptions};
use seams_runtime::{Env, HandlerError, Runtime, Subscription, SystemOptions};
use seams_store::Db;
use seams_testkit::oneshot::App;

/// The inbox of fulfillment's subscription to billing, named after it.
const INBOX: &str = "fulfillment<-billing";
use serde_json::{Value, json};
use time::OffsetDateTime;
use tokio_util::sync::CancellationToken;

/// The producer's database only needs the framework's tables (the outbox);
/// fulfillment's own migrations are reused because any migrations will do.
static PRODUCER_MIGRATIONS: seams_store::Migrations = seams_store::Migrations {
    sqlite: sqlx::migrate!("./migrations/sqlite"),
    postgres: sqlx::migrate!("./migrations/postgres"),
};

/// A clock that only moves when the test moves it.
struct TestClock(Mutex<OffsetDateTime>);

impl TestClock {
    fn advance(&self, by: Duration) {
        *self.0.lock().unwrap() += by;
    }
}

impl Clock for TestClock {
    fn now(&self) -> OffsetDateTime {
        *self.0.lock().unwrap()
    }
}

struct World {
    _dir: tempfile::TempDir,
    /// The component and its dispatcher.
    f: Fulfillment,
    app: App,
    /// What fulfillment was built with (its consistency registry is read back).
    env: Env,
    /// Stands in for billing's database: tests publish into its outbox.
    billing: Db,
    clock: Arc<TestClock>,
    shutdown: CancellationToken,
}

/// A world with the default options.
async fn world() -> World {
    world_with(Options::default()).await
}

async fn world_with(opts: Options) -> World {
    let dir = tempfile::tempdir().unwrap();
    let mut env = Runtime::new(SystemOptions::default()).env(dir.path());
    let clock = Arc::new(TestClock(Mutex::new(OffsetDateTime::now_utc())));
    env.clock = clock.clone();
    let f = fulfillment::build(&env, opts).await.unwrap();
    // Staff receive stock and see every shipment; the tests act as staff
    // unless they say otherwise.
    let app = App::new("fulfillment", f.component.routes.clone()).as_staff();
    let billing = Db::open(
        &dir.path().join("billing.db"),
        "billing",
        &PRODUCER_MIGRATIONS,
    )
    .await
    .unwrap();
    World {
        _dir: dir,
        f,
        app,
        env,
        billing,
        clock,
        shutdown: CancellationToken::new(),
    }
}

/// `(on_hand, reserved, available)`.
type Stock = (u64, u64, u64);

impl World {
    fn db(&self) -> &Db {
        &self.f.component.db
    }

    /// The subscription to billing's feed.
    fn subscription(&self) -> Subscription {
        let subs = &self.f.component.subscriptions;
        assert_eq!(subs.len(), 1, "one subscription, to billing");
        subs[0].clone()
    }

    fn relay(&self, options: RelayOptions) -> Relay {
        Relay::new(
            self.subscription(),
            self.db().clone(),
            self.billing.clone(),
            options,
        )
        .with_consistency(self.env.consistency.clone())
    }

    /// Delivers everything billing published so far; how many events were read.
    async fn deliver(&self) -> usize {
        self.relay(RelayOptions::default())
            .try_run_once(&self.shutdown)
            .await
            .unwrap()
    }

    /// Calls fulfillment's handler for `env` directly, as the bus would.
    async fn handle(&self, env: &Envelope) -> Result<(), HandlerError> {
        self.subscription().deliver(self.db(), env.clone()).await
    }

    /// One dispatcher step; how many shipments it dispatched.
    async fn dispatch(&self) -> usize {
        self.f.dispatcher.try_dispatch_due().await.unwrap()
    }

    /// Receives stock through the public route under a fresh key, asserting 201.
    async fn receive(&self, sku: &str, quantity: u32) -> Value {
        let key = new_id();
        let r = self
            .app
            .post(
                "/fulfillment/stock",
                &json!({ "sku": sku, "quantity": quantity }),
                &[("idempotency-key", key.as_str())],
            )
            .await;
        assert_eq!(r.status, 201, "{}", r.json);
        r.json
    }

    /// `GET /fulfillment/stock/{sku}`, asserting 200.
    async fn stock(&self, sku: &str) -> Stock {
        let r = self.app.get(&format!("/fulfillment/stock/{sku}")).await;
        assert_eq!(r.status, 200, "{}", r.json);
        let level: fulfillment_contract::StockLevel = serde_json::from_value(r.json).unwrap();
        assert_eq!(level.sku, sku);
        (level.on_hand, level.reserved, level.available)
    }

    /// `GET /fulfillment/shipments?invoice_id=`, asserting 200.
    async fn shipments(&self, invoice_id: &str) -> Vec<Value> {
        let r = self
            .app
            .get(&format!("/fulfillment/shipments?invoice_id={invoice_id}"))
            .await;
        assert_eq!(r.status, 200, "{}", r.json);
        r.json["shipments"].as_array().unwrap().clone()
    }

    /// Everything fulfillment has published, in order.
    async fn outbox(&self) -> Vec<Envelope> {
        self.db().read_outbox(0, 1000).await.unwrap()
    }

    /// The types of everything fulfillment has published, in order.
    async fn published(&self) -> Vec<String> {
        self.outbox()
            .await
            .into_iter()
            .map(|e| e.event_type)
            .collect()
    }

    /// `(sku, quantity, status)` of an invoice's reservations, in SKU order.
    async fn reservations(&self, invoice_id: &str) -> Vec<(String, i64, String)> {
        let rows = seams_store::query(
            "SELECT sku, quantity, status FROM reservations WHERE invoice_id = $1 ORDER BY sku",
        )
        .bind(invoice_id)
        .fetch_all(&mut self.db().read().await.unwrap())
        .await
        .unwrap();
        rows.iter()
            .map(|r| (r.get(0).unwrap(), r.get(1).unwrap(), r.get(2).unwrap()))
            .collect()
    }

    async fn count(&self, table: &str) -> i64 {
        seams_store::query(&format!("SELECT COUNT(*) FROM {table}"))
            .fetch_one(&mut self.db().read().await.unwrap())
            .await
            .unwrap()
            .get(0)
            .unwrap()
    }

    /// Publishes `invoice-created` for `lines` (`(sku, quantity)`).
    async fn invoice_created(&self, invoice_id: &str, lines: &[(&str, u32)]) -> Envelope {
        self.publish(&invoice_created(invoice_id, lines)).await
    }

    async fn invoice_paid(&self, invoice_id: &str) -> Envelope {
        self.publish(&InvoicePaid {
            invoice_id: invoice_id.into(),
            customer_id: "c-1".into(),
            payment_id: new_id(),
            amount: eur(100),
        })
        .await
    }

    async fn invoice_voided(&self, invoice_id: &str) -> Envelope {
        self.publish(&InvoiceVoided {
            invoice_id: invoice_id.into(),
            customer_id: "c-1".into(),
            reason: "out-of-stock".into(),
        })
        .await
    }

    /// Commits `event` to billing's outbox, as billing would, stamped with
    /// the test clock's time.
    async fn publish<E: Event>(&self, event: &E) -> Envelope {
        let env = self.wrap(event);
        let mut tx = self.billing.begin().await.unwrap();
        tx.publish(&env).await.unwrap();
        tx.commit().await.unwrap();
        env
    }

    /// `event` in an envelope of billing's, not published anywhere.
    fn wrap<E: Event>(&self, event: &E) -> Envelope {
        Envelope::wrap(
            event,
            new_id(),
            self.clock.now_rfc3339(),
            &CallContext::new_root(),
        )
        .unwrap()
    }
}

fn eur(minor: i64) -> Amount {
    Amount {
        amount: minor,
        currency: "EUR".into(),
    }
}

/// A new id for test events and invoices (UUID v7, like the real producers').
fn new_id() -> String {
    uuid::Uuid::now_v7().to_string()
}

fn invoice_created(invoice_id: &str, lines: &[(&str, u32)]) -> InvoiceCreated {
    InvoiceCreated {
        invoice_id: invoice_id.into(),
        customer_id: "c-1".into(),
        lines: lines
            .iter()
            .map(|(sku, quantity)| CreatedLine {
                sku: (*sku).into(),
                quantity: *quantity,
                unit_price: eur(100),
                line_total: eur(100 * i64::from(*quantity)),
                name: Some(format!("{sku} (name)")),
            })
            .collect(),
        total: eur(lines.iter().map(|(_, q)| 100 * i64::from(*q)).sum()),
    }
}
