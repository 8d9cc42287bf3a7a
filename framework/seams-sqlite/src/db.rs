//! Opening a capability database and running transactions in it.

use std::path::Path;
use std::str::FromStr;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use seams_core::Envelope;
use sqlx::Connection;
use sqlx::migrate::Migrator;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteConnection, SqliteJournalMode, SqlitePool, SqlitePoolOptions,
    SqliteSynchronous,
};
use tokio::sync::{Mutex, Notify, OwnedMutexGuard, watch};

static FRAMEWORK: Migrator = sqlx::migrate!("./migrations");

/// How much a commit survives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Durability {
    /// `synchronous=FULL`: a commit survives power loss.
    #[default]
    Full,
    /// `synchronous=NORMAL`: a commit survives a process crash, not power loss.
    Normal,
}

/// Handle to one capability's database; cheap to clone.
#[derive(Clone, Debug)]
pub struct Db {
    inner: Arc<Inner>,
}

struct Inner {
    /// Capability name, for logs and errors.
    name: String,
    /// The single writer connection and the group transaction open on it.
    writer: Arc<Mutex<Writer>>,
    /// Wakes the committer when a member has released its savepoint.
    commit_wanted: Arc<Notify>,
    /// Readers (WAL snapshots).
    read: SqlitePool,
    /// Bumped after every commit that wrote outbox rows; feed readers wait on it.
    outbox: Arc<watch::Sender<u64>>,
    /// Dropped with the last handle, which stops the committer.
    _alive: watch::Sender<()>,
    /// Group commits so far (each one `COMMIT`, one fsync).
    commits: Arc<std::sync::atomic::AtomicU64>,
}

impl std::fmt::Debug for Inner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Db")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

/// The writer connection. Group commit: transactions of several callers
/// share one SQLite transaction, each inside its own savepoint, and one
/// `COMMIT` (one fsync) makes all of them durable together; every caller's
/// `commit` returns only after that. Under no concurrency a group has one
/// member, which is exactly a transaction per command.
struct Writer {
    conn: SqliteConnection,
    /// `BEGIN IMMEDIATE` was issued and not yet committed.
    open: bool,
    /// A member was dropped without committing; its savepoint must be undone first.
    dirty: bool,
    /// The members of the open transaction wait on this.
    group: Arc<Group>,
}

/// One group commit's outcome, shared by its members.
struct Group {
    /// `None` until the group's `COMMIT` finished; then its result.
    done: watch::Sender<Option<Result<(), String>>>,
    /// Whether any member published events.
    published: std::sync::atomic::AtomicBool,
}

impl Group {
    fn new() -> Arc<Group> {
        Arc::new(Group {
            done: watch::channel(None).0,
            published: std::sync::atomic::AtomicBool::new(false),
        })
    }
}

const SAVEPOINT: &str = "SAVEPOINT seams_tx";
const RELEASE: &str = "RELEASE SAVEPOINT seams_tx";
const UNDO: &str = "ROLLBACK TO SAVEPOINT seams_tx; RELEASE SAVEPOINT seams_tx";

impl Writer {
    /// Runs `sql` on the writer. Boxed with an explicit `Send` bound: the
    /// committer runs in a spawned task, and sqlx's executor impls otherwise
    /// defeat the compiler's proof that this future is `Send` for all lifetimes.
    fn exec<'a>(
        &'a mut self,
        sql: &'static str,
    ) -> seams_core::BoxFuture<'a, Result<(), sqlx::Error>> {
        Box::pin(async move {
            for statement in sql.split(';').map(str::trim).filter(|s| !s.is_empty()) {
                sqlx::query(statement).execute(&mut self.conn).await?;
            }
            Ok(())
        })
    }

    /// Undoes what a dropped member left behind.
    async fn clean(&mut self) -> Result<(), sqlx::Error> {
        if self.dirty {
            self.exec(UNDO).await?;
            self.dirty = false;
        }
        Ok(())
    }
}

/// Commits the open group whenever a member asks, until the database is dropped.
async fn committer(
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
        if result.is_ok() && w.open {
            result = w.exec("COMMIT").await;
        }
        if !w.open && result.is_ok() {
            continue;
        }
        if result.is_err() {
            // A failed COMMIT may leave the transaction open; make sure it is gone.
            let _ = w.exec("ROLLBACK").await;
            w.dirty = false;
        }
        w.open = false;
        let group = std::mem::replace(&mut w.group, Group::new());
        drop(w);
        if let Err(e) = &result {
            tracing::error!(database = %name, error = %e, "group commit failed; its members are told");
        }
        if result.is_ok() {
            commits.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
        let published = group.published.load(std::sync::atomic::Ordering::SeqCst);
        group
            .done
            .send_replace(Some(result.map_err(|e| e.to_string())));
        if published {
            outbox.send_modify(|n| *n += 1);
        }
    }
}

/// Wall-clock milliseconds since the Unix epoch, the unit of every `*_at_ms` column.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

impl Db {
    /// Opens (creating if missing) the database at `path`, applies the
    /// framework's migrations and then the capability's `migrator`.
    pub async fn open(path: &Path, name: &str, migrator: &Migrator) -> anyhow::Result<Db> {
        Db::open_with(path, name, migrator, Durability::Full).await
    }

    /// [`Db::open`] with an explicit durability.
    pub async fn open_with(
        path: &Path,
        name: &str,
        migrator: &Migrator,
        durability: Durability,
    ) -> anyhow::Result<Db> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("creating data directory {}", dir.display()))?;
        }
        let url = format!("sqlite://{}", path.display());
        let options = SqliteConnectOptions::from_str(&url)?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(match durability {
                Durability::Full => SqliteSynchronous::Full,
                Durability::Normal => SqliteSynchronous::Normal,
            })
            .busy_timeout(Duration::from_secs(10))
            .foreign_keys(true);
        let write = SqlitePoolOptions::new()
            .max_connections(1)
            .acquire_timeout(Duration::from_secs(30))
            .connect_with(options.clone())
            .await
            .with_context(|| format!("opening {name} database at {}", path.display()))?;
        // Each migrator ignores the other's versions in `_sqlx_migrations`.
        let framework = Migrator {
            migrations: FRAMEWORK.migrations.clone(),
            ignore_missing: true,
            ..Migrator::DEFAULT
        };
        framework
            .run(&write)
            .await
            .with_context(|| format!("migrating {name}: framework tables"))?;
        let own = Migrator {
            migrations: migrator.migrations.clone(),
            ignore_missing: true,
            ..Migrator::DEFAULT
        };
        own.run(&write)
            .await
            .with_context(|| format!("migrating {name}: capability tables"))?;
        write.close().await;
        let conn = SqliteConnection::connect_with(&options)
            .await
            .with_context(|| format!("opening {name}'s writer"))?;
        let writer = Arc::new(Mutex::new(Writer {
            conn,
            open: false,
            dirty: false,
            group: Group::new(),
        }));
        let commit_wanted = Arc::new(Notify::new());
        let read = SqlitePoolOptions::new()
            .max_connections(4)
            .acquire_timeout(Duration::from_secs(30))
            .connect_with(options.read_only(true))
            .await?;
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
                writer,
                commit_wanted,
                read,
                outbox,
                _alive: alive,
                commits,
            }),
        })
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

    /// The pool for reads (never blocks on the writer).
    pub fn reader(&self) -> &SqlitePool {
        &self.inner.read
    }

    /// Starts a write transaction (a member of the next group commit).
    pub async fn begin(&self) -> Result<Tx, sqlx::Error> {
        let mut w = self.inner.writer.clone().lock_owned().await;
        w.clean().await?;
        if !w.open {
            w.exec("BEGIN IMMEDIATE").await?;
            w.open = true;
        }
        w.exec(SAVEPOINT).await?;
        Ok(Tx {
            writer: Some(w),
            db: self.clone(),
            published: false,
        })
    }

    /// Starts the transaction in which consumer `consumer` applies `env`, with
    /// the event id already recorded in the inbox; `None` if it was applied before.
    pub async fn begin_consume(
        &self,
        consumer: &str,
        env: &Envelope,
    ) -> Result<Option<Tx>, sqlx::Error> {
        let mut tx = self.begin().await?;
        let inserted = sqlx::query(
            "INSERT INTO seams_inbox (consumer, event_id, handled_at_ms) VALUES (?, ?, ?) \
             ON CONFLICT DO NOTHING",
        )
        .bind(consumer)
        .bind(&env.id)
        .bind(now_ms())
        .execute(tx.conn())
        .await?
        .rows_affected();
        if inserted == 0 {
            tx.rollback().await?;
            return Ok(None);
        }
        Ok(Some(tx))
    }

    /// Whether consumer `consumer` has applied event `event_id`.
    pub async fn inbox_contains(
        &self,
        consumer: &str,
        event_id: &str,
    ) -> Result<bool, sqlx::Error> {
        let row: Option<(i64,)> =
            sqlx::query_as("SELECT 1 FROM seams_inbox WHERE consumer = ? AND event_id = ?")
                .bind(consumer)
                .bind(event_id)
                .fetch_optional(self.reader())
                .await?;
        Ok(row.is_some())
    }

    /// A receiver that changes after every commit that wrote outbox rows.
    pub fn outbox_changes(&self) -> watch::Receiver<u64> {
        self.inner.outbox.subscribe()
    }

    /// Commits what is pending and closes the readers (after in-flight work finished).
    pub async fn close(&self) {
        let mut w = self.inner.writer.lock().await;
        if w.clean().await.is_ok() && w.open && w.exec("COMMIT").await.is_ok() {
            w.open = false;
            let group = std::mem::replace(&mut w.group, Group::new());
            group.done.send_replace(Some(Ok(())));
        }
        drop(w);
        self.inner.read.close().await;
    }
}

/// A write transaction in a capability's database.
///
/// Dropping it without [`Tx::commit`] rolls back, outbox rows included.
/// It holds the writer until it commits or is dropped, so keep it short and
/// never wait on another service inside it.
pub struct Tx {
    writer: Option<OwnedMutexGuard<Writer>>,
    db: Db,
    published: bool,
}

impl Tx {
    /// The connection, for the capability's own statements.
    pub fn conn(&mut self) -> &mut SqliteConnection {
        &mut self
            .writer
            .as_mut()
            .expect("a live transaction holds the writer")
            .conn
    }

    /// Appends `env` to the outbox; it is published only if this transaction
    /// commits. Returns its position in the outbox, which is final at commit
    /// (one writer), and is what a consistency token names.
    pub async fn publish(&mut self, env: &Envelope) -> Result<u64, sqlx::Error> {
        let json = serde_json::to_string(env).map_err(|e| sqlx::Error::Encode(Box::new(e)))?;
        let res = sqlx::query(
            "INSERT INTO seams_outbox (event_id, event_type, subject, envelope, created_at_ms) \
             VALUES (?, ?, ?, ?, ?)",
        )
        .bind(&env.id)
        .bind(&env.event_type)
        .bind(&env.subject)
        .bind(json)
        .bind(now_ms())
        .execute(self.conn())
        .await?;
        self.published = true;
        Ok(res.last_insert_rowid() as u64)
    }

    /// Commits: returns once the group this transaction joined is durable
    /// (then feed readers are woken if events were published).
    pub async fn commit(mut self) -> Result<(), sqlx::Error> {
        let mut w = self
            .writer
            .take()
            .expect("a live transaction holds the writer");
        if let Err(e) = w.exec(RELEASE).await {
            w.dirty = true;
            return Err(e);
        }
        let group = w.group.clone();
        if self.published {
            group
                .published
                .store(true, std::sync::atomic::Ordering::SeqCst);
        }
        let mut done = group.done.subscribe();
        drop(w);
        self.db.inner.commit_wanted.notify_one();
        let outcome = done
            .wait_for(|r| r.is_some())
            .await
            .map_err(|_| sqlx::Error::PoolClosed)?
            .clone();
        match outcome {
            Some(Ok(())) => Ok(()),
            Some(Err(e)) => Err(sqlx::Error::Protocol(format!("group commit failed: {e}"))),
            None => Err(sqlx::Error::PoolClosed),
        }
    }

    /// Rolls back explicitly.
    pub async fn rollback(mut self) -> Result<(), sqlx::Error> {
        let mut w = self
            .writer
            .take()
            .expect("a live transaction holds the writer");
        let res = w.exec(UNDO).await;
        if res.is_err() {
            w.dirty = true;
        }
        drop(w);
        self.db.inner.commit_wanted.notify_one();
        res.map(|_| ())
    }
}

impl Drop for Tx {
    fn drop(&mut self) {
        if let Some(mut w) = self.writer.take() {
            // Undone by the next user of the writer (or the committer): no async in Drop.
            w.dirty = true;
            drop(w);
            self.db.inner.commit_wanted.notify_one();
        }
    }
}
