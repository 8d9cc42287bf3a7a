//! Catalog's SQL. Only this module knows the tables.

use catalog_contract::{Currency, Money};
use seams_core::Envelope;
use seams_store::{Backend, Db, DbError, Row, SaveResponseError, query};

use crate::domain::{Product, ProductName, Sku};

/// Catalog's database.
#[derive(Clone, Debug)]
pub struct Store {
    db: Db,
}

/// Why a product was not inserted.
#[derive(Debug, thiserror::Error)]
pub enum InsertError {
    /// The SKU exists.
    #[error("duplicate sku")]
    Duplicate,
    /// The database failed.
    #[error(transparent)]
    Db(#[from] DbError),
}

fn product(row: &Row) -> anyhow::Result<Product> {
    let currency = Currency::parse(row.get("currency")?)?;
    Ok(Product {
        sku: Sku::parse(row.get("sku")?)
            .map_err(|e| anyhow::anyhow!("stored sku: {}", e.reason))?,
        name: ProductName::parse(row.get("name")?)
            .map_err(|e| anyhow::anyhow!("stored name: {}", e.reason))?,
        price: Money::new(row.get("price_minor")?, currency)?,
    })
}

impl Store {
    /// Over `db`.
    pub fn new(db: Db) -> Store {
        Store { db }
    }

    /// The database.
    pub fn db(&self) -> &Db {
        &self.db
    }

    /// Inserts `p` and publishes `event` in one transaction.
    pub async fn insert(
        &self,
        p: &Product,
        created_at: &str,
        event: &Envelope,
    ) -> Result<(), InsertError> {
        let mut tx = self.db.begin().await?;
        let res = query(
            "INSERT INTO products (sku, name, price_minor, currency, created_at) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(p.sku.as_str())
        .bind(p.name.as_str())
        .bind(p.price.minor)
        .bind(p.price.currency.code())
        .bind(created_at)
        .execute(&mut tx)
        .await;
        match res {
            Err(e) if seams_store::unique_violation(&e).is_some() => {
                return Err(InsertError::Duplicate);
            }
            other => other?,
        };
        tx.publish(event).await?;
        tx.commit().await.map_err(SaveResponseError::into_db)?;
        Ok(())
    }

    /// One product.
    pub async fn get(&self, sku: &Sku) -> anyhow::Result<Option<Product>> {
        let row = query("SELECT sku, name, price_minor, currency FROM products WHERE sku = $1")
            .bind(sku.as_str())
            .fetch_optional(&mut self.db.read().await?)
            .await?;
        row.as_ref().map(product).transpose()
    }

    /// The products among `skus` that exist.
    pub async fn get_many(&self, skus: &[Sku]) -> anyhow::Result<Vec<Product>> {
        if skus.is_empty() {
            return Ok(Vec::new());
        }
        // One query with a JSON array parameter instead of N round trips
        // (`Any` binds no arrays); each backend unpacks JSON its own way.
        // Each SKU once, so that the join below returns each product once.
        let unique: std::collections::BTreeSet<&str> = skus.iter().map(Sku::as_str).collect();
        let list = serde_json::to_string(&unique)?;
        let sql = match self.db.backend() {
            // A join rather than `IN (SELECT value FROM json_each($1))`:
            // for that, SQLite fills a temporary B-tree it creates and drops
            // on every run (about 10,000 instructions a quote, counted with
            // callgrind); the join looks each SKU up by the primary key.
            Backend::Sqlite => {
                "SELECT p.sku, p.name, p.price_minor, p.currency \
                 FROM json_each($1) AS j JOIN products AS p ON p.sku = j.value"
            }
            Backend::Postgres => {
                "SELECT sku, name, price_minor, currency FROM products \
                 WHERE sku IN (SELECT jsonb_array_elements_text($1::jsonb))"
            }
        };
        let rows = query(sql)
            .bind(list)
            .fetch_all(&mut self.db.read().await?)
            .await?;
        rows.iter().map(product).collect()
    }
}
