//! What catalog promises other capabilities: the price of a product, asked
//! synchronously because a caller (billing, building an invoice) needs the
//! answer now, and `product-added` events for anyone keeping a copy.
//!
//! Catalog owns products and prices. Nobody else stores a price as truth:
//! billing copies the quoted unit price into an invoice line, which is then
//! the price *of that invoice*, not of the product.
//!
//! This crate also holds the money value types, since money crosses every
//! contract that mentions a price.

pub mod money;

use std::time::Duration;

use seams_core::decl::*;
use seams_core::{CallError, Event};
use seams_schema::schema_of;
use serde::{Deserialize, Serialize};

pub use money::{Amount, Currency, Money, MoneyError};

/// A product as other capabilities and clients see it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Product {
    /// Stock keeping unit, the product's natural key.
    pub sku: String,
    /// Display name.
    pub name: String,
    /// Current unit price.
    pub price: Amount,
}

/// `POST /catalog/products` body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AddProduct {
    /// 1-64 characters of `A-Z a-z 0-9 - _ .`.
    #[schema(min_length = 1, max_length = 64, pattern = "^[A-Za-z0-9._-]+$")]
    pub sku: String,
    /// 1-200 characters, not blank, without control, invisible or
    /// direction-override characters.
    #[schema(min_length = 1, max_length = 200)]
    pub name: String,
    /// Unit price, integer minor units.
    pub price: Amount,
}

/// What catalog's queries answer unless they say otherwise.
const QUERIES: OperationAnswers = OperationAnswers::query("catalog-unavailable");

/// Public command: add a product (the SKU is the natural key).
pub static ADD_PRODUCT: Operation = Operation::new(
    "catalog",
    "add-product",
    "Add a product with its price (POST /catalog/products).",
    schema_of::<AddProduct>,
    schema_of::<Product>,
    OperationAnswers {
        kind: Kind::Command,
        timeout: Duration::from_secs(5),
        retries: Retries::Caller(RetryPolicy::STANDARD),
        idempotency: Idempotency::NaturalKey { field: "sku" },
        ordering: Ordering::Unordered,
        when_down: WhenDown::FailFast {
            problem: "catalog-unavailable",
            retry_after: Duration::from_secs(2),
        },
        versioning: Versioning::FIRST,
    },
);

/// Public query: one product by SKU.
pub static GET_PRODUCT: Operation = Operation::new(
    "catalog",
    "get-product",
    "A product with its current price (GET /catalog/products/{sku}).",
    no_body,
    schema_of::<Product>,
    QUERIES,
);

/// `quote-prices` request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct QuotePrices {
    /// SKUs to price (duplicates allowed, answered once).
    pub skus: Vec<String>,
}

/// One quoted price.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct QuotedPrice {
    /// The SKU.
    pub sku: String,
    /// The product's name.
    pub name: String,
    /// The unit price now.
    pub unit_price: Amount,
}

/// `quote-prices` answer: one price per distinct SKU asked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Quote {
    /// The prices.
    pub prices: Vec<QuotedPrice>,
}

/// Why catalog could not quote.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[serde(tag = "error", rename_all = "kebab-case")]
pub enum QuoteError {
    /// Some SKUs are not in the catalog (the caller's input is wrong; not retryable).
    #[error("unknown SKUs: {}", skus.join(", "))]
    UnknownSkus {
        /// The SKUs that were not found.
        skus: Vec<String>,
    },
    /// Catalog did not answer (declared: fail fast, caller answers 503 with Retry-After).
    #[error(transparent)]
    #[serde(skip)]
    Call(#[from] CallError),
}

impl seams_core::ContractError for QuoteError {
    fn call_error(&self) -> Option<&CallError> {
        match self {
            QuoteError::Call(e) => Some(e),
            _ => None,
        }
    }
}

/// Query: the current prices of some SKUs.
pub static QUOTE_PRICES: Operation = Operation::new(
    "catalog",
    "quote-prices",
    "Current unit prices of the given SKUs.",
    schema_of::<QuotePrices>,
    schema_of::<Quote>,
    QUERIES,
);

impl seams_core::Ask for QuotePrices {
    const OPERATION: &'static Operation = &QUOTE_PRICES;
    type Answer = Quote;
    type Error = QuoteError;
}

/// What every product event answers: redelivered by the bus, deduplicated by
/// each consumer's inbox, applied in order per SKU, queued in the outbox
/// while a consumer is down, version 1.
const PRODUCT_EVENTS: EventAnswers = EventAnswers::per_key("catalog", "sku");

/// Declaration of [`ProductAdded`].
pub static PRODUCT_ADDED: EventContract = EventContract::new(
    "catalog.product-added",
    "A product was added to the catalog.",
    schema_of::<ProductAdded>,
    PRODUCT_EVENTS,
);

/// A product was added.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ProductAdded {
    /// The SKU.
    pub sku: String,
    /// The name.
    pub name: String,
    /// The unit price.
    pub price: Amount,
}

impl Event for ProductAdded {
    const CONTRACT: &'static EventContract = &PRODUCT_ADDED;
}

/// Every operation catalog declares.
pub static OPERATIONS: &[&Operation] = &[&ADD_PRODUCT, &GET_PRODUCT, &QUOTE_PRICES];
/// Every event catalog publishes.
pub static EVENTS: &[&EventContract] = &[&PRODUCT_ADDED];
