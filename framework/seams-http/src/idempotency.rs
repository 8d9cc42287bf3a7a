//! `Idempotency-Key` for keyed commands (the contract answer
//! [`seams_core::decl::Idempotency::Keyed`]).
//!
//! The extractor refuses a keyed command without a key (428), answers a
//! replay with the first response byte for byte, refuses the same key with a
//! different request (422), and otherwise hands the handler an
//! [`IdempotencyClaim`] to record its response in the same transaction as
//! its effect (see `seams_store`'s idempotency module for why that closes
//! the race between two concurrent requests with one key).
//!
//! Keys belong to the caller who sent them: a record's scope names the
//! route and the authenticated caller, so one client can neither replay
//! another's response (and read it) nor squat on a key another will use.

use axum::body::Bytes;
use axum::extract::{FromRequest, MatchedPath, Request};
use axum::http::{HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use seams_core::Problem;
use seams_store::{Db, IdempotencyClaim, StoredResponse};
use serde::de::DeserializeOwned;
use sha2::{Digest, Sha256};

use crate::extract::{bytes_rejection, is_json, json_rejection, parse_object};
use crate::problem::{internal, problem_response, unexpected};

/// `Idempotency-Key`.
pub static IDEMPOTENCY_KEY: HeaderName = HeaderName::from_static("idempotency-key");
/// Set on a replayed response.
pub static REPLAYED: HeaderName = HeaderName::from_static("idempotent-replayed");

/// Router state that can reach the capability's idempotency records.
pub trait IdempotencyStore {
    /// The capability's database.
    fn idempotency_db(&self) -> &Db;
}

/// A keyed JSON command: the parsed body and the claim to record its response under.
#[derive(Debug)]
pub struct IdempotentJson<T> {
    /// Key, scope and fingerprint.
    pub claim: IdempotencyClaim,
    /// The request body.
    pub value: T,
}

/// The longest `Idempotency-Key`, in bytes (visible ASCII, so characters too).
pub const MAX_KEY_LEN: usize = 255;

fn valid_key(key: &str) -> bool {
    (1..=MAX_KEY_LEN).contains(&key.len()) && key.bytes().all(|b| b.is_ascii_graphic())
}

/// Hash of what identifies a request: method, path and body.
pub fn fingerprint(method: &str, path: &str, body: &[u8]) -> String {
    let mut h = Sha256::new();
    for part in [method.as_bytes(), path.as_bytes(), body] {
        h.update((part.len() as u64).to_be_bytes());
        h.update(part);
    }
    hex::encode(h.finalize())
}

/// The response to send for a stored record and the request's fingerprint.
pub fn answer(stored: StoredResponse, claim: &IdempotencyClaim) -> Response {
    if stored.fingerprint != claim.fingerprint {
        return problem_response(
            Problem::new(
                422,
                "idempotency-key-reused",
                "Idempotency-Key reused with a different request",
            )
            .detail("This key was first used for a request with another method, path or body.")
            .with("idempotency_key", claim.key.clone()),
        );
    }
    let status = StatusCode::from_u16(stored.status).unwrap_or(StatusCode::OK);
    let mut res = (status, stored.body).into_response();
    res.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    res.headers_mut()
        .insert(REPLAYED.clone(), HeaderValue::from_static("true"));
    res
}

/// After a handler lost the race to record `claim`, answers with the winner's response.
///
/// The winner may still be waiting for its group commit, so its record can
/// be invisible to readers for a moment: poll briefly before giving up.
pub async fn replay_after_conflict(db: &Db, claim: &IdempotencyClaim) -> Response {
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        match db.stored_response(&claim.scope, &claim.key).await {
            Ok(Some(stored)) => return answer(stored, claim),
            Ok(None) if tokio::time::Instant::now() < deadline => {
                tokio::time::sleep(std::time::Duration::from_millis(2)).await;
            }
            Ok(None) => {
                tracing::error!(key = %claim.key, "the winning request's record never became visible");
                return problem_response(internal());
            }
            Err(e) => {
                tracing::error!(error = %e, "reading idempotency record");
                return problem_response(unexpected(&e.into()));
            }
        }
    }
}

/// A first response as JSON, exactly the bytes that were recorded.
pub fn fresh(status: StatusCode, body: Vec<u8>) -> Response {
    let mut res = (status, body).into_response();
    res.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    res
}

impl<T, S> FromRequest<S> for IdempotentJson<T>
where
    T: DeserializeOwned,
    S: IdempotencyStore + Send + Sync,
{
    type Rejection = Response;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let key = match req.headers().get(&IDEMPOTENCY_KEY) {
            None => {
                return Err(problem_response(
                    Problem::new(428, "idempotency-key-required", "Idempotency-Key required")
                        .detail("This command is keyed: send an Idempotency-Key header (1-255 visible ASCII characters) and reuse it on retries."),
                ));
            }
            Some(v) => match v.to_str().ok().filter(|k| valid_key(k)) {
                Some(k) => k.to_owned(),
                None => {
                    return Err(problem_response(
                        Problem::new(400, "invalid-idempotency-key", "Invalid Idempotency-Key")
                            .detail("The key must be 1-255 visible ASCII characters."),
                    ));
                }
            },
        };
        let method = req.method().to_string();
        let path = req.uri().path().to_owned();
        let caller = req
            .extensions()
            .get::<seams_core::auth::Principal>()
            .map_or_else(|| "anonymous".to_owned(), |p| p.scope_key());
        let template = req
            .extensions()
            .get::<MatchedPath>()
            .map_or_else(|| path.clone(), |m| m.as_str().to_owned());
        let content_type_ok = is_json(req.headers());
        let body = Bytes::from_request(req, state)
            .await
            .map_err(|e| problem_response(bytes_rejection(e)))?;
        let claim = IdempotencyClaim {
            scope: format!("{method} {template} {caller}"),
            key,
            fingerprint: fingerprint(&method, &path, &body),
        };
        match state
            .idempotency_db()
            .stored_response(&claim.scope, &claim.key)
            .await
        {
            Ok(Some(stored)) => return Err(answer(stored, &claim)),
            Ok(None) => {}
            Err(e) => {
                tracing::error!(error = %e, "reading idempotency record");
                return Err(problem_response(unexpected(&e.into())));
            }
        }
        if !content_type_ok {
            return Err(problem_response(json_rejection(
                axum::extract::rejection::JsonRejection::MissingJsonContentType(Default::default()),
            )));
        }
        let value = parse_object(&body).map_err(problem_response)?;
        Ok(IdempotentJson { claim, value })
    }
}

#[cfg(test)]
mod tests;
