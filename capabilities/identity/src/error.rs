//! Identity's failures and the one place they become problems.

use axum::response::{IntoResponse, Response};
use seams_core::Problem;
use seams_http::IntoProblem;

use crate::domain::Invalid;

/// Everything an identity request can fail with.
///
/// Messages never contain an email address: 4xx errors are logged at debug
/// level and addresses are personal data.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// 422 `invalid-field`, not retryable: a field failed validation (`field` names it).
    #[error(transparent)]
    Invalid(#[from] Invalid),
    /// 409 `duplicate-email`, not retryable: a customer with this (normalized)
    /// address exists. Carries the normalized address for the problem body.
    #[error("a customer with this email already exists")]
    DuplicateEmail(String),
    /// 404 `customer-not-found`, not retryable: no customer has this id
    /// (a malformed id included).
    #[error("no customer with id {0}")]
    NotFound(String),
    /// 500 `internal`, retryable: logged with its cause, opaque to the client.
    #[error(transparent)]
    Unexpected(#[from] anyhow::Error),
}

impl IntoProblem for Error {
    fn problem(&self) -> Problem {
        match self {
            Error::Invalid(e) => seams_http::problem::invalid_field(e),
            Error::DuplicateEmail(email) => {
                Problem::new(409, "duplicate-email", "Email already registered")
                    .detail("A customer with this email address already exists.")
                    .with("field", "email")
                    .with("email", email.clone())
            }
            Error::NotFound(id) => {
                Problem::new(404, "customer-not-found", "No such customer").with("id", id.clone())
            }
            Error::Unexpected(e) => seams_http::problem::unexpected(e),
        }
    }
}

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        seams_http::problem::error_response(&self)
    }
}
