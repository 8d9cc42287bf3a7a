//! Fulfillment: owns stock levels, reservations and shipments.
//!
//! Stock arrives through a keyed command (`POST /fulfillment/stock`, so a
//! retried delivery note is counted once). Fulfillment learns of invoices
//! only from billing's events and never asks billing anything:
//! `invoice-created` reserves every line of the invoice or none (publishing
//! `fulfillment-failed` with the shortages, which starts billing's
//! compensation); `invoice-paid` turns the reservation into a shipment and
//! publishes `shipment-created`; `invoice-voided` releases the reservation.
//! The [`dispatcher`] worker then dispatches created shipments and publishes
//! `shipment-dispatched`, measuring how long after the payment that
//! happened against the declared bound.
//!
//! "Stock never goes negative" is enforced by the database (CHECK
//! constraints on the stock table), not only by the decision, so a bug in
//! the code is a refused transaction rather than oversold stock.
//!
//! Layout: [`domain`] holds the pure rules, [`service`] the consumers, the
//! command and the queries, [`dispatcher`] the dispatching worker,
//! [`store`] the SQL, [`http`] the public routes, [`error`] the one mapping
//! of failures to problems.

pub mod dispatcher;
pub mod domain;
pub mod error;
pub mod http;
pub mod service;
pub mod store;

use std::sync::Arc;
use std::time::Duration;

use anyhow::bail;
use billing_contract::{InvoiceCreated, InvoicePaid, InvoiceVoided};
use seams_core::decl::{Dependencies, Invariant, InvariantKind, Measure};
use seams_runtime::{Component, Env, Handles, Subscription, Worker};
use tokio::sync::Notify;

pub use dispatcher::Dispatcher;
pub use error::Error;
pub use service::Deps;

static MIGRATIONS: seams_store::Migrations = seams_store::Migrations {
    sqlite: sqlx::migrate!("./migrations/sqlite"),
    postgres: sqlx::migrate!("./migrations/postgres"),
};

/// Fulfillment's service level objective: receiving stock answers at most
/// 5 in 1,000 requests with a server error over 30 days.
pub static OBJECTIVES: &[seams_core::decl::Objective] = &[
    // Staff booking stock in.
    seams_core::decl::Objective {
        operation: &fulfillment_contract::RECEIVE_STOCK,
        method: "POST",
        route: "/fulfillment/stock",
        availability_percent: 99.5,
        window: std::time::Duration::from_secs(30 * 24 * 3600),
    },
];

/// The capability's name and URL prefix.
pub const NAME: &str = "fulfillment";

/// Fulfillment calls nobody; it follows billing's invoices.
pub static DEPENDENCIES: Dependencies = Dependencies {
    capability: NAME,
    calls: &[],
    consumes: &[
        &billing_contract::INVOICE_CREATED,
        &billing_contract::INVOICE_PAID,
        &billing_contract::INVOICE_VOIDED,
    ],
};

/// Event versions fulfillment accepts of billing's invoice events:
/// `invoice-created` in both of its versions (it reads SKUs and quantities,
/// which both carry), the others in their one.
const ACCEPTS: &[u32] = &[1];
const ACCEPTS_CREATED: &[u32] = &[1, 2];

/// The lag the dispatcher records for every dispatched shipment: from
/// billing's commit of the payment to fulfillment's commit of the dispatch.
/// A chain of two hops and a worker, so no single relay hop measures it.
pub const DISPATCH_LAG: &str = "billing.invoice-paid->shipment-dispatched";

/// Stock never goes negative.
pub static STOCK_NEVER_NEGATIVE: Invariant = Invariant {
    capability: NAME,
    name: "stock-never-negative",
    description: "No SKU has negative stock on hand or reserved, and never more reserved than on hand.",
    kind: InvariantKind::Immediate {
        enforced_by: "on_hand >= 0, reserved >= 0, reserved <= on_hand: CHECK constraints",
    },
};

/// An invoice's stock is reserved completely or not at all.
pub static ALL_OR_NOTHING_RESERVATION: Invariant = Invariant {
    capability: NAME,
    name: "all-or-nothing-reservation",
    description: "An invoice has every line reserved or none; an invoice that cannot be fully reserved holds no stock.",
    kind: InvariantKind::Immediate {
        enforced_by: "domain::decide (pure) over the levels read in the invoice-created inbox transaction, applied in that one transaction (one writer)",
    },
};

/// A paid invoice's shipment is dispatched within a bound.
pub static PAID_INVOICE_DISPATCHED: Invariant = Invariant {
    capability: NAME,
    name: "paid-invoice-dispatched",
    description: "A paid invoice whose stock was reserved has its shipment dispatched within 5 s of the payment (p99).",
    kind: InvariantKind::Eventual {
        bound: Duration::from_secs(5),
        percentile: 99.0,
        measure: Measure::Recorded(DISPATCH_LAG),
    },
};

/// How fulfillment is built.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    /// Longest the dispatcher sleeps when no new shipment wakes it; bounds
    /// how late a shipment it was not told about (one created before a
    /// restart) is dispatched.
    pub poll: Duration,
    /// Shipments the dispatcher takes per step; small, so a shutdown waits
    /// for few of them.
    pub batch: u32,
}

impl Default for Options {
    /// A 500 ms poll (a tenth of the 5 s dispatch bound) and batches of 16.
    fn default() -> Options {
        Options {
            poll: Duration::from_millis(500),
            batch: 16,
        }
    }
}

impl Options {
    /// Rejects settings that would make the dispatcher misbehave, naming the key.
    pub fn validate(&self) -> anyhow::Result<()> {
        if self.poll.is_zero() {
            bail!("fulfillment.poll is 0; the dispatcher would spin");
        }
        if self.batch == 0 {
            bail!("fulfillment.batch is 0; the dispatcher would never dispatch");
        }
        Ok(())
    }
}

/// Fulfillment, built: the component for the runtime and a handle on its
/// dispatcher (the same one the component's worker runs), for tests to drive.
pub struct Fulfillment {
    /// What the runtime runs.
    pub component: Component,
    /// The dispatching worker's handle; see [`Dispatcher::try_dispatch_due`].
    pub dispatcher: Dispatcher,
}

/// Builds fulfillment on its own database (where `env.storage` says), with
/// the default [`Options`].
pub async fn component(env: &Env) -> anyhow::Result<Component> {
    Ok(build(env, Options::default()).await?.component)
}

/// [`component`] with `opts`, also returning the dispatcher for tests to
/// drive step by step.
pub async fn build(env: &Env, opts: Options) -> anyhow::Result<Fulfillment> {
    opts.validate()?;
    let db = env.open_db(NAME, &MIGRATIONS).await?;
    let store = store::Store::new(db.clone());
    let wake = Arc::new(Notify::new());
    let deps = Deps {
        store: store.clone(),
        clock: env.clock.clone(),
        ids: env.ids.clone(),
        wake: wake.clone(),
    };
    let dispatcher = Dispatcher::new(
        store,
        env.clock.clone(),
        env.ids.clone(),
        env.consistency.clone(),
        &opts,
        wake,
    );
    let worker = dispatcher.clone();
    Ok(Fulfillment {
        component: Component {
            name: NAME,
            depends: &DEPENDENCIES,
            db,
            routes: http::router(deps.clone()),
            serves: Vec::new(),
            publishes: fulfillment_contract::EVENTS.to_vec(),
            subscriptions: vec![subscription(&deps)],
            workers: vec![Worker {
                name: "fulfillment.dispatcher".into(),
                run: Box::new(move |shutdown| Box::pin(worker.run(shutdown))),
            }],
            invariants: vec![
                &STOCK_NEVER_NEGATIVE,
                &ALL_OR_NOTHING_RESERVATION,
                &PAID_INVOICE_DISPATCHED,
            ],
            openapi: http::openapi(),
        },
        dispatcher,
    })
}

/// Billing's feed: one subscription, so the invoice events of one invoice
/// are applied in billing's commit order (created, then paid or voided).
fn subscription(deps: &Deps) -> Subscription {
    let deps = Arc::new(deps.clone());
    let (d1, d2, d3) = (deps.clone(), deps.clone(), deps);
    Subscription {
        consumer: NAME,
        producer: billing_contract::INVOICE_CREATED.producer,
        handles: vec![
            Handles::new(ACCEPTS_CREATED, move |ev: InvoiceCreated, tx| {
                let deps = d1.clone();
                Box::pin(async move { service::on_invoice_created(&deps, ev, tx).await })
            }),
            Handles::new(ACCEPTS, move |ev: InvoicePaid, tx| {
                let deps = d2.clone();
                Box::pin(async move { service::on_invoice_paid(&deps, ev, tx).await })
            }),
            Handles::new(ACCEPTS, move |ev: InvoiceVoided, tx| {
                let deps = d3.clone();
                Box::pin(async move { service::on_invoice_voided(&deps, ev, tx).await })
            }),
        ],
    }
}
