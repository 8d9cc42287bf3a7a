//! The in-process transport: the monolith's way of calling another
//! capability's operation.
//!
//! It looks up the served operation and calls its handler. How the request
//! and the reply cross depends on [`InProcess::checking_the_wire`]:
//!
//! - checking (tests, chaos mode, debug builds): both go through JSON, the
//!   boundary they would cross over HTTP, so a contract type that does not
//!   round-trip fails in the monolith, not first in production after a split;
//! - not checking (a release build's monolith): the typed values are handed
//!   across as they are. The four serde steps were most of a call's cost
//!   (BENCHMARKS.md, in-process call).
//!
//! Either way the call has the declared timeout and retries (`Governed`).

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use seams_core::decl::Operation;
use seams_core::{BoxFuture, CallError, CallReply, CallRequest, Transport};

use crate::component::{OpHandler, Served};

/// Operations served in this process, by (capability, name); cheap to clone.
///
/// Keyed by the declaration's two static strings rather than the formatted
/// `capability.name` id, so a call allocates nothing to find its handler.
#[derive(Clone, Default)]
pub struct InProcess {
    handlers: Arc<RwLock<HashMap<(&'static str, &'static str), OpHandler>>>,
    /// Send every request and reply through JSON.
    wire: bool,
}

impl InProcess {
    /// An empty registry that hands typed values across.
    pub fn new() -> InProcess {
        InProcess::default()
    }

    /// An empty registry that sends every request and reply through JSON,
    /// as the network would.
    pub fn checking_the_wire() -> InProcess {
        InProcess {
            wire: true,
            ..InProcess::default()
        }
    }

    /// Whether calls go through JSON.
    pub fn checks_the_wire(&self) -> bool {
        self.wire
    }

    /// Makes `served` callable.
    pub fn register(&self, served: &Served) {
        self.handlers
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(
                (served.op.capability, served.op.name),
                served.handler.clone(),
            );
    }

    /// The handler of `op_id` (`capability.name`, as on the wire), if it is served here.
    pub fn handler(&self, op_id: &str) -> Option<OpHandler> {
        let (capability, name) = op_id.split_once('.')?;
        let handlers = self.handlers.read().unwrap_or_else(|e| e.into_inner());
        // Covariance: the map's `&'static str` keys are looked up as `&str`.
        let handlers: &HashMap<(&str, &str), OpHandler> = &handlers;
        handlers.get(&(capability, name)).cloned()
    }

    /// The handler of `op`, if it is served here.
    pub fn find(&self, op: &Operation) -> Option<OpHandler> {
        self.handlers
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(&(op.capability, op.name))
            .cloned()
    }
}

/// Calls `handler` with `req` (through JSON both ways if `wire`), or says
/// nobody serves it here.
fn call_with(
    handler: Option<OpHandler>,
    req: CallRequest,
    wire: bool,
) -> BoxFuture<'static, Result<CallReply, CallError>> {
    Box::pin(async move {
        let Some(handler) = handler else {
            return Err(CallError::Unavailable {
                op: req.op.id(),
                reason: "not served by any capability in this process".into(),
            });
        };
        if !wire {
            return handler(req.body, req.ctx).await;
        }
        let protocol = |e: serde_json::Error| CallError::Protocol {
            op: req.op.id(),
            reason: e.to_string(),
        };
        let body = req.body.through_json().map_err(protocol)?;
        match handler(body, req.ctx).await? {
            CallReply::Ok(answer) => Ok(CallReply::Ok(answer.through_json().map_err(protocol)?)),
            CallReply::Rejected(error) => {
                Ok(CallReply::Rejected(error.through_json().map_err(protocol)?))
            }
        }
    })
}

impl Transport for InProcess {
    fn call(&self, req: CallRequest) -> BoxFuture<'_, Result<CallReply, CallError>> {
        call_with(self.find(req.op), req, self.wire)
    }
}

/// Routes each call to where its operation is served: this process, or the
/// service of its capability (split). The composition root decides which,
/// from configuration; callers never know.
#[derive(Clone)]
pub struct Routed {
    local: InProcess,
    remote: std::collections::BTreeMap<String, Arc<dyn Transport>>,
}

impl Routed {
    /// Local operations through `local`; operations of the capabilities in `remote` through theirs.
    pub fn new(
        local: InProcess,
        remote: std::collections::BTreeMap<String, Arc<dyn Transport>>,
    ) -> Routed {
        Routed { local, remote }
    }
}

impl Transport for Routed {
    fn call(&self, req: CallRequest) -> BoxFuture<'_, Result<CallReply, CallError>> {
        if let Some(handler) = self.local.find(req.op) {
            return call_with(Some(handler), req, self.local.wire);
        }
        match self.remote.get(req.op.capability) {
            Some(remote) => remote.call(req),
            None => call_with(None, req, self.local.wire),
        }
    }
}

#[cfg(test)]
mod tests;
