//! Fulfillment's request failures and the one place they become problems.
//!
//! Only the public routes fail towards a client; consumers fail with a
//! `HandlerError` for the bus, and the dispatcher logs and retries.

use axum::response::{IntoResponse, Response};
use seams_core::Problem;
use seams_http::IntoProblem;

use crate::domain::Invalid;

/// Everything a fulfillment request can fail with.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// 422 `invalid-field`, not retryable: `field` names the offending body
    /// field (a SKU outside `A-Z a-z 0-9 - _ .` or longer than 64, a
    /// quantity outside `1..=1000000`).
    #[error(transparent)]
    Invalid(#[from] Invalid),
    /// 400 `invalid-query`, not retryable: a query parameter is unusable
    /// (`field` names it). The same problem type the framework uses for a
    /// query string that does not parse, so clients handle one kind.
    #[error("invalid {field}: {reason}")]
    InvalidQuery {
        /// The parameter.
        field: &'static str,
        /// What is wrong.
        reason: String,
    },
    /// 400 `invalid-path`, not retryable: a path segment cannot be what it
    /// names (`field`, e.g. a SKU with a space). The framework's type for a
    /// path parameter that does not parse.
    #[error("invalid {field}: {reason}")]
    InvalidPath {
        /// The path parameter.
        field: &'static str,
        /// What is wrong.
        reason: String,
    },
    /// Not an error a client sees: another request with the same key won; the handler replays its response.
    #[error("idempotency key already used")]
    KeyConflict,
    /// 500 `internal`, retryable: logged with its cause, opaque to the client.
    #[error(transparent)]
    Unexpected(#[from] anyhow::Error),
}

impl IntoProblem for Error {
    fn problem(&self) -> Problem {
        match self {
            Error::Invalid(e) => seams_http::problem::invalid_field(e),
            Error::InvalidQuery { field, reason } => {
                Problem::new(400, "invalid-query", "Invalid query string")
                    .detail(format!("{field}: {reason}"))
                    .with("field", *field)
            }
            Error::InvalidPath { field, reason } => {
                Problem::new(400, "invalid-path", "Invalid path parameter")
                    .detail(format!("{field}: {reason}"))
                    .with("field", *field)
            }
            Error::KeyConflict => seams_http::problem::internal(),
            Error::Unexpected(e) => seams_http::problem::unexpected(e),
        }
    }
}

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        seams_http::problem::error_response(&self)
    }
}
