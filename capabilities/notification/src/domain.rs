//! Notification's rules as pure values and decisions: what a contact becomes
//! when identity announces a change, what message an event becomes, and what
//! becomes of a delivery after each attempt to send it.
//!
//! Nothing here reads a database, a clock or a channel: the shell passes in
//! the contact, the event, `now` and the new id, so the wording of every
//! message and the retry schedule are tested without I/O.

use billing_contract::{CreatedLine, InvoiceCreated, InvoicePaid, InvoiceRefunded, InvoiceVoided};
use catalog_contract::{Amount, Money};
use fulfillment_contract::ShipmentDispatched;
use identity_contract::CustomerEmailChanged;
use seams_core::Envelope;
use seams_core::decl::RetryPolicy;

/// What notification knows about a customer, projected from identity's events.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Contact {
    /// Identity's customer id.
    pub customer_id: String,
    /// Where messages go. Not re-validated: identity owns addresses, and a
    /// channel that cannot use one fails that delivery permanently, visibly.
    pub email: String,
    /// Display name, used in the greeting and the `To` header; may be empty.
    pub name: String,
}

impl Contact {
    /// The contact after identity announced a new address: later messages
    /// go there, while deliveries already recorded keep the address they
    /// were recorded with.
    pub fn with_email(&self, ev: &CustomerEmailChanged) -> Contact {
        Contact {
            email: ev.email.clone(),
            ..self.clone()
        }
    }
}

/// A rendered message, before it has an id or a recipient.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Draft {
    /// Subject line.
    pub subject: String,
    /// Plain-text body.
    pub body: String,
}

/// An event that cannot become a message as it is (an amount in an unknown
/// currency, a negative amount): billing broke its contract, so retrying the
/// same event cannot help.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cannot render a message: {0}")]
pub struct Unrenderable(pub String);

/// The message for `invoice-created`: the lines and the total.
pub fn invoice_created(contact: &Contact, ev: &InvoiceCreated) -> Result<Draft, Unrenderable> {
    let short = short_id(&ev.invoice_id);
    let total = money(&ev.total, "total")?;
    let mut lines = String::new();
    for line in &ev.lines {
        lines.push_str(&render_line(line)?);
        lines.push('\n');
    }
    Ok(Draft {
        subject: format!("Invoice {short} for {total}"),
        body: format!(
            "{greeting}\n\nyour invoice {short} is ready:\n\n{lines}\nTotal: {total}\n\n\
             Invoice id: {id}\n{signature}",
            greeting = greeting(contact),
            id = ev.invoice_id,
            signature = SIGNATURE,
        ),
    })
}

/// The message for `invoice-paid`: a receipt for the payment.
pub fn invoice_paid(contact: &Contact, ev: &InvoicePaid) -> Result<Draft, Unrenderable> {
    let short = short_id(&ev.invoice_id);
    let amount = money(&ev.amount, "amount")?;
    Ok(Draft {
        subject: format!("Payment received for invoice {short}"),
        body: format!(
            "{greeting}\n\nwe received your payment of {amount} for invoice {short}. Thank you!\n\n\
             Invoice id: {invoice}\nPayment id: {payment}\n{signature}",
            greeting = greeting(contact),
            invoice = ev.invoice_id,
            payment = ev.payment_id,
            signature = SIGNATURE,
        ),
    })
}

/// The message for `invoice-voided`: the invoice is cancelled, and why.
pub fn invoice_voided(contact: &Contact, ev: &InvoiceVoided) -> Draft {
    let short = short_id(&ev.invoice_id);
    Draft {
        subject: format!("Invoice {short} cancelled"),
        body: format!(
            "{greeting}\n\nyour invoice {short} has been cancelled: {reason}. \
             It can no longer be paid, and nothing was charged.\n\n\
             Invoice id: {id}\n{signature}",
            greeting = greeting(contact),
            reason = reason(&ev.reason),
            id = ev.invoice_id,
            signature = SIGNATURE,
        ),
    }
}

/// The message for `invoice-refunded`: the amount returned, and why.
pub fn invoice_refunded(contact: &Contact, ev: &InvoiceRefunded) -> Result<Draft, Unrenderable> {
    let short = short_id(&ev.invoice_id);
    let amount = money(&ev.amount, "amount")?;
    Ok(Draft {
        subject: format!("Refund of {amount} for invoice {short}"),
        body: format!(
            "{greeting}\n\nwe refunded your payment of {amount} for invoice {short}: {reason}.\n\n\
             Invoice id: {invoice}\nPayment id: {payment}\n{signature}",
            greeting = greeting(contact),
            reason = reason(&ev.reason),
            invoice = ev.invoice_id,
            payment = ev.payment_id,
            signature = SIGNATURE,
        ),
    })
}

/// The message for `shipment-dispatched`: the invoice's goods are on their way.
pub fn shipment_dispatched(contact: &Contact, ev: &ShipmentDispatched) -> Draft {
    let short = short_id(&ev.invoice_id);
    Draft {
        subject: format!("Invoice {short} has shipped"),
        body: format!(
            "{greeting}\n\nthe items of invoice {short} are on their way.\n\n\
             Invoice id: {invoice}\nShipment id: {shipment}\nDispatched at: {at}\n{signature}",
            greeting = greeting(contact),
            invoice = ev.invoice_id,
            shipment = ev.shipment_id,
            at = ev.dispatched_at,
            signature = SIGNATURE,
        ),
    }
}

/// A reason code of billing's (`out-of-stock`) as a phrase for a customer.
///
/// Codes not known here are shown as words rather than refused: a new
/// reason billing adds should still reach the customer, if less politely.
fn reason(code: &str) -> String {
    match code.trim() {
        "out-of-stock" => "some of its items are out of stock".to_owned(),
        "" => "no reason was given".to_owned(),
        other => other.replace('-', " "),
    }
}

/// The closing of every message.
const SIGNATURE: &str = "\n-- \nSeams Shop\n";

/// The last 8 characters of `id`, without dashes, for subjects.
///
/// The *last* ones because invoice ids are UUID v7: their first characters
/// are a timestamp and repeat for every invoice made in the same minute,
/// while the tail is random. The full id is always in the body.
pub fn short_id(id: &str) -> String {
    let chars: Vec<char> = id.chars().filter(|c| *c != '-').collect();
    chars[chars.len().saturating_sub(8)..].iter().collect()
}

fn greeting(contact: &Contact) -> String {
    let name = contact.name.trim();
    if name.is_empty() {
        "Hello,".to_owned()
    } else {
        format!("Hello {name},")
    }
}

/// `2 x Green tea (TEA-1) at 4.50 EUR = 9.00 EUR`; the SKU alone for a line
/// of an `invoice-created` written as version 1, which names no product.
fn render_line(line: &CreatedLine) -> Result<String, Unrenderable> {
    let unit = money(&line.unit_price, "unit_price")?;
    let total = money(&line.line_total, "line_total")?;
    let what = match &line.name {
        Some(name) => format!("{name} ({})", line.sku),
        None => line.sku.clone(),
    };
    Ok(format!("  {} x {what} at {unit} = {total}", line.quantity))
}

/// Parses a wire amount, so that it is printed with its currency's decimals
/// (12.50 EUR, 1250 JPY) by [`Money`]'s one formatting rule.
fn money(amount: &Amount, field: &str) -> Result<Money, Unrenderable> {
    Money::try_from(amount).map_err(|e| Unrenderable(format!("{field}: {e}")))
}

/// Where a delivery is in its life. `Failed` is final and kept, never deleted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// Waiting for its first or next attempt.
    Pending,
    /// Handed to the channel.
    Delivered,
    /// Given up on: a permanent error, or every attempt failed.
    Failed,
}

impl Status {
    /// The stored and wire form.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Pending => "pending",
            Status::Delivered => "delivered",
            Status::Failed => "failed",
        }
    }

    /// Parses the stored form.
    pub fn parse(s: &str) -> Option<Status> {
        match s {
            "pending" => Some(Status::Pending),
            "delivered" => Some(Status::Delivered),
            "failed" => Some(Status::Failed),
            _ => None,
        }
    }
}

/// One message to one customer, and how sending it went so far.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    /// Delivery id (UUID): the channel's message id, stable across retries.
    pub id: String,
    /// The customer.
    pub customer_id: String,
    /// The event that caused the message.
    pub event_id: String,
    /// That event's type.
    pub event_type: String,
    /// The channel chosen when the delivery was recorded.
    pub channel: String,
    /// The address, copied from the contact at the time of the event.
    pub recipient: String,
    /// The display name, copied likewise.
    pub recipient_name: String,
    /// Subject line.
    pub subject: String,
    /// Plain-text body.
    pub body: String,
    /// Where it is in its life.
    pub status: Status,
    /// Attempts made so far.
    pub attempts: u32,
    /// Not to be attempted before this time (Unix milliseconds).
    pub next_attempt_at_ms: i64,
    /// The last attempt's error, if it failed.
    pub last_error: Option<String>,
    /// RFC 3339 time it was recorded.
    pub created_at: String,
    /// RFC 3339 time it was handed to the channel.
    pub delivered_at: Option<String>,
    /// The correlation id of the event that caused it (none on rows older
    /// than this field), named in the sender's log lines.
    pub correlation_id: Option<String>,
    /// The trace id of that event, likewise; none if it carried no valid
    /// `traceparent`.
    pub trace_id: Option<String>,
    /// That event's `traceparent` as its handling saw it: sending the
    /// message continues that span.
    pub traceparent: Option<String>,
}

impl Delivery {
    /// A new delivery of `draft` to `contact`, caused by `cause`, due at once.
    pub fn pending(
        id: String,
        cause: &Envelope,
        channel: &str,
        contact: &Contact,
        draft: Draft,
        now_ms: i64,
        created_at: String,
    ) -> Delivery {
        Delivery {
            id,
            customer_id: contact.customer_id.clone(),
            event_id: cause.id.clone(),
            event_type: cause.event_type.clone(),
            channel: channel.to_owned(),
            recipient: contact.email.clone(),
            recipient_name: contact.name.clone(),
            subject: draft.subject,
            body: draft.body,
            status: Status::Pending,
            attempts: 0,
            next_attempt_at_ms: now_ms,
            last_error: None,
            created_at,
            delivered_at: None,
            correlation_id: Some(cause.correlationid.clone()),
            trace_id: cause
                .traceparent
                .as_deref()
                .and_then(seams_core::TraceContext::parse)
                .map(|t| t.trace_id_hex()),
            traceparent: cause
                .traceparent
                .as_deref()
                .and_then(seams_core::TraceContext::parse)
                .map(|t| t.to_traceparent()),
        }
    }
}

/// How one attempt to send went, as the channel classified it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Attempt {
    /// The channel took the message.
    Delivered,
    /// Worth retrying later; the error text.
    Transient(String),
    /// Will fail the same way again; the error text.
    Permanent(String),
}

/// What to record after an attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Next {
    /// Done.
    Delivered,
    /// Still pending: try again at `at_ms` (Unix milliseconds).
    Retry {
        /// When the next attempt is due.
        at_ms: i64,
        /// The error to record.
        error: String,
    },
    /// Give up and keep the row as failed.
    Failed {
        /// The error to record.
        error: String,
    },
}

/// Decides what follows attempt number `attempts` (1-based, counting this one).
///
/// A transient failure waits `policy.backoff(attempts + 1)` (the initial
/// backoff, doubling, capped) unless it was the last allowed attempt; a
/// permanent failure gives up at once, since the same message would fail the
/// same way.
pub fn after_attempt(policy: &RetryPolicy, attempts: u32, attempt: Attempt, now_ms: i64) -> Next {
    match attempt {
        Attempt::Delivered => Next::Delivered,
        Attempt::Permanent(error) => Next::Failed { error },
        Attempt::Transient(error) if attempts >= policy.max_attempts => Next::Failed {
            error: format!("gave up after {attempts} attempts: {error}"),
        },
        Attempt::Transient(error) => {
            let wait = policy.backoff(attempts.saturating_add(1));
            let wait_ms = i64::try_from(wait.as_millis()).unwrap_or(i64::MAX);
            Next::Retry {
                at_ms: now_ms.saturating_add(wait_ms),
                error,
            }
        }
    }
}

#[cfg(test)]
mod tests;
