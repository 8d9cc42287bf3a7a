//! Delivery channels: where a rendered notification e-mail goes.
//!
//! The notification worker decides *what* to send and records *that* it was
//! sent; a [`Channel`] only moves one [`Message`] out of the process. Two
//! channels exist: [`Maildir`] (the default, needs nothing running, and is
//! what the end-to-end suite reads) and [`Smtp`] (hands the message to a real
//! mail server).
//!
//! Delivery is at-least-once: the worker may crash after a channel delivered
//! and before the delivery was recorded, and then deliver again. Every
//! channel therefore carries the delivery id into the message (`Message-ID`)
//! and, where the channel can, uses it to drop the duplicate (the maildir
//! channel does; SMTP cannot, so the receiving side sees the same
//! `Message-ID` twice and may deduplicate by it).
//!
//! Errors are split by what the caller should do next: [`DeliveryError::Transient`]
//! means "try again later", [`DeliveryError::Permanent`] means "give up on this
//! message", so the worker's retry policy needs no knowledge of the channel.

pub mod maildir;
pub mod smtp;

pub use lettre::message::Mailbox;
pub use maildir::Maildir;
pub use smtp::{Smtp, SmtpOptions, SmtpTls};

use lettre::message::header::{ContentType, MIME_VERSION_1_0};

/// One e-mail to deliver, already rendered to plain text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// The delivery id: unique per delivery and stable across retries of it,
    /// so that a redelivery can be recognised. Only `[A-Za-z0-9-]`, because
    /// it becomes part of a `Message-ID` and of a file name.
    pub id: String,
    /// The recipient's address, e.g. `alice@example.com`.
    pub to_email: String,
    /// The recipient's display name; may be empty.
    pub to_name: String,
    /// The subject line, plain text (non-ASCII is encoded by the renderer).
    pub subject: String,
    /// The body, plain text.
    pub body: String,
}

/// Why a delivery failed, classified by whether retrying can help.
#[derive(Debug, thiserror::Error)]
pub enum DeliveryError {
    /// The channel is unavailable for now (server down, timeout, disk
    /// error, 4xx reply); the caller should retry later with backoff.
    #[error("transient: {0}")]
    Transient(String),
    /// The message itself cannot be delivered (invalid address or id, 5xx
    /// reply); retrying the same message will fail the same way.
    #[error("permanent: {0}")]
    Permanent(String),
}

/// A way to get a [`Message`] out of the process.
///
/// Object-safe (returns a boxed future) so the worker can hold an
/// `Arc<dyn Channel>` chosen by configuration.
pub trait Channel: Send + Sync + 'static {
    /// A short stable name for logs and metrics, e.g. `"maildir"`.
    fn name(&self) -> &'static str;

    /// Delivers `msg`. Must be safe to call again with the same message after
    /// a crash or an error; see the module doc for what each channel promises.
    fn deliver<'a>(
        &'a self,
        msg: &'a Message,
    ) -> seams_core::BoxFuture<'a, Result<(), DeliveryError>>;
}

/// Checks that a delivery id only uses `[A-Za-z0-9-]`.
///
/// The id is spliced into a `Message-ID` header and into a maildir file name;
/// anything else could break the header or escape the maildir (`../`), so it
/// is rejected rather than escaped.
pub(crate) fn check_id(id: &str) -> Result<(), DeliveryError> {
    if !id.is_empty() && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') {
        Ok(())
    } else {
        Err(DeliveryError::Permanent(format!(
            "invalid delivery id {id:?}: expected [A-Za-z0-9-]+"
        )))
    }
}

/// Renders `msg` to an RFC 5322 message sent by `from`.
///
/// Both channels render through here so that a message looks the same
/// whichever way it leaves; the bytes are `lettre::Message::formatted()`.
pub(crate) fn render(msg: &Message, from: &Mailbox) -> Result<lettre::Message, DeliveryError> {
    check_id(&msg.id)?;
    let email: lettre::Address = msg.to_email.parse().map_err(|err| {
        DeliveryError::Permanent(format!("invalid recipient {:?}: {err}", msg.to_email))
    })?;
    // Given, not derived: without it `build` parses the `From` and `To`
    // headers it was just given back into addresses (a third of what
    // rendering a message costs); these are the same two addresses.
    let envelope = lettre::address::Envelope::new(Some(from.email.clone()), vec![email.clone()])
        .map_err(|err| DeliveryError::Permanent(format!("cannot address message: {err}")))?;
    // An empty display name would render as `"" <addr>`; leave it out instead.
    let name = (!msg.to_name.trim().is_empty()).then(|| msg.to_name.clone());
    lettre::Message::builder()
        .from(from.clone())
        .to(Mailbox::new(name, email))
        .subject(msg.subject.clone())
        .message_id(Some(format!("<{}@seams.local>", msg.id)))
        // `Content-Type` is only meaningful under `MIME-Version: 1.0`
        // (RFC 2045), and `.body()` does not add it by itself.
        .header(MIME_VERSION_1_0)
        .header(ContentType::TEXT_PLAIN)
        .envelope(envelope)
        .body(msg.body.clone())
        // The builder only fails on a missing From/To, which we always set;
        // still, a message we cannot build will not build on retry either.
        .map_err(|err| DeliveryError::Permanent(format!("cannot build message: {err}")))
}

#[cfg(test)]
mod tests;
