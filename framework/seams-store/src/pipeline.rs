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
//! The relay says which transaction came before through a task-local set
//! around the handler ([`pipelined`]); the store tells the relay when an
//! event's transaction has released ([`Applied`]). Handlers see none of it:
//! their `commit` still returns only once they are durable, so what they do
//! after it (waking a dispatcher) still happens after the commit.
//!
//! [`Db::begin_consume`]: crate::Db::begin_consume
//! [`Db::request_commit`]: crate::Db::request_commit

use std::future::Future;
use std::sync::Arc;

use tokio::sync::oneshot;

use crate::db::Group;

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

struct Pipeline {
    /// The previous event's transaction, if it is still in flight.
    after: Option<Applied>,
    /// Told once this event's transaction has released its savepoint.
    released: std::sync::Mutex<Option<oneshot::Sender<Applied>>>,
}

tokio::task_local! {
    static PIPELINE: Pipeline;
}

/// Runs `handler` (which applies one event) after the event whose
/// transaction is `after`: its consume transaction commits only if `after`'s
/// does. `released` is told as soon as that transaction has written
/// everything, which is when the next event may start; if `handler` ends
/// without such a transaction (the event was applied before, or failed
/// first), `released` is dropped instead. The caller must call
/// [`crate::Db::request_commit`] before it waits for `handler` to finish.
pub async fn pipelined<F: Future>(
    after: Option<Applied>,
    released: oneshot::Sender<Applied>,
    handler: F,
) -> F::Output {
    let pipeline = Pipeline {
        after,
        released: std::sync::Mutex::new(Some(released)),
    };
    PIPELINE.scope(pipeline, handler).await
}

/// Whether the transaction this one must follow failed to commit. Called
/// with the writer held: a group other than `current` has then finished its
/// `COMMIT`, and its outcome is known.
pub(crate) fn predecessor_failed(current: &Arc<Group>) -> bool {
    PIPELINE
        .try_with(|p| match &p.after {
            None => false,
            Some(a) if Arc::ptr_eq(&a.group, current) => false,
            Some(a) => !matches!(*a.group.done.borrow(), Some(Ok(()))),
        })
        .unwrap_or(false)
}

/// Whether the running task applies a pipelined event (its commit is
/// requested by the relay).
pub(crate) fn active() -> bool {
    PIPELINE.try_with(|_| ()).is_ok()
}

/// Tells the relay that this event's transaction has released into `group`.
pub(crate) fn released(group: &Arc<Group>) {
    let _ = PIPELINE.try_with(|p| {
        let sender = p
            .released
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take();
        if let Some(sender) = sender {
            let _ = sender.send(Applied {
                group: group.clone(),
            });
        }
    });
}
