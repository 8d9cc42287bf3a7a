//! The one door every synchronous call goes through.
//!
//! A contract crate declares, for each request type of an operation, which
//! operation it asks and what answers or refuses it ([`Ask`]); a caller
//! asks through a [`Client`] and gets back either the answer or the
//! contract's own error enum, the serving side takes its types from the same
//! declaration, and no capability writes a client by hand. Between processes the
//! request and the answer are JSON. In the monolith the in-process transport
//! may hand the typed values across as they are ([`Payload::Value`]): the
//! four serde steps of a call were most of its cost. Whether it does, or
//! sends every call through JSON as the network would (so that a contract
//! type that does not round-trip fails in the monolith first), is the
//! in-process transport's setting; tests and chaos mode check the wire. The
//! client code is the same in every case, and so are timeouts and retries.

use std::any::Any;
use std::borrow::Cow;
use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use serde::{Serialize, de::DeserializeOwned};

use crate::context::CallContext;
use crate::decl::Operation;

/// A boxed, sendable future; what object-safe async traits return.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// A request or an answer on its way through a transport.
pub enum Payload {
    /// JSON, as it crosses the network.
    Json(Vec<u8>),
    /// The typed value itself, handed across in process.
    Value(Box<dyn WireValue>),
}

/// A value a [`Payload`] carries in process: any contract type. It can still
/// become JSON, when it leaves the process or when the wire is checked.
pub trait WireValue: Any + Send + Sync {
    /// The value as JSON.
    fn to_json(&self) -> serde_json::Result<Vec<u8>>;
    /// A copy, for a retry.
    fn clone_value(&self) -> Box<dyn WireValue>;
    /// The value, for a downcast to its type.
    fn into_any(self: Box<Self>) -> Box<dyn Any + Send>;
    /// Its type's name, for `Debug`.
    fn type_name(&self) -> &'static str;
}

impl<T: Serialize + Clone + Send + Sync + 'static> WireValue for T {
    fn to_json(&self) -> serde_json::Result<Vec<u8>> {
        serde_json::to_vec(self)
    }

    fn clone_value(&self) -> Box<dyn WireValue> {
        Box::new(self.clone())
    }

    fn into_any(self: Box<Self>) -> Box<dyn Any + Send> {
        self
    }

    fn type_name(&self) -> &'static str {
        std::any::type_name::<T>()
    }
}

impl Payload {
    /// `value`, to be handed across as it is.
    pub fn value<T: Serialize + Clone + Send + Sync + 'static>(value: T) -> Payload {
        Payload::Value(Box::new(value))
    }

    /// The payload as JSON bytes.
    pub fn into_json(self) -> serde_json::Result<Vec<u8>> {
        match self {
            Payload::Json(bytes) => Ok(bytes),
            Payload::Value(value) => value.to_json(),
        }
    }

    /// What the payload is after crossing the network: JSON.
    pub fn through_json(self) -> serde_json::Result<Payload> {
        self.into_json().map(Payload::Json)
    }

    /// The payload as a `T`: the value itself if it is one, else decoded from JSON.
    pub fn decode<T: DeserializeOwned + 'static>(self) -> serde_json::Result<T> {
        match self {
            Payload::Json(bytes) => serde_json::from_slice(&bytes),
            Payload::Value(value) => {
                let any: &dyn Any = &*value;
                if any.is::<T>() {
                    let any = value.into_any();
                    Ok(*any.downcast::<T>().expect("the type was checked above"))
                } else {
                    serde_json::from_slice(&value.to_json()?)
                }
            }
        }
    }

    fn json_bytes(&self) -> Option<Cow<'_, [u8]>> {
        match self {
            Payload::Json(bytes) => Some(Cow::Borrowed(bytes)),
            Payload::Value(value) => value.to_json().ok().map(Cow::Owned),
        }
    }
}

impl Clone for Payload {
    fn clone(&self) -> Payload {
        match self {
            Payload::Json(bytes) => Payload::Json(bytes.clone()),
            Payload::Value(value) => Payload::Value(value.clone_value()),
        }
    }
}

impl std::fmt::Debug for Payload {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Payload::Json(bytes) => write!(f, "Json({})", String::from_utf8_lossy(bytes)),
            Payload::Value(value) => write!(f, "Value({})", value.type_name()),
        }
    }
}

/// Equal when the two would be the same JSON on the wire.
impl PartialEq for Payload {
    fn eq(&self, other: &Payload) -> bool {
        match (self.json_bytes(), other.json_bytes()) {
            (Some(a), Some(b)) => a == b,
            _ => false,
        }
    }
}

/// One call of a declared operation.
#[derive(Debug, Clone)]
pub struct CallRequest {
    /// What is called.
    pub op: &'static Operation,
    /// The request.
    pub body: Payload,
    /// Correlation, causation, trace and deadline.
    pub ctx: CallContext,
}

/// What the callee answered.
#[derive(Debug, Clone, PartialEq)]
pub enum CallReply {
    /// The answer.
    Ok(Payload),
    /// One of the operation's declared errors (the contract's error enum).
    Rejected(Payload),
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
    /// The callee refused the caller: no credentials, or the contracts do
    /// not name the caller as a client of the operation. A deployment or
    /// declaration error, never retried.
    #[error("{op} refused the call: {reason}")]
    Refused {
        /// The operation id.
        op: String,
        /// Why.
        reason: String,
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
pub trait ContractError:
    Serialize + DeserializeOwned + From<CallError> + Clone + Send + Sync + 'static
{
    /// The transport failure this error wraps, if it is one.
    fn call_error(&self) -> Option<&CallError>;
}

/// Carries a [`CallRequest`] to whoever serves the operation.
pub trait Transport: Send + Sync + 'static {
    /// Performs one call (with whatever timeouts and retries this transport applies).
    fn call(&self, req: CallRequest) -> BoxFuture<'_, Result<CallReply, CallError>>;
}

/// The request type of a declared operation: which operation it asks, the
/// answer and the contract's error. Declared once, beside the operation, in
/// the contract crate; [`Client::ask`] and the serving side (`Served::answering`
/// in seams-runtime) both take their types from it, so caller and server
/// cannot disagree on them.
///
/// ```
/// # use seams_core::decl::*;
/// # use seams_core::{Ask, CallError, ContractError};
/// # use serde::{Deserialize, Serialize};
/// # fn schema() -> serde_json::Value { serde_json::json!({}) }
/// # static STATUS: Operation = Operation::new("clock", "status", "The clock's status.", schema, schema,
/// #     OperationAnswers::query("clock-unavailable"));
/// # #[derive(Debug, Clone, Serialize, Deserialize)] pub struct StatusError;
/// # impl From<CallError> for StatusError { fn from(_: CallError) -> StatusError { StatusError } }
/// # impl ContractError for StatusError { fn call_error(&self) -> Option<&CallError> { None } }
/// #[derive(Clone, Serialize, Deserialize)]
/// pub struct Status { pub verbose: bool }
///
/// impl Ask for Status {
///     const OPERATION: &'static Operation = &STATUS;
///     type Answer = String;
///     type Error = StatusError;
/// }
/// ```
pub trait Ask: Serialize + DeserializeOwned + Clone + Send + Sync + 'static {
    /// The operation this request asks.
    const OPERATION: &'static Operation;
    /// What answers it.
    type Answer: Serialize + DeserializeOwned + Clone + Send + Sync + 'static;
    /// The contract's error, which refuses it.
    type Error: ContractError;
}

/// A capability's calls to other capabilities, typed by their declarations
/// ([`Ask`]); cheap to clone. Built over the transport the capability was
/// given, which refuses any operation the capability did not declare it calls.
#[derive(Clone)]
pub struct Client {
    transport: std::sync::Arc<dyn Transport>,
}

impl Client {
    /// Calls go through `transport`.
    pub fn new(transport: std::sync::Arc<dyn Transport>) -> Client {
        Client { transport }
    }

    /// Asks `request`'s operation, with `ctx`'s deadline, trace and
    /// correlation: the answer, or the contract's error (a transport failure
    /// included, as the contract maps it).
    pub async fn ask<R: Ask>(&self, request: R, ctx: &CallContext) -> Result<R::Answer, R::Error> {
        call(self.transport.as_ref(), R::OPERATION, request, ctx).await
    }
}

/// Calls `op` with a typed request and decodes the typed answer or declared error.
pub async fn call<Req, Resp, E>(
    transport: &dyn Transport,
    op: &'static Operation,
    req: Req,
    ctx: &CallContext,
) -> Result<Resp, E>
where
    Req: Serialize + Clone + Send + Sync + 'static,
    Resp: DeserializeOwned + 'static,
    E: ContractError,
{
    let protocol = |e: serde_json::Error| CallError::Protocol {
        op: op.id(),
        reason: e.to_string(),
    };
    let reply = transport
        .call(CallRequest {
            op,
            body: Payload::value(req),
            ctx: ctx.clone(),
        })
        .await?;
    match reply {
        CallReply::Ok(answer) => Ok(answer.decode().map_err(protocol)?),
        CallReply::Rejected(error) => Err(error.decode::<E>().map_err(protocol)?),
    }
}

/// A handler's typed result as a [`CallReply`] (the serving side of
/// [`call`]); a wrapped transport failure is passed on as itself.
pub fn reply<R, E>(result: Result<R, E>) -> Result<CallReply, CallError>
where
    R: Serialize + Clone + Send + Sync + 'static,
    E: ContractError,
{
    match result {
        Ok(answer) => Ok(CallReply::Ok(Payload::value(answer))),
        Err(e) => match e.call_error() {
            Some(call) => Err(call.clone()),
            None => Ok(CallReply::Rejected(Payload::value(e))),
        },
    }
}

#[cfg(test)]
mod tests;
