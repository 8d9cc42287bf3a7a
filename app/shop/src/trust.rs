//! Who a process trusts and what it signs with, from the configuration and
//! where the capabilities are placed.
//!
//! The process that runs identity holds the deployment's signing keys (a
//! private file, created at the first start) and verifies tokens with them;
//! every other process fetches identity's public keys from its JWKS once
//! and caches them. A configured external OIDC issuer is trusted for people
//! as well. A service of a split system presents its own token, read from
//! the file its deployer keeps fresh.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use seams_auth::{Credential, Issuer, KeyStore, Minter, TokenFile, Verifier};

use crate::config::Config;
use crate::system::Placement;

/// What a process trusts and signs with.
pub struct Trust {
    /// Verifies every token this process is shown.
    pub verifier: Arc<Verifier>,
    /// The deployment's keys, where identity runs.
    pub minter: Option<Minter>,
    /// This process's own service token, when it has one.
    pub credential: Option<Arc<dyn Credential>>,
}

/// A client for fetching public keys: bounded in time, never through a
/// proxy, trusting the public roots and `authorities`.
pub fn jwks_client(authorities: &[reqwest::Certificate]) -> reqwest::Client {
    seams_http::tls::client_builder(authorities)
        .connect_timeout(Duration::from_secs(2))
        .timeout(Duration::from_secs(5))
        .no_proxy()
        .build()
        .unwrap_or_default()
}

/// The deployment's keys at the configured path, created if missing.
pub fn open_keys(config: &Config) -> anyhow::Result<KeyStore> {
    let path = config.signing_keys_path();
    KeyStore::open(&path).with_context(|| format!("opening the signing keys at {}", path.display()))
}

/// The external issuer `config` names, if any.
fn external(config: &Config, client: &reqwest::Client) -> Option<Issuer> {
    match (
        &config.oidc_issuer,
        &config.oidc_jwks_url,
        &config.oidc_audience,
    ) {
        (Some(iss), Some(url), Some(aud)) => Some(Issuer::external(
            iss.clone(),
            url,
            aud.clone(),
            config.oidc_role_claim.clone(),
            client.clone(),
        )),
        _ => None,
    }
}

/// Who the split supervisor's own route (`/_seams/rollout`) trusts: the
/// deployment's keys, which it holds, and the external issuer if any.
pub fn supervisor(config: &Config, keys: KeyStore) -> anyhow::Result<Arc<Verifier>> {
    let client = jwks_client(&config.authorities()?);
    let mut issuers = vec![Issuer::deployment(config.issuer.clone(), keys)];
    issuers.extend(external(config, &client));
    Ok(Arc::new(Verifier::new(issuers)))
}

/// The trust of a process running `placement`.
pub fn build(config: &Config, placement: &Placement) -> anyhow::Result<Trust> {
    let client = jwks_client(&config.authorities()?);
    let mut issuers = Vec::new();
    let minter = if placement.here("identity") {
        let keys = open_keys(config)?;
        issuers.push(Issuer::deployment(config.issuer.clone(), keys.clone()));
        Some(Minter::new(keys, config.issuer.clone()))
    } else {
        let identity = placement
            .peers
            .get("identity")
            .context("identity is neither here nor at a peer")?;
        issuers.push(Issuer::deployment_remote(
            config.issuer.clone(),
            &format!("{identity}/identity/.well-known/jwks.json"),
            client.clone(),
        ));
        None
    };
    issuers.extend(external(config, &client));
    let credential = match &config.service_token_file {
        Some(path) => Some(Arc::new(
            TokenFile::open(path)
                .with_context(|| format!("reading this service's token at {}", path.display()))?,
        ) as Arc<dyn Credential>),
        None => None,
    };
    Ok(Trust {
        verifier: Arc::new(Verifier::new(issuers)),
        minter,
        credential,
    })
}
