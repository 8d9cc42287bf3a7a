//! Catalog's rules as pure values and decisions: what a valid SKU, name and
//! price are, and what adding a product produces.

use catalog_contract::{Amount, Money, ProductAdded};
pub use seams_core::Invalid;

/// A stock keeping unit: 1-64 characters of `A-Z a-z 0-9 - _ .`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Sku(String);

impl Sku {
    /// Parses a SKU.
    pub fn parse(s: &str) -> Result<Sku, Invalid> {
        let ok = (1..=64).contains(&s.len())
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b));
        if ok {
            Ok(Sku(s.to_owned()))
        } else {
            Err(Invalid::new(
                "sku",
                "must be 1-64 characters of A-Z a-z 0-9 - _ .",
            ))
        }
    }

    /// The SKU text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A product name: 1-200 characters, not blank, no control characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProductName(String);

impl ProductName {
    /// Parses a name.
    pub fn parse(s: &str) -> Result<ProductName, Invalid> {
        seams_core::invalid::display_text("name", s, 200).map(ProductName)
    }

    /// The name text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A product.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Product {
    /// Natural key.
    pub sku: Sku,
    /// Display name.
    pub name: ProductName,
    /// Unit price.
    pub price: Money,
}

impl Product {
    /// Validates a new product and the event announcing it.
    pub fn add(sku: &str, name: &str, price: &Amount) -> Result<(Product, ProductAdded), Invalid> {
        let sku = Sku::parse(sku)?;
        let name = ProductName::parse(name)?;
        let price = Money::try_from(price).map_err(|e| Invalid::new("price", e.to_string()))?;
        let event = ProductAdded {
            sku: sku.as_str().to_owned(),
            name: name.as_str().to_owned(),
            price: price.into(),
        };
        Ok((Product { sku, name, price }, event))
    }
}

#[cfg(test)]
mod tests;
