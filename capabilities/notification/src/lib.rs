//! Notification: owns the contact read model, the delivery log and the
//! delivery channels.
//!
//! It consumes identity's `customer-registered` and `customer-email-changed`
//! into its own copy of each customer's contact (it never asks identity at
//! send time, so identity being down or slow never stops mail), and
//! billing's `invoice-created`, `invoice-paid`, `invoice-voided` and
//! `invoice-refunded` and fulfillment's `shipment-dispatched` into
//! deliveries: one message per event, recorded in the event's inbox
//! transaction. The [`sender`] worker then sends recorded deliveries through
//! the configured [`channel`] with bounded retries, and every delivery,
//! failed ones included, stays listed at
//! `GET /notification/deliveries?customer_id=`. The contacts themselves are
//! readable at `GET /notification/contacts/{customer_id}`, with their
//! freshness, and wait for an identity write's consistency token. It
//! publishes nothing yet.
//!
//! Layout: [`domain`] holds the pure rules (contact changes, message text,
//! retry schedule), [`service`] the consumers and the queries, [`sender`]
//! the sending worker, [`store`] the SQL, [`http`] the public routes,
//! [`error`] the one mapping of failures to problems, [`channel`] the ways a
//! message leaves.

pub mod channel;
pub mod domain;
pub mod error;
pub mod http;
pub mod sender;
pub mod service;
pub mod store;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use billing_contract::{InvoiceCreated, InvoicePaid, InvoiceRefunded, InvoiceVoided};
use fulfillment_contract::ShipmentDispatched;
use identity_contract::{CustomerEmailChanged, CustomerRegistered};
use seams_core::decl::{Dependencies, RetryPolicy};
use seams_runtime::{Component, Env, Handles, Subscription, Worker};
use tokio::sync::Notify;

use crate::channel::{Channel, Maildir, Smtp, SmtpOptions};

pub use error::Error;
pub use sender::Sender;
pub use service::Deps;

static MIGRATIONS: seams_store::Migrations = seams_store::Migrations {
    sqlite: sqlx::migrate!("./migrations/sqlite"),
    postgres: sqlx::migrate!("./migrations/postgres"),
};

/// The capability's name and URL prefix.
pub const NAME: &str = "notification";

/// Notification declares no service level objectives: objectives are
/// declared for commands, and it answers only queries.
pub static OBJECTIVES: &[seams_core::decl::Objective] = &[];

/// Notification calls nobody: it keeps its own copy of identity's contacts
/// and tells customers what billing and fulfillment did.
pub static DEPENDENCIES: Dependencies = Dependencies {
    capability: NAME,
    calls: &[],
    consumes: &[
        &identity_contract::CUSTOMER_REGISTERED,
        &identity_contract::CUSTOMER_EMAIL_CHANGED,
        &billing_contract::INVOICE_CREATED,
        &billing_contract::INVOICE_PAID,
        &billing_contract::INVOICE_VOIDED,
        &billing_contract::INVOICE_REFUNDED,
        &fulfillment_contract::SHIPMENT_DISPATCHED,
    ],
};

/// The `From` of messages written to a Maildir (SMTP has its own in
/// [`SmtpOptions::from`]): a local file has no relay that cares, so it is
/// not worth a setting.
pub const MAILDIR_FROM: &str = "Seams Shop <shop@localhost>";

/// Event versions notification accepts of every event it consumes, unless
/// its handler says otherwise.
const ACCEPTS: &[u32] = &[1];

/// Where messages go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChannelOptions {
    /// Files in a local Maildir (created if missing); needs nothing running.
    Maildir {
        /// The Maildir: the directory that holds `tmp/`, `new/` and `cur/`.
        dir: PathBuf,
    },
    /// An SMTP relay.
    Smtp(SmtpOptions),
}

/// How notification is built.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    /// Where messages go.
    pub channel: ChannelOptions,
    /// Attempts per delivery and the backoff between them (transient
    /// failures only; a permanent one fails the delivery at once).
    pub retry: RetryPolicy,
    /// Longest the sender sleeps when no new delivery wakes it; bounds how
    /// late a retry that fell due is sent.
    pub poll: Duration,
    /// Deliveries the sender takes per step; small, so a shutdown waits for
    /// few messages.
    pub batch: u32,
    /// Longest a contact read presenting a consistency token waits for the
    /// projection to catch up before answering 503 `stale-read`. Zero means
    /// "never wait": a token ahead of the projection is stale at once.
    pub consistency_wait: Duration,
}

impl Options {
    /// Ten attempts, 200 ms apart at first, doubling up to 30 s: about two
    /// minutes of an unreachable relay before a message counts as failed.
    pub const DEFAULT_RETRY: RetryPolicy = RetryPolicy {
        max_attempts: 10,
        initial_backoff: Duration::from_millis(200),
        max_backoff: Duration::from_secs(30),
    };

    /// How long a read with a consistency token waits by default: the bound
    /// of [`EMAIL_CHANGE_REACHES_CONTACTS`] and [`CONTACTS_FOLLOW_IDENTITY`],
    /// so a read fails as stale only when that bound is broken.
    pub const DEFAULT_CONSISTENCY_WAIT: Duration = Duration::from_secs(2);

    /// The defaults: a Maildir at `<data>/mail`, [`Options::DEFAULT_RETRY`],
    /// a 500 ms poll, batches of 16 and [`Options::DEFAULT_CONSISTENCY_WAIT`].
    pub fn default_for(env: &Env) -> Options {
        Options {
            channel: ChannelOptions::Maildir {
                dir: env.data_dir.join("mail"),
            },
            retry: Options::DEFAULT_RETRY,
            poll: Duration::from_millis(500),
            batch: 16,
            consistency_wait: Options::DEFAULT_CONSISTENCY_WAIT,
        }
    }

    /// Rejects settings that would make the sender misbehave, naming the key.
    pub fn validate(&self) -> anyhow::Result<()> {
        if self.retry.max_attempts == 0 {
            bail!("notification.retry.max_attempts is 0; at least one attempt is needed");
        }
        if self.poll.is_zero() {
            bail!("notification.poll is 0; the sender would spin");
        }
        if self.batch == 0 {
            bail!("notification.batch is 0; the sender would never send");
        }
        Ok(())
    }
}

/// Notification, built: the component for the runtime and a handle on its
/// sender (the same one the component's worker runs), for tests to drive.
pub struct Notification {
    /// What the runtime runs.
    pub component: Component,
    /// The sending worker's handle; see [`Sender::try_send_due`].
    pub sender: Sender,
}

/// Contacts follow identity's registrations within a bound.
pub static CONTACTS_FOLLOW_IDENTITY: seams_core::decl::Invariant = seams_core::decl::Invariant {
    capability: NAME,
    name: "contacts-follow-identity",
    description: "A registered customer is in notification's contacts within 2 s (p99).",
    kind: seams_core::decl::InvariantKind::Eventual {
        bound: std::time::Duration::from_secs(2),
        percentile: 99.0,
        measure: seams_core::decl::Measure::Hop {
            event: &identity_contract::CUSTOMER_REGISTERED,
            consumer: NAME,
        },
    },
};

/// A customer's new address reaches the contacts within a bound.
pub static EMAIL_CHANGE_REACHES_CONTACTS: seams_core::decl::Invariant =
    seams_core::decl::Invariant {
        capability: NAME,
        name: "email-change-reaches-contacts",
        description: "A customer's new email reaches notification's contacts within 2 s (p99).",
        kind: seams_core::decl::InvariantKind::Eventual {
            bound: std::time::Duration::from_secs(2),
            percentile: 99.0,
            measure: seams_core::decl::Measure::Hop {
                event: &identity_contract::CUSTOMER_EMAIL_CHANGED,
                consumer: NAME,
            },
        },
    };

/// Every invoice gets a notification recorded within a bound.
pub static INVOICE_NOTICE_RECORDED: seams_core::decl::Invariant = seams_core::decl::Invariant {
    capability: NAME,
    name: "invoice-notice-recorded",
    description: "A created invoice has its notification recorded for delivery within 2 s (p99).",
    kind: seams_core::decl::InvariantKind::Eventual {
        bound: std::time::Duration::from_secs(2),
        percentile: 99.0,
        measure: seams_core::decl::Measure::Hop {
            event: &billing_contract::INVOICE_CREATED,
            consumer: NAME,
        },
    },
};

/// Builds notification on its own database (where `env.storage` says).
pub async fn component(env: &Env, opts: Options) -> anyhow::Result<Component> {
    Ok(build(env, opts).await?.component)
}

/// [`component`], also returning the sender for tests to drive step by step.
pub async fn build(env: &Env, opts: Options) -> anyhow::Result<Notification> {
    opts.validate()?;
    let channel = open_channel(&opts.channel)?;
    let db = env.open_db(NAME, &MIGRATIONS).await?;
    let store = store::Store::new(db.clone());
    let wake = Arc::new(Notify::new());
    let deps = Deps {
        store: store.clone(),
        clock: env.clock.clone(),
        ids: env.ids.clone(),
        channel: channel.name(),
        wake: wake.clone(),
        consistency: env.consistency.clone(),
        consistency_wait: opts.consistency_wait,
    };
    let sender = Sender::new(store, channel, env.clock.clone(), &opts, wake);
    let worker = sender.clone();
    Ok(Notification {
        component: Component {
            name: NAME,
            depends: &DEPENDENCIES,
            db,
            routes: http::router(deps.clone()),
            serves: Vec::new(),
            publishes: Vec::new(),
            subscriptions: subscriptions(&deps),
            workers: vec![Worker {
                name: "notification.sender".into(),
                run: Box::new(move |shutdown| Box::pin(worker.run(shutdown))),
            }],
            openapi: http::openapi(),
            invariants: vec![
                &CONTACTS_FOLLOW_IDENTITY,
                &EMAIL_CHANGE_REACHES_CONTACTS,
                &INVOICE_NOTICE_RECORDED,
            ],
        },
        sender,
    })
}

fn open_channel(opts: &ChannelOptions) -> anyhow::Result<Arc<dyn Channel>> {
    Ok(match opts {
        ChannelOptions::Maildir { dir } => {
            let from = MAILDIR_FROM.parse().context("parsing MAILDIR_FROM")?;
            Arc::new(
                Maildir::new(dir, from)
                    .with_context(|| format!("opening the Maildir at {}", dir.display()))?,
            )
        }
        ChannelOptions::Smtp(smtp) => Arc::new(Smtp::new(smtp.clone())?),
    })
}

/// One subscription per producer: identity's feed fills the contacts,
/// billing's and fulfillment's feeds the deliveries.
fn subscriptions(deps: &Deps) -> Vec<Subscription> {
    /// Handles `E` with `f`, giving each delivery its own clone of `deps`.
    macro_rules! handles {
        ($event:ty, $f:path) => {
            handles!($event, $f, ACCEPTS)
        };
        ($event:ty, $f:path, $accepts:expr) => {{
            let deps = deps.clone();
            Handles::new($accepts, move |ev: $event, tx| {
                let deps = deps.clone();
                Box::pin(async move { $f(&deps, ev, tx).await })
            })
        }};
    }
    vec![
        Subscription {
            consumer: NAME,
            producer: identity_contract::CUSTOMER_REGISTERED.producer,
            handles: vec![
                handles!(CustomerRegistered, service::on_customer_registered),
                handles!(CustomerEmailChanged, service::on_customer_email_changed),
            ],
        },
        Subscription {
            consumer: NAME,
            producer: billing_contract::INVOICE_CREATED.producer,
            handles: vec![
                // Both versions: a line of version 1 is printed by its SKU.
                handles!(InvoiceCreated, service::on_invoice_created, &[1, 2]),
                handles!(InvoicePaid, service::on_invoice_paid),
                handles!(InvoiceVoided, service::on_invoice_voided),
                handles!(InvoiceRefunded, service::on_invoice_refunded),
            ],
        },
        Subscription {
            consumer: NAME,
            producer: fulfillment_contract::SHIPMENT_DISPATCHED.producer,
            handles: vec![handles!(
                ShipmentDispatched,
                service::on_shipment_dispatched
            )],
        },
    ]
}
