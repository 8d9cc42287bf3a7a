//! What a Seams access token says, and minting one.
//!
//! A token is a JWT signed with the deployment's newest Ed25519 key
//! ([`crate::keys`]), carrying `iss` (the deployment's issuer name), `sub`
//! (a customer id, a person's name, or `service:<name>`), `role`
//! (`customer`, `staff`, `operator` or `service`), `iat` and `exp`, and for
//! services `caps`: the capabilities the service runs, which is what the
//! contracts authorise it for. Tokens are short-lived; nothing revokes one
//! before it expires, so their lifetime is the window a stolen one is good for.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::keys::KeyStore;

/// The role claim of a service token.
pub const SERVICE_ROLE: &str = "service";

/// The claims of a token Seams mints.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// Issuer.
    pub iss: String,
    /// Subject.
    pub sub: String,
    /// `customer`, `staff`, `operator` or `service`.
    pub role: String,
    /// Issued at (Unix seconds).
    pub iat: u64,
    /// Expires at (Unix seconds).
    pub exp: u64,
    /// For services: the capabilities they run.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub caps: Vec<String>,
}

/// A minted token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Minted {
    /// The compact JWT.
    pub token: String,
    /// Seconds it is valid for.
    pub expires_in: u64,
    /// When it expires (Unix seconds).
    pub expires_at: u64,
}

/// Mints tokens with the deployment's keys under its issuer name.
#[derive(Debug, Clone)]
pub struct Minter {
    keys: KeyStore,
    issuer: String,
}

impl Minter {
    /// Signs with `keys` as `issuer`.
    pub fn new(keys: KeyStore, issuer: impl Into<String>) -> Minter {
        Minter {
            keys,
            issuer: issuer.into(),
        }
    }

    /// The issuer name tokens carry.
    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// The keys.
    pub fn keys(&self) -> &KeyStore {
        &self.keys
    }

    /// A token for a person of `role` (`customer`, `staff` or `operator`).
    pub fn person(
        &self,
        subject: &str,
        role: seams_core::auth::Role,
        ttl: Duration,
    ) -> anyhow::Result<Minted> {
        self.mint(subject, role.as_str(), Vec::new(), ttl)
    }

    /// A service token for the process named `name` running `capabilities`.
    pub fn service(
        &self,
        name: &str,
        capabilities: &[String],
        ttl: Duration,
    ) -> anyhow::Result<Minted> {
        self.mint(
            &format!("service:{name}"),
            SERVICE_ROLE,
            capabilities.to_vec(),
            ttl,
        )
    }

    fn mint(
        &self,
        subject: &str,
        role: &str,
        caps: Vec<String>,
        ttl: Duration,
    ) -> anyhow::Result<Minted> {
        anyhow::ensure!(!subject.is_empty(), "a token needs a subject");
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let expires_in = ttl.as_secs().max(1);
        let claims = Claims {
            iss: self.issuer.clone(),
            sub: subject.to_owned(),
            role: role.to_owned(),
            iat: now,
            exp: now + expires_in,
            caps,
        };
        Ok(Minted {
            token: self.keys.current().sign(&claims)?,
            expires_in,
            expires_at: claims.exp,
        })
    }
}
