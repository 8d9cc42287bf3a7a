//! Fulfillment's rules as pure values and decisions: what a valid stock
//! receipt is, whether an invoice's lines can be reserved (all of them or
//! none), what shipment a paid invoice becomes, and what dispatching it
//! changes.
//!
//! Nothing here reads a database or a clock: the shell passes in the stock
//! levels it read in its transaction, `now` and new ids, so the reservation
//! rule is tested as a table without I/O. The database backs the same
//! invariants with CHECK constraints (stock never negative, reserved never
//! above on hand), so a wrong decision is refused rather than stored.

use std::collections::BTreeMap;
use std::time::Duration;

use billing_contract::{CreatedLine, InvoicePaid};
use fulfillment_contract::{ReceiveStock, ShipmentCreated, ShipmentDispatched, ShipmentLine};
pub use seams_core::Invalid;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// Largest quantity of one receipt.
pub const MAX_QUANTITY: u32 = 1_000_000;

/// A stock keeping unit: 1-64 characters of `A-Z a-z 0-9 - _ .` (catalog's rule).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Sku(String);

impl Sku {
    /// Parses a SKU; `field` names it in the error.
    pub fn parse(field: &str, s: &str) -> Result<Sku, Invalid> {
        let ok = (1..=64).contains(&s.len())
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b));
        if ok {
            Ok(Sku(s.to_owned()))
        } else {
            Err(Invalid::new(
                field,
                "must be 1-64 characters of A-Z a-z 0-9 - _ .",
            ))
        }
    }

    /// The SKU text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A validated stock receipt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Receipt {
    /// What was received.
    pub sku: Sku,
    /// Units, `1..=MAX_QUANTITY`.
    pub quantity: u32,
}

impl TryFrom<&ReceiveStock> for Receipt {
    type Error = Invalid;

    fn try_from(cmd: &ReceiveStock) -> Result<Receipt, Invalid> {
        let sku = Sku::parse("sku", &cmd.sku)?;
        if cmd.quantity == 0 || cmd.quantity > MAX_QUANTITY {
            return Err(Invalid::new(
                "quantity",
                format!("must be 1..={MAX_QUANTITY}"),
            ));
        }
        Ok(Receipt {
            sku,
            quantity: cmd.quantity,
        })
    }
}

/// Stock of one SKU as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Level {
    /// The SKU (as billing sent it; not re-validated, see [`Demand::of`]).
    pub sku: String,
    /// Units in the warehouse, reserved ones included.
    pub on_hand: u64,
    /// Units promised to invoices and not yet shipped.
    pub reserved: u64,
}

impl Level {
    /// No stock of `sku` (a SKU never received).
    pub fn empty(sku: &str) -> Level {
        Level {
            sku: sku.to_owned(),
            on_hand: 0,
            reserved: 0,
        }
    }

    /// Units that can still be promised.
    pub fn available(&self) -> u64 {
        self.on_hand.saturating_sub(self.reserved)
    }
}

/// Units of one SKU, reserved for or shipped to one invoice.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line {
    /// The SKU.
    pub sku: String,
    /// Units, at least 1.
    pub quantity: u32,
}

/// What an invoice needs: units per SKU, several lines of one SKU summed,
/// in SKU order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Demand(BTreeMap<String, u32>);

/// An invoice that cannot be reserved for as it is: billing broke its
/// contract (no lines, a zero quantity), so retrying the same event cannot
/// help and it is dead-lettered, visibly.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cannot reserve for this invoice: {0}")]
pub struct BadInvoice(pub String);

impl Demand {
    /// Sums `lines` per SKU.
    ///
    /// SKUs are not re-validated: billing priced them through catalog, and a
    /// SKU fulfillment never received simply has no stock, which is a
    /// shortage, not a broken event.
    pub fn of(lines: &[CreatedLine]) -> Result<Demand, BadInvoice> {
        if lines.is_empty() {
            return Err(BadInvoice("the invoice has no lines".into()));
        }
        let mut units: BTreeMap<String, u32> = BTreeMap::new();
        for (i, line) in lines.iter().enumerate() {
            if line.quantity == 0 {
                return Err(BadInvoice(format!("lines[{i}].quantity is 0")));
            }
            let total = units.entry(line.sku.clone()).or_default();
            *total = total
                .checked_add(line.quantity)
                .ok_or_else(|| BadInvoice(format!("the quantity of {} overflows", line.sku)))?;
        }
        Ok(Demand(units))
    }

    /// The SKUs needed, in order.
    pub fn skus(&self) -> Vec<String> {
        self.0.keys().cloned().collect()
    }
}

/// A SKU that could not be reserved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Shortage {
    /// The SKU.
    pub sku: String,
    /// Units the invoice needs (all its lines of this SKU).
    pub requested: u64,
    /// Units that were available.
    pub available: u64,
}

/// The reservation decision for one invoice.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Everything is available: reserve these lines, one per SKU.
    Reserve(Vec<Line>),
    /// Something is short: reserve nothing; these SKUs were short.
    Short(Vec<Shortage>),
}

/// Reserves all of `demand` or none of it, against `levels` (a SKU missing
/// from `levels` has no stock).
///
/// All or nothing because a partial reservation would hold stock for an
/// order that cannot ship, starving invoices that could.
pub fn decide(demand: &Demand, levels: &[Level]) -> Decision {
    let mut lines = Vec::with_capacity(demand.0.len());
    let mut shortages = Vec::new();
    for (sku, &quantity) in &demand.0 {
        let available = levels
            .iter()
            .find(|l| &l.sku == sku)
            .map_or(0, Level::available);
        if u64::from(quantity) <= available {
            lines.push(Line {
                sku: sku.clone(),
                quantity,
            });
        } else {
            shortages.push(Shortage {
                sku: sku.clone(),
                requested: u64::from(quantity),
                available,
            });
        }
    }
    if shortages.is_empty() {
        Decision::Reserve(lines)
    } else {
        Decision::Short(shortages)
    }
}

/// A shipment's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// Created for a paid invoice; waiting for the dispatcher.
    Created,
    /// Left the warehouse.
    Dispatched,
}

impl Status {
    /// As stored and sent.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Created => "created",
            Status::Dispatched => "dispatched",
        }
    }

    /// Parses the stored form.
    pub fn parse(s: &str) -> Option<Status> {
        match s {
            "created" => Some(Status::Created),
            "dispatched" => Some(Status::Dispatched),
            _ => None,
        }
    }
}

/// A shipment of a paid invoice's reserved stock.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Shipment {
    /// Id (UUID).
    pub id: String,
    /// The paid invoice.
    pub invoice_id: String,
    /// The customer.
    pub customer_id: String,
    /// Contents: the invoice's reservations, one line per SKU.
    pub lines: Vec<Line>,
    /// State.
    pub status: Status,
    /// RFC 3339.
    pub created_at: String,
    /// RFC 3339, once dispatched.
    pub dispatched_at: Option<String>,
    /// RFC 3339 time billing committed the payment (the invoice-paid
    /// envelope's `time`): where the paid-invoice-dispatched lag starts.
    pub paid_event_time: String,
}

fn line_dto(l: &Line) -> ShipmentLine {
    ShipmentLine {
        sku: l.sku.clone(),
        quantity: l.quantity,
    }
}

/// Ships what was reserved for a paid invoice; `None` when nothing is
/// reserved for it (its reservation failed or was released: billing
/// compensates, fulfillment has nothing to send).
pub fn ship(
    id: String,
    paid: &InvoicePaid,
    reserved: Vec<Line>,
    now: String,
    paid_event_time: String,
) -> Option<(Shipment, ShipmentCreated)> {
    if reserved.is_empty() {
        return None;
    }
    let shipment = Shipment {
        id,
        invoice_id: paid.invoice_id.clone(),
        customer_id: paid.customer_id.clone(),
        lines: reserved,
        status: Status::Created,
        created_at: now,
        dispatched_at: None,
        paid_event_time,
    };
    let event = ShipmentCreated {
        shipment_id: shipment.id.clone(),
        invoice_id: shipment.invoice_id.clone(),
        customer_id: shipment.customer_id.clone(),
        lines: shipment.lines.iter().map(line_dto).collect(),
    };
    Some((shipment, event))
}

impl Shipment {
    /// Dispatches a created shipment at `now`; `None` if it already left.
    pub fn dispatch(&self, now: String) -> Option<(Shipment, ShipmentDispatched)> {
        if self.status != Status::Created {
            return None;
        }
        let event = ShipmentDispatched {
            shipment_id: self.id.clone(),
            invoice_id: self.invoice_id.clone(),
            customer_id: self.customer_id.clone(),
            dispatched_at: now.clone(),
        };
        let dispatched = Shipment {
            status: Status::Dispatched,
            dispatched_at: Some(now),
            ..self.clone()
        };
        Some((dispatched, event))
    }

    /// Wire form of the lines.
    pub fn line_dtos(&self) -> Vec<ShipmentLine> {
        self.lines.iter().map(line_dto).collect()
    }
}

/// How long after billing's payment commit (`paid_event_time`, RFC 3339)
/// `now` is; zero if the clocks disagree and `now` is earlier. `None` if the
/// stored time does not parse (nothing to measure from).
pub fn lag_since(paid_event_time: &str, now: OffsetDateTime) -> Option<Duration> {
    let paid = OffsetDateTime::parse(paid_event_time, &Rfc3339).ok()?;
    Some(Duration::try_from(now - paid).unwrap_or(Duration::ZERO))
}

#[cfg(test)]
mod tests;
