//! What identity promises: who a customer is (asked synchronously, for
//! example by billing checking that an invoice's customer exists),
//! `customer-registered` events, from which others keep their own copies (the
//! notification capability's contact list) instead of asking at send time,
//! and access tokens: a customer signs in with their email and password and
//! gets a short-lived token every capability verifies with identity's
//! public keys, without asking identity.
//!
//! Identity owns customers, their email addresses and credentials.

use std::time::Duration;

use seams_core::decl::*;
use seams_core::{CallError, Event};
use seams_schema::schema_of;
use serde::{Deserialize, Serialize};

/// A customer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Customer {
    /// Customer id (UUID).
    pub id: String,
    /// Email address, unique among customers.
    pub email: String,
    /// Display name.
    pub name: String,
}

/// `POST /identity/customers` body.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({
    "email": "ann@example.com",
    "name": "Ann",
    "password": "correct horse battery staple"
}))]
pub struct RegisterCustomer {
    /// Email address.
    pub email: String,
    /// Display name, 1-200 characters, not blank, without control,
    /// invisible or direction-override characters.
    #[schema(min_length = 1, max_length = 200)]
    pub name: String,
    /// Password, 8-128 characters, none a control character; stored only
    /// as an Argon2id hash, never logged or returned.
    #[schema(min_length = 8, max_length = 128)]
    pub password: String,
}

impl std::fmt::Debug for RegisterCustomer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RegisterCustomer")
            .field("email", &self.email)
            .field("name", &self.name)
            .field("password", &"***")
            .finish()
    }
}

/// `POST /identity/sessions` body: sign in (the example signs in the
/// customer of `RegisterCustomer`'s).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({
    "email": "ann@example.com",
    "password": "correct horse battery staple"
}))]
pub struct CreateSession {
    /// The customer's email address.
    pub email: String,
    /// Their password.
    pub password: String,
}

impl std::fmt::Debug for CreateSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CreateSession")
            .field("email", &self.email)
            .field("password", &"***")
            .finish()
    }
}

/// `POST /identity/sessions` answer: an access token (RFC 6750 bearer).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Session {
    /// The token: `Authorization: Bearer <access_token>`.
    pub access_token: String,
    /// Always `Bearer`.
    pub token_type: String,
    /// Seconds until it expires.
    pub expires_in: u64,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("access_token", &"***")
            .field("token_type", &self.token_type)
            .field("expires_in", &self.expires_in)
            .finish()
    }
}

/// Public command: sign in, getting a short-lived access token.
pub static CREATE_SESSION: Operation = Operation::new(
    "identity",
    "create-session",
    "Sign in with email and password for an access token (POST /identity/sessions).",
    schema_of::<CreateSession>,
    schema_of::<Session>,
    OperationAnswers {
        kind: Kind::Command,
        timeout: Duration::from_secs(5),
        retries: Retries::Nobody,
        idempotency: Idempotency::NotIdempotent {
            reason: "every sign-in issues a new token; a repeat only issues another, and attempts are rate limited",
        },
        ordering: Ordering::Unordered,
        when_down: WhenDown::FailFast {
            problem: "identity-unavailable",
            retry_after: Duration::from_secs(2),
        },
        versioning: Versioning::FIRST,
    },
);

/// Public command: register a customer (the email is the natural key).
pub static REGISTER_CUSTOMER: Operation = Operation::new(
    "identity",
    "register-customer",
    "Register a customer (POST /identity/customers).",
    schema_of::<RegisterCustomer>,
    schema_of::<Customer>,
    OperationAnswers {
        kind: Kind::Command,
        timeout: Duration::from_secs(5),
        retries: Retries::Caller(RetryPolicy::STANDARD),
        idempotency: Idempotency::NaturalKey { field: "email" },
        ordering: Ordering::Unordered,
        when_down: WhenDown::FailFast {
            problem: "identity-unavailable",
            retry_after: Duration::from_secs(2),
        },
        versioning: Versioning::FIRST,
    },
);

/// `PATCH /identity/customers/{id}` body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ChangeEmail {
    /// The new address.
    pub email: String,
}

/// Public command: change a customer's email (sets state: a repeat changes nothing).
pub static CHANGE_EMAIL: Operation = Operation::new(
    "identity",
    "change-email",
    "Change a customer's email address (PATCH /identity/customers/{id}).",
    schema_of::<ChangeEmail>,
    schema_of::<Customer>,
    OperationAnswers {
        kind: Kind::Command,
        timeout: Duration::from_secs(5),
        retries: Retries::Caller(RetryPolicy::STANDARD),
        idempotency: Idempotency::SetsState,
        ordering: Ordering::PerKey {
            field: "customer_id",
        },
        when_down: WhenDown::FailFast {
            problem: "identity-unavailable",
            retry_after: Duration::from_secs(2),
        },
        versioning: Versioning::FIRST,
    },
);

/// What identity's queries answer unless they say otherwise.
const QUERIES: OperationAnswers = OperationAnswers::query("identity-unavailable");

/// Public query: a customer's own record.
pub static SHOW_CUSTOMER: Operation = Operation::new(
    "identity",
    "show-customer",
    "A customer's own record, for that customer (GET /identity/customers/{id}).",
    no_body,
    schema_of::<Customer>,
    QUERIES,
);

/// The schema of a JWK set (RFC 7517 §5): an object whose `keys` is an
/// array of keys. The keys' own members are the RFC's, written by the
/// signing library rather than by a contract type.
fn jwk_set() -> serde_json::Value {
    serde_json::json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "type": "object",
        "required": ["keys"],
        "properties": { "keys": { "type": "array", "items": { "type": "object" } } }
    })
}

/// Public query: the keys tokens are verified with.
pub static GET_JWKS: Operation = Operation::new(
    "identity",
    "get-jwks",
    "The deployment's public signing keys as a JWK set (GET /identity/.well-known/jwks.json).",
    no_body,
    jwk_set,
    QUERIES,
);

/// `get-customer` request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct GetCustomer {
    /// Customer id.
    pub id: String,
}

/// Why identity could not answer `get-customer`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[serde(tag = "error", rename_all = "kebab-case")]
pub enum GetCustomerError {
    /// No such customer (not retryable).
    #[error("no customer {id}")]
    NotFound {
        /// The id asked for.
        id: String,
    },
    /// Identity did not answer (declared: fail fast, 503 with Retry-After).
    #[error(transparent)]
    #[serde(skip)]
    Call(#[from] CallError),
}

impl seams_core::ContractError for GetCustomerError {
    fn call_error(&self) -> Option<&CallError> {
        match self {
            GetCustomerError::Call(e) => Some(e),
            _ => None,
        }
    }
}

/// Query: one customer by id.
pub static GET_CUSTOMER: Operation = Operation::new(
    "identity",
    "get-customer",
    "A customer by id.",
    schema_of::<GetCustomer>,
    schema_of::<Customer>,
    QUERIES,
);

impl seams_core::Ask for GetCustomer {
    const OPERATION: &'static Operation = &GET_CUSTOMER;
    type Answer = Customer;
    type Error = GetCustomerError;
}

/// What every customer event answers: redelivered by the bus, deduplicated
/// by each consumer's inbox, applied in order per customer, queued in the
/// outbox while a consumer is down, version 1.
const CUSTOMER_EVENTS: EventAnswers = EventAnswers::per_key("identity", "customer_id");

/// Declaration of [`CustomerRegistered`].
pub static CUSTOMER_REGISTERED: EventContract = EventContract::new(
    "identity.customer-registered",
    "A customer registered.",
    schema_of::<CustomerRegistered>,
    CUSTOMER_EVENTS,
);

/// A customer registered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CustomerRegistered {
    /// Customer id.
    pub customer_id: String,
    /// Email address.
    pub email: String,
    /// Display name.
    pub name: String,
}

impl Event for CustomerRegistered {
    const CONTRACT: &'static EventContract = &CUSTOMER_REGISTERED;
}

/// Declaration of [`CustomerEmailChanged`].
pub static CUSTOMER_EMAIL_CHANGED: EventContract = EventContract::new(
    "identity.customer-email-changed",
    "A customer changed their email address.",
    schema_of::<CustomerEmailChanged>,
    CUSTOMER_EVENTS,
);

/// A customer changed their email address.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CustomerEmailChanged {
    /// Customer id.
    pub customer_id: String,
    /// The new address (normalized).
    pub email: String,
}

impl Event for CustomerEmailChanged {
    const CONTRACT: &'static EventContract = &CUSTOMER_EMAIL_CHANGED;
}

/// Every operation identity declares.
pub static OPERATIONS: &[&Operation] = &[
    &REGISTER_CUSTOMER,
    &CHANGE_EMAIL,
    &CREATE_SESSION,
    &SHOW_CUSTOMER,
    &GET_JWKS,
    &GET_CUSTOMER,
];
/// Every event identity publishes.
pub static EVENTS: &[&EventContract] = &[&CUSTOMER_REGISTERED, &CUSTOMER_EMAIL_CHANGED];
