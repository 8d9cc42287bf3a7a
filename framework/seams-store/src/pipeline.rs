//! Applying a feed's events back to back without giving up their order.
//!
//! A consumer applies each event in one transaction ([`Db::begin_consume`])
//! whose `commit` returns once it is durable. A relay that waited for that
//! before starting the next event would pay one fsync per event, and fall
//! behind a producer whose commands share their fsyncs (group commit). So
//! the relay starts event *n+1* as soon as event *n*'s transaction has
//! written everything and released its savepoint, while *n* still waits for
//! its group to commit: both then usually share one commit.
//!
//! Order still holds because the writer is one connection: *n+1*'s
//! statements come after *n*'s. What is left is failure: if *n*'s group does
//! not commit (a lost PostgreSQL connection, a failed fsync), *n+1* must not
//! commit either, or it would be applied before *n* is retried. *n+1*'s
//! transaction therefore checks, when it commits, that *n*'s group is either
//! its own (they share the outcome) or already committed, and rolls back
//! otherwise.
//!
//! For the events of a batch to share a commit, the relay also says when
//! to commit: a pipelined transaction does not ask the committer itself,
//! which would otherwise take the writer between every two events; the
//! relay calls [`Db::request_commit`] before it waits for any of them (and
//! every other writer's commit takes the group along anyway).
//!
//! The order is a value in the signatures: the relay gives each event a
//! [`Turn`] naming the transaction it follows, the turn goes to
//! [`Db::begin_consume`] and stays with the transaction, and the
//! transaction tells the relay through the turn's [`Released`] when it has
//! written everything (the [`Applied`] the next turn follows). Handlers
//! pass the turn on without looking at it: their `commit` still returns
//! only once they are durable, so what they do after it (waking a
//! dispatcher) still happens after the commit.
//!
//! [`Db::begin_consume`]: crate::Db::begin_consume
//! [`Db::request_commit`]: crate::Db::request_commit

use std::sync::{Arc, Mutex, PoisonError};

use tokio::sync::oneshot;

use crate::writer::Group;

/// The group commit an event's transaction joined: what the next event's
/// transaction must not overtake.
#[derive(Clone)]
pub struct Applied {
    group: Arc<Group>,
}

impl std::fmt::Debug for Applied {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Applied").finish_non_exhaustive()
    }
}

/// An event's place in its relay's order: the transaction it must follow,
/// and who waits to hear that its own has released. Cloning shares the
/// place (the first transaction begun with it takes it); once every clone
/// is gone without a transaction having released, the relay's
/// [`Released`] says so.
#[derive(Clone)]
pub struct Turn {
    /// The previous event's transaction, if it is still in flight.
    after: Option<Applied>,
    /// Told once this event's transaction has released its savepoint;
    /// `None` for a transaction that commits on its own.
    released: Option<Arc<Mutex<Option<oneshot::Sender<Applied>>>>>,
}

impl std::fmt::Debug for Turn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Turn")
            .field("follows", &self.after.is_some())
            .field("pipelined", &self.pipelined())
            .finish()
    }
}

/// What the relay waits on: the [`Applied`] of an event's transaction once
/// it has released, or nothing if the event ended without one (it was
/// applied before, or failed first).
#[derive(Debug)]
pub struct Released(oneshot::Receiver<Applied>);

impl Released {
    /// The released transaction's group, or `None` when there was none.
    pub async fn wait(&mut self) -> Option<Applied> {
        (&mut self.0).await.ok()
    }
}

impl Turn {
    /// Not pipelined: nothing to follow, and the transaction asks for its
    /// own commit (a retry, a test driving one event).
    pub fn alone() -> Turn {
        Turn {
            after: None,
            released: None,
        }
    }

    /// The turn after `after` in a relay's pipeline. The relay must call
    /// [`crate::Db::request_commit`] before it waits for the event's
    /// handler to finish: a pipelined transaction leaves that to it.
    pub fn after(after: Option<Applied>) -> (Turn, Released) {
        let (tx, rx) = oneshot::channel();
        let turn = Turn {
            after,
            released: Some(Arc::new(Mutex::new(Some(tx)))),
        };
        (turn, Released(rx))
    }

    /// Whether the transaction this one must follow failed to commit.
    /// Called with the writer held: a group other than `current` has then
    /// finished its `COMMIT`, and its outcome is known.
    pub(crate) fn predecessor_failed(&self, current: &Arc<Group>) -> bool {
        match &self.after {
            None => false,
            Some(a) if Arc::ptr_eq(&a.group, current) => false,
            Some(a) => !matches!(*a.group.done.borrow(), Some(Ok(()))),
        }
    }

    /// Whether the relay asks for this transaction's commit.
    pub(crate) fn pipelined(&self) -> bool {
        self.released.is_some()
    }

    /// Tells the relay that this event's transaction has released into `group`.
    pub(crate) fn released(&self, group: &Arc<Group>) {
        let sender = self
            .released
            .as_ref()
            .and_then(|r| r.lock().unwrap_or_else(PoisonError::into_inner).take());
        if let Some(sender) = sender {
            let _ = sender.send(Applied {
                group: group.clone(),
            });
        }
    }
}
