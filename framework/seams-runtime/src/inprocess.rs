//! The in-process transport: the monolith's way of calling another
//! capability's operation.
//!
//! It looks up the served operation and calls its handler with the JSON
//! request, so the request and the reply cross the same serialization
//! boundary they would cross over HTTP: a contract type that does not
//! round-trip fails in the monolith, not first in production after a split.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use seams_core::{BoxFuture, CallError, CallReply, CallRequest, Transport};

use crate::component::{OpHandler, Served};

/// Operations served in this process, by id; cheap to clone.
#[derive(Clone, Default)]
pub struct InProcess {
    handlers: Arc<RwLock<HashMap<String, OpHandler>>>,
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
            .insert(served.op.id(), served.handler.clone());
    }

    /// The handler of `op_id`, if it is served here.
    pub fn handler(&self, op_id: &str) -> Option<OpHandler> {
        self.handlers
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(op_id)
            .cloned()
    }

    /// Whether `op_id` is served here.
    pub fn serves(&self, op_id: &str) -> bool {
        self.handlers
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .contains_key(op_id)
    }
}

impl Transport for InProcess {
    fn call(&self, req: CallRequest) -> BoxFuture<'_, Result<CallReply, CallError>> {
        let handler = self
            .handlers
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(&req.op.id())
            .cloned();
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
        if self.local.serves(&req.op.id()) {
            return self.local.call(req);
        }
        match self.remote.get(req.op.capability) {
            Some(remote) => remote.call(req),
            None => self.local.call(req),
        }
    }
}
