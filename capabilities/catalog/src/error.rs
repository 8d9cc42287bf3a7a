//! Catalog's failures and the one place they become problems.

use axum::response::{IntoResponse, Response};
use seams_core::Problem;
use seams_http::IntoProblem;

use crate::domain::Invalid;

/// Everything a catalog request can fail with.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// 422 `invalid-field`, not retryable: a field failed validation (`field` names it).
    #[error("invalid {field}: {reason}")]
    Invalid {
        /// The field.
        field: &'static str,
        /// What is wrong.
        reason: String,
    },
    /// 409 `duplicate-sku`, not retryable: a product with this SKU exists.
    #[error("a product with sku {0} already exists")]
    DuplicateSku(String),
    /// 404 `product-not-found`.
    #[error("no product with sku {0}")]
    NotFound(String),
    /// 500 `internal`, retryable: logged with its cause, opaque to the client.
    #[error(transparent)]
    Unexpected(#[from] anyhow::Error),
}

impl From<Invalid> for Error {
    fn from(e: Invalid) -> Self {
        Error::Invalid {
            field: e.field,
            reason: e.reason,
        }
    }
}

impl IntoProblem for Error {
    fn problem(&self) -> Problem {
        match self {
            Error::Invalid { field, reason } => {
                Problem::new(422, "invalid-field", "A field is invalid")
                    .detail(format!("{field}: {reason}"))
                    .with("field", *field)
            }
            Error::DuplicateSku(sku) => Problem::new(409, "duplicate-sku", "SKU already exists")
                .detail(format!("A product with sku {sku} already exists."))
                .with("sku", sku.clone()),
            Error::NotFound(sku) => {
                Problem::new(404, "product-not-found", "No such product").with("sku", sku.clone())
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
