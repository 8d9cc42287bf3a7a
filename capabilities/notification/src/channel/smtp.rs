//! The SMTP channel: hands each message to a mail server over SMTP.
//!
//! For deployments that have a relay (Postfix on the host, a mail-catcher
//! like Mailpit in development, aiosmtpd in tests). The session is plain
//! SMTP, right for a relay on loopback, or secured with TLS ([`SmtpTls`]):
//! STARTTLS, required (a relay that does not offer it gets nothing), or
//! implicit TLS from the first byte. The relay's certificate is checked,
//! chain and host name, against Mozilla's roots or, when
//! [`SmtpOptions::ca_file`] is set, against that CA alone. Authentication
//! is out of scope until there is a deployment that needs it.
//!
//! SMTP has no idempotent submit: a redelivery after a crash reaches the
//! server again. The message keeps its `Message-ID: <{id}@seams.local>`, so
//! the receiving side can drop the duplicate.
//!
//! Errors are classified for the worker's retry policy: a 5xx reply means the
//! server has refused this message for good (e.g. unknown recipient) and is
//! [`DeliveryError::Permanent`]; a 4xx reply, a refused or reset connection,
//! or a timeout means the server is busy or down and is
//! [`DeliveryError::Transient`]. So is a failed TLS handshake: a certificate
//! the trusted CA did not issue is fixed on the relay or in the
//! configuration, not in the message, and the message should still go out
//! once it is (as long as attempts remain).

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use lettre::address::AddressError;
use lettre::transport::smtp::client::{Certificate, CertificateStore, Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Tokio1Executor};
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;

use super::{Channel, DeliveryError, Mailbox, Message, render};

/// Where and as whom the SMTP channel sends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SmtpOptions {
    /// The server's host name or IP address, e.g. `127.0.0.1`.
    pub host: String,
    /// The server's port, e.g. 25 or 1025.
    pub port: u16,
    /// The `From` of every message, e.g. `Seams Shop <shop@localhost>`.
    pub from: String,
    /// Limit for connecting and for each command's reply; bounds how long a
    /// hung server can hold a worker before the delivery counts as transient.
    pub timeout: Duration,
    /// How the session is secured.
    pub tls: SmtpTls,
    /// A PEM file of the CA certificate(s) that issued the relay's
    /// certificate, trusted instead of Mozilla's roots; only with TLS.
    pub ca_file: Option<PathBuf>,
}

/// How an SMTP session is secured.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum SmtpTls {
    /// Plain SMTP: for a relay on loopback or a private network.
    #[default]
    None,
    /// STARTTLS, required: the session is upgraded before the first `MAIL`,
    /// and a relay that does not offer the upgrade is sent nothing (usually
    /// port 587).
    StartTls,
    /// Implicit TLS, from the first byte (SMTPS, usually port 465; lettre's
    /// `Tls::Wrapper`).
    Implicit,
}

/// Why [`SmtpOptions`] cannot make an [`Smtp`] channel.
#[derive(Debug, thiserror::Error)]
pub enum OptionsError {
    /// `from` is not a mailbox like `Name <addr@host>` or `addr@host`; a
    /// configuration error, reported at startup.
    #[error("invalid SMTP `from` address {from:?}: {source}")]
    InvalidFrom {
        /// The configured value.
        from: String,
        /// What lettre found wrong with it.
        source: AddressError,
    },
    /// A CA file without TLS would be silently ignored; the operator
    /// meant TLS, so this is refused instead.
    #[error("an SMTP CA file is set ({0}) but TLS is off")]
    CaWithoutTls(PathBuf),
    /// The CA file cannot be read or is not PEM.
    #[error("cannot read the SMTP CA file {path}: {source}")]
    CaFile {
        /// The configured file.
        path: PathBuf,
        /// What went wrong reading it.
        source: rustls_pki_types::pem::Error,
    },
    /// The CA file holds no certificate, which would trust nothing.
    #[error("the SMTP CA file {0} holds no certificate")]
    NoCertificate(PathBuf),
    /// lettre refused the TLS settings (a certificate it cannot use).
    #[error("SMTP TLS settings: {0}")]
    Tls(#[source] lettre::transport::smtp::Error),
}

/// A [`Channel`] that submits each message to an SMTP server.
pub struct Smtp {
    /// Connects per message: lettre's pool feature is off, and notification
    /// volume does not justify keeping idle connections to the relay.
    transport: AsyncSmtpTransport<Tokio1Executor>,
    /// The `From` of every message, parsed once at startup.
    from: Mailbox,
    /// `host:port`, kept for `Debug` and error messages.
    server: String,
}

impl Smtp {
    /// Builds the channel; no connection is made until the first delivery.
    pub fn new(options: SmtpOptions) -> Result<Self, OptionsError> {
        let from = options
            .from
            .parse()
            .map_err(|source| OptionsError::InvalidFrom {
                from: options.from.clone(),
                source,
            })?;
        let tls = match options.tls {
            SmtpTls::None => {
                if let Some(ca_file) = options.ca_file {
                    return Err(OptionsError::CaWithoutTls(ca_file));
                }
                Tls::None
            }
            SmtpTls::StartTls => Tls::Required(tls_parameters(&options)?),
            SmtpTls::Implicit => Tls::Wrapper(tls_parameters(&options)?),
        };
        // `builder_dangerous` starts without TLS and sets no port; both come
        // from the options here, TLS through `.tls` (`Tls::None` only when
        // asked for: see the module doc).
        let transport = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&options.host)
            .port(options.port)
            .timeout(Some(options.timeout))
            .tls(tls)
            .build();
        Ok(Self {
            transport,
            from,
            server: format!("{}:{}", options.host, options.port),
        })
    }
}

/// The TLS settings for `options.host`: its certificate must name that host
/// and chain to the CA file's certificates, or to Mozilla's roots without one.
fn tls_parameters(options: &SmtpOptions) -> Result<TlsParameters, OptionsError> {
    let mut builder = TlsParameters::builder(options.host.clone());
    if let Some(ca_file) = &options.ca_file {
        builder = builder.certificate_store(CertificateStore::None);
        for cert in read_ca_file(ca_file)? {
            let cert = Certificate::from_der(cert.to_vec()).map_err(OptionsError::Tls)?;
            builder = builder.add_root_certificate(cert);
        }
    }
    builder.build_rustls().map_err(OptionsError::Tls)
}

/// The certificates in the PEM file at `path`; at least one.
fn read_ca_file(path: &Path) -> Result<Vec<CertificateDer<'static>>, OptionsError> {
    let certs = CertificateDer::pem_file_iter(path)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(|source| OptionsError::CaFile {
            path: path.to_owned(),
            source,
        })?;
    if certs.is_empty() {
        return Err(OptionsError::NoCertificate(path.to_owned()));
    }
    Ok(certs)
}

impl fmt::Debug for Smtp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Smtp")
            .field("server", &self.server)
            .field("from", &self.from)
            .finish_non_exhaustive()
    }
}

impl Channel for Smtp {
    fn name(&self) -> &'static str {
        "smtp"
    }

    fn deliver<'a>(
        &'a self,
        msg: &'a Message,
    ) -> seams_core::BoxFuture<'a, Result<(), DeliveryError>> {
        Box::pin(async move {
            let email = render(msg, &self.from)?;
            self.transport
                .send(email)
                .await
                .map_err(|err| classify(&self.server, &err))?;
            tracing::debug!(id = %msg.id, server = %self.server, "delivered over SMTP");
            Ok(())
        })
    }
}

/// Sorts a lettre SMTP error into "retry" or "give up".
fn classify(server: &str, err: &lettre::transport::smtp::Error) -> DeliveryError {
    let text = format!("SMTP {server}: {err}");
    if err.is_permanent() {
        // 5xx: the server has decided about this message (unknown recipient,
        // rejected content); sending it again gets the same answer.
        DeliveryError::Permanent(text)
    } else if err.is_client() {
        // lettre refused before sending, e.g. non-ASCII addresses to a server
        // without SMTPUTF8: a property of the message and the server, not of
        // the moment.
        DeliveryError::Permanent(text)
    } else {
        // 4xx, connection refused or reset, timeouts, garbled replies: the
        // server is busy, down or restarting. A failed TLS handshake too
        // (see the module doc).
        DeliveryError::Transient(text)
    }
}
