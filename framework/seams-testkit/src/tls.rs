//! A throwaway certificate authority for tests of TLS: each [`TestCa`] has
//! its own key and name, and has issued one server certificate for
//! `localhost` and `127.0.0.1`, so a test server on loopback presents a
//! certificate that a client trusting this CA verifies in full (chain and
//! host name), and that a client trusting any other CA refuses.
//!
//! The PEM files live in a temporary directory removed in `Drop`; servers
//! that run as another user copy them into their own directory.
//!
//! ```
//! let ca = seams_testkit::tls::TestCa::new()?;
//! assert!(std::fs::read_to_string(ca.ca_file())?.starts_with("-----BEGIN CERTIFICATE-----"));
//! # anyhow::Ok(())
//! ```

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use anyhow::Context;
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};

/// The names the server certificate is issued for: what tests connect to.
pub const SERVER_NAMES: [&str; 2] = ["localhost", "127.0.0.1"];

/// A certificate authority and the server certificate it issued, as PEM files.
#[derive(Debug)]
pub struct TestCa {
    dir: tempfile::TempDir,
}

impl TestCa {
    /// Makes a new CA, with a name no other CA of this process has (so a
    /// client trusting another one fails on an unknown issuer, not on a
    /// signature that does not match a look-alike), and issues the server
    /// certificate.
    pub fn new() -> anyhow::Result<TestCa> {
        static SERIAL: AtomicU64 = AtomicU64::new(0);
        let name = format!(
            "Seams test CA {}-{}",
            std::process::id(),
            SERIAL.fetch_add(1, Ordering::Relaxed)
        );
        let ca_key = KeyPair::generate().context("generating the CA's key")?;
        let mut ca_params = CertificateParams::new(Vec::<String>::new())?;
        ca_params.distinguished_name.push(DnType::CommonName, &name);
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let ca_cert = ca_params
            .self_signed(&ca_key)
            .context("signing the CA's certificate")?;
        let issuer = Issuer::new(ca_params, ca_key);

        let server_key = KeyPair::generate().context("generating the server's key")?;
        let mut server_params = CertificateParams::new(SERVER_NAMES.map(str::to_owned).to_vec())?;
        server_params
            .distinguished_name
            .push(DnType::CommonName, SERVER_NAMES[0]);
        server_params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        server_params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        server_params.use_authority_key_identifier_extension = true;
        let server_cert = server_params
            .signed_by(&server_key, &issuer)
            .context("issuing the server certificate")?;

        let dir = tempfile::Builder::new().prefix("seams-ca-").tempdir()?;
        let ca = TestCa { dir };
        write(&ca.ca_file(), &ca_cert.pem(), 0o644)?;
        write(&ca.cert_file(), &server_cert.pem(), 0o644)?;
        // Servers refuse a key others could read (PostgreSQL does).
        write(&ca.key_file(), &server_key.serialize_pem(), 0o600)?;
        Ok(ca)
    }

    /// The CA's certificate (PEM): what a client is told to trust.
    pub fn ca_file(&self) -> PathBuf {
        self.dir.path().join("ca.pem")
    }

    /// The server certificate (PEM), issued for [`SERVER_NAMES`].
    pub fn cert_file(&self) -> PathBuf {
        self.dir.path().join("server.pem")
    }

    /// The server certificate's private key (PEM, PKCS#8, mode 0600).
    pub fn key_file(&self) -> PathBuf {
        self.dir.path().join("server-key.pem")
    }
}

fn write(path: &Path, pem: &str, mode: u32) -> anyhow::Result<()> {
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
        .and_then(|mut f| f.write_all(pem.as_bytes()))
        .with_context(|| format!("writing {}", path.display()))
}

#[cfg(test)]
mod tests;
