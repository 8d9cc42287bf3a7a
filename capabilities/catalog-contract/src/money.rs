//! Money: integer minor units and an ISO 4217 currency, never floats.
//!
//! [`Money`] is the checked value domain code computes with; [`Amount`] is
//! its wire form. Converting an `Amount` parses it (known currency code), so
//! a `Money` is always valid.

use std::fmt;

use serde::{Deserialize, Serialize};

/// A currency in circulation: an ISO 4217 code that is neither special
/// (`XXX` no currency, `XTS` testing, precious metals, `XDR` and the like),
/// nor a fund (`BOV`, `CHE`, `USN`…), nor withdrawn (`HRK`, `SLL`…):
/// money a customer can be billed in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Currency(iso_currency::Currency);

impl Currency {
    /// Parses an uppercase ISO 4217 code such as `EUR`.
    ///
    /// `iso_currency` finds a code by comparing it with every code in turn
    /// (a `match` over some 180 strings: 1,500 instructions an invoice of
    /// `bench/invoice-cost.sh`, counted with callgrind, 240 with this). A
    /// system bills in a few currencies, so each thread remembers the last
    /// code it parsed and its answer, which never change.
    pub fn parse(code: &str) -> Result<Currency, MoneyError> {
        thread_local! {
            static LAST: std::cell::Cell<Option<([u8; 3], Currency)>> =
                const { std::cell::Cell::new(None) };
        }
        let key: Option<[u8; 3]> = code.as_bytes().try_into().ok();
        if let (Some(key), Some((last, currency))) = (key, LAST.get())
            && key == last
        {
            return Ok(currency);
        }
        let currency = iso_currency::Currency::from_code(code)
            .filter(|c| c.code() == code)
            .filter(|c| !c.is_special() && !c.is_fund() && c.is_superseded().is_none())
            .map(Currency)
            .ok_or_else(|| MoneyError::UnknownCurrency(code.to_owned()))?;
        if let Some(key) = key {
            LAST.set(Some((key, currency)));
        }
        Ok(currency)
    }

    /// The three-letter code.
    pub fn code(&self) -> &'static str {
        self.0.code()
    }
}

impl fmt::Display for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

/// An amount of money.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Money {
    /// Integer minor units (cents for EUR).
    pub minor: i64,
    /// The currency.
    pub currency: Currency,
}

/// Invalid money.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MoneyError {
    /// Not the ISO 4217 code of a currency in circulation.
    #[error("`{0}` is not the ISO 4217 code of a currency in circulation")]
    UnknownCurrency(String),
    /// Negative where a price is expected.
    #[error("amount must not be negative")]
    Negative,
    /// Two currencies in one sum.
    #[error("cannot combine {0} and {1}")]
    MixedCurrencies(Currency, Currency),
    /// Too large for 64-bit minor units.
    #[error("amount overflows")]
    Overflow,
}

impl Money {
    /// A non-negative amount.
    pub fn new(minor: i64, currency: Currency) -> Result<Money, MoneyError> {
        if minor < 0 {
            return Err(MoneyError::Negative);
        }
        Ok(Money { minor, currency })
    }

    /// Zero in `currency`.
    pub fn zero(currency: Currency) -> Money {
        Money { minor: 0, currency }
    }

    /// `self * n`, checked.
    pub fn times(self, n: u32) -> Result<Money, MoneyError> {
        let minor = self
            .minor
            .checked_mul(i64::from(n))
            .ok_or(MoneyError::Overflow)?;
        Ok(Money { minor, ..self })
    }

    /// `self + other`, same currency only, checked.
    pub fn plus(self, other: Money) -> Result<Money, MoneyError> {
        if self.currency != other.currency {
            return Err(MoneyError::MixedCurrencies(self.currency, other.currency));
        }
        let minor = self
            .minor
            .checked_add(other.minor)
            .ok_or(MoneyError::Overflow)?;
        Ok(Money { minor, ..self })
    }
}

impl fmt::Display for Money {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let exp = self.currency.0.exponent().unwrap_or(0) as u32;
        if exp == 0 {
            return write!(f, "{} {}", self.minor, self.currency);
        }
        let unit = 10i64.pow(exp);
        let sign = if self.minor < 0 { "-" } else { "" };
        let abs = self.minor.unsigned_abs();
        write!(
            f,
            "{sign}{}.{:0width$} {}",
            abs / unit as u64,
            abs % unit as u64,
            self.currency,
            width = exp as usize
        )
    }
}

/// Money on the wire: `{"amount": 1250, "currency": "EUR"}` is EUR 12.50.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Amount {
    /// Integer minor units, never negative.
    #[schema(minimum = 0)]
    pub amount: i64,
    /// ISO 4217 code of a currency in circulation, such as `EUR`.
    #[schema(schema_with = currency_schema)]
    pub currency: String,
}

/// Every code [`Currency::parse`] accepts, found once: every document that
/// shows an [`Amount`] lists them, and finding them parses all 17,576
/// three-letter codes (once per schema, that was a fifth of `shop up`'s
/// start-up instructions).
static CURRENCY_CODES: std::sync::LazyLock<Vec<&'static str>> = std::sync::LazyLock::new(|| {
    let letters = || b'A'..=b'Z';
    letters()
        .flat_map(|a| letters().flat_map(move |b| letters().map(move |c| [a, b, c])))
        .filter_map(|code| {
            std::str::from_utf8(&code)
                .ok()
                .and_then(|code| Currency::parse(code).ok())
        })
        .map(|currency| currency.code())
        .collect()
});

/// Every code [`Currency::parse`] accepts, as an enum: the rule is a list,
/// and a client (or a fuzzer) reading the document should know it.
fn currency_schema() -> utoipa::openapi::Object {
    use utoipa::openapi::schema::{ObjectBuilder, Type};
    ObjectBuilder::new()
        .schema_type(Type::String)
        .description(Some(
            "ISO 4217 code of a currency in circulation, such as `EUR`.",
        ))
        .enum_values(Some(CURRENCY_CODES.iter().copied()))
        .build()
}

impl TryFrom<&Amount> for Money {
    type Error = MoneyError;
    fn try_from(a: &Amount) -> Result<Money, MoneyError> {
        Money::new(a.amount, Currency::parse(&a.currency)?)
    }
}

impl From<Money> for Amount {
    fn from(m: Money) -> Amount {
        Amount {
            amount: m.minor,
            currency: m.currency.code().to_owned(),
        }
    }
}

#[cfg(test)]
mod tests;
