//! Notification's request failures and the one place they become problems.
//!
//! Only the public query can fail towards a client; failures of consumers
//! are `HandlerError`s for the bus and failures of sending are recorded on
//! the delivery itself.

use axum::response::{IntoResponse, Response};
use seams_core::Problem;
use seams_http::IntoProblem;

/// Everything a notification request can fail with.
#[derive(Debug, thiserror::Error)]
pub enum Error {
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
    /// 500 `internal`, retryable: logged with its cause, opaque to the client.
    #[error(transparent)]
    Unexpected(#[from] anyhow::Error),
}

impl IntoProblem for Error {
    fn problem(&self) -> Problem {
        match self {
            Error::InvalidQuery { field, reason } => {
                Problem::new(400, "invalid-query", "Invalid query string")
                    .detail(format!("{field}: {reason}"))
                    .with("field", *field)
            }
            Error::Unexpected(_) => seams_http::problem::internal(),
        }
    }
}

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        seams_http::problem::error_response(&self)
    }
}
