//! Billing's rules as pure values and decisions: what a valid cart is, how
//! an invoice is priced from a quote, when an invoice may be paid, and how
//! it is compensated when fulfillment cannot fulfil it.
//!
//! Immediate invariants decided here (and backed by constraints in the
//! database): an invoice has at least one line, one currency, a total equal
//! to the sum of its lines; it is paid at most once, in full, in its
//! currency; a failed invoice is voided (open) or refunded in full (paid)
//! exactly once, and a voided invoice can no longer be paid.

use billing_contract::{
    CreatedLine, InvoiceCreated, InvoiceLine as LineDto, InvoicePaid, InvoiceRefunded,
    InvoiceVoided,
};
use catalog_contract::{Money, QuotedPrice};
pub use seams_core::Invalid;

/// Most lines one invoice may have.
pub const MAX_LINES: usize = 100;
/// Largest quantity of one line.
pub const MAX_QUANTITY: u32 = 1_000_000;

fn invalid(field: impl Into<String>, reason: impl Into<String>) -> Invalid {
    Invalid::new(field, reason)
}

/// A validated cart: who is billed and what they take.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cart {
    /// The customer.
    pub customer_id: String,
    /// `(sku, quantity)` in request order.
    pub lines: Vec<(String, u32)>,
}

impl Cart {
    /// Validates the shape of a cart (prices and existence are checked later).
    pub fn parse(customer_id: &str, lines: &[(String, u32)]) -> Result<Cart, Invalid> {
        if customer_id.trim().is_empty() || customer_id.len() > 64 {
            return Err(invalid("customer_id", "must be a customer id"));
        }
        if lines.is_empty() {
            return Err(invalid("lines", "a cart needs at least one line"));
        }
        if lines.len() > MAX_LINES {
            return Err(invalid("lines", format!("at most {MAX_LINES} lines")));
        }
        for (i, (sku, quantity)) in lines.iter().enumerate() {
            if sku.is_empty() || sku.len() > 64 {
                return Err(invalid(format!("lines[{i}].sku"), "must be a SKU"));
            }
            if *quantity == 0 || *quantity > MAX_QUANTITY {
                return Err(invalid(
                    format!("lines[{i}].quantity"),
                    format!("must be 1..={MAX_QUANTITY}"),
                ));
            }
        }
        Ok(Cart {
            customer_id: customer_id.to_owned(),
            lines: lines.to_vec(),
        })
    }

    /// The distinct SKUs to quote.
    pub fn skus(&self) -> Vec<String> {
        let mut skus: Vec<String> = self.lines.iter().map(|(s, _)| s.clone()).collect();
        skus.sort();
        skus.dedup();
        skus
    }
}

/// An invoice's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// Awaiting payment.
    Open,
    /// Paid in full.
    Paid,
    /// Cancelled before payment (fulfillment could not fulfil it); final.
    Voided,
    /// Paid, then refunded in full (fulfillment could not fulfil it); final.
    Refunded,
}

impl Status {
    /// As stored and sent.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Open => "open",
            Status::Paid => "paid",
            Status::Voided => "voided",
            Status::Refunded => "refunded",
        }
    }

    /// Parses the stored form.
    pub fn parse(s: &str) -> Option<Status> {
        match s {
            "open" => Some(Status::Open),
            "paid" => Some(Status::Paid),
            "voided" => Some(Status::Voided),
            "refunded" => Some(Status::Refunded),
            _ => None,
        }
    }
}

/// A priced line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line {
    /// SKU.
    pub sku: String,
    /// Quantity.
    pub quantity: u32,
    /// Unit price at creation.
    pub unit_price: Money,
    /// `unit_price * quantity`.
    pub line_total: Money,
}

/// An invoice.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invoice {
    /// Id.
    pub id: String,
    /// Customer billed.
    pub customer_id: String,
    /// Lines, at least one.
    pub lines: Vec<Line>,
    /// Sum of line totals.
    pub total: Money,
    /// State.
    pub status: Status,
    /// RFC 3339.
    pub created_at: String,
}

/// A payment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Payment {
    /// Id.
    pub id: String,
    /// Invoice paid.
    pub invoice_id: String,
    /// Amount.
    pub amount: Money,
    /// RFC 3339.
    pub paid_at: String,
}

/// A refund of a whole payment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refund {
    /// Id.
    pub id: String,
    /// Invoice refunded (at most one refund per invoice).
    pub invoice_id: String,
    /// Payment refunded.
    pub payment_id: String,
    /// Amount, the whole payment.
    pub amount: Money,
    /// Why, e.g. `out-of-stock`.
    pub reason: String,
    /// RFC 3339.
    pub created_at: String,
}

/// What compensating a failed invoice does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Compensation {
    /// The open invoice is voided: it can no longer be paid.
    Void(Invoice, InvoiceVoided),
    /// The paid invoice is refunded in full.
    Refund(Invoice, Refund, InvoiceRefunded),
    /// Already voided or refunded: compensated before, nothing more to do.
    Nothing,
}

/// Why a compensation cannot be decided.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CompensateError {
    /// The invoice is paid but its payment was not given: billing's own data
    /// disagree with themselves (a bug), and guessing the amount is worse.
    #[error("invoice {invoice_id} is paid but has no payment to refund")]
    PaymentMissing {
        /// The invoice.
        invoice_id: String,
    },
}

/// Why a payment is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PayError {
    /// The invoice is already paid (refunded invoices were paid, too).
    AlreadyPaid,
    /// The invoice was voided and can no longer be paid.
    Voided,
    /// Not the invoice's currency.
    WrongCurrency {
        /// The invoice's total.
        expected: Money,
    },
    /// Not the invoice's total.
    WrongAmount {
        /// The invoice's total.
        expected: Money,
    },
}

/// Wire form of a line.
pub fn line_dto(l: &Line) -> LineDto {
    LineDto {
        sku: l.sku.clone(),
        quantity: l.quantity,
        unit_price: l.unit_price.into(),
        line_total: l.line_total.into(),
    }
}

impl Invoice {
    /// Prices `cart` from `prices` (catalog's quote) and opens the invoice.
    pub fn build(
        id: String,
        cart: &Cart,
        prices: &[QuotedPrice],
        now: String,
    ) -> Result<(Invoice, InvoiceCreated), Invalid> {
        let mut lines = Vec::with_capacity(cart.lines.len());
        let mut names = Vec::with_capacity(cart.lines.len());
        let mut total: Option<Money> = None;
        for (i, (sku, quantity)) in cart.lines.iter().enumerate() {
            let field = format!("lines[{i}].sku");
            let quoted = prices
                .iter()
                .find(|p| &p.sku == sku)
                .ok_or_else(|| invalid(field.clone(), format!("no product {sku}")))?;
            let unit_price = Money::try_from(&quoted.unit_price)
                .map_err(|e| invalid(field.clone(), e.to_string()))?;
            let line_total = unit_price
                .times(*quantity)
                .map_err(|e| invalid(format!("lines[{i}].quantity"), e.to_string()))?;
            total = Some(match total {
                None => line_total,
                Some(t) => t
                    .plus(line_total)
                    .map_err(|e| invalid(field.clone(), e.to_string()))?,
            });
            names.push(quoted.name.clone());
            lines.push(Line {
                sku: sku.clone(),
                quantity: *quantity,
                unit_price,
                line_total,
            });
        }
        let total = total.ok_or_else(|| invalid("lines", "a cart needs at least one line"))?;
        let invoice = Invoice {
            id,
            customer_id: cart.customer_id.clone(),
            lines,
            total,
            status: Status::Open,
            created_at: now,
        };
        let event = InvoiceCreated {
            invoice_id: invoice.id.clone(),
            customer_id: invoice.customer_id.clone(),
            lines: invoice
                .lines
                .iter()
                .zip(names)
                .map(|(l, name)| CreatedLine {
                    sku: l.sku.clone(),
                    quantity: l.quantity,
                    unit_price: l.unit_price.into(),
                    line_total: l.line_total.into(),
                    name: Some(name),
                })
                .collect(),
            total: invoice.total.into(),
        };
        Ok((invoice, event))
    }

    /// Pays the invoice in full with `amount`.
    pub fn pay(
        &self,
        payment_id: String,
        amount: Money,
        now: String,
    ) -> Result<(Invoice, Payment, InvoicePaid), PayError> {
        match self.status {
            Status::Open => {}
            Status::Paid | Status::Refunded => return Err(PayError::AlreadyPaid),
            Status::Voided => return Err(PayError::Voided),
        }
        if amount.currency != self.total.currency {
            return Err(PayError::WrongCurrency {
                expected: self.total,
            });
        }
        if amount != self.total {
            return Err(PayError::WrongAmount {
                expected: self.total,
            });
        }
        let payment = Payment {
            id: payment_id,
            invoice_id: self.id.clone(),
            amount,
            paid_at: now,
        };
        let event = InvoicePaid {
            invoice_id: self.id.clone(),
            customer_id: self.customer_id.clone(),
            payment_id: payment.id.clone(),
            amount: amount.into(),
        };
        let paid = Invoice {
            status: Status::Paid,
            ..self.clone()
        };
        Ok((paid, payment, event))
    }

    /// Compensates the invoice because fulfillment cannot fulfil it, for
    /// `reason`: an open invoice is voided, a paid one refunded in full
    /// (`payment` is its payment, needed only then), and one already voided
    /// or refunded is left alone, so a repeated failure compensates once.
    pub fn compensate(
        &self,
        payment: Option<&Payment>,
        reason: &str,
        now: String,
        refund_id: String,
    ) -> Result<Compensation, CompensateError> {
        match self.status {
            Status::Open => {
                let event = InvoiceVoided {
                    invoice_id: self.id.clone(),
                    customer_id: self.customer_id.clone(),
                    reason: reason.to_owned(),
                };
                let voided = Invoice {
                    status: Status::Voided,
                    ..self.clone()
                };
                Ok(Compensation::Void(voided, event))
            }
            Status::Paid => {
                let payment = payment.filter(|p| p.invoice_id == self.id).ok_or_else(|| {
                    CompensateError::PaymentMissing {
                        invoice_id: self.id.clone(),
                    }
                })?;
                let refund = Refund {
                    id: refund_id,
                    invoice_id: self.id.clone(),
                    payment_id: payment.id.clone(),
                    amount: payment.amount,
                    reason: reason.to_owned(),
                    created_at: now,
                };
                let event = InvoiceRefunded {
                    invoice_id: self.id.clone(),
                    customer_id: self.customer_id.clone(),
                    payment_id: refund.payment_id.clone(),
                    amount: refund.amount.into(),
                    reason: refund.reason.clone(),
                };
                let refunded = Invoice {
                    status: Status::Refunded,
                    ..self.clone()
                };
                Ok(Compensation::Refund(refunded, refund, event))
            }
            Status::Voided | Status::Refunded => Ok(Compensation::Nothing),
        }
    }

    /// Whether the total equals the sum of the lines (the invariant stores check on load).
    pub fn total_matches_lines(&self) -> bool {
        let mut sum = Money::zero(self.total.currency);
        for l in &self.lines {
            match sum.plus(l.line_total) {
                Ok(s) => sum = s,
                Err(_) => return false,
            }
        }
        sum == self.total
    }
}

#[cfg(test)]
mod tests;
