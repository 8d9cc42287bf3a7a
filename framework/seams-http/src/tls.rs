//! TLS at the HTTP edges, with rustls: the certificate a server presents,
//! and the authorities a client trusts.
//!
//! A server is given a PEM certificate chain and a PEM private key (which,
//! being a secret, must be readable by its owner only); it speaks HTTP/1.1
//! over TLS 1.2 or 1.3. A client trusts the usual public authorities
//! (webpki's roots) plus any given in a PEM file, such as a deployment's own
//! CA. Certificates are always verified: there is no switch to turn that off.

use std::path::Path;
use std::sync::Arc;

use anyhow::Context;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

/// A server's TLS configuration from a PEM certificate chain and a PEM key.
pub fn server_config(cert: &Path, key: &Path) -> anyhow::Result<Arc<rustls::ServerConfig>> {
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .with_context(|| format!("reading the certificate {}", cert.display()))?
        .collect::<Result<_, _>>()
        .with_context(|| format!("parsing the certificate {}", cert.display()))?;
    anyhow::ensure!(!chain.is_empty(), "{} holds no certificate", cert.display());
    let key_pem = seams_auth::private::read(key)?;
    let key = PrivateKeyDer::from_pem_slice(&key_pem)
        .with_context(|| format!("parsing the private key {}", key.display()))?;
    let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .context("choosing TLS versions")?
    .with_no_client_auth()
    .with_single_cert(chain, key)
    .context("the certificate and key do not make a server identity")?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// The certificates of a PEM file of trusted authorities.
pub fn authorities(ca: &Path) -> anyhow::Result<Vec<reqwest::Certificate>> {
    let pem = std::fs::read(ca).with_context(|| format!("reading {}", ca.display()))?;
    let certs = reqwest::Certificate::from_pem_bundle(&pem)
        .with_context(|| format!("parsing {}", ca.display()))?;
    anyhow::ensure!(!certs.is_empty(), "{} holds no certificate", ca.display());
    Ok(certs)
}

/// A client builder speaking rustls, trusting the public roots and `extra`.
pub fn client_builder(extra: &[reqwest::Certificate]) -> reqwest::ClientBuilder {
    let mut builder = reqwest::Client::builder()
        .use_rustls_tls()
        .min_tls_version(reqwest::tls::Version::TLS_1_2);
    for cert in extra {
        builder = builder.add_root_certificate(cert.clone());
    }
    builder
}

#[cfg(test)]
mod tests;
