//! Billing: owns invoices and payments.
//!
//! Creating an invoice asks catalog for prices and identity for the
//! customer, synchronously through their contract clients (billing needs the
//! answers now, and answers 503 with `Retry-After` when either is down, as
//! their contracts declare). Creating and paying are keyed, idempotent
//! commands; `invoice-created` and `invoice-paid` leave through the outbox.
//! Billing does not own prices (catalog), stock (fulfillment) or contact
//! details (identity, notification's projection).
//!
//! Layout: [`domain`] holds the pure rules, [`service`] the effectful shell,
//! [`store`] the SQL, [`http`] the public routes, [`error`] the one mapping
//! of failures to problems.

pub mod domain;
pub mod error;
pub mod http;
pub mod service;
pub mod store;

use catalog_contract::CatalogClient;
use identity_contract::IdentityClient;
use seams_core::decl::{Invariant, InvariantKind};
use seams_runtime::{Component, Env};
use sqlx::migrate::Migrator;

pub use error::Error;
pub use service::Deps;

static MIGRATIONS: Migrator = sqlx::migrate!("./migrations");

/// An invoice is paid at most once.
pub static PAID_AT_MOST_ONCE: Invariant = Invariant {
    capability: NAME,
    name: "paid-at-most-once",
    description: "An invoice has at most one payment, in full and in its currency.",
    kind: InvariantKind::Immediate {
        enforced_by: "payments.invoice_id UNIQUE and a conditional open→paid update, in the payment's transaction",
    },
};

/// An invoice's total is the sum of its lines.
pub static TOTAL_EQUALS_LINES: Invariant = Invariant {
    capability: NAME,
    name: "total-equals-lines",
    description: "An invoice's total equals the sum of its line totals; each line total is unit price × quantity.",
    kind: InvariantKind::Immediate {
        enforced_by: "Invoice::build (pure), a CHECK on every line, and a check on every load",
    },
};

/// The capability's name and URL prefix.
pub const NAME: &str = "billing";

/// Builds billing on its own database under `env.data_dir`.
pub async fn component(env: &Env) -> anyhow::Result<Component> {
    let db =
        seams_sqlite::Db::open_with(&env.db_path(NAME), NAME, &MIGRATIONS, env.durability).await?;
    let deps = Deps {
        store: store::Store::new(db.clone()),
        catalog: CatalogClient::new(env.transport.clone()),
        identity: IdentityClient::new(env.transport.clone()),
        clock: env.clock.clone(),
        ids: env.ids.clone(),
    };
    Ok(Component {
        name: NAME,
        db,
        routes: http::router(deps),
        public: billing_contract::OPERATIONS.to_vec(),
        serves: Vec::new(),
        publishes: billing_contract::EVENTS.to_vec(),
        subscriptions: Vec::new(),
        workers: Vec::new(),
        invariants: vec![&PAID_AT_MOST_ONCE, &TOTAL_EQUALS_LINES],
        openapi: http::openapi(),
    })
}
