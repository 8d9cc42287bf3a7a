//! Billing's effectful shell, in the shape of the design brief's
//! `create_invoice`: ask the other capabilities what the decision needs,
//! decide (pure, [`crate::domain`]), then store state, outbox event and the
//! keyed response in one transaction. Compensating a failed fulfillment has
//! the same shape, in the failure event's inbox transaction.

use std::sync::Arc;

use billing_contract::{CreateInvoice, Invoice as InvoiceDto, PayInvoice, Payment as PaymentDto};
use catalog_contract::{Money, QUOTE_PRICES, QuoteError, QuotePrices};
use fulfillment_contract::FulfillmentFailed;
use identity_contract::{GET_CUSTOMER, GetCustomer, GetCustomerError};
use seams_core::auth::{Principal, Role};
use seams_core::{CallContext, Client, Clock, Envelope, Ids};
use seams_runtime::{Applying, HandlerError};
use seams_store::IdempotencyClaim;

use crate::domain::{Cart, Compensation, Invalid, Invoice, Payment, Status, line_dto};
use crate::error::Error;
use crate::store::{self, Response, Store, WriteError};

/// Everything billing's handlers need, passed explicitly.
#[derive(Clone)]
pub struct Deps {
    /// Billing's database.
    pub store: Store,
    /// Calls to catalog (prices) and identity (customers): declared
    /// synchronous queries, typed by their contracts' requests.
    pub calls: Client,
    /// Time.
    pub clock: Arc<dyn Clock>,
    /// New ids.
    pub ids: Arc<dyn Ids>,
}

/// The wire form of an invoice.
pub fn invoice_dto(inv: &Invoice) -> InvoiceDto {
    InvoiceDto {
        id: inv.id.clone(),
        customer_id: inv.customer_id.clone(),
        lines: inv.lines.iter().map(line_dto).collect(),
        total: inv.total.into(),
        status: inv.status.as_str().to_owned(),
        created_at: inv.created_at.clone(),
    }
}

fn payment_dto(p: &Payment) -> PaymentDto {
    PaymentDto {
        id: p.id.clone(),
        invoice_id: p.invoice_id.clone(),
        amount: p.amount.into(),
        paid_at: p.paid_at.clone(),
    }
}

fn write_error(e: WriteError, invoice_id: &str) -> Error {
    match e {
        WriteError::KeyConflict => Error::KeyConflict,
        WriteError::AlreadyPaid => Error::AlreadyPaid(invoice_id.to_owned()),
        WriteError::Voided => Error::Voided(invoice_id.to_owned()),
        WriteError::Db(e) => {
            Error::Unexpected(anyhow::Error::from(e).context("writing to billing's database"))
        }
    }
}

/// Creates an invoice for `caller`, who must be the customer billed;
/// returns the exact response bytes recorded under `claim`.
#[tracing::instrument(skip_all, fields(customer_id = %cmd.customer_id, invoice_id))]
pub async fn create_invoice(
    deps: &Deps,
    ctx: &CallContext,
    caller: &Principal,
    cmd: CreateInvoice,
    claim: &IdempotencyClaim,
) -> Result<Vec<u8>, Error> {
    if !caller.is_customer(&cmd.customer_id) {
        return Err(Error::Forbidden(
            "A customer creates invoices for themselves only: customer_id must be the token's subject."
                .into(),
        ));
    }
    let lines: Vec<(String, u32)> = cmd
        .lines
        .iter()
        .map(|l| (l.sku.clone(), l.quantity))
        .collect();
    let cart = Cart::parse(&cmd.customer_id, &lines)?;
    let customer = GetCustomer {
        id: cart.customer_id.clone(),
    };
    match deps.calls.ask(customer, ctx).await {
        Ok(_) => {}
        Err(GetCustomerError::NotFound { id }) => {
            return Err(Invalid::new("customer_id", format!("no customer {id}")).into());
        }
        Err(GetCustomerError::Call(source)) => {
            return Err(Error::Dependency {
                op: &GET_CUSTOMER,
                source,
            });
        }
    }
    let quote = match deps.calls.ask(QuotePrices { skus: cart.skus() }, ctx).await {
        Ok(q) => q,
        Err(QuoteError::UnknownSkus { skus }) => {
            let i = cart
                .lines
                .iter()
                .position(|(s, _)| skus.contains(s))
                .unwrap_or(0);
            let reason = format!("no product {}", cart.lines[i].0);
            return Err(Invalid::new(format!("lines[{i}].sku"), reason).into());
        }
        Err(QuoteError::Call(source)) => {
            return Err(Error::Dependency {
                op: &QUOTE_PRICES,
                source,
            });
        }
    };
    let now = deps.clock.now_rfc3339();
    let (invoice, event) = Invoice::build(
        deps.ids.new_id().to_string(),
        &cart,
        &quote.prices,
        now.clone(),
    )?;
    tracing::Span::current().record("invoice_id", invoice.id.as_str());
    let body = serde_json::to_vec(&invoice_dto(&invoice)).map_err(anyhow::Error::from)?;
    let env = Envelope::wrap(&event, deps.ids.new_id().to_string(), now, ctx)
        .map_err(anyhow::Error::from)?;
    deps.store
        .insert_invoice(
            &invoice,
            &env,
            Response {
                claim,
                status: 201,
                body: &body,
            },
        )
        .await
        .map_err(|e| write_error(e, &invoice.id))?;
    Ok(body)
}

/// Pays invoice `id`, which must be `caller`'s own (another customer's
/// is not found); returns the exact response bytes recorded under `claim`.
#[tracing::instrument(skip_all, fields(invoice_id = %id))]
pub async fn pay_invoice(
    deps: &Deps,
    ctx: &CallContext,
    caller: &Principal,
    id: &str,
    cmd: PayInvoice,
    claim: &IdempotencyClaim,
) -> Result<Vec<u8>, Error> {
    let amount = Money::try_from(&cmd.amount).map_err(|e| {
        let field = match e {
            catalog_contract::MoneyError::UnknownCurrency(_) => "amount.currency",
            _ => "amount.amount",
        };
        Invalid::new(field, e.to_string())
    })?;
    let invoice = find_invoice(deps, id).await?;
    if !caller.is_customer(&invoice.customer_id) {
        return Err(Error::NotFound(id.to_owned()));
    }
    let now = deps.clock.now_rfc3339();
    let (_, payment, event) = invoice
        .pay(deps.ids.new_id().to_string(), amount, now.clone())
        .map_err(|e| Error::payment(id, e))?;
    let body = serde_json::to_vec(&payment_dto(&payment)).map_err(anyhow::Error::from)?;
    let env = Envelope::wrap(&event, deps.ids.new_id().to_string(), now, ctx)
        .map_err(anyhow::Error::from)?;
    deps.store
        .record_payment(
            &payment,
            &env,
            Response {
                claim,
                status: 201,
                body: &body,
            },
        )
        .await
        .map_err(|e| write_error(e, id))?;
    Ok(body)
}

/// One invoice, as `caller` may see it: staff see any, a customer their
/// own; another customer's is not found, so invoice ids cannot be probed.
pub async fn get_invoice(deps: &Deps, caller: &Principal, id: &str) -> Result<Invoice, Error> {
    let invoice = find_invoice(deps, id).await?;
    if caller.has_role(Role::Staff) || caller.is_customer(&invoice.customer_id) {
        Ok(invoice)
    } else {
        Err(Error::NotFound(id.to_owned()))
    }
}

async fn find_invoice(deps: &Deps, id: &str) -> Result<Invoice, Error> {
    deps.store
        .get(id)
        .await?
        .ok_or_else(|| Error::NotFound(id.to_owned()))
}

/// Compensates an invoice fulfillment cannot fulfil: voids it if open,
/// refunds it in full if paid, nothing if that was done before; all in the
/// failure's inbox transaction, so a redelivered failure has no second effect.
///
/// The invoice is read inside that transaction, after any payment that
/// committed first: a payment racing the failure either committed before
/// (the invoice is paid, so it is refunded) or is refused by its conditional
/// update (the invoice is voided).
#[tracing::instrument(skip_all, fields(invoice_id = %ev.invoice_id))]
pub async fn on_fulfillment_failed(
    deps: &Deps,
    ev: FulfillmentFailed,
    tx: &mut Applying,
) -> Result<(), HandlerError> {
    let Some(invoice) = store::invoice_in(tx.tx(), &ev.invoice_id).await? else {
        // Billing created every invoice fulfillment knows of, so this is a
        // bug or an event from elsewhere: retrying cannot help.
        return Err(HandlerError::Permanent(format!(
            "fulfillment failed for invoice {}, which billing never created",
            ev.invoice_id
        )));
    };
    let payment = match invoice.status {
        Status::Paid => store::payment_in(tx.tx(), &invoice.id).await?,
        _ => None,
    };
    let now = deps.clock.now_rfc3339();
    let compensation = invoice
        .compensate(
            payment.as_ref(),
            &ev.reason,
            now.clone(),
            deps.ids.new_id().to_string(),
        )
        .map_err(|e| HandlerError::Permanent(e.to_string()))?;
    match &compensation {
        Compensation::Void(voided, event) => {
            store::void(tx.tx(), voided).await?;
            tx.publish(event, deps.ids.new_id().to_string(), now)?;
            tracing::info!(reason = %ev.reason, "invoice voided");
        }
        Compensation::Refund(refunded, refund, event) => {
            store::refund(tx.tx(), refunded, refund).await?;
            tx.publish(event, deps.ids.new_id().to_string(), now)?;
            tracing::info!(reason = %ev.reason, refund_id = %refund.id, "invoice refunded");
        }
        Compensation::Nothing => tracing::debug!("invoice compensated before; nothing to do"),
    }
    Ok(())
}
