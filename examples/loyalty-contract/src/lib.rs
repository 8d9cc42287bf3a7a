//! What loyalty promises: a customer's points balance, and an event each
//! time points are awarded. The example capability of the "Write a
//! capability" guide (`docs/write-a-capability.md`), written only against
//! the framework's public API.

use seams_core::Event;
use seams_core::decl::*;
use seams_schema::schema_of;
use serde::{Deserialize, Serialize};

/// `GET /loyalty/balances/{customer_id}` answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Balance {
    /// Identity's customer id.
    pub customer_id: String,
    /// Points held; 0 for a customer never awarded any.
    #[schema(minimum = 0)]
    pub points: i64,
}

/// Points were awarded for a paid invoice.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PointsAwarded {
    /// The customer.
    pub customer_id: String,
    /// The paid invoice that earned them.
    pub invoice_id: String,
    /// Points awarded.
    #[schema(minimum = 1)]
    pub points: i64,
    /// The customer's balance after the award.
    #[schema(minimum = 1)]
    pub balance: i64,
}

/// Public query: a customer's balance.
pub static GET_BALANCE: Operation = Operation::new(
    "loyalty",
    "get-balance",
    "A customer's points balance (GET /loyalty/balances/{customer_id}).",
    no_body,
    schema_of::<Balance>,
    OperationAnswers::query("loyalty-unavailable"),
);

/// Declaration of [`PointsAwarded`]: redelivered by the bus, applied once
/// per consumer, in order per customer.
pub static POINTS_AWARDED: EventContract = EventContract::new(
    "loyalty.points-awarded",
    "Points were awarded for a paid invoice.",
    schema_of::<PointsAwarded>,
    EventAnswers::per_key("loyalty", "customer_id"),
);

impl Event for PointsAwarded {
    const CONTRACT: &'static EventContract = &POINTS_AWARDED;
}

/// Every operation loyalty declares.
pub static OPERATIONS: &[&Operation] = &[&GET_BALANCE];

/// Every event loyalty publishes.
pub static EVENTS: &[&EventContract] = &[&POINTS_AWARDED];
