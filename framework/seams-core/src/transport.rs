//! The one door every synchronous call goes through.
//!
//! A contract crate's client serializes its request, hands it to a
//! [`Transport`], and decodes either the answer or the contract's own error
//! enum. In the monolith the transport is in-process (still JSON, still with
//! the declared timeout and retries, so a contract that would break over the
//! network breaks in the monolith first); split, it is HTTP. The client code
//! is the same in both.

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use serde::{Serialize, de::DeserializeOwned};

use crate::context::CallContext;
use crate::decl::Operation;

/// A boxed, sendable future; what object-safe async traits return.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// One call of a declared operation.
#[derive(Debug, Clone)]
pub struct CallRequest {
    /// What is called.
    pub op: &'static Operation,
    /// The request, as JSON.
    pub body: Vec<u8>,
    /// Correlation, causation, trace and deadline.
    pub ctx: CallContext,
}

/// What the callee answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CallReply {
    /// The answer, as JSON.
    Ok(Vec<u8>),
    /// One of the operation's declared errors, as JSON of the contract's error enum.
    Rejected(Vec<u8>),
}

/// A call that got no declared answer: the other side is down, slow or broken.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CallError {
    /// No answer could be had (nothing serves it, connection refused, breaker open).
    #[error("{op} is unavailable: {reason}")]
    Unavailable {
        /// The operation id.
        op: String,
        /// Why.
        reason: String,
    },
    /// The deadline passed.
    #[error("{op} timed out after {after:?}")]
    Timeout {
        /// The operation id.
        op: String,
        /// How long was waited.
        after: Duration,
    },
    /// The callee failed in a way the contract does not declare.
    #[error("{op} failed inside the callee")]
    Internal {
        /// The operation id.
        op: String,
    },
    /// Request or reply did not match the contract's types.
    #[error("{op}: reply does not match the contract: {reason}")]
    Protocol {
        /// The operation id.
        op: String,
        /// The decoding error.
        reason: String,
    },
}

impl CallError {
    /// Whether trying again may help (for operations whose contract allows retries).
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            CallError::Unavailable { .. } | CallError::Timeout { .. }
        )
    }
}

/// An operation's declared error enum: serializable for the wire, and able to
/// carry a transport failure (which never crosses the wire as itself).
pub trait ContractError: Serialize + DeserializeOwned + From<CallError> {
    /// The transport failure this error wraps, if it is one.
    fn call_error(&self) -> Option<&CallError>;
}

/// Carries a [`CallRequest`] to whoever serves the operation.
pub trait Transport: Send + Sync + 'static {
    /// Performs one call (with whatever timeouts and retries this transport applies).
    fn call(&self, req: CallRequest) -> BoxFuture<'_, Result<CallReply, CallError>>;
}

/// Calls `op` with a typed request and decodes the typed answer or declared error.
pub async fn call<Req, Resp, E>(
    transport: &dyn Transport,
    op: &'static Operation,
    req: &Req,
    ctx: &CallContext,
) -> Result<Resp, E>
where
    Req: Serialize,
    Resp: DeserializeOwned,
    E: ContractError,
{
    let protocol = |e: serde_json::Error| CallError::Protocol {
        op: op.id(),
        reason: e.to_string(),
    };
    let body = serde_json::to_vec(req).map_err(protocol)?;
    let reply = transport
        .call(CallRequest {
            op,
            body,
            ctx: ctx.clone(),
        })
        .await?;
    match reply {
        CallReply::Ok(bytes) => Ok(serde_json::from_slice(&bytes).map_err(protocol)?),
        CallReply::Rejected(bytes) => Err(serde_json::from_slice::<E>(&bytes).map_err(protocol)?),
    }
}

/// Encodes a handler's typed result as a [`CallReply`] (the serving side of
/// [`call`]); a wrapped transport failure is passed on as itself.
pub fn reply<R: Serialize, E: ContractError>(
    result: &Result<R, E>,
) -> Result<CallReply, CallError> {
    let encoded = match result {
        Ok(r) => serde_json::to_vec(r).map(CallReply::Ok),
        Err(e) => match e.call_error() {
            Some(call) => return Err(call.clone()),
            None => serde_json::to_vec(e).map(CallReply::Rejected),
        },
    };
    encoded.map_err(|e| CallError::Protocol {
        op: String::new(),
        reason: e.to_string(),
    })
}
