//! Billing's failures and the one place they become problems.

use axum::response::{IntoResponse, Response};
use seams_core::{CallError, Problem};
use seams_http::IntoProblem;

use crate::domain::{Invalid, PayError};

/// Everything a billing request can fail with.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// 422 `invalid-field`, not retryable: `field` names the offending field
    /// (unknown customer or SKU, zero quantity, empty cart, mixed currencies).
    #[error(transparent)]
    Invalid(#[from] Invalid),
    /// 404 `invoice-not-found`: no such invoice, or one the caller may not
    /// see (another customer's): the two are not told apart.
    #[error("no invoice {0}")]
    NotFound(String),
    /// 403 `forbidden`, not retryable: a customer asked for an invoice
    /// billed to another customer.
    #[error("{0}")]
    Forbidden(String),
    /// 409 `invoice-already-paid`, not retryable: an invoice is paid at most
    /// once (a refunded invoice was paid, too).
    #[error("invoice {0} is already paid")]
    AlreadyPaid(String),
    /// 409 `invoice-voided`, not retryable: the invoice was cancelled because
    /// fulfillment could not fulfil it, and can no longer be paid.
    #[error("invoice {0} is voided")]
    Voided(String),
    /// 503 of the callee's declared type with `Retry-After`, retryable: a capability billing needs did not answer.
    #[error("calling {}: {source}", op.id())]
    Dependency {
        /// The operation called.
        op: &'static seams_core::decl::Operation,
        /// What went wrong.
        source: CallError,
    },
    /// Not an error a client sees: another request with the same key won; the handler replays its response.
    #[error("idempotency key already used")]
    KeyConflict,
    /// 500 `internal`, retryable: logged with its cause, opaque to the client.
    #[error(transparent)]
    Unexpected(#[from] anyhow::Error),
}

impl Error {
    /// A payment refusal for invoice `id`.
    pub fn payment(id: &str, e: PayError) -> Error {
        match e {
            PayError::AlreadyPaid => Error::AlreadyPaid(id.to_owned()),
            PayError::Voided => Error::Voided(id.to_owned()),
            PayError::WrongCurrency { expected } => Error::Invalid(Invalid::new(
                "amount.currency",
                format!("the invoice is in {}", expected.currency),
            )),
            PayError::WrongAmount { expected } => Error::Invalid(Invalid::new(
                "amount.amount",
                format!(
                    "must equal the invoice total, {} minor units ({expected})",
                    expected.minor
                ),
            )),
        }
    }
}

impl IntoProblem for Error {
    fn problem(&self) -> Problem {
        match self {
            Error::Invalid(e) => seams_http::problem::invalid_field(e),
            Error::NotFound(id) => Problem::new(404, "invoice-not-found", "No such invoice")
                .with("invoice_id", id.clone()),
            Error::Forbidden(detail) => {
                Problem::new(403, "forbidden", "Not allowed").detail(detail.clone())
            }
            Error::AlreadyPaid(id) => {
                Problem::new(409, "invoice-already-paid", "Invoice already paid")
                    .detail("An invoice is paid at most once.")
                    .with("invoice_id", id.clone())
            }
            Error::Voided(id) => Problem::new(409, "invoice-voided", "Invoice voided")
                .detail("The invoice was cancelled because it cannot be fulfilled; it can no longer be paid.")
                .with("invoice_id", id.clone()),
            Error::Dependency { op, source } => seams_http::problem::call_failed(op, source),
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
