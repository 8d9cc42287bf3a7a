//! Catalog's effectful shell: load, decide (pure, in [`crate::domain`]),
//! store with the outbox in one transaction.

use std::collections::BTreeSet;
use std::sync::Arc;

use catalog_contract::{AddProduct, Quote, QuoteError, QuotePrices, QuotedPrice};
use seams_core::{CallContext, Clock, Envelope, Ids};

use crate::domain::{Product, Sku};
use crate::error::Error;
use crate::store::{InsertError, Store};

/// Everything catalog's handlers need, passed explicitly.
#[derive(Clone)]
pub struct Deps {
    /// Catalog's database.
    pub store: Store,
    /// Time.
    pub clock: Arc<dyn Clock>,
    /// New ids.
    pub ids: Arc<dyn Ids>,
}

/// Adds a product and publishes `product-added`.
#[tracing::instrument(skip_all, fields(sku = %cmd.sku))]
pub async fn add_product(
    deps: &Deps,
    ctx: &CallContext,
    cmd: AddProduct,
) -> Result<Product, Error> {
    let (product, event) = Product::add(&cmd.sku, &cmd.name, &cmd.price)?;
    let now = deps.clock.now_rfc3339();
    let env = Envelope::wrap(&event, deps.ids.new_id().to_string(), now.clone(), ctx)
        .map_err(anyhow::Error::from)?;
    match deps.store.insert(&product, &now, &env).await {
        Ok(()) => Ok(product),
        Err(InsertError::Duplicate) => Err(Error::DuplicateSku(cmd.sku)),
        Err(InsertError::Db(e)) => Err(anyhow::Error::from(e).context("inserting product").into()),
    }
}

/// One product.
pub async fn get_product(deps: &Deps, sku: &str) -> Result<Product, Error> {
    let parsed = Sku::parse(sku).map_err(|_| Error::NotFound(sku.to_owned()))?;
    deps.store
        .get(&parsed)
        .await?
        .ok_or_else(|| Error::NotFound(sku.to_owned()))
}

/// Serves `quote-prices`: every SKU must exist.
#[tracing::instrument(skip_all, fields(n_skus = req.skus.len()))]
pub async fn quote_prices(deps: &Deps, req: QuotePrices) -> Result<Quote, QuoteError> {
    let asked: BTreeSet<&str> = req.skus.iter().map(String::as_str).collect();
    let mut unknown: Vec<String> = Vec::new();
    let mut valid = Vec::new();
    for s in &asked {
        match Sku::parse(s) {
            Ok(sku) => valid.push(sku),
            Err(_) => unknown.push((*s).to_owned()),
        }
    }
    let found = deps.store.get_many(&valid).await.map_err(|e| {
        tracing::error!(error = format!("{e:#}"), "quoting prices");
        QuoteError::Call(seams_core::CallError::Internal {
            op: catalog_contract::QUOTE_PRICES.id(),
        })
    })?;
    for sku in &valid {
        if !found.iter().any(|p| &p.sku == sku) {
            unknown.push(sku.as_str().to_owned());
        }
    }
    if !unknown.is_empty() {
        unknown.sort();
        return Err(QuoteError::UnknownSkus { skus: unknown });
    }
    Ok(Quote {
        prices: found
            .into_iter()
            .map(|p| QuotedPrice {
                sku: p.sku.as_str().to_owned(),
                name: p.name.as_str().to_owned(),
                unit_price: p.price.into(),
            })
            .collect(),
    })
}
