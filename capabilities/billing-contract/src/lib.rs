//! What billing promises: invoices created and paid through keyed,
//! idempotent commands, and the `invoice-created` and `invoice-paid` events
//! fulfillment and notification react to.
//!
//! Billing owns invoices and payments. An invoice's line prices are copied
//! from catalog's quote at creation and never change afterwards.

use std::time::Duration;

use catalog_contract::Amount;
use seams_core::decl::*;
use seams_core::{DecodeError, Event};
use seams_schema::schema_of;
use serde::{Deserialize, Serialize};

/// One line of a cart.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CartLine {
    /// Product SKU.
    #[schema(min_length = 1, max_length = 64, pattern = "^[A-Za-z0-9._-]+$")]
    pub sku: String,
    /// How many, 1-1,000,000.
    #[schema(minimum = 1, maximum = 1_000_000)]
    pub quantity: u32,
}

/// `POST /billing/invoices` body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateInvoice {
    /// The customer billed.
    pub customer_id: String,
    /// The cart, 1-100 lines.
    #[schema(min_items = 1, max_items = 100)]
    pub lines: Vec<CartLine>,
}

/// A priced invoice line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct InvoiceLine {
    /// Product SKU.
    pub sku: String,
    /// How many.
    pub quantity: u32,
    /// Unit price quoted by catalog at creation.
    pub unit_price: Amount,
    /// `unit_price * quantity`.
    pub line_total: Amount,
}

/// An invoice.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Invoice {
    /// Invoice id (UUID).
    pub id: String,
    /// The customer billed.
    pub customer_id: String,
    /// Priced lines.
    pub lines: Vec<InvoiceLine>,
    /// Sum of the line totals.
    pub total: Amount,
    /// `open`, `paid`, `voided` (cancelled before payment) or `refunded` (paid, then refunded).
    pub status: String,
    /// RFC 3339 creation time.
    pub created_at: String,
}

/// `POST /billing/invoices/{id}/payments` body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PayInvoice {
    /// Must equal the invoice total, currency included.
    pub amount: Amount,
}

/// A payment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Payment {
    /// Payment id (UUID).
    pub id: String,
    /// The invoice paid.
    pub invoice_id: String,
    /// The amount paid.
    pub amount: Amount,
    /// RFC 3339 time of payment.
    pub paid_at: String,
}

/// What billing's commands answer unless they say otherwise.
const COMMANDS: OperationAnswers = OperationAnswers {
    kind: Kind::Command,
    timeout: Duration::from_secs(5),
    retries: Retries::Caller(RetryPolicy::STANDARD),
    idempotency: Idempotency::Keyed,
    ordering: Ordering::Unordered,
    when_down: WhenDown::FailFast {
        problem: "billing-unavailable",
        retry_after: Duration::from_secs(2),
    },
    versioning: Versioning::FIRST,
};

/// Public command: create an invoice for a cart.
pub static CREATE_INVOICE: Operation = Operation::new(
    "billing",
    "create-invoice",
    "Price a cart through catalog and open an invoice (POST /billing/invoices).",
    schema_of::<CreateInvoice>,
    schema_of::<Invoice>,
    COMMANDS,
);

/// Public command: pay an invoice in full, at most once.
pub static PAY_INVOICE: Operation = Operation::new(
    "billing",
    "pay-invoice",
    "Pay an open invoice in full (POST /billing/invoices/{id}/payments).",
    schema_of::<PayInvoice>,
    schema_of::<Payment>,
    OperationAnswers {
        ordering: Ordering::PerKey {
            field: "invoice_id",
        },
        ..COMMANDS
    },
);

/// Public query: one invoice by id.
pub static GET_INVOICE: Operation = Operation::new(
    "billing",
    "get-invoice",
    "An invoice with its status; a customer sees their own only (GET /billing/invoices/{id}).",
    no_body,
    schema_of::<Invoice>,
    OperationAnswers::query("billing-unavailable"),
);

/// What every invoice event answers: redelivered by the bus, deduplicated by
/// each consumer's inbox, applied in order per invoice, queued in the
/// outbox while a consumer is down, version 1.
const INVOICE_EVENTS: EventAnswers = EventAnswers::per_key("billing", "invoice_id");

/// Declaration of [`InvoiceCreated`]. Version 2 names each line's product
/// ([`CreatedLine::name`]); billing can still write version 1 (without the
/// names) while consumers are upgraded, and a consumer reading version 1
/// gets lines without names.
pub static INVOICE_CREATED: EventContract = EventContract::new(
    "billing.invoice-created",
    "An invoice was opened.",
    schema_of::<InvoiceCreated>,
    EventAnswers {
        versioning: Versioning {
            current: 2,
            accepts: &[1, 2],
        },
        ..INVOICE_EVENTS
    },
)
.with_downcast(invoice_created_as);

/// `invoice-created` v2 as version `to`: v1 is v2 without the lines' names.
fn invoice_created_as(to: u32, mut data: serde_json::Value) -> Option<serde_json::Value> {
    if to != 1 {
        return None;
    }
    for line in data.get_mut("lines")?.as_array_mut()? {
        line.as_object_mut()?.remove("name");
    }
    Some(data)
}

/// An invoice was opened.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct InvoiceCreated {
    /// The invoice.
    pub invoice_id: String,
    /// The customer billed.
    pub customer_id: String,
    /// Priced lines.
    pub lines: Vec<CreatedLine>,
    /// Total.
    pub total: Amount,
}

/// A line of [`InvoiceCreated`]: a priced line, and since version 2 the
/// product's name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreatedLine {
    /// Product SKU.
    pub sku: String,
    /// How many.
    pub quantity: u32,
    /// Unit price quoted by catalog at creation.
    pub unit_price: Amount,
    /// `unit_price * quantity`.
    pub line_total: Amount,
    /// The product's name as catalog quoted it (v2); absent in an event
    /// written as version 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

impl Event for InvoiceCreated {
    const CONTRACT: &'static EventContract = &INVOICE_CREATED;

    /// Version 1 is version 2 with no line named, which is what a v1
    /// payload reads as: nothing to change.
    fn upcast(version: u32, data: serde_json::Value) -> Result<serde_json::Value, DecodeError> {
        match version {
            1 | 2 => Ok(data),
            _ => Err(DecodeError::NoUpcaster {
                event_type: INVOICE_CREATED.event_type,
                version,
            }),
        }
    }
}

/// Declaration of [`InvoicePaid`].
pub static INVOICE_PAID: EventContract = EventContract::new(
    "billing.invoice-paid",
    "An invoice was paid in full.",
    schema_of::<InvoicePaid>,
    INVOICE_EVENTS,
);

/// An invoice was paid in full.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct InvoicePaid {
    /// The invoice.
    pub invoice_id: String,
    /// The customer billed.
    pub customer_id: String,
    /// The payment.
    pub payment_id: String,
    /// The amount paid.
    pub amount: Amount,
}

impl Event for InvoicePaid {
    const CONTRACT: &'static EventContract = &INVOICE_PAID;
}

/// Declaration of [`InvoiceVoided`].
pub static INVOICE_VOIDED: EventContract = EventContract::new(
    "billing.invoice-voided",
    "An open invoice was cancelled (it can no longer be paid).",
    schema_of::<InvoiceVoided>,
    INVOICE_EVENTS,
);

/// An open invoice was cancelled.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct InvoiceVoided {
    /// The invoice.
    pub invoice_id: String,
    /// The customer billed.
    pub customer_id: String,
    /// Why, e.g. `out-of-stock`.
    pub reason: String,
}

impl Event for InvoiceVoided {
    const CONTRACT: &'static EventContract = &INVOICE_VOIDED;
}

/// Declaration of [`InvoiceRefunded`].
pub static INVOICE_REFUNDED: EventContract = EventContract::new(
    "billing.invoice-refunded",
    "A paid invoice was refunded in full.",
    schema_of::<InvoiceRefunded>,
    INVOICE_EVENTS,
);

/// A paid invoice was refunded in full.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct InvoiceRefunded {
    /// The invoice.
    pub invoice_id: String,
    /// The customer billed.
    pub customer_id: String,
    /// The payment refunded.
    pub payment_id: String,
    /// The amount refunded.
    pub amount: Amount,
    /// Why, e.g. `out-of-stock`.
    pub reason: String,
}

impl Event for InvoiceRefunded {
    const CONTRACT: &'static EventContract = &INVOICE_REFUNDED;
}

/// Every operation billing declares.
pub static OPERATIONS: &[&Operation] = &[&CREATE_INVOICE, &PAY_INVOICE, &GET_INVOICE];
/// Every event billing publishes.
pub static EVENTS: &[&EventContract] = &[
    &INVOICE_CREATED,
    &INVOICE_PAID,
    &INVOICE_VOIDED,
    &INVOICE_REFUNDED,
];

#[cfg(test)]
mod tests;
