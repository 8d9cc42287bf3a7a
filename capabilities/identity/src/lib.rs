//! Identity: owns customers and their email addresses.
//!
//! It registers customers (one per normalized address) and changes their
//! addresses, answers `get-customer` for other capabilities (billing checks
//! an invoice's customer with it) and publishes `customer-registered` and
//! `customer-email-changed`, from which others keep their own copies
//! (notification's contact list) instead of asking at send time. Its writes
//! answer with a consistency token, so a client can wait for those copies to
//! catch up. Credentials are identity's too: a customer signs in with their
//! password (kept as an Argon2id hash, [`credentials`]) and gets a
//! short-lived access token signed with the deployment's keys, which every
//! other capability verifies with the public keys identity publishes.
//!
//! Layout: [`domain`] holds the pure rules, [`service`] the effectful shell,
//! [`credentials`] password hashing and attempt limits, [`store`] the SQL,
//! [`http`] the public routes, [`error`] the one mapping of failures to
//! problems.

pub mod credentials;
pub mod domain;
pub mod error;
pub mod http;
pub mod service;
pub mod store;

use std::time::Duration;

use identity_contract::GetCustomer;
use seams_core::decl::Dependencies;
use seams_runtime::{Component, Env, Served, Worker};

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

/// Identity's service level objectives: registering, changing an email
/// and signing in each answer at most 5 in 1,000 requests with a server
/// error over 30 days.
pub static OBJECTIVES: &[seams_core::decl::Objective] = &[
    // The door every new customer comes through.
    seams_core::decl::Objective {
        operation: &identity_contract::REGISTER_CUSTOMER,
        method: "POST",
        route: "/identity/customers",
        availability_percent: 99.5,
        window: std::time::Duration::from_secs(30 * 24 * 3600),
    },
    // A customer's own change of address.
    seams_core::decl::Objective {
        operation: &identity_contract::CHANGE_EMAIL,
        method: "PATCH",
        route: "/identity/customers/{id}",
        availability_percent: 99.5,
        window: std::time::Duration::from_secs(30 * 24 * 3600),
    },
    // Signing in: nothing else works without it.
    seams_core::decl::Objective {
        operation: &identity_contract::CREATE_SESSION,
        method: "POST",
        route: "/identity/sessions",
        availability_percent: 99.5,
        window: std::time::Duration::from_secs(30 * 24 * 3600),
    },
];

/// The capability's name and URL prefix.
pub const NAME: &str = "identity";

/// Identity calls nobody and consumes nothing: it is where the others start.
pub static DEPENDENCIES: Dependencies = Dependencies {
    capability: NAME,
    calls: &[],
    consumes: &[],
};

/// How identity signs in and what it signs with.
#[derive(Debug, Clone)]
pub struct Options {
    /// Mints access tokens with the deployment's keys, under its issuer name.
    pub minter: seams_auth::Minter,
    /// How long a customer's access token lives.
    pub token_ttl: Duration,
    /// Sign-in attempts allowed.
    pub limits: credentials::Limits,
}

impl Options {
    /// Tokens minted by `minter`, valid 15 minutes; the default limits.
    pub fn new(minter: seams_auth::Minter) -> Options {
        Options {
            minter,
            token_ttl: Duration::from_secs(15 * 60),
            limits: credentials::Limits::default(),
        }
    }
}

/// Builds identity on its own database, where `env.storage` says.
pub async fn component(env: &Env, opts: Options) -> anyhow::Result<Component> {
    let db = env.open_db(NAME, &MIGRATIONS).await?;
    let credentials = credentials::Credentials::new(opts.limits);
    let deps = Deps {
        store: store::Store::new(db.clone()),
        clock: env.clock.clone(),
        ids: env.ids.clone(),
        credentials: credentials.clone(),
        minter: opts.minter,
        token_ttl: opts.token_ttl,
    };
    let get_deps = deps.clone();
    Ok(Component {
        name: NAME,
        depends: &DEPENDENCIES,
        db,
        routes: http::router(deps),
        serves: vec![Served::answering(move |req: GetCustomer, _ctx| {
            let deps = get_deps.clone();
            async move { service::serve_get_customer(&deps, req).await }
        })],
        publishes: identity_contract::EVENTS.to_vec(),
        subscriptions: Vec::new(),
        workers: vec![forget_idle_limits(credentials)],
        invariants: vec![&EMAIL_UNIQUE],
        openapi: http::openapi(),
    })
}

/// Every minute, forgets the attempt counts that limit nobody any more, so
/// the limiters' memory follows recent traffic, not all traffic ever.
fn forget_idle_limits(credentials: credentials::Credentials) -> Worker {
    Worker {
        name: "identity.sign-in-limits".into(),
        run: Box::new(move |stop| {
            Box::pin(async move {
                loop {
                    tokio::select! {
                        () = tokio::time::sleep(Duration::from_secs(60)) => credentials.forget_idle(),
                        () = stop.cancelled() => return,
                    }
                }
            })
        }),
    }
}
