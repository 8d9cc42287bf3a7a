//! What fulfillment promises: stock received through a keyed command, a
//! shipment for every paid invoice whose stock was reserved, and the events
//! billing and notification react to, including `fulfillment-failed`, which
//! starts billing's compensation (void or refund).
//!
//! Fulfillment owns stock levels, reservations and shipments. It learns of
//! invoices only from billing's events and never asks billing anything.

use std::time::Duration;

use seams_core::Event;
use seams_core::decl::*;
use seams_schema::{query_of, schema_of};
use serde::{Deserialize, Serialize};

/// `POST /fulfillment/stock` body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReceiveStock {
    /// Product SKU.
    #[schema(min_length = 1, max_length = 64, pattern = "^[A-Za-z0-9._-]+$")]
    pub sku: String,
    /// Units received, 1-1,000,000.
    #[schema(minimum = 1, maximum = 1_000_000)]
    pub quantity: u32,
}

/// Stock of one SKU.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StockLevel {
    /// Product SKU.
    pub sku: String,
    /// Units in the warehouse (reserved ones included).
    pub on_hand: u64,
    /// Units promised to open or paid invoices, not yet shipped.
    pub reserved: u64,
    /// `on_hand - reserved`, never negative.
    pub available: u64,
}

/// One line of a shipment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ShipmentLine {
    /// Product SKU.
    pub sku: String,
    /// Units.
    pub quantity: u32,
}

/// A shipment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Shipment {
    /// Shipment id (UUID).
    pub id: String,
    /// The paid invoice it ships.
    pub invoice_id: String,
    /// The customer.
    pub customer_id: String,
    /// What it contains.
    pub lines: Vec<ShipmentLine>,
    /// `created` or `dispatched`.
    pub status: String,
    /// RFC 3339.
    pub created_at: String,
    /// RFC 3339, once dispatched.
    pub dispatched_at: Option<String>,
}

/// `GET /fulfillment/shipments?invoice_id=` answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Shipments {
    /// Oldest first.
    pub shipments: Vec<Shipment>,
}

/// What fulfillment's queries answer unless they say otherwise.
const QUERIES: OperationAnswers = OperationAnswers::query("fulfillment-unavailable");

/// Public command: receive stock (keyed: a retried delivery note is not counted twice).
pub static RECEIVE_STOCK: Operation = Operation::new(
    "fulfillment",
    "receive-stock",
    "Add received units to a SKU's stock (POST /fulfillment/stock).",
    schema_of::<ReceiveStock>,
    schema_of::<StockLevel>,
    OperationAnswers {
        kind: Kind::Command,
        timeout: Duration::from_secs(5),
        retries: Retries::Caller(RetryPolicy::STANDARD),
        idempotency: Idempotency::Keyed,
        ordering: Ordering::PerKey { field: "sku" },
        when_down: WhenDown::FailFast {
            problem: "fulfillment-unavailable",
            retry_after: Duration::from_secs(2),
        },
        versioning: Versioning::FIRST,
    },
);

/// Public query: a SKU's stock.
pub static GET_STOCK: Operation = Operation::new(
    "fulfillment",
    "get-stock",
    "On hand, reserved and available units of a SKU (GET /fulfillment/stock/{sku}).",
    no_body,
    schema_of::<StockLevel>,
    QUERIES,
);

/// `list-shipments` request: the query of `GET /fulfillment/shipments`. Unknown parameters are rejected like unknown body
/// fields (design brief §9): a misspelt `invoice-id` must not silently
/// answer "no shipment".
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListShipments {
    /// The invoice whose shipments to list.
    #[param(min_length = 1)]
    pub invoice_id: String,
}

/// Public query: shipments of an invoice.
pub static LIST_SHIPMENTS: Operation = Operation::new(
    "fulfillment",
    "list-shipments",
    "Shipments of an invoice with their status (GET /fulfillment/shipments?invoice_id=).",
    query_of::<ListShipments>,
    schema_of::<Shipments>,
    QUERIES,
);

/// What every fulfillment event answers: redelivered by the bus,
/// deduplicated by each consumer's inbox, applied in order per invoice,
/// queued in the outbox while a consumer is down, version 1.
const INVOICE_EVENTS: EventAnswers = EventAnswers::per_key("fulfillment", "invoice_id");

/// A shipment was created for a paid invoice (its stock leaves the reservation).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ShipmentCreated {
    /// The shipment.
    pub shipment_id: String,
    /// The invoice.
    pub invoice_id: String,
    /// The customer.
    pub customer_id: String,
    /// Contents.
    pub lines: Vec<ShipmentLine>,
}
/// Declaration of [`ShipmentCreated`].
pub static SHIPMENT_CREATED: EventContract = EventContract::new(
    "fulfillment.shipment-created",
    "A shipment was created for a paid invoice.",
    schema_of::<ShipmentCreated>,
    INVOICE_EVENTS,
);

impl Event for ShipmentCreated {
    const CONTRACT: &'static EventContract = &SHIPMENT_CREATED;
}

/// A shipment left the warehouse.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ShipmentDispatched {
    /// The shipment.
    pub shipment_id: String,
    /// The invoice.
    pub invoice_id: String,
    /// The customer.
    pub customer_id: String,
    /// RFC 3339.
    pub dispatched_at: String,
}
/// Declaration of [`ShipmentDispatched`].
pub static SHIPMENT_DISPATCHED: EventContract = EventContract::new(
    "fulfillment.shipment-dispatched",
    "A shipment was dispatched.",
    schema_of::<ShipmentDispatched>,
    INVOICE_EVENTS,
);

impl Event for ShipmentDispatched {
    const CONTRACT: &'static EventContract = &SHIPMENT_DISPATCHED;
}

/// A SKU that could not be reserved.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Shortage {
    /// Product SKU.
    pub sku: String,
    /// Units the invoice needs.
    pub requested: u64,
    /// Units that were available.
    pub available: u64,
}

/// An invoice cannot be fulfilled (out of stock); nothing was reserved for it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FulfillmentFailed {
    /// The invoice.
    pub invoice_id: String,
    /// The customer.
    pub customer_id: String,
    /// `out-of-stock`.
    pub reason: String,
    /// What was short.
    pub shortages: Vec<Shortage>,
}
/// Declaration of [`FulfillmentFailed`].
pub static FULFILLMENT_FAILED: EventContract = EventContract::new(
    "fulfillment.fulfillment-failed",
    "An invoice cannot be fulfilled; billing compensates (void or refund).",
    schema_of::<FulfillmentFailed>,
    INVOICE_EVENTS,
);

impl Event for FulfillmentFailed {
    const CONTRACT: &'static EventContract = &FULFILLMENT_FAILED;
}

/// Every operation fulfillment declares.
pub static OPERATIONS: &[&Operation] = &[&RECEIVE_STOCK, &GET_STOCK, &LIST_SHIPMENTS];
/// Every event fulfillment publishes.
pub static EVENTS: &[&EventContract] =
    &[&SHIPMENT_CREATED, &SHIPMENT_DISPATCHED, &FULFILLMENT_FAILED];
