//! The vocabulary of Seams: what a contract declares, what an event looks like
//! on the wire, how an error is reported, and the one trait every synchronous
//! call goes through.
//!
//! This crate does no I/O and depends on no runtime (no tokio, sqlx, axum or
//! async-nats), so contract crates can depend on it and stay small: a contract
//! is data plus thin typed clients, and the framework crates give it effects.
//!
//! Layout:
//! - [`decl`]: the five answers every interaction gives (retries, idempotency,
//!   ordering, behaviour when the other side is down, versioning), as data
//!   checked when the system starts.
//! - [`envelope`]: the CloudEvents 1.0 envelope and the [`Event`] trait.
//! - [`context`]: correlation, causation and W3C trace context of one call.
//! - [`transport`]: the [`Transport`] trait that both the in-process and the
//!   HTTP implementations of a contract client use.
//! - [`problem`]: RFC 9457 problem details.
//! - [`clock`]: injected time and ids.
//! - [`mod@redact`]: URLs without their credentials, for whatever is printed.
//! - [`auth`]: who is asking ([`auth::Principal`], [`auth::Role`]) and
//!   who may use a route ([`auth::Access`]).
//!
//! ```
//! use seams_core::decl::*;
//! use std::time::Duration;
//!
//! static GET_THING: Operation = Operation {
//!     capability: "things",
//!     name: "get-thing",
//!     summary: "Fetch one thing by id.",
//!     kind: Kind::Query,
//!     timeout: Duration::from_secs(2),
//!     retries: Retries::Caller(RetryPolicy::STANDARD),
//!     idempotency: Idempotency::ReadOnly,
//!     ordering: Ordering::Unordered,
//!     when_down: WhenDown::FailFast { problem: "things-unavailable", retry_after: Duration::from_secs(1) },
//!     versioning: Versioning { current: 1, accepts: &[1] },
//!     request: no_body,
//!     response: no_body,
//! };
//! assert!(GET_THING.check().is_ok());
//! ```
#![warn(missing_docs)]
#![deny(unreachable_pub)]

pub mod auth;
pub mod clock;
pub mod context;
pub mod decl;
pub mod envelope;
pub mod invalid;
pub mod problem;
pub mod redact;
pub mod transport;

pub use clock::{Clock, Ids, SystemClock, UuidV7Ids};
pub use context::{CallContext, TraceContext};
pub use envelope::{DecodeError, Envelope, Event, EventData, WrapError, ordering_key};
pub use invalid::Invalid;
pub use problem::Problem;
pub use redact::redact;
pub use transport::{
    Ask, BoxFuture, CallError, CallReply, CallRequest, Client, ContractError, Payload, Transport,
    WireValue, call,
};
