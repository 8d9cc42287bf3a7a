//! Verifying a bearer token and learning who presented it, locally: no call
//! per request to whoever issued it.
//!
//! A [`Verifier`] trusts a list of [`Issuer`]s: the deployment's own
//! (identity's keys, held in this process or fetched from identity's JWKS)
//! and optionally an external OIDC issuer. A token is accepted when its
//! header names a key of a trusted issuer, its signature verifies with an
//! algorithm that key allows (never `none`, never a symmetric one), its
//! `iss` is that issuer, it has not expired (30 s of clock skew allowed), and
//! its role claim names a role. Service tokens are accepted only from the
//! deployment's own issuer.
//!
//! Verified tokens are remembered until they expire (keyed by their
//! SHA-256), so the signature check costs once per token rather than once
//! per request; a key removed by rotation therefore stops verifying new
//! tokens at once and cached ones at their expiry.

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use seams_core::auth::{Principal, Role};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use crate::jwks::{RemoteJwks, UsableKey};
use crate::keys::KeyStore;
use crate::token::SERVICE_ROLE;

/// The longest token looked at; anything longer is refused unread.
pub const MAX_TOKEN_BYTES: usize = 8 * 1024;
/// Clock skew allowed on `exp` and `nbf`.
const LEEWAY_SECS: u64 = 30;
/// Verified tokens remembered at most.
const CACHE_ENTRIES: usize = 16 * 1024;

/// Why a token was not accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// 401 `unauthenticated`: no token was presented where one is needed.
    #[error("no credentials")]
    Missing,
    /// 401 `invalid-token`: not a well-formed token.
    #[error("malformed token: {0}")]
    Malformed(String),
    /// 401 `invalid-token`: the token expired.
    #[error("the token has expired")]
    Expired,
    /// 401 `invalid-token`: signature, issuer, key or claims do not hold.
    #[error("token rejected: {0}")]
    Rejected(String),
    /// 503 `auth-unavailable`, retryable: the issuer's keys cannot be had right now.
    #[error("{0}")]
    Unavailable(String),
}

/// Where an issuer's public keys come from.
#[derive(Clone, Debug)]
pub enum IssuerKeys {
    /// Held in this process (identity runs here).
    Local(KeyStore),
    /// Fetched from a JWKS URL and cached.
    Remote(Arc<RemoteJwks>),
}

/// An issuer whose tokens are trusted.
#[derive(Clone, Debug)]
pub struct Issuer {
    /// The `iss` its tokens carry.
    pub name: String,
    /// Its public keys.
    pub keys: IssuerKeys,
    /// The claim holding the role (a string, or an array of strings of
    /// which the first known role counts).
    pub role_claim: String,
    /// Whether it may issue service tokens (only the deployment's own).
    pub services: bool,
    /// The audience its tokens must name, if any (external issuers).
    pub audience: Option<String>,
}

impl Issuer {
    /// The deployment's own issuer with its keys in this process.
    pub fn deployment(name: impl Into<String>, keys: KeyStore) -> Issuer {
        Issuer {
            name: name.into(),
            keys: IssuerKeys::Local(keys),
            role_claim: "role".into(),
            services: true,
            audience: None,
        }
    }

    /// The deployment's own issuer, its keys fetched from `jwks_url`
    /// (identity's `/.well-known/jwks.json`, in another service).
    pub fn deployment_remote(
        name: impl Into<String>,
        jwks_url: &str,
        client: reqwest::Client,
    ) -> Issuer {
        Issuer {
            name: name.into(),
            keys: IssuerKeys::Remote(Arc::new(RemoteJwks::new(jwks_url, client))),
            role_claim: "role".into(),
            services: true,
            audience: None,
        }
    }

    /// An external OIDC issuer: people only, tokens for `audience`, the
    /// role read from `role_claim`.
    pub fn external(
        name: impl Into<String>,
        jwks_url: &str,
        audience: impl Into<String>,
        role_claim: impl Into<String>,
        client: reqwest::Client,
    ) -> Issuer {
        Issuer {
            name: name.into(),
            keys: IssuerKeys::Remote(Arc::new(RemoteJwks::new(jwks_url, client))),
            role_claim: role_claim.into(),
            services: false,
            audience: Some(audience.into()),
        }
    }

    async fn key(&self, kid: &str) -> Result<Option<UsableKey>, AuthError> {
        match &self.keys {
            IssuerKeys::Local(store) => {
                Ok(store.current().decoding_key(kid).map(|key| UsableKey {
                    key: key.clone(),
                    algorithms: vec![Algorithm::EdDSA],
                }))
            }
            IssuerKeys::Remote(jwks) => match jwks.key(kid).await {
                Ok(k) => Ok(Some(k)),
                Err(AuthError::Rejected(_)) => Ok(None),
                Err(e) => Err(e),
            },
        }
    }
}

#[derive(Clone)]
struct Cached {
    principal: Principal,
    exp: u64,
}

/// Verifies tokens of the trusted issuers; cheap to share (`Arc`).
pub struct Verifier {
    issuers: Vec<Issuer>,
    cache: quick_cache::sync::Cache<[u8; 32], Cached>,
}

impl std::fmt::Debug for Verifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Verifier")
            .field("issuers", &self.issuers)
            .finish_non_exhaustive()
    }
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

impl Verifier {
    /// Trusts `issuers`.
    pub fn new(issuers: Vec<Issuer>) -> Verifier {
        Verifier {
            issuers,
            cache: quick_cache::sync::Cache::new(CACHE_ENTRIES),
        }
    }

    /// The trusted issuers.
    pub fn issuers(&self) -> &[Issuer] {
        &self.issuers
    }

    /// Who presented `token`, or why it is not accepted.
    pub async fn verify(&self, token: &str) -> Result<Principal, AuthError> {
        if token.is_empty() {
            return Err(AuthError::Missing);
        }
        if token.len() > MAX_TOKEN_BYTES {
            return Err(AuthError::Malformed(format!(
                "longer than {MAX_TOKEN_BYTES} bytes"
            )));
        }
        let digest: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        let now = unix_now();
        if let Some(hit) = self.cache.get(&digest) {
            if now <= hit.exp.saturating_add(LEEWAY_SECS) {
                return Ok(hit.principal);
            }
            self.cache.remove(&digest);
            return Err(AuthError::Expired);
        }
        let (principal, exp) = self.verify_uncached(token).await?;
        self.cache.insert(
            digest,
            Cached {
                principal: principal.clone(),
                exp,
            },
        );
        Ok(principal)
    }

    async fn verify_uncached(&self, token: &str) -> Result<(Principal, u64), AuthError> {
        let header =
            jsonwebtoken::decode_header(token).map_err(|e| AuthError::Malformed(e.to_string()))?;
        let kid = header
            .kid
            .as_deref()
            .ok_or_else(|| AuthError::Rejected("the token names no key (kid)".into()))?;
        let mut unavailable = None;
        for issuer in &self.issuers {
            let key = match issuer.key(kid).await {
                Ok(Some(key)) => key,
                Ok(None) => continue,
                Err(e) => {
                    unavailable = Some(e);
                    continue;
                }
            };
            return verify_with(issuer, &key.key, &key.algorithms, token);
        }
        Err(unavailable.unwrap_or_else(|| AuthError::Rejected("signed with an unknown key".into())))
    }
}

fn verify_with(
    issuer: &Issuer,
    key: &DecodingKey,
    algorithms: &[Algorithm],
    token: &str,
) -> Result<(Principal, u64), AuthError> {
    let mut validation = Validation::new(algorithms[0]);
    validation.algorithms = algorithms.to_vec();
    validation.leeway = LEEWAY_SECS;
    validation.validate_nbf = true;
    validation.set_issuer(&[&issuer.name]);
    validation.set_required_spec_claims(&["exp", "iss", "sub"]);
    // Our own tokens name no audience; with none expected, one that does
    // (it was meant for somebody else) is refused.
    if let Some(aud) = &issuer.audience {
        validation.set_audience(&[aud]);
        validation.required_spec_claims.insert("aud".into());
    }
    let data =
        jsonwebtoken::decode::<Map<String, Value>>(token, key, &validation).map_err(|e| {
            use jsonwebtoken::errors::ErrorKind;
            match e.kind() {
                ErrorKind::ExpiredSignature => AuthError::Expired,
                ErrorKind::InvalidToken | ErrorKind::Base64(_) | ErrorKind::Json(_) => {
                    AuthError::Malformed(e.to_string())
                }
                _ => AuthError::Rejected(e.to_string()),
            }
        })?;
    let claims = data.claims;
    let text = |name: &str| claims.get(name).and_then(Value::as_str).unwrap_or("");
    // The validation also takes an array that names the issuer among
    // others; `iss` is one issuer (RFC 7519), and it must be this one.
    if text("iss") != issuer.name {
        return Err(AuthError::Rejected("`iss` must name the issuer".into()));
    }
    let subject = text("sub");
    if subject.is_empty() || subject.len() > 256 {
        return Err(AuthError::Rejected("`sub` must be 1-256 bytes".into()));
    }
    // As the validation read it: whole seconds, or a fraction (RFC 7519
    // allows one), rounded; remembered as 0 it would expire from the cache.
    let exp = claims
        .get("exp")
        .and_then(|v| v.as_u64().or_else(|| v.as_f64().map(|f| f.round() as u64)))
        .unwrap_or(0);
    let roles: Vec<&str> = match claims.get(&issuer.role_claim) {
        Some(Value::String(s)) => vec![s.as_str()],
        Some(Value::Array(a)) => a.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    };
    if issuer.services && roles == [SERVICE_ROLE] {
        let name = subject.strip_prefix("service:").ok_or_else(|| {
            AuthError::Rejected("a service token's subject is `service:<name>`".into())
        })?;
        let capabilities = match claims.get("caps") {
            None => Vec::new(),
            Some(Value::Array(a)) => a
                .iter()
                .map(|c| c.as_str().map(str::to_owned))
                .collect::<Option<Vec<_>>>()
                .ok_or_else(|| AuthError::Rejected("`caps` must be strings".into()))?,
            Some(_) => return Err(AuthError::Rejected("`caps` must be an array".into())),
        };
        return Ok((
            Principal::Service {
                name: name.to_owned(),
                capabilities,
            },
            exp,
        ));
    }
    let role = roles
        .iter()
        .find_map(|r| Role::parse(r))
        .ok_or_else(|| AuthError::Rejected(format!("no known role in `{}`", issuer.role_claim)))?;
    Ok((
        Principal::Person {
            subject: subject.to_owned(),
            role,
            issuer: issuer.name.clone(),
        },
        exp,
    ))
}

#[cfg(test)]
mod tests;
