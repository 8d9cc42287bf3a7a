//! Catalog: owns products and their prices.
//!
//! It answers `quote-prices` for other capabilities (billing prices a cart
//! with it) and publishes `product-added`. It does not own stock (that is
//! fulfillment) nor what a customer paid (billing copies the quoted price
//! into the invoice).
//!
//! Layout: [`domain`] holds the pure rules, [`service`] the effectful shell,
//! [`store`] the SQL, [`http`] the public routes, [`error`] the one mapping
//! of failures to problems.

pub mod domain;
pub mod error;
pub mod http;
pub mod service;
pub mod store;

use catalog_contract::QuotePrices;
use seams_runtime::{Component, Env, Served};

pub use error::Error;
pub use service::Deps;

static MIGRATIONS: seams_store::Migrations = seams_store::Migrations {
    sqlite: sqlx::migrate!("./migrations/sqlite"),
    postgres: sqlx::migrate!("./migrations/postgres"),
};

/// No two products share a SKU.
pub static SKU_UNIQUE: seams_core::decl::Invariant = seams_core::decl::Invariant {
    capability: NAME,
    name: "sku-unique",
    description: "No two products share a SKU.",
    kind: seams_core::decl::InvariantKind::Immediate {
        enforced_by: "products.sku PRIMARY KEY",
    },
};

/// Catalog's service level objective: adding a product answers at most 5
/// in 1,000 requests with a server error over 30 days.
pub static OBJECTIVES: &[seams_core::decl::Objective] = &[
    // Staff adding to the catalog.
    seams_core::decl::Objective {
        operation: &catalog_contract::ADD_PRODUCT,
        method: "POST",
        route: "/catalog/products",
        availability_percent: 99.5,
        window: std::time::Duration::from_secs(30 * 24 * 3600),
    },
];

/// The capability's name and URL prefix.
pub const NAME: &str = "catalog";

/// Catalog calls nobody and consumes nothing.
pub static DEPENDENCIES: seams_core::decl::Dependencies = seams_core::decl::Dependencies {
    capability: NAME,
    calls: &[],
    consumes: &[],
};

/// Builds catalog on its own database, where `env.storage` says.
pub async fn component(env: &Env) -> anyhow::Result<Component> {
    let db = env.open_db(NAME, &MIGRATIONS).await?;
    let deps = Deps {
        store: store::Store::new(db.clone()),
        clock: env.clock.clone(),
        ids: env.ids.clone(),
    };
    let quote_deps = deps.clone();
    Ok(Component {
        name: NAME,
        depends: &DEPENDENCIES,
        db,
        routes: http::router(deps),
        serves: vec![Served::answering(move |req: QuotePrices, _ctx| {
            let deps = quote_deps.clone();
            async move { service::quote_prices(&deps, req).await }
        })],
        publishes: catalog_contract::EVENTS.to_vec(),
        subscriptions: Vec::new(),
        workers: Vec::new(),
        invariants: vec![&SKU_UNIQUE],
        openapi: http::openapi(),
    })
}
