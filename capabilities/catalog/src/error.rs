//! Catalog's failures and the one place they become problems.

use axum::response::{IntoResponse, Response};
use seams_core::Problem;
use seams_http::IntoProblem;

use crate::domain::Invalid;

/// Everything a catalog request can fail with.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// 422 `invalid-field`, not retryable: a field failed validation (`field` names it).
    #[error(transparent)]
    Invalid(#[from] Invalid),
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

impl IntoProblem for Error {
    fn problem(&self) -> Problem {
        match self {
            Error::Invalid(e) => seams_http::problem::invalid_field(e),
            Error::DuplicateSku(sku) => Problem::new(409, "duplicate-sku", "SKU already exists")
                .detail(format!("A product with sku {sku} already exists."))
                .with("sku", sku.clone()),
            Error::NotFound(sku) => {
                Problem::new(404, "product-not-found", "No such product").with("sku", sku.clone())
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
