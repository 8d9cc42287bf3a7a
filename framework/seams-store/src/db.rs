//! Opening a capability database and running transactions in it, on
//! either backend: a SQLite file (the default) or a PostgreSQL database.

use std::path::Path;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::Context;
use sqlx::Connection;
use tokio::sync::{Mutex, Notify, watch};

use crate::errors::{WRITER_WAIT, WriterBusy};
use crate::location::{Backend, Durability, Location};
use crate::migrations::{FRAMEWORK, Migrations, migrate};
use crate::readers::{ReadConn, Readers};
use crate::sql::{DbError, query};
use crate::take_over::TakeOver;
use crate::tx::Tx;
use crate::writer::{Group, SAVEPOINT, Undo, Writer, committer};

/// Handle to one capability's database; cheap to clone.
#[derive(Clone, Debug)]
pub struct Db {
    pub(crate) inner: Arc<Inner>,
}

pub(crate) struct Inner {
    /// Capability name, for logs and errors.
    pub(crate) name: String,
    /// SQL dialect.
    pub(crate) backend: Backend,
    /// The single writer connection and the group transaction open on it.
    pub(crate) writer: Arc<Mutex<Writer>>,
    /// Wakes the committer when a member has released its savepoint.
    pub(crate) commit_wanted: Arc<Notify>,
    /// Readers (committed snapshots; never wait for the writer).
    pub(crate) read: Readers,
    /// Bumped after every commit that wrote outbox rows; feed readers wait on it.
    pub(crate) outbox: Arc<watch::Sender<u64>>,
    /// Dropped with the last handle, which stops the committer.
    _alive: watch::Sender<()>,
    /// Group commits so far (each one `COMMIT`, one fsync).
    pub(crate) commits: Arc<std::sync::atomic::AtomicU64>,
    /// Which versions of its events go into the outbox.
    pub(crate) emit: crate::emit::EmitSetting,
    /// The highest acknowledgement written per subscriber by this process, and when.
    pub(crate) acked:
        std::sync::Mutex<std::collections::HashMap<String, (u64, std::time::Instant)>>,
    /// Bumped after every committed change to the dead letters.
    pub(crate) dead_letters: std::sync::atomic::AtomicU64,
    /// How long a transaction waits for the writer, in ms ([`WRITER_WAIT`];
    /// tests shorten it).
    pub(crate) writer_wait_ms: std::sync::atomic::AtomicU64,
}

impl std::fmt::Debug for Inner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Db")
            .field("name", &self.name)
            .field("backend", &self.backend)
            .finish_non_exhaustive()
    }
}

/// The framework's migrations, then the capability's.
async fn migrate_all(
    name: &str,
    conn: &mut sqlx::AnyConnection,
    migrations: &Migrations,
    backend: Backend,
) -> anyhow::Result<()> {
    migrate(FRAMEWORK.for_backend(backend), conn)
        .await
        .with_context(|| format!("migrating {name}: framework tables"))?;
    migrate(migrations.for_backend(backend), conn)
        .await
        .with_context(|| format!("migrating {name}: capability tables"))?;
    Ok(())
}

/// Wall-clock milliseconds since the Unix epoch, the unit of every `*_at_ms` column.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

impl Db {
    /// Opens (creating if missing) the SQLite database at `path` with full
    /// durability; see [`Db::connect`].
    pub async fn open(path: &Path, name: &str, migrations: &Migrations) -> anyhow::Result<Db> {
        let location = Location::Sqlite {
            path: path.to_owned(),
            durability: Durability::Full,
        };
        Db::connect(&location, name, migrations).await
    }

    /// Opens the database at `location`, applies the framework's migrations
    /// and then the capability's.
    pub async fn connect(
        location: &Location,
        name: &str,
        migrations: &Migrations,
    ) -> anyhow::Result<Db> {
        Db::connect_taking_over(location, name, migrations, None).await
    }

    /// [`Db::connect`] by a process replacing another that may still
    /// hold the database's writer lock ([`TakeOver`]).
    pub async fn connect_taking_over(
        location: &Location,
        name: &str,
        migrations: &Migrations,
        take_over: Option<&TakeOver>,
    ) -> anyhow::Result<Db> {
        sqlx::any::install_default_drivers();
        if let Location::Sqlite { path, .. } = location
            && let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty())
        {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("creating data directory {}", dir.display()))?;
        }
        let backend = location.backend();
        // SQLite's writer calls SQLite inline, and sqlx's migrator needs an
        // sqlx connection: the file is migrated on one of its own first.
        // On PostgreSQL the writer migrates, after it claimed the lock.
        let migrating = match backend {
            Backend::Sqlite => Some(location.connect(false).await.with_context(|| {
                format!("opening {name} database at {location:?} to migrate it")
            })?),
            Backend::Postgres => None,
        };
        let mut writer = Writer {
            conn: None,
            location: location.clone(),
            open: false,
            dirty: None,
            group: Group::new(),
        };
        match migrating {
            Some(mut conn) => {
                migrate_all(name, &mut conn, migrations, backend).await?;
                let _ = conn.close().await;
                writer
                    .connect_taking_over(name, take_over)
                    .await
                    .with_context(|| format!("opening {name} database at {location:?}"))?;
            }
            None => {
                let mut conn = crate::pg::open_writer(location, name, take_over)
                    .await
                    .with_context(|| format!("opening {name} database at {location:?}"))?;
                migrate_all(name, &mut conn, migrations, backend).await?;
                writer.conn = Some(Box::new(conn));
            }
        }
        let writer = Arc::new(Mutex::new(writer));
        let commit_wanted = Arc::new(Notify::new());
        let read = Readers::open(location)
            .await
            .with_context(|| format!("opening {name}'s readers"))?;
        let outbox = Arc::new(watch::channel(0).0);
        let (alive, alive_rx) = watch::channel(());
        let commits = Arc::new(std::sync::atomic::AtomicU64::new(0));
        tokio::spawn(committer(
            name.to_owned(),
            writer.clone(),
            commit_wanted.clone(),
            outbox.clone(),
            alive_rx,
            commits.clone(),
        ));
        Ok(Db {
            inner: Arc::new(Inner {
                name: name.to_owned(),
                backend,
                writer,
                commit_wanted,
                read,
                outbox,
                _alive: alive,
                commits,
                acked: Default::default(),
                dead_letters: std::sync::atomic::AtomicU64::new(0),
                writer_wait_ms: std::sync::atomic::AtomicU64::new(WRITER_WAIT.as_millis() as u64),
                emit: Default::default(),
            }),
        })
    }

    /// Shortens the writer wait (tests of the refusal).
    #[cfg(test)]
    pub(crate) fn set_writer_wait(&self, wait: std::time::Duration) {
        self.inner.writer_wait_ms.store(
            wait.as_millis() as u64,
            std::sync::atomic::Ordering::Relaxed,
        );
    }

    /// How many group commits (each one `COMMIT` and one fsync) have happened.
    pub fn commits(&self) -> u64 {
        self.inner
            .commits
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    /// The capability this database belongs to.
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// The SQL dialect, for the few statements that differ between backends.
    pub fn backend(&self) -> Backend {
        self.inner.backend
    }

    /// Writes `contract`'s events in `versions` from now on (an older one
    /// while consumers are upgraded, or several at once); refuses versions
    /// the contract cannot write. See the `emit` module.
    pub fn write_events_as(
        &self,
        contract: &'static seams_core::decl::EventContract,
        versions: &[u32],
    ) -> Result<(), String> {
        self.inner.emit.set(contract, versions)
    }

    /// The versions setting as it is now.
    pub(crate) fn emit(&self) -> Arc<crate::emit::Emit> {
        self.inner.emit.get()
    }

    /// A connection for reads (never blocks on the writer), back to the
    /// readers when dropped: `query(SQL).fetch_one(&mut db.read().await?)`.
    pub async fn read(&self) -> Result<ReadConn, DbError> {
        self.inner.read.get().await
    }

    /// The rows of `sql`, a name and a count each (`SELECT name, COUNT(*)
    /// … GROUP BY name`, or any name with a non-negative number).
    pub(crate) async fn counts(&self, sql: &'static str) -> Result<Vec<(String, u64)>, DbError> {
        let rows = query(sql).fetch_all(&mut self.read().await?).await?;
        rows.iter()
            .map(|row| Ok((row.get(0)?, row.get::<i64>(1)?.max(0) as u64)))
            .collect()
    }

    /// Starts a write transaction (a member of the next group commit).
    /// Joining an open group on SQLite, its `SAVEPOINT` goes with its first
    /// statement (a [`crate::query`] run on it, or the commit of [`Tx::later`]).
    pub async fn begin(&self) -> Result<Tx, DbError> {
        self.begin_member(true).await
    }

    /// [`Db::begin`]; with `defer_savepoint`, a member that joins an open
    /// group on SQLite leaves its `SAVEPOINT` to be sent with its first
    /// statements ([`Tx::later`], [`Db::begin_consume`]).
    pub(crate) async fn begin_member(&self, defer_savepoint: bool) -> Result<Tx, DbError> {
        let asked = std::time::Instant::now();
        let wait = std::time::Duration::from_millis(
            self.inner
                .writer_wait_ms
                .load(std::sync::atomic::Ordering::Relaxed),
        );
        let mut w = tokio::time::timeout(wait, self.inner.writer.clone().lock_owned())
            .await
            .map_err(|_| {
                crate::meters::writer_refused(&self.inner.name);
                DbError::Configuration(Box::new(WriterBusy(self.inner.name.clone())))
            })?;
        crate::meters::writer_acquired(&self.inner.name, asked.elapsed());
        let began = w
            .open_group(match self.inner.backend {
                // Take the write lock now, not at the first write, so a group
                // never fails half-way with SQLITE_BUSY.
                Backend::Sqlite => "BEGIN IMMEDIATE",
                Backend::Postgres => "BEGIN",
            })
            .await?;
        let defer = defer_savepoint && !began && self.inner.backend == Backend::Sqlite;
        let undo = if began {
            Undo::Transaction
        } else {
            if !defer {
                w.exec(SAVEPOINT).await?;
            }
            Undo::Savepoint
        };
        Ok(Tx {
            writer: Some(w),
            db: self.clone(),
            published: false,
            turn: None,
            undo,
            released: false,
            savepoint_deferred: defer,
            later: None,
        })
    }

    /// Whether the database answers a query now (a SQLite file always does;
    /// a PostgreSQL server may be restarting).
    pub async fn reachable(&self) -> bool {
        match self.inner.backend {
            Backend::Sqlite => true,
            Backend::Postgres => match self.read().await {
                Ok(mut conn) => query("SELECT 1").execute(&mut conn).await.is_ok(),
                Err(_) => false,
            },
        }
    }

    /// A receiver that changes after every commit that wrote outbox rows.
    pub fn outbox_changes(&self) -> watch::Receiver<u64> {
        self.inner.outbox.subscribe()
    }

    /// Asks the committer to commit what has been released (pipelined
    /// consume transactions leave that to their relay).
    pub fn request_commit(&self) {
        self.inner.commit_wanted.notify_one();
    }

    /// Returns once everything released so far is committed (what
    /// [`Tx::commit_eventually`] left pending included); an error if that
    /// group's commit failed.
    pub async fn flush(&self) -> Result<(), DbError> {
        let w = self.inner.writer.lock().await;
        if !w.open {
            return Ok(());
        }
        let mut done = w.group.done.subscribe();
        drop(w);
        self.inner.commit_wanted.notify_one();
        match done
            .wait_for(|r| r.is_some())
            .await
            .map_err(|_| DbError::PoolClosed)?
            .clone()
        {
            Some(Err(e)) => Err(DbError::Protocol(format!("group commit failed: {e}"))),
            _ => Ok(()),
        }
    }

    /// Commits what is pending and closes the readers (after in-flight work finished).
    pub async fn close(&self) {
        let mut w = self.inner.writer.lock().await;
        if w.clean().await.is_ok() && w.open && w.exec("COMMIT").await.is_ok() {
            w.open = false;
            let group = std::mem::replace(&mut w.group, Group::new());
            group.done.send_replace(Some(Ok(())));
        }
        if let Some(conn) = w.conn.take() {
            conn.close().await;
        }
        drop(w);
        self.inner.read.close().await;
    }
}
