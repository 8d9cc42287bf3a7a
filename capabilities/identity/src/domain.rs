//! Identity's rules as pure values and decisions: what a valid customer id,
//! email address, name and password are, what registering a customer
//! produces, and what changing a customer's address produces.
//!
//! Nothing here does I/O: the new id and the current customer come in as
//! arguments, so each decision is a plain function that is tested with tables
//! (see `domain/tests.rs`).

use identity_contract::{CustomerEmailChanged, CustomerRegistered};
use uuid::Uuid;

pub use seams_core::Invalid;

/// A customer's id: a UUID in its canonical text form (lowercase, hyphenated).
///
/// Only the canonical form is accepted, so one customer has exactly one URL.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CustomerId(String);

impl CustomerId {
    /// The id of a new customer, from the id source.
    pub fn new(id: Uuid) -> CustomerId {
        CustomerId(id.hyphenated().to_string())
    }

    /// Parses an id as identity hands it out.
    pub fn parse(s: &str) -> Result<CustomerId, Invalid> {
        match Uuid::try_parse(s) {
            Ok(id) if id.hyphenated().to_string() == s => Ok(CustomerId(s.to_owned())),
            _ => Err(Invalid::new(
                "id",
                "must be a UUID in lowercase hyphenated form",
            )),
        }
    }

    /// The id text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// An email address, normalized: surrounding whitespace removed and the whole
/// address lowercased, so `Ann@Example.com ` and `ann@example.com` are the
/// same customer.
///
/// Lowercasing the local part is stricter than RFC 5321 (which lets a server
/// treat `Ann` and `ann` as different mailboxes), but no mainstream provider
/// does, and two customers differing only in case are far likelier a mistake.
///
/// The rule is deliberately simple rather than the full RFC 5322 grammar
/// (no regex, no quoted strings, no comments, no IP literals). After
/// normalization the address must:
///
/// - be 3-254 bytes long (254 is the longest address that fits SMTP's
///   256-byte path limit with its angle brackets);
/// - contain no whitespace (Unicode included) and no control characters;
/// - contain exactly one `@`;
/// - have a local part of 1-64 bytes (RFC 5321) made of dot-separated,
///   non-empty runs of letters and digits of any script or
///   ``!#$%&'*+-/=?^_`{|}~`` (RFC 5322 "dot-atom", with RFC 6531's
///   non-ASCII letters);
/// - have a domain with at least one `.`, whose labels are non-empty (so no
///   leading, trailing or doubled dot), at most 63 bytes, and made of
///   letters and digits of any script or `-`, not at either end of a label.
///
/// The character rules are a subset of what notification's mailer (lettre)
/// accepts, so every address identity stores is one that can be written to.
/// Invisible characters (zero-width spaces, bidirectional overrides) are
/// neither letters nor digits, so they are refused too; a decomposed accent
/// (a letter followed by a combining mark) is refused as well, which only
/// costs a client that does not send NFC text.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Email(String);

/// Characters allowed in the local part besides letters and digits (RFC 5322 `atext`).
const LOCAL_SPECIALS: &str = "!#$%&'*+-/=?^_`{|}~";

impl Email {
    /// Normalizes and parses an email address.
    pub fn parse(s: &str) -> Result<Email, Invalid> {
        let normalized = s.trim().to_lowercase();
        match check_email(&normalized) {
            Ok(()) => Ok(Email(normalized)),
            Err(reason) => Err(Invalid::new("email", reason)),
        }
    }

    /// The normalized address.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Why a normalized address breaks the rule documented on [`Email`].
fn check_email(s: &str) -> Result<(), &'static str> {
    if !(3..=254).contains(&s.len()) {
        return Err("must be 3-254 bytes long");
    }
    if s.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err("must not contain whitespace or control characters");
    }
    let mut parts = s.split('@');
    let (Some(local), Some(domain), None) = (parts.next(), parts.next(), parts.next()) else {
        return Err("must contain exactly one @");
    };
    if local.is_empty() || local.len() > 64 {
        return Err("the part before @ must be 1-64 bytes long");
    }
    let local_char = |c: char| c.is_alphanumeric() || LOCAL_SPECIALS.contains(c);
    if !local
        .split('.')
        .all(|atom| !atom.is_empty() && atom.chars().all(local_char))
    {
        return Err(
            "the part before @ must be dot-separated runs of letters, digits or !#$%&'*+-/=?^_`{|}~",
        );
    }
    if !domain.contains('.') {
        return Err("the domain must contain a dot");
    }
    let label_ok = |label: &str| {
        (1..=63).contains(&label.len())
            && label.chars().all(|c| c.is_alphanumeric() || c == '-')
            && !label.starts_with('-')
            && !label.ends_with('-')
    };
    if !domain.split('.').all(label_ok) {
        return Err(
            "the domain must be dot-separated labels of 1-63 letters, digits or inner hyphens",
        );
    }
    Ok(())
}

/// A customer's display name: 1-200 characters, not blank, no control characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Name(String);

impl Name {
    /// Parses a name (kept as given: names are not normalized).
    pub fn parse(s: &str) -> Result<Name, Invalid> {
        seams_core::invalid::display_text("name", s, 200).map(Name)
    }

    /// The name text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A password as a customer chose it: 8-128 characters, none of them a
/// control character. It lives only until it is hashed (the shell hashes
/// it with Argon2id), and its `Debug` never shows it.
///
/// The rule follows NIST SP 800-63B: a minimum length, a generous maximum
/// (which also bounds the hashing cost), any other character allowed, and
/// no composition rules.
#[derive(Clone, PartialEq, Eq)]
pub struct Password(String);

impl std::fmt::Debug for Password {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Password(***)")
    }
}

impl Password {
    /// The shortest password accepted, in characters.
    pub const MIN_CHARS: usize = 8;
    /// The longest, in characters.
    pub const MAX_CHARS: usize = 128;

    /// Parses a password (never echoed in the error).
    pub fn parse(s: &str) -> Result<Password, Invalid> {
        let n = s.chars().count();
        if !(Self::MIN_CHARS..=Self::MAX_CHARS).contains(&n) {
            return Err(Invalid::new(
                "password",
                format!("must be {}-{} characters", Self::MIN_CHARS, Self::MAX_CHARS),
            ));
        }
        if s.chars().any(char::is_control) {
            return Err(Invalid::new(
                "password",
                "must not contain control characters",
            ));
        }
        Ok(Password(s.to_owned()))
    }

    /// The password's bytes, for hashing.
    pub fn as_bytes(&self) -> &[u8] {
        self.0.as_bytes()
    }
}

/// A customer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Customer {
    /// Identity's key for the customer.
    pub id: CustomerId,
    /// Normalized address, unique among customers (the store enforces it).
    pub email: Email,
    /// Display name.
    pub name: Name,
}

impl Customer {
    /// Validates a new customer with the fresh `id` and their password, and
    /// makes the event announcing them (which carries no password).
    ///
    /// Whether the address is already taken is not decided here: the store's
    /// unique constraint decides it, atomically with the insert.
    pub fn register(
        id: Uuid,
        email: &str,
        name: &str,
        password: &str,
    ) -> Result<(Customer, CustomerRegistered, Password), Invalid> {
        let email = Email::parse(email)?;
        let name = Name::parse(name)?;
        let password = Password::parse(password)?;
        let customer = Customer {
            id: CustomerId::new(id),
            email,
            name,
        };
        let event = CustomerRegistered {
            customer_id: customer.id.as_str().to_owned(),
            email: customer.email.as_str().to_owned(),
            name: customer.name.as_str().to_owned(),
        };
        Ok((customer, event, password))
    }
}

/// What changing a customer's address decides.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EmailChange {
    /// The new address normalizes to the current one: nothing to store and
    /// nothing to announce (`change-email` sets state, so a repeat is a no-op).
    Unchanged,
    /// The customer with the new address, and the event announcing it.
    Changed(Customer, CustomerEmailChanged),
}

impl Customer {
    /// Decides a change of this customer's address to `email`.
    ///
    /// Whether another customer has the address is not decided here: the
    /// store's unique constraint decides it, atomically with the update.
    pub fn change_email(&self, email: &str) -> Result<EmailChange, Invalid> {
        let email = Email::parse(email)?;
        if email == self.email {
            return Ok(EmailChange::Unchanged);
        }
        let customer = Customer {
            email,
            ..self.clone()
        };
        let event = CustomerEmailChanged {
            customer_id: customer.id.as_str().to_owned(),
            email: customer.email.as_str().to_owned(),
        };
        Ok(EmailChange::Changed(customer, event))
    }
}

impl From<Customer> for identity_contract::Customer {
    fn from(c: Customer) -> Self {
        identity_contract::Customer {
            id: c.id.0,
            email: c.email.0,
            name: c.name.0,
        }
    }
}

#[cfg(test)]
mod tests;
