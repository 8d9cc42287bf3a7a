//! Running capabilities: composing them into one system, carrying calls
//! between them, and delivering their events.
//!
//! Layout:
//! - [`component`]: what a capability hands the runtime (routes, served
//!   operations, subscriptions, workers, database).
//! - [`inprocess`]: the in-process [`seams_core::Transport`], which still
//!   serializes every call, exactly as the network will.
//! - [`governed`]: timeouts, deadlines and retries applied from each
//!   operation's declaration, around any transport.
//! - [`relay`]: delivery of committed outbox events to subscribers, with
//!   bounded retries, dead letters and the inbox.
//! - [`gauges`]: outbox backlog, lag per subscription and dead letters,
//!   sampled for `/metrics` ([`metrics`] lists every series).
//! - [`retention`]: how long outbox rows, inbox ids and idempotency records
//!   are kept, derived from the declared retry horizons.
//! - [`system`]: the composition root's machinery: checks every declaration,
//!   starts everything in order, and stops it in reverse.
//!
//! ```no_run
//! # async fn demo(component: seams_runtime::Component) -> anyhow::Result<()> {
//! use seams_runtime::{Runtime, SystemOptions};
//! let runtime = Runtime::new(SystemOptions::default());
//! let env = runtime.env("data");
//! // each capability crate: `let c = billing::component(&env, opts).await?;`
//! let mut builder = runtime.builder();
//! builder.add(component);
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
//! let running = builder.start(listener).await?;
//! running.stop().await?;
//! # Ok(()) }
//! ```
#![warn(missing_docs)]
#![deny(unreachable_pub)]

pub mod breaker;
pub mod component;
pub mod consistency;
pub mod consumer;
pub mod feed;
pub mod gauges;
pub mod governed;
pub mod inprocess;
pub mod metrics;
pub mod relay;
pub mod retention;
pub mod system;

pub use component::{
    Component, Env, EventHandler, HandlerError, Handles, Served, Storage, Subscription, Worker,
};
pub use consistency::Consistency;
pub use consumer::{Applying, Inbox};
pub use relay::Chaos;
pub use retention::Retention;
pub use system::{FeedSource, Running, Runtime, SystemBuilder, SystemOptions};
