//! Identity's effectful shell: decide (pure, in [`crate::domain`]), then
//! store the customer with its outbox row in one transaction.

use std::sync::Arc;

use identity_contract::{GET_CUSTOMER, GetCustomer, GetCustomerError, RegisterCustomer};
use seams_core::{CallContext, CallError, Clock, Envelope, Ids};

use crate::domain::{Customer, CustomerId};
use crate::error::Error;
use crate::store::{InsertError, Store};

/// Everything identity's handlers need, passed explicitly.
#[derive(Clone)]
pub struct Deps {
    /// Identity's database.
    pub store: Store,
    /// Time.
    pub clock: Arc<dyn Clock>,
    /// New ids (customers' and events').
    pub ids: Arc<dyn Ids>,
}

/// Registers a customer and publishes `customer-registered`.
///
/// The email is not recorded on the span: it is personal data.
#[tracing::instrument(skip_all, fields(customer_id = tracing::field::Empty))]
pub async fn register_customer(
    deps: &Deps,
    ctx: &CallContext,
    cmd: RegisterCustomer,
) -> Result<Customer, Error> {
    let (customer, event) = Customer::register(deps.ids.new_id(), &cmd.email, &cmd.name)?;
    tracing::Span::current().record("customer_id", customer.id.as_str());
    let now = deps.clock.now_rfc3339();
    let env = Envelope::wrap(&event, deps.ids.new_id().to_string(), now.clone(), ctx);
    match deps.store.insert(&customer, &now, &env).await {
        Ok(()) => Ok(customer),
        Err(InsertError::DuplicateEmail) => {
            Err(Error::DuplicateEmail(customer.email.as_str().to_owned()))
        }
        Err(InsertError::Db(e)) => Err(anyhow::Error::from(e).context("inserting customer").into()),
    }
}

/// One customer, or `None`: an id identity could not have handed out is
/// simply not found.
async fn find(deps: &Deps, id: &str) -> anyhow::Result<Option<Customer>> {
    match CustomerId::parse(id) {
        Ok(id) => deps.store.get(&id).await,
        Err(_) => Ok(None),
    }
}

/// One customer.
#[tracing::instrument(skip_all, fields(customer_id = %id))]
pub async fn get_customer(deps: &Deps, id: &str) -> Result<Customer, Error> {
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
