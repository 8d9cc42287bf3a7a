//! Idempotency records for keyed commands.
//!
//! The first successful response to a key is stored in the same transaction
//! as the command's effect ([`Tx::save_response`]), so "effect happened" and
//! "response recorded" cannot disagree after a crash. Two concurrent requests
//! with one key both run the decision, but only one transaction can insert the
//! record: the other rolls back with [`SaveResponseError::Conflict`], leaving no
//! effect, and answers with the stored response instead.

use crate::db::{Db, now_ms};
use crate::sql::{DbError, query};
use crate::tx::Tx;

/// A keyed request that has not been answered before.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdempotencyClaim {
    /// What the key is unique within (the operation).
    pub scope: String,
    /// The client's `Idempotency-Key`.
    pub key: String,
    /// Hash of what makes the request this request (method, path, body).
    pub fingerprint: String,
}

/// A recorded first response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredResponse {
    /// Fingerprint of the request that produced it.
    pub fingerprint: String,
    /// HTTP status.
    pub status: u16,
    /// Body bytes, exactly as first sent.
    pub body: Vec<u8>,
}

/// Why a response could not be recorded.
#[derive(Debug, thiserror::Error)]
pub enum SaveResponseError {
    /// Another request with the same key committed first.
    #[error("idempotency key already used")]
    Conflict,
    /// The database failed.
    #[error(transparent)]
    Db(#[from] DbError),
}

impl SaveResponseError {
    /// The database error, for a transaction that records no response (so
    /// no key can conflict; a conflict anyway becomes a protocol error).
    pub fn into_db(self) -> DbError {
        match self {
            SaveResponseError::Db(e) => e,
            SaveResponseError::Conflict => DbError::Protocol(
                "an idempotency key conflicted in a transaction that records none".into(),
            ),
        }
    }
}

/// For callers whose errors are the database's: `tx.commit().await?` where
/// no response is recorded.
impl From<SaveResponseError> for DbError {
    fn from(e: SaveResponseError) -> DbError {
        e.into_db()
    }
}

impl Db {
    /// The stored response for `key` in `scope`, if any.
    pub async fn stored_response(
        &self,
        scope: &str,
        key: &str,
    ) -> Result<Option<StoredResponse>, DbError> {
        let row = query(
            "SELECT fingerprint, status, body FROM seams_idempotency WHERE scope = $1 AND key = $2",
        )
        .bind(scope)
        .bind(key)
        .fetch_optional(&mut self.read().await?)
        .await?;
        row.map(|row| {
            Ok(StoredResponse {
                fingerprint: row.get("fingerprint")?,
                status: row.get::<i64>("status")? as u16,
                body: row.get("body")?,
            })
        })
        .transpose()
    }
}

impl Tx {
    /// Records the response to `claim` as part of this transaction.
    pub async fn save_response(
        &mut self,
        claim: &IdempotencyClaim,
        status: u16,
        body: &[u8],
    ) -> Result<(), SaveResponseError> {
        let inserted = query(
            "INSERT INTO seams_idempotency (scope, key, fingerprint, status, body, created_at_ms) \
             VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING",
        )
        .bind(&claim.scope)
        .bind(&claim.key)
        .bind(&claim.fingerprint)
        .bind(status as i64)
        .bind(body)
        .bind(now_ms())
        .execute(self)
        .await?;
        if inserted == 0 {
            return Err(SaveResponseError::Conflict);
        }
        Ok(())
    }
}
