//! The SMTP channel: hands each message to a mail server over SMTP.
//!
//! For deployments that have a relay (Postfix on the host, a mail-catcher
//! like Mailpit in development, aiosmtpd in tests). Only plain SMTP without
//! authentication is supported for now, which is right for a relay on
//! loopback or a private network; STARTTLS/implicit TLS and credentials are
//! out of scope until there is a deployment that needs them, and would be
//! added to [`SmtpOptions`] then.
//!
//! SMTP has no idempotent submit: a redelivery after a crash reaches the
//! server again. The message keeps its `Message-ID: <{id}@seams.local>`, so
//! the receiving side can drop the duplicate.
//!
//! Errors are classified for the worker's retry policy: a 5xx reply means the
//! server has refused this message for good (e.g. unknown recipient) and is
//! [`DeliveryError::Permanent`]; a 4xx reply, a refused or reset connection,
//! or a timeout means the server is busy or down and is
//! [`DeliveryError::Transient`].

use std::fmt;
use std::time::Duration;

use lettre::address::AddressError;
use lettre::{AsyncSmtpTransport, AsyncTransport, Tokio1Executor};

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
        // `builder_dangerous` = no TLS; see the module doc for why that is
        // acceptable here.
        let transport = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&options.host)
            .port(options.port)
            .timeout(Some(options.timeout))
            .build();
        Ok(Self {
            transport,
            from,
            server: format!("{}:{}", options.host, options.port),
        })
    }
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
        // server is busy, down or restarting.
        DeliveryError::Transient(text)
    }
}
