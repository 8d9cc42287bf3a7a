//! Loyalty: owns customers' points balances. It learns of payments only
//! from billing's `invoice-paid` events (it never asks billing anything),
//! awards one point per 100 minor units paid, and publishes
//! `loyalty.points-awarded` in the same transaction.
//!
//! The example capability of `docs/write-a-capability.md`, written only
//! against the framework's public API: its declarations are in
//! `loyalty-contract`; here are its table, its one consumer, its one route,
//! and the [`component`] that hands them to the runtime. The framework opens
//! each event's transaction with its inbox row, so a redelivered payment
//! awards nothing twice (see `seams_runtime::consumer` for the horizon).

use std::sync::Arc;

use anyhow::Context;

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use billing_contract::{INVOICE_PAID, InvoicePaid};
use catalog_contract::Amount;
use loyalty_contract::{Balance, GET_BALANCE, PointsAwarded};
use seams_core::auth::{Access, Role};
use seams_core::decl::{Dependencies, Invariant, InvariantKind, Objective};
use seams_core::{Clock, Ids, Problem};
use seams_http::{Caller, IntoProblem, Path, Routes};
use seams_runtime::{Applying, Component, Env, HandlerError, Handles, Subscription};
use seams_store::Db;

/// The capability's name and URL prefix.
pub const NAME: &str = "loyalty";

/// Loyalty calls nobody; it follows billing's payments.
pub static DEPENDENCIES: Dependencies = Dependencies {
    capability: NAME,
    calls: &[],
    consumes: &[&INVOICE_PAID],
};

/// Loyalty declares no service level objective: objectives are for
/// commands, and its one route is a query.
pub static OBJECTIVES: &[Objective] = &[];

/// A balance is never negative.
pub static BALANCE_NEVER_NEGATIVE: Invariant = Invariant {
    capability: NAME,
    name: "balance-never-negative",
    description: "No customer's points balance is below zero.",
    kind: InvariantKind::Immediate {
        enforced_by: "points >= 0: a CHECK constraint on balances",
    },
};

static MIGRATIONS: seams_store::Migrations = seams_store::Migrations {
    sqlite: sqlx::migrate!("./migrations/sqlite"),
    postgres: sqlx::migrate!("./migrations/postgres"),
};

/// Event versions loyalty accepts of what it consumes.
const ACCEPTS: &[u32] = &[1];

/// The rule, pure: one point per 100 minor units paid (EUR 12.50 earns 12).
pub fn points_for(paid: &Amount) -> i64 {
    paid.amount / 100
}

/// What loyalty's handlers need, passed explicitly.
#[derive(Clone)]
pub struct Deps {
    /// Loyalty's database.
    pub db: Db,
    /// Time, for the events it publishes.
    pub clock: Arc<dyn Clock>,
    /// Ids, for the events it publishes.
    pub ids: Arc<dyn Ids>,
}

/// Builds loyalty on its own database (where `env.storage` says).
pub async fn component(env: &Env) -> anyhow::Result<Component> {
    let db = env.open_db(NAME, &MIGRATIONS).await?;
    let deps = Deps {
        db: db.clone(),
        clock: env.clock.clone(),
        ids: env.ids.clone(),
    };
    let on_paid = deps.clone();
    Ok(Component {
        name: NAME,
        depends: &DEPENDENCIES,
        db,
        routes: Routes::new()
            .get(
                "/balances/{customer_id}",
                &GET_BALANCE,
                Access::People(&[Role::Customer, Role::Staff]),
                get_balance,
            )
            .with_state(deps),
        serves: Vec::new(),
        publishes: loyalty_contract::EVENTS.to_vec(),
        subscriptions: vec![Subscription {
            consumer: NAME,
            producer: INVOICE_PAID.producer,
            handles: vec![Handles::new(ACCEPTS, move |ev: InvoicePaid, tx| {
                let deps = on_paid.clone();
                Box::pin(async move { on_invoice_paid(&deps, ev, tx).await })
            })],
        }],
        workers: Vec::new(),
        invariants: vec![&BALANCE_NEVER_NEGATIVE],
        // Described from GET_BALANCE's declaration, needing nothing by hand.
        openapi: Default::default(),
    })
}

/// Awards a paid invoice's points and announces the new balance, in the
/// event's inbox transaction. A payment too small to earn a point changes
/// nothing (its inbox row still commits).
pub async fn on_invoice_paid(
    deps: &Deps,
    ev: InvoicePaid,
    tx: &mut Applying,
) -> Result<(), HandlerError> {
    let points = points_for(&ev.amount);
    if points == 0 {
        return Ok(());
    }
    let balance: i64 = seams_store::query(
        "INSERT INTO balances (customer_id, points) VALUES ($1, $2) \
         ON CONFLICT (customer_id) DO UPDATE SET points = balances.points + excluded.points \
         RETURNING points",
    )
    .bind(&ev.customer_id)
    .bind(points)
    .fetch_one(tx.tx())
    .await?
    .get(0)?;
    let awarded = PointsAwarded {
        customer_id: ev.customer_id,
        invoice_id: ev.invoice_id,
        points,
        balance,
    };
    let (id, now) = (deps.ids.new_id().to_string(), deps.clock.now_rfc3339());
    tx.publish(&awarded, id, now)?;
    Ok(())
}

/// A customer's balance: staff may read any, a customer only their own. A
/// customer never awarded points has 0.
async fn get_balance(
    State(deps): State<Deps>,
    Caller(caller): Caller,
    Path(customer_id): Path<String>,
) -> Result<axum::Json<Balance>, Error> {
    if !(caller.has_role(Role::Staff) || caller.is_customer(&customer_id)) {
        return Err(Error::Forbidden);
    }
    let points = match seams_store::query("SELECT points FROM balances WHERE customer_id = $1")
        .bind(&customer_id)
        .fetch_optional(&mut deps.db.read().await.context("reading balances")?)
        .await
        .context("reading balances")?
    {
        Some(row) => row.get(0).context("reading balances")?,
        None => 0,
    };
    Ok(axum::Json(Balance {
        customer_id,
        points,
    }))
}

/// Everything a loyalty request can fail with, and the one place each
/// becomes a problem.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// 403 `forbidden`: a customer asked for another customer's balance.
    #[error("another customer's balance")]
    Forbidden,
    /// 500 `internal`, retryable: logged with its cause, opaque to the client.
    #[error(transparent)]
    Unexpected(#[from] anyhow::Error),
}

impl IntoProblem for Error {
    fn problem(&self) -> Problem {
        match self {
            Error::Forbidden => Problem::new(403, "forbidden", "Not allowed")
                .detail("a customer may read only their own balance"),
            Error::Unexpected(e) => seams_http::problem::unexpected(e),
        }
    }
}

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        seams_http::problem::error_response(&self)
    }
}
