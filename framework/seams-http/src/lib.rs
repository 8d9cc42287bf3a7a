//! HTTP at the edges of every capability: routes declared with their
//! operation (whose timeout and "when down" answer apply) and who may use
//! them, problem+json errors, strict JSON extraction, `Idempotency-Key`
//! handling, correlation and trace context, and the assembly of the one
//! public router.
//!
//! A capability's `http.rs` uses these pieces and holds no SQL; its error enum
//! implements [`IntoProblem`] once, and every rejection a request can meet
//! before reaching a handler (bad JSON, wrong content type, oversized body,
//! missing key) is already a problem here.
//!
//! ```
//! use std::sync::Arc;
//! use std::time::Duration;
//! use axum::Router;
//! use seams_core::auth::{Access, Role};
//! use seams_core::decl::*;
//! use seams_http::{Caller, Ctx, Json, Routes};
//!
//! static SAY_HELLO: Operation = Operation {
//!     capability: "greeter",
//!     name: "say-hello",
//!     summary: "Greets (POST /greeter/hello).",
//!     kind: Kind::Query,
//!     timeout: Duration::from_secs(1),
//!     retries: Retries::Caller(RetryPolicy::STANDARD),
//!     idempotency: Idempotency::ReadOnly,
//!     ordering: Ordering::Unordered,
//!     when_down: WhenDown::FailFast { problem: "greeter-unavailable", retry_after: Duration::from_secs(1) },
//!     versioning: Versioning { current: 1, accepts: &[1] },
//!     request: no_body,
//!     response: no_body,
//! };
//!
//! #[derive(serde::Deserialize)]
//! #[serde(deny_unknown_fields)]
//! struct Hello { name: String }
//!
//! async fn hello(Caller(who): Caller, Ctx(ctx): Ctx, Json(body): Json<Hello>) -> String {
//!     format!("hello {} from {who:?} ({})", body.name, ctx.correlation_id)
//! }
//! let (routes, _table) = Routes::new()
//!     .post("/hello", &SAY_HELLO, Access::People(&[Role::Customer]), hello)
//!     .with_state(())
//!     .into_parts();
//! let verifier = Arc::new(seams_auth::Verifier::new(Vec::new()));
//! let app: Router = seams_http::app::public(vec![("greeter", routes)], Router::new(), verifier);
//! ```
#![warn(missing_docs)]
#![deny(unreachable_pub)]

pub mod app;
pub mod auth;
pub mod correlation;
pub mod declared;
pub mod extract;
pub mod idempotency;
pub mod metrics;
pub mod openapi;
pub mod problem;
pub mod remote;
pub mod routes;
pub mod server;
pub mod tls;

pub use app::ClientAddr;
pub use auth::Caller;
pub use correlation::Ctx;
pub use extract::{Json, Path, Query};
pub use idempotency::{IdempotencyStore, IdempotentJson};
pub use problem::{IntoProblem, problem_response};
pub use routes::Routes;

/// Largest request body accepted, in bytes: anything bigger is answered 413.
pub const BODY_LIMIT: usize = 64 * 1024;
