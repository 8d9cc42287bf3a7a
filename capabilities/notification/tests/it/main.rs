//! Notification against real SQLite files: events published into stand-in
//! identity, billing and fulfillment databases are delivered by the
//! framework's relay (recording positions in the world's consistency
//! registry), messages are sent by the sender step by step, and the results
//! are read through the public routes, the Maildir and a real SMTP server.
//!
//! Every test builds its own [`World`] in a fresh temporary directory. Time
//! is a [`TestClock`] the test moves, so backoff is tested without sleeping.

mod consuming;
mod contacts;
mod routes;
mod sending;

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use billing_contract::{CreatedLine, InvoiceCreated, InvoicePaid, InvoiceRefunded, InvoiceVoided};
use catalog_contract::Amount;
use fulfillment_contract::ShipmentDispatched;
use identity_contract::{CustomerEmailChanged, CustomerRegistered};
use notification::channel::Maildir;
use notification::{ChannelOptions, Notification, Options};
use seams_core::{CallContext, Clock, Envelope, Event};
use seams_runtime::relay::{Relay, RelayOptions};
use seams_runtime::{Consistency, HandlerError, Runtime, Subscription, SystemOptions};
use seams_store::Db;
use seams_testkit::oneshot::App;
use serde_json::Value;
use time::OffsetDateTime;
use tokio_util::sync::CancellationToken;

/// The producers' databases only need the framework's tables (the outbox);
/// notification's own migrations are reused because any migrations will do.
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
    /// The component and its sender.
    n: Notification,
    app: App,
    /// Stands in for identity's database: tests publish into its outbox.
    identity: Db,
    /// Stands in for billing's database.
    billing: Db,
    /// Stands in for fulfillment's database.
    fulfillment: Db,
    /// The registry the component reads its freshness from; the world's
    /// relays record their positions in it.
    consistency: Consistency,
    clock: Arc<TestClock>,
    /// The Maildir of the default channel (empty unless the channel is Maildir).
    mail_dir: PathBuf,
    shutdown: CancellationToken,
}

/// A world with the default options (a Maildir under the data directory).
async fn world() -> World {
    world_with(|opts| opts).await
}

/// A world whose options are the defaults changed by `tweak`.
async fn world_with(tweak: impl FnOnce(Options) -> Options) -> World {
    let dir = tempfile::tempdir().unwrap();
    let mut env = Runtime::new(SystemOptions::default()).env(dir.path());
    let clock = Arc::new(TestClock(Mutex::new(OffsetDateTime::now_utc())));
    env.clock = clock.clone();
    let opts = Options::default_for(&env);
    let ChannelOptions::Maildir { dir: mail_dir } = opts.channel.clone() else {
        unreachable!("the default channel is a Maildir")
    };
    let n = notification::build(&env, tweak(opts)).await.unwrap();
    let app = App::new("notification", n.component.routes.clone());
    let identity = Db::open(
        &dir.path().join("identity.db"),
        "identity",
        &PRODUCER_MIGRATIONS,
    )
    .await
    .unwrap();
    let billing = Db::open(
        &dir.path().join("billing.db"),
        "billing",
        &PRODUCER_MIGRATIONS,
    )
    .await
    .unwrap();
    let fulfillment = Db::open(
        &dir.path().join("fulfillment.db"),
        "fulfillment",
        &PRODUCER_MIGRATIONS,
    )
    .await
    .unwrap();
    World {
        _dir: dir,
        n,
        app,
        identity,
        billing,
        fulfillment,
        consistency: env.consistency.clone(),
        clock,
        mail_dir,
        shutdown: CancellationToken::new(),
    }
}

impl World {
    /// The subscription to `producer`'s feed.
    fn subscription(&self, producer: &str) -> Subscription {
        self.n
            .component
            .subscriptions
            .iter()
            .find(|s| s.producer == producer)
            .unwrap_or_else(|| panic!("no subscription to {producer}"))
            .clone()
    }

    fn relay(&self, producer: &str, options: RelayOptions) -> Relay {
        Relay::new(
            self.subscription(producer),
            self.n.component.db.clone(),
            self.producer(producer).clone(),
            options,
        )
        .with_consistency(self.consistency.clone())
    }

    /// The stand-in database of `producer`.
    fn producer(&self, producer: &str) -> &Db {
        match producer {
            "identity" => &self.identity,
            "billing" => &self.billing,
            "fulfillment" => &self.fulfillment,
            other => panic!("no producer {other}"),
        }
    }

    /// Delivers everything published so far: identity's feed, then
    /// billing's, then fulfillment's.
    async fn deliver(&self) {
        for producer in ["identity", "billing", "fulfillment"] {
            self.relay(producer, RelayOptions::default())
                .try_run_once(&self.shutdown)
                .await
                .unwrap();
        }
    }

    /// One sender step; how many deliveries it attempted.
    async fn send(&self) -> usize {
        self.n.sender.try_send_due(&self.shutdown).await.unwrap()
    }

    /// Calls notification's handler for `env` directly, as the bus would.
    async fn handle(&self, env: &Envelope) -> Result<(), HandlerError> {
        let producer = env.source.trim_start_matches("/seams/");
        self.subscription(producer)
            .deliver(&self.n.component.db, env.clone())
            .await
    }

    async fn register(&self, customer_id: &str, email: &str, name: &str) -> Envelope {
        publish(
            &self.identity,
            &CustomerRegistered {
                customer_id: customer_id.into(),
                email: email.into(),
                name: name.into(),
            },
        )
        .await
    }

    /// Publishes `customer-email-changed`; returns it with its outbox position.
    async fn change_email(&self, customer_id: &str, email: &str) -> (Envelope, u64) {
        publish_at(
            &self.identity,
            &CustomerEmailChanged {
                customer_id: customer_id.into(),
                email: email.into(),
            },
        )
        .await
    }

    async fn invoice_voided(&self, customer_id: &str, invoice_id: &str) -> Envelope {
        publish(
            &self.billing,
            &InvoiceVoided {
                invoice_id: invoice_id.into(),
                customer_id: customer_id.into(),
                reason: "out-of-stock".into(),
            },
        )
        .await
    }

    async fn invoice_refunded(&self, customer_id: &str, invoice_id: &str) -> Envelope {
        publish(
            &self.billing,
            &InvoiceRefunded {
                invoice_id: invoice_id.into(),
                customer_id: customer_id.into(),
                payment_id: "p-1".into(),
                amount: eur(1250),
                reason: "out-of-stock".into(),
            },
        )
        .await
    }

    async fn shipment_dispatched(&self, customer_id: &str, invoice_id: &str) -> Envelope {
        publish(
            &self.fulfillment,
            &ShipmentDispatched {
                shipment_id: new_id(),
                invoice_id: invoice_id.into(),
                customer_id: customer_id.into(),
                dispatched_at: "2026-01-02T10:00:00Z".into(),
            },
        )
        .await
    }

    async fn invoice_created(&self, customer_id: &str, invoice_id: &str) -> Envelope {
        publish(&self.billing, &invoice_created(customer_id, invoice_id)).await
    }

    async fn invoice_paid(&self, customer_id: &str, invoice_id: &str) -> Envelope {
        publish(
            &self.billing,
            &InvoicePaid {
                invoice_id: invoice_id.into(),
                customer_id: customer_id.into(),
                payment_id: "p-1".into(),
                amount: eur(1250),
            },
        )
        .await
    }

    /// `GET /notification/deliveries?customer_id=` as that customer, as
    /// JSON, asserting 200.
    async fn deliveries(&self, customer_id: &str) -> Vec<Value> {
        let r = self
            .app
            .as_customer(customer_id)
            .get(&format!(
                "/notification/deliveries?customer_id={customer_id}"
            ))
            .await;
        assert_eq!(r.status, 200, "{}", r.json);
        r.json["deliveries"].as_array().unwrap().clone()
    }

    /// A reader of the default channel's Maildir.
    fn maildir(&self) -> Maildir {
        Maildir::new(&self.mail_dir, notification::MAILDIR_FROM.parse().unwrap()).unwrap()
    }

    /// Every message file in the Maildir, read.
    fn mail(&self) -> Vec<String> {
        self.maildir()
            .delivered()
            .unwrap()
            .iter()
            .map(|p| std::fs::read_to_string(p).unwrap())
            .collect()
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

fn invoice_created(customer_id: &str, invoice_id: &str) -> InvoiceCreated {
    InvoiceCreated {
        invoice_id: invoice_id.into(),
        customer_id: customer_id.into(),
        lines: vec![CreatedLine {
            sku: "TEA-1".into(),
            quantity: 2,
            unit_price: eur(625),
            line_total: eur(1250),
            name: Some("Green tea".into()),
        }],
        total: eur(1250),
    }
}

/// Commits `event` to `db`'s outbox, as its producer would.
async fn publish<E: Event>(db: &Db, event: &E) -> Envelope {
    publish_at(db, event).await.0
}

/// [`publish`], also returning the event's outbox position (what the
/// producer's consistency token would name).
async fn publish_at<E: Event>(db: &Db, event: &E) -> (Envelope, u64) {
    let env = Envelope::wrap(
        event,
        new_id(),
        "2026-01-01T00:00:00Z".into(),
        &CallContext::new_root(),
    )
    .unwrap();
    let mut tx = db.begin().await.unwrap();
    let position = tx.publish(&env).await.unwrap();
    tx.commit().await.unwrap();
    (env, position)
}

/// The short form of `invoice_id` that subjects use.
fn short(invoice_id: &str) -> String {
    notification::domain::short_id(invoice_id)
}
