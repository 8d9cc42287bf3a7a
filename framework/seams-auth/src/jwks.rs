//! Public keys fetched from an issuer's JWKS URL: identity's own, for a
//! service that does not hold the deployment's keys, or an external OIDC
//! issuer's (Keycloak, Auth0…).
//!
//! Keys are fetched on first use and cached. A token naming a key the cache
//! lacks (the issuer rotated) triggers one refetch, at most every
//! [`REFETCH_AFTER`], so a flood of made-up key ids cannot turn into a
//! flood of requests to the issuer; the cache is also refreshed when older
//! than [`MAX_AGE`]. While the issuer cannot be reached the cached keys keep
//! working. Only signature keys of asymmetric algorithms are taken: a
//! symmetric (`oct`) key in a JWKS would let anyone who read the JWKS sign.

use std::collections::HashMap;
use std::str::FromStr;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, PublicKeyUse};
use jsonwebtoken::{Algorithm, DecodingKey};
use serde_json::Value;

use crate::verify::AuthError;

/// A cached key set older than this is refetched on the next use.
pub const MAX_AGE: Duration = Duration::from_secs(300);
/// A refetch for an unknown key id happens at most this often.
pub const REFETCH_AFTER: Duration = Duration::from_secs(10);
/// The largest JWKS document read.
const MAX_BYTES: usize = 256 * 1024;
/// How long one fetch may take.
const FETCH_TIMEOUT: Duration = Duration::from_secs(5);

/// A key usable for verification, with the algorithms it may verify.
#[derive(Clone)]
pub struct UsableKey {
    /// The key.
    pub key: DecodingKey,
    /// Algorithms a token signed with it may name.
    pub algorithms: Vec<Algorithm>,
}

/// The key for one JWK, or why it is not usable.
pub fn usable(jwk: &Jwk) -> Result<UsableKey, String> {
    if let Some(u) = &jwk.common.public_key_use
        && *u != PublicKeyUse::Signature
    {
        return Err("not a signature key".into());
    }
    let declared = match &jwk.common.key_algorithm {
        Some(a) => {
            let name = serde_json::to_value(a)
                .ok()
                .and_then(|v| v.as_str().map(str::to_owned))
                .unwrap_or_default();
            Some(Algorithm::from_str(&name).map_err(|_| format!("unsupported alg {name}"))?)
        }
        None => None,
    };
    let decoded = |s: &str| B64.decode(s).map_err(|_| "not base64url".to_owned());
    let (key, family) = match &jwk.algorithm {
        AlgorithmParameters::OctetKeyPair(p) => {
            if p.curve != EllipticCurve::Ed25519 {
                return Err("only Ed25519 among OKP curves".into());
            }
            // The verifier reads exactly 32 bytes: anything else must not
            // reach it (a shorter value would make it fail loudly).
            if decoded(&p.x)?.len() != 32 {
                return Err("an Ed25519 key is 32 bytes".into());
            }
            (
                DecodingKey::from_ed_components(&p.x).map_err(|e| e.to_string())?,
                vec![Algorithm::EdDSA],
            )
        }
        AlgorithmParameters::RSA(p) => {
            // 2048 bits at least, as every current guideline asks.
            if decoded(&p.n)?.len() < 256 {
                return Err("RSA keys under 2048 bits are refused".into());
            }
            (
                DecodingKey::from_rsa_components(&p.n, &p.e).map_err(|e| e.to_string())?,
                vec![
                    Algorithm::RS256,
                    Algorithm::RS384,
                    Algorithm::RS512,
                    Algorithm::PS256,
                    Algorithm::PS384,
                    Algorithm::PS512,
                ],
            )
        }
        AlgorithmParameters::EllipticCurve(p) => {
            let (alg, len) = match p.curve {
                EllipticCurve::P256 => (Algorithm::ES256, 32),
                EllipticCurve::P384 => (Algorithm::ES384, 48),
                _ => return Err("only P-256 and P-384 among EC curves".into()),
            };
            if decoded(&p.x)?.len() != len || decoded(&p.y)?.len() != len {
                return Err("EC coordinates of the wrong length".into());
            }
            (
                DecodingKey::from_ec_components(&p.x, &p.y).map_err(|e| e.to_string())?,
                vec![alg],
            )
        }
        AlgorithmParameters::OctetKey(_) => return Err("symmetric keys are never trusted".into()),
        _ => return Err("unsupported key type".into()),
    };
    let algorithms = match declared {
        Some(alg) if family.contains(&alg) => vec![alg],
        Some(alg) => return Err(format!("alg {alg:?} does not fit the key")),
        None => family,
    };
    Ok(UsableKey { key, algorithms })
}

/// The usable keys of a JWKS document, by key id; keys without an id or
/// that are not usable are skipped (and logged), not fatal.
pub fn parse(doc: &Value) -> Result<HashMap<String, UsableKey>, String> {
    let keys = doc
        .get("keys")
        .and_then(Value::as_array)
        .ok_or("no `keys` array")?;
    let mut out = HashMap::new();
    for raw in keys {
        let kid = raw.get("kid").and_then(Value::as_str).unwrap_or("");
        let parsed = serde_json::from_value::<Jwk>(raw.clone())
            .map_err(|e| e.to_string())
            .and_then(|jwk| usable(&jwk));
        match parsed {
            Ok(key) if !kid.is_empty() => {
                out.insert(kid.to_owned(), key);
            }
            Ok(_) => tracing::warn!("skipping a JWK without a kid"),
            Err(reason) => tracing::warn!(kid, reason, "skipping an unusable JWK"),
        }
    }
    Ok(out)
}

/// An issuer's key set behind a URL, cached.
pub struct RemoteJwks {
    url: String,
    /// [`MAX_AGE`], other in tests.
    max_age: Duration,
    /// [`REFETCH_AFTER`], shorter in tests.
    refetch_after: Duration,
    client: reqwest::Client,
    state: RwLock<Cached>,
    /// One fetch at a time; others wait for its result.
    fetching: tokio::sync::Mutex<()>,
}

#[derive(Default)]
struct Cached {
    keys: Arc<HashMap<String, UsableKey>>,
    fetched: Option<Instant>,
    attempted: Option<Instant>,
    last_error: Option<String>,
}

impl std::fmt::Debug for RemoteJwks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RemoteJwks")
            .field("url", &self.url)
            .finish_non_exhaustive()
    }
}

impl RemoteJwks {
    /// The key set at `url`, fetched with `client`.
    pub fn new(url: impl Into<String>, client: reqwest::Client) -> RemoteJwks {
        RemoteJwks {
            url: url.into(),
            max_age: MAX_AGE,
            refetch_after: REFETCH_AFTER,
            client,
            state: RwLock::new(Cached::default()),
            fetching: tokio::sync::Mutex::new(()),
        }
    }

    /// With a refetch interval other than [`REFETCH_AFTER`] (tests).
    pub fn refetching_after(mut self, interval: Duration) -> RemoteJwks {
        self.refetch_after = interval;
        self
    }

    /// With a freshness other than [`MAX_AGE`] (tests).
    pub fn fresh_for(mut self, max_age: Duration) -> RemoteJwks {
        self.max_age = max_age;
        self
    }

    /// The URL.
    pub fn url(&self) -> &str {
        &self.url
    }

    fn cached(
        &self,
    ) -> (
        Arc<HashMap<String, UsableKey>>,
        Option<Instant>,
        Option<Instant>,
    ) {
        let s = self.state.read().unwrap_or_else(|e| e.into_inner());
        (s.keys.clone(), s.fetched, s.attempted)
    }

    /// The key `kid`, fetching the set when it is missing or old.
    pub async fn key(&self, kid: &str) -> Result<UsableKey, AuthError> {
        let (keys, fetched, attempted) = self.cached();
        let fresh = fetched.is_some_and(|t| t.elapsed() < self.max_age);
        if fresh && let Some(k) = keys.get(kid) {
            return Ok(k.clone());
        }
        // A known key whose set is old is still used while a refetch is not
        // due: an issuer that is down costs one slow fetch per interval, not
        // one per request.
        if attempted.is_none_or(|t| t.elapsed() >= self.refetch_after) {
            self.refresh(attempted).await;
        }
        let (keys, fetched, _) = self.cached();
        match keys.get(kid) {
            Some(k) => Ok(k.clone()),
            None if fetched.is_none() => {
                let error = self
                    .state
                    .read()
                    .unwrap_or_else(|e| e.into_inner())
                    .last_error
                    .clone()
                    .unwrap_or_default();
                Err(AuthError::Unavailable(seams_core::redact(&format!(
                    "the issuer's keys could not be fetched from {}: {error}",
                    self.url
                ))))
            }
            None => Err(AuthError::Rejected("signed with an unknown key".into())),
        }
    }

    /// Fetches the set unless another caller fetched it since `seen`.
    async fn refresh(&self, seen: Option<Instant>) {
        let _one = self.fetching.lock().await;
        if self.cached().2 != seen {
            return;
        }
        let started = Instant::now();
        let result = self.fetch().await;
        let mut s = self.state.write().unwrap_or_else(|e| e.into_inner());
        s.attempted = Some(started);
        match result {
            Ok(keys) => {
                tracing::debug!(url = %seams_core::redact(&self.url), keys = keys.len(), "fetched signing keys");
                s.keys = Arc::new(keys);
                s.fetched = Some(started);
                s.last_error = None;
            }
            Err(e) => {
                tracing::warn!(url = %seams_core::redact(&self.url), error = %seams_core::redact(&e), "fetching signing keys failed; keeping the cached ones");
                s.last_error = Some(e);
            }
        }
    }

    async fn fetch(&self) -> Result<HashMap<String, UsableKey>, String> {
        let mut res = self
            .client
            .get(&self.url)
            .timeout(FETCH_TIMEOUT)
            .send()
            .await
            .map_err(|e| e.to_string())?;
        if !res.status().is_success() {
            return Err(format!("answered {}", res.status()));
        }
        let mut body = Vec::new();
        while let Some(chunk) = res.chunk().await.map_err(|e| e.to_string())? {
            if body.len() + chunk.len() > MAX_BYTES {
                return Err(format!("larger than {MAX_BYTES} bytes"));
            }
            body.extend_from_slice(&chunk);
        }
        let doc: Value = serde_json::from_slice(&body).map_err(|e| e.to_string())?;
        parse(&doc)
    }
}

#[cfg(test)]
mod tests;
