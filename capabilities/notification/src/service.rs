//! Notification's effectful shell for events and queries: load, decide (pure,
//! in [`crate::domain`]), store in the consumer's inbox transaction.
//!
//! Reads of the contact read model say how fresh they are, and a read that
//! presents identity's consistency token first waits, bounded, for the
//! projection to reach the token's position; if it does not, the read fails
//! as stale rather than answering with older data.
//!
//! Consumers only *record* deliveries; sending is the [`crate::sender`]'s
//! job. Keeping the two apart means a slow or dead mail server never holds
//! up the event feed, and a recorded delivery survives a crash before it
//! was sent.

use std::sync::Arc;
use std::time::Duration;

use billing_contract::{InvoiceCreated, InvoicePaid, InvoiceRefunded, InvoiceVoided};
use fulfillment_contract::ShipmentDispatched;
use identity_contract::{CustomerEmailChanged, CustomerRegistered};
use seams_core::auth::Principal;
use seams_core::{Clock, Ids};
use seams_runtime::consistency::Token;
use seams_runtime::{Applying, Consistency, HandlerError};
use tokio::sync::Notify;

use crate::domain::{self, Contact, Delivery, Draft, Unrenderable};
use crate::error::Error;
use crate::store::{self, ContactEntry, Store};

/// The subscription that feeds the contact read model (its name in the
/// consistency registry: `<consumer><-<producer>`).
pub const CONTACTS_SUBSCRIPTION: &str = "notification<-identity";

/// Everything notification's handlers need, passed explicitly.
#[derive(Clone)]
pub struct Deps {
    /// Notification's database.
    pub store: Store,
    /// Time.
    pub clock: Arc<dyn Clock>,
    /// New ids.
    pub ids: Arc<dyn Ids>,
    /// Name of the configured channel, recorded on each delivery.
    pub channel: &'static str,
    /// Wakes the sender when a delivery is recorded, so a new message does
    /// not wait for the sender's next poll.
    pub wake: Arc<Notify>,
    /// The system's consistency registry: how far the contact projection
    /// has read identity's feed.
    pub consistency: Consistency,
    /// Longest a read presenting a consistency token waits for the projection.
    pub consistency_wait: Duration,
}

/// Unix milliseconds of `clock`, the unit of `next_attempt_at_ms`.
pub(crate) fn now_ms(clock: &dyn Clock) -> i64 {
    i64::try_from(clock.now().unix_timestamp_nanos() / 1_000_000).unwrap_or(i64::MAX)
}

/// Projects `customer-registered` into the contact read model.
#[tracing::instrument(skip_all)]
pub async fn on_customer_registered(
    deps: &Deps,
    ev: CustomerRegistered,
    tx: &mut Applying,
) -> Result<(), HandlerError> {
    let contact = Contact {
        customer_id: ev.customer_id,
        email: ev.email,
        name: ev.name,
    };
    let source = tx.envelope().id.clone();
    store::upsert_contact(tx.later(), &contact, &deps.clock.now_rfc3339(), &source);
    Ok(())
}

/// Re-addresses a contact after `customer-email-changed`: messages recorded
/// from then on go to the new address.
///
/// Identity's events arrive in order on one feed, so the registration has
/// normally been projected already; if it has not (it was dead-lettered, or
/// the projection was reset), the read model is behind, which is transient.
#[tracing::instrument(skip_all, fields(customer_id = %ev.customer_id))]
pub async fn on_customer_email_changed(
    deps: &Deps,
    ev: CustomerEmailChanged,
    tx: &mut Applying,
) -> Result<(), HandlerError> {
    let Some(contact) = store::contact(tx.tx(), &ev.customer_id).await? else {
        return Err(HandlerError::Transient(format!(
            "contact {} not yet known",
            ev.customer_id
        )));
    };
    let source = tx.envelope().id.clone();
    store::upsert_contact(
        tx.later(),
        &contact.with_email(&ev),
        &deps.clock.now_rfc3339(),
        &source,
    );
    Ok(())
}

/// Records the message for `invoice-created`.
#[tracing::instrument(skip_all, fields(customer_id = %ev.customer_id))]
pub async fn on_invoice_created(
    deps: &Deps,
    ev: InvoiceCreated,
    tx: &mut Applying,
) -> Result<(), HandlerError> {
    record(deps, tx, &ev.customer_id, |contact| {
        domain::invoice_created(contact, &ev)
    })
    .await
}

/// Records the message for `invoice-paid`.
#[tracing::instrument(skip_all, fields(customer_id = %ev.customer_id))]
pub async fn on_invoice_paid(
    deps: &Deps,
    ev: InvoicePaid,
    tx: &mut Applying,
) -> Result<(), HandlerError> {
    record(deps, tx, &ev.customer_id, |contact| {
        domain::invoice_paid(contact, &ev)
    })
    .await
}

/// Records the message for `invoice-voided`.
#[tracing::instrument(skip_all, fields(customer_id = %ev.customer_id))]
pub async fn on_invoice_voided(
    deps: &Deps,
    ev: InvoiceVoided,
    tx: &mut Applying,
) -> Result<(), HandlerError> {
    record(deps, tx, &ev.customer_id, |contact| {
        Ok(domain::invoice_voided(contact, &ev))
    })
    .await
}

/// Records the message for `invoice-refunded`.
#[tracing::instrument(skip_all, fields(customer_id = %ev.customer_id))]
pub async fn on_invoice_refunded(
    deps: &Deps,
    ev: InvoiceRefunded,
    tx: &mut Applying,
) -> Result<(), HandlerError> {
    record(deps, tx, &ev.customer_id, |contact| {
        domain::invoice_refunded(contact, &ev)
    })
    .await
}

/// Records the message for `shipment-dispatched`.
#[tracing::instrument(skip_all, fields(customer_id = %ev.customer_id))]
pub async fn on_shipment_dispatched(
    deps: &Deps,
    ev: ShipmentDispatched,
    tx: &mut Applying,
) -> Result<(), HandlerError> {
    record(deps, tx, &ev.customer_id, |contact| {
        Ok(domain::shipment_dispatched(contact, &ev))
    })
    .await
}

/// Records one delivery to `customer_id` in the event's transaction.
///
/// Events from identity and from billing or fulfillment travel on different
/// feeds, so an invoice can arrive before its customer's contact has been
/// projected.
/// That is a read model being behind, not a bad event: the error is
/// transient, the transaction rolls back (inbox row included) and the bus
/// redelivers with backoff.
async fn record(
    deps: &Deps,
    tx: &mut Applying,
    customer_id: &str,
    render: impl FnOnce(&Contact) -> Result<Draft, Unrenderable>,
) -> Result<(), HandlerError> {
    let Some(contact) = store::contact(tx.tx(), customer_id).await? else {
        return Err(HandlerError::Transient(format!(
            "contact {customer_id} not yet known"
        )));
    };
    let draft = render(&contact).map_err(|e| HandlerError::Permanent(e.to_string()))?;
    let delivery = Delivery::pending(
        deps.ids.new_id().to_string(),
        tx.envelope(),
        deps.channel,
        &contact,
        draft,
        now_ms(deps.clock.as_ref()),
        deps.clock.now_rfc3339(),
    );
    store::insert_delivery(tx.later(), &delivery);
    tracing::debug!(delivery_id = %delivery.id, "delivery recorded");
    let wake = deps.wake.clone();
    tx.after_commit(move || wake.notify_one());
    Ok(())
}

/// One page of a customer's deliveries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page {
    /// Oldest first.
    pub deliveries: Vec<Delivery>,
    /// Where the next page starts, when there may be one.
    pub next: Option<String>,
}

/// Longest page of deliveries; also the default.
pub const MAX_PAGE: u32 = 100;

/// The most digits of a page cursor: a delivery's sequence number, which
/// never nears 10^18, so every cursor of this many digits parses.
pub const MAX_CURSOR_DIGITS: usize = 18;

/// A page of `customer_id`'s deliveries, oldest first, after the cursor
/// `after` (from an earlier page's `next`); none for a customer never seen.
/// Only the customer themselves may list them: for anyone else the
/// customer is not found, whether they exist or not.
pub async fn list_deliveries(
    deps: &Deps,
    caller: &Principal,
    customer_id: &str,
    after: Option<&str>,
    limit: Option<u32>,
) -> Result<Page, Error> {
    if customer_id.is_empty() {
        return Err(Error::InvalidQuery {
            field: "customer_id",
            reason: "must not be empty".into(),
        });
    }
    if !caller.is_customer(customer_id) {
        return Err(Error::CustomerNotFound(customer_id.to_owned()));
    }
    let after = match after {
        None => 0,
        // Digits only: `i64`'s parser would also take a sign.
        Some(a) => Some(a)
            .filter(|a| {
                (1..=MAX_CURSOR_DIGITS).contains(&a.len()) && a.bytes().all(|b| b.is_ascii_digit())
            })
            .and_then(|a| a.parse::<i64>().ok())
            .ok_or_else(|| Error::InvalidQuery {
                field: "after",
                reason: "must be the `next` of an earlier page".into(),
            })?,
    };
    let limit = match limit {
        None => MAX_PAGE,
        Some(l) if (1..=MAX_PAGE).contains(&l) => l,
        Some(_) => {
            return Err(Error::InvalidQuery {
                field: "limit",
                reason: format!("must be 1-{MAX_PAGE}"),
            });
        }
    };
    let rows = deps.store.list(customer_id, after, limit).await?;
    let next = match rows.last() {
        Some((seq, _)) if rows.len() == limit as usize => Some(seq.to_string()),
        _ => None,
    };
    Ok(Page {
        deliveries: rows.into_iter().map(|(_, d)| d).collect(),
        next,
    })
}

/// Only a customer reads their own contact: for anyone else it is not
/// found, whether it exists or not.
pub fn own_contact(caller: &Principal, customer_id: &str) -> Result<(), Error> {
    if caller.is_customer(customer_id) {
        Ok(())
    } else {
        Err(Error::ContactNotFound(customer_id.to_owned()))
    }
}

/// Waits until the contact projection has reached the position of `token`
/// (the `Seams-Consistency-Token` of an identity write), at most
/// [`Deps::consistency_wait`]; no token, no wait.
#[tracing::instrument(skip_all, fields(token = tracing::field::Empty))]
pub async fn wait_for_token(deps: &Deps, token: Option<&str>) -> Result<(), Error> {
    let Some(raw) = token else {
        return Ok(());
    };
    let producer = identity_contract::CUSTOMER_REGISTERED.producer;
    let token = Token::parse(raw)
        .ok_or_else(|| Error::InvalidToken(format!("expected {producer}:<position>")))?;
    tracing::Span::current().record("token", tracing::field::display(&token));
    if token.producer != producer {
        return Err(Error::InvalidToken(format!(
            "contacts follow {producer}'s events, not {}'s",
            token.producer
        )));
    }
    deps.consistency
        .wait_for(CONTACTS_SUBSCRIPTION, token.position, deps.consistency_wait)
        .await
        .map(|_| ())
        .map_err(|reached| Error::Stale {
            wanted: token.position,
            reached,
        })
}

/// A customer's contact as notification knows it.
pub async fn get_contact(
    deps: &Deps,
    caller: &Principal,
    customer_id: &str,
) -> Result<ContactEntry, Error> {
    own_contact(caller, customer_id)?;
    deps.store
        .contact_entry(customer_id)
        .await?
        .ok_or_else(|| Error::ContactNotFound(customer_id.to_owned()))
}
