//! Identity's effectful shell: decide (pure, in [`crate::domain`]), then
//! store the change with its outbox row in one transaction; and sign-in:
//! check the password ([`crate::credentials`]) and mint an access token.
//!
//! Every write that publishes answers with a consistency [`Token`] naming
//! its event's outbox position, so a client can read its own write from a
//! projection that other capabilities build from identity's events.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use identity_contract::{
    ChangeEmail, CreateSession, GET_CUSTOMER, GetCustomer, GetCustomerError, RegisterCustomer,
    Session,
};
use seams_auth::Minter;
use seams_core::auth::{Principal, Role};
use seams_core::{CallContext, CallError, Clock, Envelope, Ids};
use seams_runtime::consistency::Token;

use crate::credentials::Credentials;
use crate::domain::{Customer, CustomerId, Email, EmailChange};
use crate::error::Error;
use crate::store::{Store, WriteError};

/// Everything identity's handlers need, passed explicitly.
#[derive(Clone)]
pub struct Deps {
    /// Identity's database.
    pub store: Store,
    /// Time.
    pub clock: Arc<dyn Clock>,
    /// New ids (customers' and events').
    pub ids: Arc<dyn Ids>,
    /// Password hashing and attempt limits.
    pub credentials: Credentials,
    /// Signs access tokens with the deployment's keys.
    pub minter: Minter,
    /// How long a customer's access token lives.
    pub token_ttl: Duration,
}

/// A customer as a write left it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Written {
    /// The customer after the write.
    pub customer: Customer,
    /// The position of the event the write published; `None` when the write
    /// changed nothing and so published nothing.
    pub token: Option<Token>,
}

/// The token naming identity's outbox position `position`.
fn token(position: u64) -> Token {
    Token {
        producer: crate::NAME.to_owned(),
        position,
    }
}

fn write_error(e: WriteError, customer: &Customer, doing: &'static str) -> Error {
    match e {
        WriteError::DuplicateEmail => Error::DuplicateEmail(customer.email.as_str().to_owned()),
        WriteError::Db(e) => anyhow::Error::from(e).context(doing).into(),
    }
}

/// The key a client address is limited under (one for all unknown ones).
fn address_key(client: Option<std::net::IpAddr>) -> String {
    client.map_or_else(|| "unknown".to_owned(), |ip| ip.to_string())
}

/// Registers a customer with their password (stored as an Argon2id hash)
/// and publishes `customer-registered`. Counts as an attempt from `client`.
///
/// Neither the email nor the password is recorded on the span: personal
/// data and a secret.
#[tracing::instrument(skip_all, fields(customer_id = tracing::field::Empty))]
pub async fn register_customer(
    deps: &Deps,
    ctx: &CallContext,
    client: Option<std::net::IpAddr>,
    cmd: RegisterCustomer,
) -> Result<Written, Error> {
    deps.credentials.attempt_from(&address_key(client))?;
    let (customer, event, password) =
        Customer::register(deps.ids.new_id(), &cmd.email, &cmd.name, &cmd.password)?;
    tracing::Span::current().record("customer_id", customer.id.as_str());
    let hash = deps.credentials.hash(password).await?;
    let now = deps.clock.now_rfc3339();
    let env = Envelope::wrap(&event, deps.ids.new_id().to_string(), now.clone(), ctx)
        .map_err(anyhow::Error::from)?;
    match deps.store.insert(&customer, &hash, &now, &env).await {
        Ok(position) => Ok(Written {
            customer,
            token: Some(token(position)),
        }),
        Err(e) => Err(write_error(e, &customer, "inserting customer")),
    }
}

/// Signs a customer in: an access token for the customer whose email and
/// password these are. A wrong password and an unknown address get the
/// same answer after the same work; attempts are limited per client
/// address and per email address.
#[tracing::instrument(skip_all, fields(customer_id = tracing::field::Empty))]
pub async fn create_session(
    deps: &Deps,
    client: Option<std::net::IpAddr>,
    cmd: CreateSession,
) -> Result<Session, Error> {
    deps.credentials.attempt_from(&address_key(client))?;
    let email = Email::parse(&cmd.email).ok();
    // An address that does not parse is counted as sent, so malformed
    // variants of one address cannot dodge its limit for long.
    let key = email.as_ref().map_or_else(
        || cmd.email.trim().to_lowercase(),
        |e| e.as_str().to_owned(),
    );
    deps.credentials.attempt_for(&key)?;
    let found = match &email {
        Some(e) => deps.store.credentials(e).await?,
        None => None,
    };
    let (id, stored) = match found {
        Some((id, hash)) => (Some(id), Some(hash)),
        None => (None, None),
    };
    let matches = deps.credentials.verify(cmd.password, stored).await?;
    let Some(id) = id.filter(|_| matches) else {
        return Err(Error::InvalidCredentials);
    };
    tracing::Span::current().record("customer_id", id.as_str());
    let minted = deps
        .minter
        .person(id.as_str(), Role::Customer, deps.token_ttl)?;
    Ok(Session {
        access_token: minted.token,
        token_type: "Bearer".to_owned(),
        expires_in: minted.expires_in,
    })
}

/// Changes a customer's address and publishes `customer-email-changed`, in
/// one transaction; the same address (after normalization) changes nothing
/// and publishes nothing. Only the customer may change their own; anyone
/// else finds no such customer.
///
/// An unknown id is not found before the address is looked at, so a client
/// learns nothing about addresses from a customer that does not exist.
#[tracing::instrument(skip_all, fields(customer_id = %id))]
pub async fn change_email(
    deps: &Deps,
    ctx: &CallContext,
    caller: &Principal,
    id: &str,
    cmd: ChangeEmail,
) -> Result<Written, Error> {
    let not_found = || Error::NotFound(id.to_owned());
    if !caller.is_customer(id) {
        return Err(not_found());
    }
    let customer_id = CustomerId::parse(id).map_err(|_| not_found())?;
    let mut tx = deps
        .store
        .begin()
        .await
        .context("starting the email change")?;
    let current = tx.customer(&customer_id).await?.ok_or_else(not_found)?;
    let (customer, event) = match current.change_email(&cmd.email)? {
        EmailChange::Unchanged => {
            tx.rollback().await.context("ending a no-op email change")?;
            return Ok(Written {
                customer: current,
                token: None,
            });
        }
        EmailChange::Changed(customer, event) => (customer, event),
    };
    let env = Envelope::wrap(
        &event,
        deps.ids.new_id().to_string(),
        deps.clock.now_rfc3339(),
        ctx,
    )
    .map_err(anyhow::Error::from)?;
    tx.update_email(&customer)
        .await
        .map_err(|e| write_error(e, &customer, "updating email"))?;
    let position = tx
        .publish(&env)
        .await
        .context("publishing customer-email-changed")?;
    tx.commit().await.context("committing the email change")?;
    Ok(Written {
        customer,
        token: Some(token(position)),
    })
}

/// One customer, or `None`: an id identity could not have handed out is
/// simply not found.
async fn find(deps: &Deps, id: &str) -> anyhow::Result<Option<Customer>> {
    match CustomerId::parse(id) {
        Ok(id) => deps.store.get(&id).await,
        Err(_) => Ok(None),
    }
}

/// One customer, to that customer only (to anyone else: not found).
#[tracing::instrument(skip_all, fields(customer_id = %id))]
pub async fn get_customer(deps: &Deps, caller: &Principal, id: &str) -> Result<Customer, Error> {
    if !caller.is_customer(id) {
        return Err(Error::NotFound(id.to_owned()));
    }
    find(deps, id)
        .await?
        .ok_or_else(|| Error::NotFound(id.to_owned()))
}

/// Serves `get-customer` to other capabilities.
#[tracing::instrument(skip_all, fields(customer_id = %req.id))]
pub async fn serve_get_customer(
    deps: &Deps,
    req: GetCustomer,
) -> Result<identity_contract::Customer, GetCustomerError> {
    match find(deps, &req.id).await {
        Ok(Some(customer)) => Ok(customer.into()),
        Ok(None) => Err(GetCustomerError::NotFound { id: req.id }),
        Err(e) => {
            tracing::error!(error = format!("{e:#}"), "getting customer");
            Err(GetCustomerError::Call(CallError::Internal {
                op: GET_CUSTOMER.id(),
            }))
        }
    }
}
