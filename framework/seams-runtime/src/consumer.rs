//! The transaction a consumer applies one event in, opened, deduplicated
//! and committed by the framework, so that a capability writes only its
//! effect.
//!
//! Exactly-once effects rest on one rule: the event's id goes into the
//! consumer's `seams_inbox` in the same transaction as the effect. A
//! capability that opened that transaction itself could name its inbox
//! anything (a typo opened a second deduplication namespace), forget to
//! roll back on an error, or commit half of what it meant to. Here the
//! inbox is the subscription's own ([`Inbox`], named
//! `<consumer><-<producer>`), [`Handles::new`](crate::Handles::new) opens
//! the transaction with the inbox row already in it and skips an event
//! applied before, the handler writes into [`Applying`], and what the
//! handler returns decides: `Ok` commits (effect, inbox row and published
//! events together), an error rolls everything back and is classified for
//! the relay (transient: redelivered with backoff; permanent: dead-lettered
//! at once).
//!
//! How long the inbox remembers, which is the horizon of that guarantee:
//! an inbox row is kept for the retention's `inbox` duration (2 hours by
//! default), and an event can come again only while its producer still
//! has its outbox row (`outbox`, 1 hour by default after every subscriber
//! read it; a rewound subscription reads from there) plus while a bus still
//! retries it (the longest declared bus retry horizon).
//! [`Retention::check`](crate::Retention::check) refuses an `inbox` shorter
//! than the sum, so within the configuration `shop` accepts, the inbox
//! alone makes every redelivery a no-op: a capability needs no guard table
//! of its own for that.

use std::sync::Arc;

use seams_core::{BoxFuture, CallContext, Envelope, Event};
use seams_store::pipeline::Turn;
use seams_store::{Batch, Db, Tx};

use crate::component::HandlerError;

/// The inbox of one subscription: the consumer's database and the name
/// under which it records the events it applied, derived from the
/// subscription (`<consumer><-<producer>`), never written by hand. A relay
/// hands each event the inbox with the event's [`Turn`] in it
/// ([`Inbox::in_turn`]), which orders its transaction after the previous
/// event's ([`seams_store::pipeline`]).
#[derive(Clone, Debug)]
pub struct Inbox {
    db: Db,
    name: Arc<str>,
    turn: Turn,
}

impl Inbox {
    /// The inbox of subscription `name` in `db`.
    pub fn new(db: Db, name: &str) -> Inbox {
        Inbox {
            db,
            name: Arc::from(name),
            turn: Turn::alone(),
        }
    }

    /// This inbox for one event whose transaction commits in `turn`.
    pub fn in_turn(&self, turn: Turn) -> Inbox {
        Inbox {
            turn,
            ..self.clone()
        }
    }

    /// The subscription's name, under which its inbox rows are kept.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The consumer's database.
    pub fn db(&self) -> &Db {
        &self.db
    }

    /// Applies `env` with `apply`, as [`Handles::new`](crate::Handles::new)
    /// does: opens the transaction with the inbox row, skips an event
    /// applied before, commits on `Ok`, rolls back on an error. Tests use
    /// it to drive one application without a relay.
    pub async fn apply<F>(
        &self,
        env: impl Into<Arc<Envelope>>,
        apply: F,
    ) -> Result<(), HandlerError>
    where
        F: for<'a> FnOnce(&'a mut Applying) -> BoxFuture<'a, Result<(), HandlerError>>,
    {
        let env = env.into();
        let Some(tx) = self.begin(&env).await? else {
            return Ok(());
        };
        let mut applying = Applying::new(tx, env);
        match apply(&mut applying).await {
            Ok(()) => applying.commit().await,
            Err(e) => {
                applying.rollback().await;
                Err(e)
            }
        }
    }

    /// Opens the transaction applying `env`, its inbox row already in it;
    /// `None` if this subscription applied it before. For a handler that
    /// opens its own transaction ([`Handles::opening`](crate::Handles::opening));
    /// [`Handles::new`](crate::Handles::new) does it for the others.
    pub async fn begin(&self, env: &Envelope) -> Result<Option<Tx>, sqlx::Error> {
        self.db
            .begin_consume(&self.name, env, self.turn.clone())
            .await
    }
}

/// One event being applied: the transaction (inbox row included, the
/// statements sent with the commit in it), the event's envelope, and what
/// runs once it is durable.
pub struct Applying {
    tx: Tx,
    /// Shared with the relay that handed it over, not copied.
    env: Arc<Envelope>,
    after_commit: Vec<Box<dyn FnOnce() + Send>>,
}

impl Applying {
    pub(crate) fn new(tx: Tx, env: Arc<Envelope>) -> Applying {
        Applying {
            tx,
            env,
            after_commit: Vec::new(),
        }
    }

    /// The transaction, for statements whose answers the handler reads.
    pub fn tx(&mut self) -> &mut Tx {
        &mut self.tx
    }

    /// The event's envelope (id, time, correlation, trace).
    pub fn envelope(&self) -> &Envelope {
        &self.env
    }

    /// The context of what the handler does: the event's correlation,
    /// caused by the event.
    pub fn context(&self) -> CallContext {
        self.env.consumer_context()
    }

    /// Statements that need no answer, sent with the commit in one round
    /// trip ([`Tx::later`]); they bind owned values, since they outlive the
    /// handler.
    pub fn later(&mut self) -> &mut Batch<'static> {
        self.tx.later()
    }

    /// Publishes `event`, caused by the one being applied, in this
    /// transaction: wrapped in the consumer's context and appended to the
    /// outbox with the commit. Returns its envelope.
    pub fn publish<E: Event>(
        &mut self,
        event: &E,
        id: String,
        time: String,
    ) -> Result<Envelope, HandlerError> {
        let out = Envelope::wrap(event, id, time, &self.context())?;
        self.later().publish(&out);
        Ok(out)
    }

    /// Runs `f` once the transaction is durable (waking a worker that reads
    /// what it wrote, say); not at all if it rolls back.
    pub fn after_commit(&mut self, f: impl FnOnce() + Send + 'static) {
        self.after_commit.push(Box::new(f));
    }

    /// Commits the effect, the inbox row, the statements kept for later and
    /// the published events together, then runs what waited for it.
    pub(crate) async fn commit(self) -> Result<(), HandlerError> {
        let Applying {
            tx, after_commit, ..
        } = self;
        tx.commit().await?;
        for f in after_commit {
            f();
        }
        Ok(())
    }

    /// Undoes everything, inbox row included, so the event counts as not
    /// applied. A failed rollback is only logged: the writer undoes a
    /// transaction it finds unfinished before its next use.
    pub(crate) async fn rollback(self) {
        if let Err(e) = self.tx.rollback().await {
            tracing::debug!(error = %e, "rolling back a failed application");
        }
    }
}

#[cfg(test)]
mod tests;
