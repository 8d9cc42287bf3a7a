//! Identity's failures and the one place they become problems.

use axum::response::{IntoResponse, Response};
use seams_core::Problem;
use seams_http::IntoProblem;

use crate::credentials::Refused;
use crate::domain::Invalid;

impl From<Refused> for Error {
    fn from(r: Refused) -> Error {
        match r {
            Refused::TooMany(wait) => Error::TooManyAttempts(wait),
            Refused::Busy => Error::Overloaded,
            Refused::Failed(e) => Error::Unexpected(e),
        }
    }
}

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
    /// 404 `customer-not-found`, not retryable: no customer has this id (a
    /// malformed id included), or it is not the caller's own: the two are
    /// not told apart, so ids cannot be probed.
    #[error("no customer with id {0}")]
    NotFound(String),
    /// 401 `invalid-credentials`, not retryable as is: the email and
    /// password do not match a customer. The same answer for an unknown
    /// address and a wrong password.
    #[error("invalid email or password")]
    InvalidCredentials,
    /// 429 `too-many-attempts`, retryable after `Retry-After`: too many
    /// sign-ins for this address, or attempts from this client.
    #[error("too many attempts; retry in {0:?}")]
    TooManyAttempts(std::time::Duration),
    /// 503 `overloaded`, retryable (`Retry-After: 1`): every password check
    /// slot stayed busy; nothing was done.
    #[error("too many password checks in progress")]
    Overloaded,
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
            Error::InvalidCredentials => {
                Problem::new(401, "invalid-credentials", "Invalid email or password")
                    .detail("No customer has this email and password.")
            }
            Error::TooManyAttempts(wait) => {
                Problem::new(429, "too-many-attempts", "Too many attempts")
                    .detail("Too many sign-in attempts for this address or from this client; wait and try again.")
                    .with("retry_after", wait.as_secs().max(1))
            }
            Error::Overloaded => seams_http::problem::overloaded(),
            Error::Unexpected(e) => seams_http::problem::unexpected(e),
        }
    }
}

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        seams_http::problem::error_response(&self)
    }
}
