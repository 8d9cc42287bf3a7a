//! Notification's request failures and the one place they become problems.
//!
//! Only the public queries can fail towards a client; failures of consumers
//! are `HandlerError`s for the bus and failures of sending are recorded on
//! the delivery itself.

use axum::http::{HeaderName, HeaderValue};
use axum::response::{IntoResponse, Response};
use seams_core::Problem;
use seams_http::IntoProblem;
use seams_runtime::consistency::{FRESHNESS_HEADER, Freshness};

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
    /// 400 `invalid-consistency-token`, not retryable: the
    /// `Seams-Consistency-Token` header is not a token this read model
    /// follows (unparsable, or another producer's).
    #[error("invalid consistency token: {0}")]
    InvalidToken(String),
    /// 404 `contact-not-found`, not retryable as is: notification knows no
    /// contact for this customer (yet: present the registration's token to
    /// wait for it), or the caller is not that customer.
    #[error("no contact for customer {0}")]
    ContactNotFound(String),
    /// 404 `customer-not-found`, not retryable: the caller is not this
    /// customer (whether the customer exists is not said).
    #[error("no customer {0} for this caller")]
    CustomerNotFound(String),
    /// 503 `stale-read`, retryable (`Retry-After: 1`): the read model did not
    /// reach the presented token's position within the bounded wait. Answered
    /// instead of older data; carries the freshness it had reached.
    #[error("the read model reached position {} of {}, not {wanted}", .reached.position, .reached.subscription)]
    Stale {
        /// The position the token asked for.
        wanted: u64,
        /// How far the read model had got when the wait gave up.
        reached: Freshness,
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
            Error::CustomerNotFound(id) => {
                Problem::new(404, "customer-not-found", "No such customer")
                    .with("customer_id", id.clone())
            }
            Error::InvalidToken(reason) => Problem::new(
                400,
                "invalid-consistency-token",
                "Invalid consistency token",
            )
            .detail(reason.clone()),
            Error::ContactNotFound(customer_id) => {
                Problem::new(404, "contact-not-found", "No such contact")
                    .with("customer_id", customer_id.clone())
            }
            Error::Stale { wanted, reached } => {
                Problem::new(503, "stale-read", "The read model has not caught up")
                    .detail(format!(
                        "{} reached position {}, not {wanted}, within the wait; try again.",
                        reached.subscription, reached.position
                    ))
                    .with("subscription", reached.subscription.clone())
                    .with("position", reached.position)
                    .with("wanted", *wanted)
                    .with("retry_after", 1)
            }
            Error::Unexpected(e) => seams_http::problem::unexpected(e),
        }
    }
}

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        let mut res = seams_http::problem::error_response(&self);
        if let Error::Stale { reached, .. } = &self {
            insert_freshness(&mut res, reached);
        }
        res
    }
}

/// Sets the `Seams-Freshness` header of `res` to `freshness`.
pub(crate) fn insert_freshness(res: &mut Response, freshness: &Freshness) {
    // The header is built from a subscription name and numbers: always visible ASCII.
    if let Ok(value) = HeaderValue::try_from(freshness.header()) {
        res.headers_mut()
            .insert(HeaderName::from_static(FRESHNESS_HEADER), value);
    }
}
