//! Opening a capability database and running transactions in it, on
//! either backend: a SQLite file (the default) or a PostgreSQL database.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use seams_core::Envelope;

use crate::take_over::TakeOver;
use sqlx::any::AnyPoolOptions;
use sqlx::migrate::Migrator;
use sqlx::{AnyConnection, AnyPool};
use sqlx::{Connection, Executor};
use tokio::sync::{Mutex, Notify, OwnedMutexGuard, watch};
use tracing::Instrument;

/// The framework's own tables, per backend.
pub(crate) static FRAMEWORK: Migrations = Migrations {
    sqlite: sqlx::migrate!("./migrations/sqlite"),
    postgres: sqlx::migrate!("./migrations/postgres"),
};

/// A capability's schema history, once per backend: the two dialects differ
/// (types, identity columns, what `ALTER TABLE` can do), the meaning does not.
#[derive(Debug)]
pub struct Migrations {
    /// `migrations/sqlite`.
    pub sqlite: Migrator,
    /// `migrations/postgres`.
    pub postgres: Migrator,
}

/// Which of the store's reliability machinery runs. Both on, always, except
/// in a benchmark that measures what each costs (`shop up --bench-off`):
/// without the inbox a redelivered event is applied again; without
/// idempotency records a retried command runs again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Machinery {
    /// Consumers record applied event ids ([`Db::begin_consume`]).
    pub inbox: bool,
    /// Keyed commands record and replay their first response.
    pub idempotency: bool,
}

impl Default for Machinery {
    fn default() -> Machinery {
        Machinery {
            inbox: true,
            idempotency: true,
        }
    }
}

impl Migrations {
    /// The history for `backend`.
    fn for_backend(&self, backend: Backend) -> &Migrator {
        match backend {
            Backend::Sqlite => &self.sqlite,
            Backend::Postgres => &self.postgres,
        }
    }
}

/// How much a commit survives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Durability {
    /// `synchronous=FULL`: a commit survives power loss.
    #[default]
    Full,
    /// `synchronous=NORMAL`: a commit survives a process crash, not power loss.
    Normal,
}

/// Where a capability's database lives.
#[derive(Clone, PartialEq, Eq)]
pub enum Location {
    /// A SQLite file, created if missing.
    Sqlite {
        /// The file.
        path: PathBuf,
        /// `synchronous` setting.
        durability: Durability,
    },
    /// A PostgreSQL database that exists, reached with the capability's own
    /// role (`postgres://role:password@host:port/database`). PostgreSQL's
    /// commits are durable by its own `synchronous_commit`. Add
    /// `?sslmode=verify-full&sslrootcert=/path/ca.pem` for TLS with the
    /// server's certificate checked (see [`crate::postgres`]).
    Postgres {
        /// Connection URL (it carries the password: never logged).
        url: String,
    },
}

impl std::fmt::Debug for Location {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Location::Sqlite { path, durability } => f
                .debug_struct("Sqlite")
                .field("path", path)
                .field("durability", durability)
                .finish(),
            Location::Postgres { url } => f
                .debug_struct("Postgres")
                .field("url", &redact(url))
                .finish(),
        }
    }
}

pub use seams_core::redact;

/// Which SQL dialect a database speaks, for the few statements that differ.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// SQLite.
    Sqlite,
    /// PostgreSQL.
    Postgres,
}

impl Location {
    fn backend(&self) -> Backend {
        match self {
            Location::Sqlite { .. } => Backend::Sqlite,
            Location::Postgres { .. } => Backend::Postgres,
        }
    }

    fn url(&self, read_only: bool) -> String {
        match self {
            Location::Sqlite { path, .. } => format!(
                "sqlite://{}?mode={}",
                path.display(),
                if read_only { "ro" } else { "rwc" }
            ),
            Location::Postgres { url } => url.clone(),
        }
    }

    /// Statements run on every new connection.
    fn setup(&self) -> Vec<String> {
        match self {
            Location::Sqlite { durability, .. } => vec![
                "PRAGMA journal_mode = WAL".into(),
                format!(
                    "PRAGMA synchronous = {}",
                    match durability {
                        Durability::Full => "FULL",
                        Durability::Normal => "NORMAL",
                    }
                ),
                "PRAGMA busy_timeout = 10000".into(),
                "PRAGMA foreign_keys = ON".into(),
                // Statement journals (what a savepoint rolls back to) stay in
                // memory: on disk each group commit spilled them into fresh
                // temporary files, megabytes a second under load.
                "PRAGMA temp_store = MEMORY".into(),
            ],
            Location::Postgres { .. } => Vec::new(),
        }
    }

    async fn connect(&self, read_only: bool) -> Result<AnyConnection, sqlx::Error> {
        let mut conn = AnyConnection::connect(&self.url(read_only)).await?;
        for statement in self.setup() {
            conn.execute(statement.as_str()).await?;
        }
        Ok(conn)
    }
}

/// Whether `err` is SQLite's refusal to roll back to a savepoint that is
/// not open.
fn no_such_savepoint(err: &sqlx::Error) -> bool {
    matches!(err, sqlx::Error::Database(db) if db.message().starts_with("no such savepoint"))
}

/// How long a transaction waits for its turn at the single writer before it
/// is refused: long queues mean the database cannot keep up, and a caller is
/// better told so at once (503 `overloaded`) than kept waiting.
pub const WRITER_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

/// The refusal of a transaction that waited [`WRITER_WAIT`] for the writer.
#[derive(Debug, thiserror::Error)]
#[error("the writer of {0} stayed busy for {WRITER_WAIT:?}; the transaction was not started")]
pub struct WriterBusy(pub String);

/// Whether `err` is a [`WriterBusy`] refusal. sqlx has no variant for a full
/// queue, so the refusal travels as `Configuration` carrying [`WriterBusy`]
/// (a variant nothing else in the store produces, and that
/// [`connection_lost`] does not count as an outage).
pub fn writer_busy(err: &sqlx::Error) -> bool {
    matches!(err, sqlx::Error::Configuration(e) if e.is::<WriterBusy>())
}

/// Whether `err` means the connection is gone (the server restarted, the
/// network failed) rather than that a statement was refused.
pub fn connection_lost(err: &sqlx::Error) -> bool {
    match err {
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::Protocol(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed => true,
        // SQLSTATE class 08 (connection exception) and 57P (operator
        // intervention: shutdown, crash, cannot connect now).
        sqlx::Error::Database(db) => db
            .code()
            .is_some_and(|c| c.starts_with("08") || c.starts_with("57P")),
        _ => false,
    }
}

/// The session-level advisory lock a PostgreSQL writer holds: one writer
/// per database, like SQLite's, is what makes outbox order commit order.
pub(crate) const WRITER_LOCK: i64 = 0x5EA3_5000;

/// Handle to one capability's database; cheap to clone.
#[derive(Clone, Debug)]
pub struct Db {
    inner: Arc<Inner>,
}

struct Inner {
    /// Capability name, for logs and errors.
    name: String,
    /// SQL dialect.
    backend: Backend,
    /// The single writer connection and the group transaction open on it.
    writer: Arc<Mutex<Writer>>,
    /// Wakes the committer when a member has released its savepoint.
    commit_wanted: Arc<Notify>,
    /// Readers (committed snapshots; never wait for the writer).
    read: Readers,
    /// Bumped after every commit that wrote outbox rows; feed readers wait on it.
    outbox: Arc<watch::Sender<u64>>,
    /// Dropped with the last handle, which stops the committer.
    _alive: watch::Sender<()>,
    /// Group commits so far (each one `COMMIT`, one fsync).
    commits: Arc<std::sync::atomic::AtomicU64>,
    /// What of the reliability machinery runs.
    machinery: Machinery,
    /// Which versions of its events go into the outbox.
    emit: crate::emit::EmitSetting,
    /// The highest acknowledgement written per subscriber by this process, and when.
    acked: std::sync::Mutex<std::collections::HashMap<String, (u64, std::time::Instant)>>,
    /// Bumped after every committed change to the dead letters.
    dead_letters: std::sync::atomic::AtomicU64,
    /// How long a transaction waits for the writer, in ms ([`WRITER_WAIT`];
    /// tests shorten it).
    writer_wait_ms: std::sync::atomic::AtomicU64,
}

impl std::fmt::Debug for Inner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Db")
            .field("name", &self.name)
            .field("backend", &self.backend)
            .finish_non_exhaustive()
    }
}

/// The writer connection. Group commit: transactions of several callers
/// share one database transaction, each inside its own savepoint, and one
/// `COMMIT` (one fsync) makes all of them durable together; every caller's
/// `commit` returns only after that. Under no concurrency a group has one
/// member, which is exactly a transaction per command.
///
/// The connection is `None` after it was lost (PostgreSQL restarted); the
/// next transaction opens a new one, and the members of the group that was
/// open on the lost one are told their commit failed.
struct Writer {
    conn: Option<AnyConnection>,
    location: Location,
    /// The transaction was begun and not yet committed.
    open: bool,
    /// A member was dropped without committing; its work must be undone first.
    dirty: Option<Undo>,
    /// The members of the open transaction wait on this.
    group: Arc<Group>,
}

/// One group commit's outcome, shared by its members.
pub(crate) struct Group {
    /// `None` until the group's `COMMIT` finished; then its result. Set
    /// before the writer is let go, so whoever holds the writer next sees
    /// how every earlier group ended ([`crate::pipeline`] relies on it).
    pub(crate) done: watch::Sender<Option<Result<(), String>>>,
    /// Whether any member published events.
    published: std::sync::atomic::AtomicBool,
    /// Members released into it so far.
    members: std::sync::atomic::AtomicU32,
}

impl Group {
    fn new() -> Arc<Group> {
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
enum Undo {
    /// It opened the transaction, so nothing else is in it: roll all of it
    /// back. The first member needs no savepoint, which saves two round
    /// trips per group (every transaction, when commands do not overlap).
    Transaction,
    /// Others released into the transaction before it: back to its savepoint.
    Savepoint,
}

impl Writer {
    /// Runs `sql` on the writer. Boxed with an explicit `Send` bound: the
    /// committer runs in a spawned task, and sqlx's executor impls otherwise
    /// defeat the compiler's proof that this future is `Send` for all lifetimes.
    ///
    /// A lost connection is dropped here, failing the open group (its
    /// uncommitted work died with the connection).
    fn exec<'a>(
        &'a mut self,
        sql: &'static str,
    ) -> seams_core::BoxFuture<'a, Result<(), sqlx::Error>> {
        Box::pin(async move {
            let Some(conn) = self.conn.as_mut() else {
                return Err(sqlx::Error::PoolClosed);
            };
            for statement in sql.split(';').map(str::trim).filter(|s| !s.is_empty()) {
                if let Err(e) = sqlx::query(statement).execute(&mut *conn).await {
                    if connection_lost(&e) {
                        self.lost(&e);
                    }
                    return Err(e);
                }
            }
            Ok(())
        })
    }

    /// Forgets a lost connection and tells the open group's members.
    fn lost(&mut self, err: &sqlx::Error) {
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
    async fn connect(&mut self) -> Result<(), sqlx::Error> {
        if self.conn.is_some() {
            return Ok(());
        }
        self.connect_taking_over("", None).await
    }

    /// [`Writer::connect`], waiting for a predecessor's writer lock as
    /// `take_over` says (the first connection of a successor only).
    async fn connect_taking_over(
        &mut self,
        name: &str,
        take_over: Option<&TakeOver>,
    ) -> Result<(), sqlx::Error> {
        if self.conn.is_some() {
            return Ok(());
        }
        let mut conn = self.location.connect(false).await?;
        if self.location.backend() == Backend::Postgres {
            // A second process writing the same database would interleave
            // outbox sequence numbers with commits out of order, and
            // consumers' cursors would skip events: refuse it.
            crate::take_over::claim_writer_lock(&mut conn, name, take_over).await?;
        }
        self.conn = Some(conn);
        Ok(())
    }

    /// Undoes one member's work.
    async fn undo(&mut self, undo: Undo) -> Result<(), sqlx::Error> {
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
    async fn clean(&mut self) -> Result<(), sqlx::Error> {
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
    async fn open_group(&mut self, begin: &'static str) -> Result<bool, sqlx::Error> {
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

/// Wall-clock milliseconds since the Unix epoch, the unit of every `*_at_ms` column.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Runs `migrator` over `conn`, ignoring the other migrator's versions in
/// `_sqlx_migrations` (framework and capability share that table).
async fn migrate(
    migrator: &Migrator,
    conn: &mut AnyConnection,
) -> Result<(), sqlx::migrate::MigrateError> {
    Migrator {
        migrations: migrator.migrations.clone(),
        ignore_missing: true,
        ..Migrator::DEFAULT
    }
    .run_direct(conn)
    .await
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
        Db::connect_with(location, name, migrations, Machinery::default()).await
    }

    /// [`Db::connect`] with some of the machinery switched off (benchmarks).
    pub async fn connect_with(
        location: &Location,
        name: &str,
        migrations: &Migrations,
        machinery: Machinery,
    ) -> anyhow::Result<Db> {
        Db::connect_taking_over(location, name, migrations, machinery, None).await
    }

    /// [`Db::connect_with`] by a process replacing another that may still
    /// hold the database's writer lock ([`TakeOver`]).
    pub async fn connect_taking_over(
        location: &Location,
        name: &str,
        migrations: &Migrations,
        machinery: Machinery,
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
        let mut writer = Writer {
            conn: None,
            location: location.clone(),
            open: false,
            dirty: None,
            group: Group::new(),
        };
        writer
            .connect_taking_over(name, take_over)
            .await
            .with_context(|| format!("opening {name} database at {location:?}"))?;
        let conn = writer.conn.as_mut().expect("just connected");
        migrate(FRAMEWORK.for_backend(backend), conn)
            .await
            .with_context(|| format!("migrating {name}: framework tables"))?;
        migrate(migrations.for_backend(backend), conn)
            .await
            .with_context(|| format!("migrating {name}: capability tables"))?;
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
                machinery,
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

    /// Whether acknowledging `seq` for `subscriber` says more than this
    /// process has already written, at most once per `interval`.
    pub(crate) fn ack_is_news(&self, subscriber: &str, seq: u64, interval: Duration) -> bool {
        let acked = self
            .inner
            .acked
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        acked
            .get(subscriber)
            .is_none_or(|(known, at)| *known < seq && at.elapsed() >= interval)
    }

    /// Remembers that acknowledging `seq` for `subscriber` was written.
    pub(crate) fn ack_written(&self, subscriber: &str, seq: u64) {
        let mut acked = self
            .inner
            .acked
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let known = acked
            .entry(subscriber.to_owned())
            .or_insert((0, std::time::Instant::now()));
        *known = (known.0.max(seq), std::time::Instant::now());
    }

    /// Changes whenever a change to the dead letters commits; a relay that
    /// saw no change since its last look need not look again (this process
    /// is the database's only writer).
    pub fn dead_letter_generation(&self) -> u64 {
        self.inner
            .dead_letters
            .load(std::sync::atomic::Ordering::SeqCst)
    }

    pub(crate) fn dead_letters_changed(&self) {
        self.inner
            .dead_letters
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
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

    /// What of the reliability machinery runs.
    pub fn machinery(&self) -> Machinery {
        self.inner.machinery
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
    /// readers when dropped: `query.fetch_one(&mut *db.read().await?)`.
    pub async fn read(&self) -> Result<ReadConn, sqlx::Error> {
        self.inner.read.get().await
    }

    /// Starts a write transaction (a member of the next group commit).
    pub async fn begin(&self) -> Result<Tx, sqlx::Error> {
        self.begin_member(false).await
    }

    /// [`Db::begin`]; with `defer_savepoint`, a member that joins an open
    /// group on SQLite leaves its `SAVEPOINT` to be sent with its first
    /// statements ([`Db::commit_batch`], [`Db::begin_consume`]).
    pub(crate) async fn begin_member(&self, defer_savepoint: bool) -> Result<Tx, sqlx::Error> {
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
                sqlx::Error::Configuration(Box::new(WriterBusy(self.inner.name.clone())))
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
            consume: false,
            undo,
            released: false,
            savepoint_deferred: defer,
        })
    }

    /// Starts the transaction in which consumer `consumer` applies `env`, with
    /// the event id already recorded in the inbox; `None` if it was applied before.
    pub async fn begin_consume(
        &self,
        consumer: &str,
        env: &Envelope,
    ) -> Result<Option<Tx>, sqlx::Error> {
        let inbox = self.inner.machinery.inbox;
        let mut tx = self.begin_member(inbox).await?;
        tx.consume = true;
        if !inbox {
            return Ok(Some(tx));
        }
        // A relay applies its events one after another, so every round trip
        // to the writer's thread here is one more in each event's latency: a
        // member joining an open group on SQLite sends its `SAVEPOINT` in the
        // same query. Whether the row went in is read from `RETURNING`, not
        // from the changed-row count, which SQLite does not reset for the
        // `SAVEPOINT` before it. If the query fails, dropping the
        // transaction undoes the savepoint, opened or not.
        const INSERT: &str = "INSERT INTO seams_inbox (consumer, event_id, handled_at_ms) \
             VALUES ($1, $2, $3) ON CONFLICT DO NOTHING RETURNING 1";
        static AFTER_SAVEPOINT: std::sync::LazyLock<String> =
            std::sync::LazyLock::new(|| format!("{SAVEPOINT}; {INSERT}"));
        let sql = if tx.savepoint_deferred {
            AFTER_SAVEPOINT.as_str()
        } else {
            INSERT
        };
        let inserted = sqlx::query(sql)
            .bind(consumer)
            .bind(&env.id)
            .bind(now_ms())
            .fetch_all(tx.conn())
            .await?;
        tx.savepoint_deferred = false;
        if inserted.is_empty() {
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
            sqlx::query_as("SELECT 1 FROM seams_inbox WHERE consumer = $1 AND event_id = $2")
                .bind(consumer)
                .bind(event_id)
                .fetch_optional(&mut *self.read().await?)
                .await?;
        Ok(row.is_some())
    }

    /// Whether the database answers a query now (a SQLite file always does;
    /// a PostgreSQL server may be restarting).
    pub async fn reachable(&self) -> bool {
        match self.inner.backend {
            Backend::Sqlite => true,
            Backend::Postgres => match self.read().await {
                Ok(mut conn) => sqlx::query("SELECT 1").execute(&mut *conn).await.is_ok(),
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
    pub async fn flush(&self) -> Result<(), sqlx::Error> {
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
            .map_err(|_| sqlx::Error::PoolClosed)?
            .clone()
        {
            Some(Err(e)) => Err(sqlx::Error::Protocol(format!("group commit failed: {e}"))),
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
            let _ = conn.close().await;
        }
        drop(w);
        self.inner.read.close().await;
    }
}

/// How many connections read at once.
pub(crate) const READERS: usize = 4;
/// How long a read waits for a free reader before it fails: short, so that
/// while a PostgreSQL server restarts a read fails (503, try again) rather
/// than holding its request.
const READ_WAIT: Duration = Duration::from_secs(3);

/// The connections reads go through.
///
/// On SQLite they are plain connections in a `deadpool`, not sqlx's pool:
/// sqlx pings every connection it takes back (`return_to_pool`), which on
/// SQLite is a second round trip to the connection's worker thread for each
/// read, and on a busy two-core machine the thread switches of those round
/// trips cost more than the reads. A file does not go away, and a read
/// dropped half-way leaves nothing behind (the worker finishes or resets
/// the statement before it takes the next command), so nothing needs the
/// ping. On PostgreSQL sqlx's pool stays: there a connection does die with
/// a server restart, and the pool tests it before handing it out.
enum Readers {
    Sqlite(deadpool::unmanaged::Pool<AnyConnection>),
    Postgres(AnyPool),
}

impl Readers {
    async fn open(location: &Location) -> Result<Readers, sqlx::Error> {
        match location {
            Location::Sqlite { .. } => {
                let pool =
                    deadpool::unmanaged::Pool::from_config(&deadpool::unmanaged::PoolConfig {
                        max_size: READERS,
                        timeout: Some(READ_WAIT),
                        runtime: Some(deadpool::Runtime::Tokio1),
                    });
                for _ in 0..READERS {
                    let conn = location.connect(true).await?;
                    if pool.add(conn).await.is_err() {
                        return Err(sqlx::Error::PoolClosed);
                    }
                }
                Ok(Readers::Sqlite(pool))
            }
            Location::Postgres { .. } => AnyPoolOptions::new()
                .max_connections(READERS as u32)
                .test_before_acquire(true)
                .acquire_timeout(READ_WAIT)
                .connect(&location.url(true))
                .await
                .map(Readers::Postgres),
        }
    }

    async fn get(&self) -> Result<ReadConn, sqlx::Error> {
        match self {
            Readers::Sqlite(pool) => match pool.get().await {
                Ok(conn) => Ok(ReadConn(Reader::Sqlite(conn))),
                Err(deadpool::unmanaged::PoolError::Timeout) => Err(sqlx::Error::PoolTimedOut),
                Err(_) => Err(sqlx::Error::PoolClosed),
            },
            Readers::Postgres(pool) => Ok(ReadConn(Reader::Postgres(pool.acquire().await?))),
        }
    }

    async fn close(&self) {
        match self {
            Readers::Sqlite(pool) => {
                // Waits (a while) for reads in flight to hand theirs back.
                for _ in 0..pool.status().size {
                    match pool.timeout_remove(Some(READ_WAIT)).await {
                        Ok(conn) => {
                            let _ = conn.close().await;
                        }
                        Err(_) => break,
                    }
                }
                pool.close();
            }
            Readers::Postgres(pool) => pool.close().await,
        }
    }
}

/// A connection for reads, from [`Db::read`]; back to the readers when dropped.
pub struct ReadConn(Reader);

enum Reader {
    Sqlite(deadpool::unmanaged::Object<AnyConnection>),
    Postgres(sqlx::pool::PoolConnection<sqlx::Any>),
}

impl std::ops::Deref for ReadConn {
    type Target = AnyConnection;

    fn deref(&self) -> &AnyConnection {
        match &self.0 {
            Reader::Sqlite(conn) => conn,
            Reader::Postgres(conn) => conn,
        }
    }
}

impl std::ops::DerefMut for ReadConn {
    fn deref_mut(&mut self) -> &mut AnyConnection {
        match &mut self.0 {
            Reader::Sqlite(conn) => conn,
            Reader::Postgres(conn) => conn,
        }
    }
}

impl std::fmt::Debug for ReadConn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReadConn").finish_non_exhaustive()
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
    /// Applies an event ([`Db::begin_consume`]): ordered after the previous
    /// event's transaction when a relay pipelines them ([`crate::pipeline`]).
    consume: bool,
    /// How to take this member's work back out.
    undo: Undo,
    /// Its savepoint was released already, by the last statement of a
    /// batch ([`Tx::commit_with`]).
    released: bool,
    /// Its `SAVEPOINT` goes with its batch ([`Db::commit_batch`]).
    savepoint_deferred: bool,
}

impl Tx {
    /// The connection, for the capability's own statements.
    pub fn conn(&mut self) -> &mut AnyConnection {
        self.writer
            .as_mut()
            .expect("a live transaction holds the writer")
            .conn
            .as_mut()
            .expect("a live transaction has a connection")
    }

    /// The SQL dialect of this transaction's database.
    pub fn backend(&self) -> Backend {
        self.db.backend()
    }

    /// The database this transaction writes.
    pub fn db(&self) -> &Db {
        &self.db
    }

    /// Appends `env` to the outbox; it is published only if this transaction
    /// commits. Returns its position in the outbox, which is final at commit
    /// (one writer), and is what a consistency token names.
    pub async fn publish(&mut self, env: &Envelope) -> Result<u64, sqlx::Error> {
        let emit = self.db.emit();
        let env = emit
            .written(env)
            .map_err(|e| sqlx::Error::Encode(e.into()))?;
        let json = serde_json::to_string(&env).map_err(|e| sqlx::Error::Encode(Box::new(e)))?;
        let (seq,): (i64,) = sqlx::query_as(
            "INSERT INTO seams_outbox (event_id, event_type, subject, envelope, created_at_ms) \
             VALUES ($1, $2, $3, $4, $5) RETURNING seq",
        )
        .bind(&env.id)
        .bind(&env.event_type)
        .bind(&env.subject)
        .bind(json)
        .bind(now_ms())
        .fetch_one(self.conn())
        .await?;
        self.published = true;
        Ok(seq as u64)
    }

    /// Remembers that this transaction wrote outbox rows, so its commit
    /// wakes the feed readers.
    pub(crate) fn mark_published(&mut self) {
        self.published = true;
    }

    /// Whether this transaction's savepoint can be released by the last
    /// statement of a batch: it has one (it joined an open group), the
    /// database runs a batch in one call (SQLite), and, if it applies an
    /// event, the event before it did not fail to commit (then its release
    /// must undo it instead, [`crate::pipeline`]). That outcome cannot
    /// change while this transaction holds the writer, so checking it
    /// before the batch is sent is as good as checking it at the release.
    pub(crate) fn can_release_in_batch(&self) -> bool {
        self.undo == Undo::Savepoint
            && self.backend() == Backend::Sqlite
            && !(self.consume
                && self
                    .writer
                    .as_ref()
                    .is_some_and(|w| crate::pipeline::predecessor_failed(&w.group)))
    }

    /// The last statement [`Tx::run`] sent released the savepoint.
    pub(crate) fn mark_released(&mut self) {
        self.released = true;
    }

    /// Whether this transaction joined a group others had opened (its work
    /// is undone to its savepoint, not by rolling the group back).
    #[cfg(test)]
    pub(crate) fn joined(&self) -> bool {
        self.undo == Undo::Savepoint
    }

    /// Whether this transaction's `SAVEPOINT` has not been sent, and must
    /// open its batch.
    pub(crate) fn savepoint_deferred(&self) -> bool {
        self.savepoint_deferred
    }

    /// Commits: returns once the group this transaction joined is durable
    /// (then feed readers are woken if events were published).
    pub async fn commit(mut self) -> Result<(), sqlx::Error> {
        // For traces only (DEBUG, which the default log filter leaves off):
        // the wait for the group's COMMIT, and how many members had
        // released into the group before this one, plus one.
        let span = tracing::debug_span!(
            "commit",
            database = %self.db.inner.name,
            group_member = tracing::field::Empty,
            otel.status_code = tracing::field::Empty,
        );
        let outcome = async {
            let (mut done, member) = self.release().await?;
            tracing::Span::current().record("group_member", member);
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
        .instrument(span.clone())
        .await;
        if outcome.is_err() {
            span.record("otel.status_code", "ERROR");
        }
        outcome
    }

    /// Joins the next group commit and returns without waiting for it:
    /// for bookkeeping whose loss in a crash is harmless because it is
    /// written again (a cursor behind its effects redelivers into the
    /// inbox; an acknowledgement is repeated on the next read).
    pub async fn commit_eventually(mut self) -> Result<(), sqlx::Error> {
        self.release().await.map(drop)
    }

    /// Releases this member's savepoint into the open group and asks for a
    /// commit; the receiver learns the group's outcome, the number is this
    /// member's place in the order of release into the group (1: first).
    async fn release(
        &mut self,
    ) -> Result<(watch::Receiver<Option<Result<(), String>>>, u32), sqlx::Error> {
        let mut w = self
            .writer
            .take()
            .expect("a live transaction holds the writer");
        if self.consume && crate::pipeline::predecessor_failed(&w.group) {
            // The previous event did not commit; this one must not be
            // applied before it is retried.
            if w.undo(self.undo).await.is_err() {
                w.dirty = Some(self.undo);
            }
            drop(w);
            self.db.inner.commit_wanted.notify_one();
            return Err(sqlx::Error::Protocol(
                "the previous event's transaction did not commit; this one is undone to keep their order".into(),
            ));
        }
        if self.undo == Undo::Savepoint
            && !self.released
            && let Err(e) = w.exec(RELEASE).await
        {
            w.dirty = Some(self.undo);
            return Err(e);
        }
        let group = w.group.clone();
        let member = group
            .members
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
            .saturating_add(1);
        if self.published {
            group
                .published
                .store(true, std::sync::atomic::Ordering::SeqCst);
        }
        let done = group.done.subscribe();
        let pipelined = self.consume && crate::pipeline::active();
        if pipelined {
            crate::pipeline::released(&group);
        }
        drop(w);
        if !pipelined {
            self.db.inner.commit_wanted.notify_one();
        }
        Ok((done, member))
    }

    /// Rolls back explicitly.
    pub async fn rollback(mut self) -> Result<(), sqlx::Error> {
        let mut w = self
            .writer
            .take()
            .expect("a live transaction holds the writer");
        let res = w.undo(self.undo).await;
        if res.is_err() {
            w.dirty = Some(self.undo);
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
            w.dirty = Some(self.undo);
            drop(w);
            self.db.inner.commit_wanted.notify_one();
        }
    }
}
