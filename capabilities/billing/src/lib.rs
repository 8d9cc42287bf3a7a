//! Billing: owns invoices and payments.
//!
//! Creating an invoice asks catalog for prices and identity for the
//! customer, synchronously through their contract clients (billing needs the
//! answers now, and answers 503 with `Retry-After` when either is down, as
//! their contracts declare). Creating and paying are keyed, idempotent
//! commands; `invoice-created` and `invoice-paid` leave through the outbox.
//!
//! It consumes fulfillment's `fulfillment-failed` and compensates: an open
//! invoice is voided (and can no longer be paid), a paid one refunded in
//! full, each exactly once, with `invoice-voided` or `invoice-refunded`
//! published in the same inbox transaction. Billing does not own prices
//! (catalog), stock (fulfillment) or contact details (identity,
//! notification's projection).
//!
//! Layout: [`domain`] holds the pure rules, [`service`] the effectful shell,
//! [`store`] the SQL, [`http`] the public routes, [`error`] the one mapping
//! of failures to problems.

pub mod domain;
pub mod error;
pub mod http;
pub mod service;
pub mod store;

use fulfillment_contract::FulfillmentFailed;
use seams_core::decl::{Dependencies, Invariant, InvariantKind};
use seams_runtime::{Component, Env, Handles, Subscription};

pub use error::Error;
pub use service::Deps;

/// Billing's schema. Public for the raw SQLite baseline, which creates its
/// database with it so that it writes into the tables create-invoice writes.
pub static MIGRATIONS: seams_store::Migrations = seams_store::Migrations {
    sqlite: sqlx::migrate!("./migrations/sqlite"),
    postgres: sqlx::migrate!("./migrations/postgres"),
};

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

/// A failed invoice is voided or refunded exactly once.
pub static COMPENSATED_ONCE: Invariant = Invariant {
    capability: NAME,
    name: "compensated-once",
    description: "A failed invoice is voided or refunded exactly once: a voided invoice is never paid, a refund returns the whole payment.",
    kind: InvariantKind::Immediate {
        enforced_by: "refunds.invoice_id UNIQUE, the status CHECK and conditional open→voided, paid→refunded and open→paid updates, and the inbox, in the compensation's transaction",
    },
};

/// Billing's service level objectives: of every 1,000 invoices created, at
/// most 5 answered with a server error over 30 days; payments, which take
/// money, at most 1.
pub static OBJECTIVES: &[seams_core::decl::Objective] = &[
    // Needs catalog and identity answering too: their outages spend this budget.
    seams_core::decl::Objective {
        operation: &billing_contract::CREATE_INVOICE,
        method: "POST",
        route: "/billing/invoices",
        availability_percent: 99.5,
        window: std::time::Duration::from_secs(30 * 24 * 3600),
    },
    // Billing's own database only.
    seams_core::decl::Objective {
        operation: &billing_contract::PAY_INVOICE,
        method: "POST",
        route: "/billing/invoices/{id}/payments",
        availability_percent: 99.9,
        window: std::time::Duration::from_secs(30 * 24 * 3600),
    },
];

/// Event versions billing accepts, for every event it consumes.
const ACCEPTS: &[u32] = &[1];

/// The capability's name and URL prefix.
pub const NAME: &str = "billing";

/// Billing asks catalog for prices and identity for the customer, and
/// compensates what fulfillment could not fulfil.
pub static DEPENDENCIES: Dependencies = Dependencies {
    capability: NAME,
    calls: &[
        &catalog_contract::QUOTE_PRICES,
        &identity_contract::GET_CUSTOMER,
    ],
    consumes: &[&fulfillment_contract::FULFILLMENT_FAILED],
};

/// Builds billing on its own database, where `env.storage` says.
pub async fn component(env: &Env) -> anyhow::Result<Component> {
    let db = env.open_db(NAME, &MIGRATIONS).await?;
    let deps = Deps {
        store: store::Store::new(db.clone()),
        calls: seams_core::Client::new(env.calls(&DEPENDENCIES)),
        clock: env.clock.clone(),
        ids: env.ids.clone(),
    };
    Ok(Component {
        name: NAME,
        depends: &DEPENDENCIES,
        db,
        routes: http::router(deps.clone()),
        serves: Vec::new(),
        publishes: billing_contract::EVENTS.to_vec(),
        subscriptions: subscriptions(&deps),
        workers: Vec::new(),
        invariants: vec![&PAID_AT_MOST_ONCE, &TOTAL_EQUALS_LINES, &COMPENSATED_ONCE],
        openapi: http::openapi(),
    })
}

/// Fulfillment's feed: a failure to fulfil an invoice is compensated.
fn subscriptions(deps: &Deps) -> Vec<Subscription> {
    let deps = deps.clone();
    vec![Subscription {
        consumer: NAME,
        producer: fulfillment_contract::FULFILLMENT_FAILED.producer,
        handles: vec![Handles::new(ACCEPTS, move |ev: FulfillmentFailed, tx| {
            let deps = deps.clone();
            Box::pin(async move { service::on_fulfillment_failed(&deps, ev, tx).await })
        })],
    }]
}
