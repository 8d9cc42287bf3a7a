//! The single writer connection of a database and its group commit.

use std::sync::Arc;

use tokio::sync::{Mutex, Notify, watch};

use crate::driver::Driver;
use crate::errors::{connection_lost, no_such_savepoint};
use crate::location::{Backend, Location};
use crate::sql::Target;
use crate::take_over::TakeOver;

/// The session-level advisory lock a PostgreSQL writer holds: one writer
/// per database, like SQLite's, is what makes outbox order commit order.
pub(crate) const WRITER_LOCK: i64 = 0x5EA3_5000;

/// The writer connection. Group commit: transactions of several callers
/// share one database transaction, each inside its own savepoint, and one
/// `COMMIT` (one fsync) makes all of them durable together; every caller's
/// `commit` returns only after that. Under no concurrency a group has one
/// member, which is exactly a transaction per command.
///
/// The connection is `None` after it was lost (PostgreSQL restarted); the
/// next transaction opens a new one, and the members of the group that was
/// open on the lost one are told their commit failed.
pub(crate) struct Writer {
    pub(crate) conn: Option<Box<dyn Driver>>,
    pub(crate) location: Location,
    /// The transaction was begun and not yet committed.
    pub(crate) open: bool,
    /// A member was dropped without committing; its work must be undone first.
    pub(crate) dirty: Option<Undo>,
    /// The members of the open transaction wait on this.
    pub(crate) group: Arc<Group>,
}

/// One group commit's outcome, shared by its members.
pub(crate) struct Group {
    /// `None` until the group's `COMMIT` finished; then its result. Set
    /// before the writer is let go, so whoever holds the writer next sees
    /// how every earlier group ended ([`crate::pipeline`] relies on it).
    pub(crate) done: watch::Sender<Option<Result<(), String>>>,
    /// Whether any member published events.
    pub(crate) published: std::sync::atomic::AtomicBool,
    /// Members released into it so far.
    pub(crate) members: std::sync::atomic::AtomicU32,
}

impl Group {
    pub(crate) fn new() -> Arc<Group> {
        Arc::new(Group {
            done: watch::channel(None).0,
            published: std::sync::atomic::AtomicBool::new(false),
            members: std::sync::atomic::AtomicU32::new(0),
        })
    }
}

pub(crate) const SAVEPOINT: &str = "SAVEPOINT seams_tx";
pub(crate) const RELEASE: &str = "RELEASE SAVEPOINT seams_tx";
const UNDO: &str = "ROLLBACK TO SAVEPOINT seams_tx; RELEASE SAVEPOINT seams_tx";

/// How one member's work is undone without touching the others'.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Undo {
    /// It opened the transaction, so nothing else is in it: roll all of it
    /// back. The first member needs no savepoint, which saves two round
    /// trips per group (every transaction, when commands do not overlap).
    Transaction,
    /// Others released into the transaction before it: back to its savepoint.
    Savepoint,
}

impl Writer {
    /// Runs `sql` (statements without values) on the writer; `COMMIT`
    /// through [`Driver::commit`], which may hand the connection to another
    /// thread and back. Boxed with an explicit `Send` bound: the committer
    /// runs in a spawned task, and sqlx's executor impls otherwise defeat
    /// the compiler's proof that this future is `Send` for all lifetimes.
    ///
    /// A lost connection is dropped here, failing the open group (its
    /// uncommitted work died with the connection).
    pub(crate) fn exec<'a>(
        &'a mut self,
        sql: &'static str,
    ) -> seams_core::BoxFuture<'a, Result<(), sqlx::Error>> {
        Box::pin(async move {
            let result = if sql == "COMMIT" {
                let Some(conn) = self.conn.take() else {
                    return Err(sqlx::Error::PoolClosed);
                };
                let (conn, result) = conn.commit().await;
                self.conn = conn;
                result
            } else {
                let Some(conn) = self.conn.as_mut() else {
                    return Err(sqlx::Error::PoolClosed);
                };
                conn.exec(sql).get().await
            };
            if let Err(e) = &result
                && (connection_lost(e) || self.conn.is_none())
            {
                self.lost(e);
            }
            result
        })
    }

    /// The connection, for a statement of a live transaction.
    pub(crate) fn target(&mut self) -> Target<'_> {
        Target(
            self.conn
                .as_deref_mut()
                .expect("a live transaction has a connection"),
        )
    }

    /// Forgets a lost connection and tells the open group's members.
    pub(crate) fn lost(&mut self, err: &sqlx::Error) {
        tracing::warn!(error = %err, "database connection lost; the next transaction reconnects");
        self.conn = None;
        self.open = false;
        self.dirty = None;
        let group = std::mem::replace(&mut self.group, Group::new());
        group
            .done
            .send_replace(Some(Err(format!("connection lost: {err}"))));
    }

    /// Opens a connection if there is none, and on PostgreSQL claims the
    /// database's writer lock.
    pub(crate) async fn connect(&mut self) -> Result<(), sqlx::Error> {
        if self.conn.is_some() {
            return Ok(());
        }
        self.connect_taking_over("", None).await
    }

    /// [`Writer::connect`], waiting for a predecessor's writer lock as
    /// `take_over` says (the first connection of a successor only).
    pub(crate) async fn connect_taking_over(
        &mut self,
        name: &str,
        take_over: Option<&TakeOver>,
    ) -> Result<(), sqlx::Error> {
        if self.conn.is_some() {
            return Ok(());
        }
        self.conn = Some(match self.location.backend() {
            Backend::Sqlite => Box::new(crate::sqlite::open_writer(&self.location)?),
            Backend::Postgres => {
                Box::new(crate::pg::open_writer(&self.location, name, take_over).await?)
            }
        });
        Ok(())
    }

    /// Undoes one member's work.
    pub(crate) async fn undo(&mut self, undo: Undo) -> Result<(), sqlx::Error> {
        match undo {
            // A savepoint that does not exist was never opened (a batch
            // carrying it failed at its first statement, or its caller went
            // away before it was sent), or was released by the batch's last
            // statement as its caller went away. Either way the member's
            // work is not half in the transaction: it is absent, or whole
            // and committed with the group, which is what a command whose
            // caller gave up may do (a retry with its key is answered from
            // the record). Failing here instead would stop every later
            // transaction, each finding the same savepoint missing.
            Undo::Savepoint => match self.exec(UNDO).await {
                Err(e) if no_such_savepoint(&e) => Ok(()),
                other => other,
            },
            Undo::Transaction => {
                self.exec("ROLLBACK").await?;
                self.open = false;
                // Nothing else was in this group, and it will never commit:
                // whoever waits for it (`Db::flush`) has nothing left to wait
                // for. Left unanswered, a flush waited forever.
                let group = std::mem::replace(&mut self.group, Group::new());
                group.done.send_replace(Some(Ok(())));
                Ok(())
            }
        }
    }

    /// Undoes what a dropped member left behind.
    pub(crate) async fn clean(&mut self) -> Result<(), sqlx::Error> {
        let Some(undo) = self.dirty else {
            return Ok(());
        };
        // Nothing is left to undo on a connection that is gone.
        let result = match self.conn {
            Some(_) => self.undo(undo).await,
            None => Ok(()),
        };
        if result.is_ok() || self.conn.is_none() {
            self.dirty = None;
            return Ok(());
        }
        result
    }

    /// Makes sure a transaction is open, reconnecting once if the connection
    /// turns out to be gone (the first statement after a server restart is
    /// where that shows). Returns whether this call began it.
    pub(crate) async fn open_group(&mut self, begin: &'static str) -> Result<bool, sqlx::Error> {
        self.clean().await?;
        if self.open {
            return Ok(false);
        }
        for attempt in 0..2 {
            self.connect().await?;
            match self.exec(begin).await {
                Ok(()) => {
                    self.open = true;
                    return Ok(true);
                }
                Err(e) if attempt == 0 && self.conn.is_none() => {
                    tracing::debug!(error = %e, "reconnecting the writer");
                }
                Err(e) => return Err(e),
            }
        }
        unreachable!("the second attempt returns")
    }
}

/// Commits the open group whenever a member asks, until the database is dropped.
pub(crate) async fn committer(
    name: String,
    writer: Arc<Mutex<Writer>>,
    wanted: Arc<Notify>,
    outbox: Arc<watch::Sender<u64>>,
    mut alive: watch::Receiver<()>,
    commits: Arc<std::sync::atomic::AtomicU64>,
) {
    loop {
        tokio::select! {
            _ = wanted.notified() => {}
            // The sender lives in the `Db`; when the last handle is gone, stop.
            res = alive.changed() => if res.is_err() { return },
        }
        // Queueing for the writer behind the callers already waiting lets
        // them join this group: the busier the database, the bigger the group.
        let mut w = writer.lock().await;
        let mut result = w.clean().await;
        let started = std::time::Instant::now();
        if result.is_ok() && w.open {
            result = w.exec("COMMIT").await;
        }
        let took = started.elapsed();
        if !w.open && result.is_ok() {
            continue;
        }
        if result.is_err() && w.conn.is_some() {
            // A failed COMMIT may leave the transaction open; make sure it is gone.
            let _ = w.exec("ROLLBACK").await;
            w.dirty = None;
        }
        w.open = false;
        let group = std::mem::replace(&mut w.group, Group::new());
        if let Err(e) = &result {
            tracing::warn!(database = %name, error = %e, "group commit failed; its members are told");
        }
        if result.is_ok() {
            commits.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let members = group.members.load(std::sync::atomic::Ordering::Relaxed);
            crate::meters::committed(&name, members, took);
        }
        // Feed readers are woken before the members learn of their commit,
        // so a member that returns from `commit` can rely on them being woken.
        if result.is_ok() && group.published.load(std::sync::atomic::Ordering::SeqCst) {
            outbox.send_modify(|n| *n += 1);
        }
        group
            .done
            .send_replace(Some(result.map_err(|e| e.to_string())));
        drop(w);
    }
}
