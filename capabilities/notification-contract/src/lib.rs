//! What notification promises: a readable log of every message it delivered
//! or is still trying to deliver, each with the event that caused it.
//!
//! Notification owns its contact read model (projected from identity's
//! events; it never asks identity at send time), its delivery log and its
//! channels (Maildir, SMTP).

use std::time::Duration;

use seams_core::decl::*;
use seams_schema::{query_of, schema_of};
use serde::{Deserialize, Serialize};

/// One message to one customer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Delivery {
    /// Delivery id (UUID); also the message's Message-ID.
    pub id: String,
    /// The customer.
    pub customer_id: String,
    /// Id of the event that caused this message.
    pub event_id: String,
    /// Type of that event.
    pub event_type: String,
    /// `maildir` or `smtp`.
    pub channel: String,
    /// Email address it was sent to.
    pub recipient: String,
    /// Subject line.
    pub subject: String,
    /// `pending`, `delivered` or `failed`.
    pub status: String,
    /// Delivery attempts so far.
    pub attempts: u32,
    /// The last error, if an attempt failed.
    pub last_error: Option<String>,
    /// RFC 3339 time the delivery was recorded.
    pub created_at: String,
    /// RFC 3339 time it was delivered.
    pub delivered_at: Option<String>,
}

/// `GET /notification/deliveries` answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Deliveries {
    /// Oldest first, at most the page's `limit`.
    pub deliveries: Vec<Delivery>,
    /// The `after` of the next page, when there may be one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next: Option<String>,
}

/// `GET /notification/contacts/{customer_id}` answer: notification's copy of
/// what identity announced about a customer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Contact {
    /// Identity's customer id.
    pub customer_id: String,
    /// The address messages go to.
    pub email: String,
    /// Display name.
    pub name: String,
    /// RFC 3339 time notification last wrote this copy.
    pub updated_at: String,
}

/// What notification's queries answer unless they say otherwise.
const QUERIES: OperationAnswers = OperationAnswers::query("notification-unavailable");

/// `list-deliveries` request: the query of `GET /notification/deliveries`. Unknown parameters are rejected like unknown body
/// fields (design brief §9): a misspelt `customer-id` must not silently
/// answer for nobody.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListDeliveries {
    /// The customer whose deliveries to list (the caller themselves).
    #[param(min_length = 1)]
    pub customer_id: String,
    /// The `next` of the page before this one.
    #[param(pattern = "^[0-9]{1,18}$")]
    pub after: Option<String>,
    /// At most this many deliveries (1-100, default 100).
    #[param(minimum = 1, maximum = 100)]
    pub limit: Option<u32>,
}

/// Public query: a customer's deliveries.
pub static LIST_DELIVERIES: Operation = Operation::new(
    "notification",
    "list-deliveries",
    "The deliveries for one customer (GET /notification/deliveries?customer_id=).",
    query_of::<ListDeliveries>,
    schema_of::<Deliveries>,
    QUERIES,
);

/// Public query: one contact from the read model, with its freshness; a read
/// presenting a consistency token waits (bounded) for the projection or answers stale.
pub static GET_CONTACT: Operation = Operation::new(
    "notification",
    "get-contact",
    "A contact from the read model projected from identity (GET /notification/contacts/{customer_id}).",
    no_body,
    schema_of::<Contact>,
    OperationAnswers {
        timeout: Duration::from_secs(3),
        ..QUERIES
    },
);

/// Every operation notification declares.
pub static OPERATIONS: &[&Operation] = &[&LIST_DELIVERIES, &GET_CONTACT];
