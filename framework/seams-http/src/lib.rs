//! HTTP at the edges of every capability: problem+json errors, strict JSON
//! extraction, `Idempotency-Key` handling, correlation and trace context, and
//! the assembly of the one public router.
//!
//! A capability's `http.rs` uses these pieces and holds no SQL; its error enum
//! implements [`IntoProblem`] once, and every rejection a request can meet
//! before reaching a handler (bad JSON, wrong content type, oversized body,
//! missing key) is already a problem here.
//!
//! ```
//! use axum::{Router, routing::post};
//! use seams_http::{Json, Ctx};
//!
//! #[derive(serde::Deserialize)]
//! #[serde(deny_unknown_fields)]
//! struct Hello { name: String }
//!
//! async fn hello(Ctx(ctx): Ctx, Json(body): Json<Hello>) -> String {
//!     format!("hello {} ({})", body.name, ctx.correlation_id)
//! }
//! let app: Router = seams_http::app::public(vec![("greeter", Router::new().route("/hello", post(hello)))], Router::new());
//! ```
#![warn(missing_docs)]
#![deny(unreachable_pub)]

pub mod app;
pub mod correlation;
pub mod extract;
pub mod idempotency;
pub mod metrics;
pub mod problem;
pub mod remote;

pub use correlation::Ctx;
pub use extract::{Json, Path, Query};
pub use idempotency::{IdempotencyStore, IdempotentJson};
pub use problem::{IntoProblem, problem_response};

/// Largest request body accepted, in bytes: anything bigger is answered 413.
pub const BODY_LIMIT: usize = 64 * 1024;
