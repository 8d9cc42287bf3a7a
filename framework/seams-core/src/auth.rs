//! Who is asking: the vocabulary of authentication and authorisation that
//! routes, handlers and contracts share, without the cryptography (that is
//! `seams-auth`'s).
//!
//! People carry a signed access token with a [`Role`]; services of the same
//! system carry their own token naming the capabilities they run; a request
//! with neither is anonymous. Every public route declares its [`Access`], and
//! the HTTP edge refuses what the declaration does not allow before a handler
//! runs, so a capability author cannot forget to guard a door. What only the
//! owner can decide (is this invoice the caller's?) the handler decides, with
//! the [`Principal`] the edge established.
//!
//! ```
//! use seams_core::auth::{Access, Principal, Role};
//!
//! let ann = Principal::person("0b8f…", Role::Customer);
//! assert!(Access::People(&[Role::Customer, Role::Staff]).admits(&ann));
//! assert!(!Access::People(&[Role::Staff]).admits(&ann));
//! assert!(ann.is_customer("0b8f…"));
//! ```

use std::fmt;

/// What a person may do, as their token says.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Role {
    /// A registered customer: their own records only.
    Customer,
    /// Shop staff: the catalog and stock, and any invoice.
    Staff,
    /// Operators: the framework's views (`/_seams/*`) and `/metrics`.
    Operator,
}

impl Role {
    /// Every role, in order of privilege.
    pub const ALL: [Role; 3] = [Role::Customer, Role::Staff, Role::Operator];

    /// The claim value (`customer`, `staff`, `operator`).
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Customer => "customer",
            Role::Staff => "staff",
            Role::Operator => "operator",
        }
    }

    /// The role a claim value names, if any.
    pub fn parse(s: &str) -> Option<Role> {
        Role::ALL.into_iter().find(|r| r.as_str() == s)
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The authenticated caller of one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Principal {
    /// No credentials were presented.
    Anonymous,
    /// A person with a verified access token.
    Person {
        /// The token's `sub`: a customer id for customers, a name otherwise.
        subject: String,
        /// The token's `role`.
        role: Role,
        /// The token's `iss`, so subjects of two issuers never meet.
        issuer: String,
    },
    /// Another service of this system, with a verified service token.
    Service {
        /// The service's name (its capabilities joined, or `gateway`).
        name: String,
        /// The capabilities the service runs: what it may call and read as.
        capabilities: Vec<String>,
    },
}

impl Principal {
    /// A person of `role` (issuer left empty: for tests and examples).
    pub fn person(subject: impl Into<String>, role: Role) -> Principal {
        Principal::Person {
            subject: subject.into(),
            role,
            issuer: String::new(),
        }
    }

    /// The person's role, if this is a person.
    pub fn role(&self) -> Option<Role> {
        match self {
            Principal::Person { role, .. } => Some(*role),
            _ => None,
        }
    }

    /// Whether this is the customer `customer_id` (their own records).
    pub fn is_customer(&self, customer_id: &str) -> bool {
        matches!(self, Principal::Person { subject, role: Role::Customer, .. } if subject == customer_id)
    }

    /// Whether this is a person of `role`.
    pub fn has_role(&self, role: Role) -> bool {
        self.role() == Some(role)
    }

    /// Whether this service runs `capability`.
    pub fn runs(&self, capability: &str) -> bool {
        matches!(self, Principal::Service { capabilities, .. } if capabilities.iter().any(|c| c == capability))
    }

    /// A stable key naming this caller, for scoping what callers own (for
    /// example idempotency records): two callers never share one.
    pub fn scope_key(&self) -> String {
        match self {
            Principal::Anonymous => "anonymous".to_owned(),
            Principal::Person {
                subject,
                role,
                issuer,
            } => format!("{role}:{issuer}:{subject}"),
            Principal::Service { name, .. } => format!("service:{name}"),
        }
    }
}

/// Who may use a public route: declared with every route, enforced by the
/// HTTP edge before the handler runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Anyone, with or without a token: health, documents, public keys,
    /// sign-up and sign-in.
    Open,
    /// People holding one of these roles. No token is answered 401, another
    /// role 403. Ownership of the resource is the handler's to check.
    People(&'static [Role]),
    /// Other services of this system only (a service token); which service
    /// may use which operation or feed is decided from the contracts.
    Services,
}

impl Access {
    /// Operators only.
    pub const OPERATORS: Access = Access::People(&[Role::Operator]);

    /// Whether `principal` may use a route declared with this access.
    pub fn admits(&self, principal: &Principal) -> bool {
        match (self, principal) {
            (Access::Open, _) => true,
            (Access::People(roles), Principal::Person { role, .. }) => roles.contains(role),
            (Access::Services, Principal::Service { .. }) => true,
            _ => false,
        }
    }

    /// Whether the route needs credentials at all.
    pub fn is_open(&self) -> bool {
        matches!(self, Access::Open)
    }
}

impl fmt::Display for Access {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Access::Open => f.write_str("open"),
            Access::People(roles) => {
                let names: Vec<&str> = roles.iter().map(|r| r.as_str()).collect();
                write!(f, "{}", names.join(", "))
            }
            Access::Services => f.write_str("services"),
        }
    }
}

#[cfg(test)]
mod tests;
