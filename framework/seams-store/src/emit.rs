//! Which versions of its events a capability writes to its outbox.
//!
//! By default an event is written in its contract's current version. During
//! a rollout its producer can be told to write an older one (while consumers
//! that know only that one are still running) or several at once (one
//! event whose envelope carries the others as alternates, so each consumer
//! reads the newest it accepts). The setting belongs to the database
//! because every path to the outbox goes through it ([`crate::Tx::publish`],
//! [`crate::Batch::publish`]), so no capability code changes with it.

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use seams_core::Envelope;
use seams_core::decl::EventContract;

/// Per event type: its contract and the versions to write, when they are
/// not just the current one.
#[derive(Debug, Default)]
pub(crate) struct Emit {
    by_type: HashMap<&'static str, (&'static EventContract, Vec<u32>)>,
}

impl Emit {
    /// `env` as it goes into the outbox.
    pub(crate) fn written<'a>(&self, env: &'a Envelope) -> Result<Cow<'a, Envelope>, String> {
        match self.by_type.get(env.event_type.as_str()) {
            None => Ok(Cow::Borrowed(env)),
            Some((contract, versions)) => Ok(Cow::Owned(env.written_as(contract, versions)?)),
        }
    }
}

/// The setting, shared by a database's handles and read on every publish.
#[derive(Debug, Default)]
pub(crate) struct EmitSetting(RwLock<Arc<Emit>>);

impl EmitSetting {
    pub(crate) fn get(&self) -> Arc<Emit> {
        self.0.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Writes `contract`'s events in `versions` from now on, after checking
    /// that it can ([`EventContract::can_write`]); the current version alone
    /// when `versions` is just that.
    pub(crate) fn set(
        &self,
        contract: &'static EventContract,
        versions: &[u32],
    ) -> Result<(), String> {
        if versions.is_empty() {
            return Err(format!("{}: no version to write", contract.event_type));
        }
        for &v in versions {
            contract.can_write(v)?;
        }
        let mut guard = self.0.write().unwrap_or_else(|e| e.into_inner());
        let mut next = Emit {
            by_type: guard.by_type.clone(),
        };
        if versions == [contract.versioning.current] {
            next.by_type.remove(contract.event_type);
        } else {
            let mut versions = versions.to_vec();
            versions.sort_unstable();
            versions.dedup();
            next.by_type
                .insert(contract.event_type, (contract, versions));
        }
        *guard = Arc::new(next);
        Ok(())
    }
}
