//! The in-process transport: the monolith's way of calling another
//! capability's operation.
//!
//! It looks up the served operation and calls its handler with the JSON
//! request, so the request and the reply cross the same serialization
//! boundary they would cross over HTTP: a contract type that does not
//! round-trip fails in the monolith, not first in production after a split.

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
}

impl InProcess {
    /// An empty registry.
    pub fn new() -> InProcess {
        InProcess::default()
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

/// Calls `handler` with `req`, or says nobody serves it here.
fn call_with(
    handler: Option<OpHandler>,
    req: CallRequest,
) -> BoxFuture<'static, Result<CallReply, CallError>> {
    Box::pin(async move {
        match handler {
            Some(h) => h(req.body, req.ctx).await,
            None => Err(CallError::Unavailable {
                op: req.op.id(),
                reason: "not served by any capability in this process".into(),
            }),
        }
    })
}

impl Transport for InProcess {
    fn call(&self, req: CallRequest) -> BoxFuture<'_, Result<CallReply, CallError>> {
        call_with(self.find(req.op), req)
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
            return call_with(Some(handler), req);
        }
        match self.remote.get(req.op.capability) {
            Some(remote) => remote.call(req),
            None => call_with(None, req),
        }
    }
}
