//! Fulfillment's effectful shell: the keyed stock receipt, the queries, and
//! the consumers of billing's invoice events. Each one loads what the
//! decision needs inside its transaction, decides (pure, [`crate::domain`]),
//! and stores the state, the outbox events and the inbox row (or the keyed
//! response) in that same transaction.
//!
//! Consumers only *create* shipments; dispatching is the
//! [`crate::dispatcher`]'s job, so a slow warehouse step never holds up
//! billing's event feed.

use std::sync::Arc;

use billing_contract::{InvoiceCreated, InvoicePaid, InvoiceVoided};
use fulfillment_contract::{
    FulfillmentFailed, ReceiveStock, Shipment as ShipmentDto, Shortage as ShortageDto, StockLevel,
};
use seams_core::auth::{Principal, Role};
use seams_core::{Clock, Ids};
use seams_runtime::{Applying, HandlerError};
use seams_store::IdempotencyClaim;
use tokio::sync::Notify;

use crate::domain::{self, Decision, Demand, Level, Receipt, Shipment, Sku};
use crate::error::Error;
use crate::store::{self, Store, WriteError};

/// The `reason` of every `fulfillment-failed` fulfillment publishes today.
pub const OUT_OF_STOCK: &str = "out-of-stock";

/// Everything fulfillment's handlers need, passed explicitly.
#[derive(Clone)]
pub struct Deps {
    /// Fulfillment's database.
    pub store: Store,
    /// Time.
    pub clock: Arc<dyn Clock>,
    /// New ids.
    pub ids: Arc<dyn Ids>,
    /// Wakes the dispatcher when a shipment is created, so it does not wait
    /// for its next poll.
    pub wake: Arc<Notify>,
}

/// The wire form of a stock level.
pub fn level_dto(level: &Level) -> StockLevel {
    StockLevel {
        sku: level.sku.clone(),
        on_hand: level.on_hand,
        reserved: level.reserved,
        available: level.available(),
    }
}

/// The wire form of a shipment.
pub fn shipment_dto(s: &Shipment) -> ShipmentDto {
    ShipmentDto {
        id: s.id.clone(),
        invoice_id: s.invoice_id.clone(),
        customer_id: s.customer_id.clone(),
        lines: s.line_dtos(),
        status: s.status.as_str().to_owned(),
        created_at: s.created_at.clone(),
        dispatched_at: s.dispatched_at.clone(),
    }
}

/// Receives stock; returns the exact response bytes (the new level)
/// recorded under `claim`.
#[tracing::instrument(skip_all, fields(sku = %cmd.sku, quantity = cmd.quantity))]
pub async fn receive_stock(
    deps: &Deps,
    cmd: ReceiveStock,
    claim: &IdempotencyClaim,
) -> Result<Vec<u8>, Error> {
    let receipt = Receipt::try_from(&cmd)?;
    deps.store
        .receive(&receipt, claim, 201, |level| {
            // A contract type of strings and integers always serializes.
            serde_json::to_vec(&level_dto(level)).expect("StockLevel serializes")
        })
        .await
        .map_err(|e| match e {
            WriteError::KeyConflict => Error::KeyConflict,
            WriteError::Db(e) => Error::Unexpected(
                anyhow::Error::from(e).context("writing to fulfillment's database"),
            ),
        })
}

/// A SKU's stock; zeros for a SKU never received.
///
/// Zeros rather than 404: fulfillment does not own the product list
/// (catalog does), so it cannot tell "no such product" from "none in the
/// warehouse yet", and "nothing available" is the true answer to both.
pub async fn get_stock(deps: &Deps, sku: &str) -> Result<Level, Error> {
    let sku = Sku::parse("sku", sku).map_err(|e| Error::InvalidPath {
        field: "sku",
        reason: e.reason,
    })?;
    Ok(deps
        .store
        .level(sku.as_str())
        .await?
        .unwrap_or_else(|| Level::empty(sku.as_str())))
}

/// The shipments of an invoice that `caller` may see, oldest first: staff
/// see every invoice's, a customer only their own. None for an invoice
/// never paid, never reserved for, unknown, or another customer's: the
/// answer does not tell those apart, so an invoice id cannot be probed.
pub async fn list_shipments(
    deps: &Deps,
    caller: &Principal,
    invoice_id: &str,
) -> Result<Vec<Shipment>, Error> {
    if invoice_id.is_empty() {
        return Err(Error::InvalidQuery {
            field: "invoice_id",
            reason: "must not be empty".into(),
        });
    }
    let mut shipments = deps.store.shipments_for(invoice_id).await?;
    shipments.retain(|s| caller.has_role(Role::Staff) || caller.is_customer(&s.customer_id));
    Ok(shipments)
}

/// Reserves stock for a new invoice, every line or none; publishes
/// `fulfillment-failed` (with what was short) when it cannot.
#[tracing::instrument(skip_all, fields(invoice_id = %ev.invoice_id))]
pub async fn on_invoice_created(
    deps: &Deps,
    ev: InvoiceCreated,
    tx: &mut Applying,
) -> Result<(), HandlerError> {
    let demand = Demand::of(&ev.lines).map_err(|e| HandlerError::Permanent(e.to_string()))?;
    let levels = store::before_deciding(tx.tx(), &demand.skus()).await?;
    let now = deps.clock.now_rfc3339();
    match domain::decide(&demand, &levels) {
        Decision::Reserve(lines) => {
            store::reserve(tx.later(), &ev.invoice_id, &lines, &now);
            tracing::debug!(lines = lines.len(), "stock reserved");
        }
        Decision::Short(shortages) => {
            let event = FulfillmentFailed {
                invoice_id: ev.invoice_id.clone(),
                customer_id: ev.customer_id,
                reason: OUT_OF_STOCK.into(),
                shortages: shortages
                    .into_iter()
                    .map(|s| ShortageDto {
                        sku: s.sku,
                        requested: s.requested,
                        available: s.available,
                    })
                    .collect(),
            };
            let out = tx.publish(&event, deps.ids.new_id().to_string(), now.clone())?;
            store::fail(tx.later(), &ev.invoice_id, &out.id, &now);
            tracing::info!(shortages = ?event.shortages, "out of stock; fulfillment-failed published");
        }
    }
    Ok(())
}

/// Ships a paid invoice's reserved stock: creates the shipment and
/// publishes `shipment-created`. An invoice with nothing reserved (its
/// reservation failed or was released) gets nothing: billing compensates.
#[tracing::instrument(skip_all, fields(invoice_id = %ev.invoice_id, shipment_id))]
pub async fn on_invoice_paid(
    deps: &Deps,
    ev: InvoicePaid,
    tx: &mut Applying,
) -> Result<(), HandlerError> {
    let reserved = store::reserved_for(tx.tx(), &ev.invoice_id).await?;
    let now = deps.clock.now_rfc3339();
    let Some((shipment, event)) = domain::ship(
        deps.ids.new_id().to_string(),
        &ev,
        reserved,
        now.clone(),
        tx.envelope().time.clone(),
    ) else {
        // Handled, by doing nothing: the inbox row still commits.
        tracing::info!("nothing reserved for this invoice; no shipment");
        return Ok(());
    };
    tracing::Span::current().record("shipment_id", shipment.id.as_str());
    let out = tx.publish(&event, deps.ids.new_id().to_string(), now)?;
    store::ship(tx.tx(), &shipment, &out).await?;
    let wake = deps.wake.clone();
    tx.after_commit(move || wake.notify_one());
    Ok(())
}

/// Releases a voided invoice's reservations back to available stock.
#[tracing::instrument(skip_all, fields(invoice_id = %ev.invoice_id))]
pub async fn on_invoice_voided(
    _deps: &Deps,
    ev: InvoiceVoided,
    tx: &mut Applying,
) -> Result<(), HandlerError> {
    let released = store::release(tx.tx(), &ev.invoice_id).await?;
    tracing::debug!(lines = released.len(), reason = %ev.reason, "reservation released");
    Ok(())
}
