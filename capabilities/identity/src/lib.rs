//! Identity: owns customers and their email addresses.
//!
//! It registers customers (one per normalized address) and changes their
//! addresses, answers `get-customer` for other capabilities (billing checks
//! an invoice's customer with it) and publishes `customer-registered` and
//! `customer-email-changed`, from which others keep their own copies
//! (notification's contact list) instead of asking at send time. Its writes
//! answer with a consistency token, so a client can wait for those copies to
//! catch up. Credentials and access tokens are identity's too, but not yet
//! built.
//!
//! Layout: [`domain`] holds the pure rules, [`service`] the effectful shell,
//! [`store`] the SQL, [`http`] the public routes, [`error`] the one mapping
//! of failures to problems.

pub mod domain;
pub mod error;
pub mod http;
pub mod service;
pub mod store;

use identity_contract::{CHANGE_EMAIL, GET_CUSTOMER, GetCustomer, REGISTER_CUSTOMER};
use seams_runtime::{Component, Env, Served};

pub use error::Error;
pub use service::Deps;

static MIGRATIONS: seams_store::Migrations = seams_store::Migrations {
    sqlite: sqlx::migrate!("./migrations/sqlite"),
    postgres: sqlx::migrate!("./migrations/postgres"),
};

/// No two customers share a (normalized) email address.
pub static EMAIL_UNIQUE: seams_core::decl::Invariant = seams_core::decl::Invariant {
    capability: NAME,
    name: "email-unique",
    description: "No two customers share a (normalized) email address.",
    kind: seams_core::decl::InvariantKind::Immediate {
        enforced_by: "customers.email UNIQUE on the trimmed, lowercased address",
    },
};

/// The capability's name and URL prefix.
pub const NAME: &str = "identity";

/// Builds identity on its own database, where `env.storage` says.
pub async fn component(env: &Env) -> anyhow::Result<Component> {
    let db = env.open_db(NAME, &MIGRATIONS).await?;
    let deps = Deps {
        store: store::Store::new(db.clone()),
        clock: env.clock.clone(),
        ids: env.ids.clone(),
    };
    let get_deps = deps.clone();
    Ok(Component {
        name: NAME,
        db,
        routes: http::router(deps),
        public: vec![&REGISTER_CUSTOMER, &CHANGE_EMAIL],
        serves: vec![Served::new(&GET_CUSTOMER, move |req: GetCustomer, _ctx| {
            let deps = get_deps.clone();
            async move { service::serve_get_customer(&deps, req).await }
        })],
        publishes: identity_contract::EVENTS.to_vec(),
        subscriptions: Vec::new(),
        workers: Vec::new(),
        invariants: vec![&EMAIL_UNIQUE],
        openapi: http::openapi(),
    })
}
