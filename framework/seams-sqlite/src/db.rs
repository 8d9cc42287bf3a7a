//! Opening a capability database and running transactions in it.

use std::path::Path;
use std::str::FromStr;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use seams_core::Envelope;
use sqlx::migrate::Migrator;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteConnection, SqliteJournalMode, SqlitePool, SqlitePoolOptions,
    SqliteSynchronous,
};
use sqlx::{Sqlite, Transaction};
use tokio::sync::watch;

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

#[derive(Debug)]
struct Inner {
    /// Capability name, for logs and errors.
    name: String,
    /// The single writer connection.
    write: SqlitePool,
    /// Readers (WAL snapshots).
    read: SqlitePool,
    /// Bumped after every commit that wrote outbox rows; feed readers wait on it.
    outbox: watch::Sender<u64>,
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
            .min_connections(1)
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
        let read = SqlitePoolOptions::new()
            .max_connections(4)
            .acquire_timeout(Duration::from_secs(30))
            .connect_with(options.read_only(true))
            .await?;
        let (outbox, _) = watch::channel(0);
        Ok(Db {
            inner: Arc::new(Inner {
                name: name.to_owned(),
                write,
                read,
                outbox,
            }),
        })
    }

    /// The capability this database belongs to.
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// The pool for reads (never blocks on the writer).
    pub fn reader(&self) -> &SqlitePool {
        &self.inner.read
    }

    /// Starts a write transaction.
    pub async fn begin(&self) -> Result<Tx, sqlx::Error> {
        let tx = self.inner.write.begin().await?;
        Ok(Tx {
            tx,
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
            tx.tx.rollback().await?;
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

    /// Closes both pools (after in-flight work finished).
    pub async fn close(&self) {
        self.inner.write.close().await;
        self.inner.read.close().await;
    }
}

/// A write transaction in a capability's database.
///
/// Dropping it without [`Tx::commit`] rolls back, outbox rows included.
pub struct Tx {
    tx: Transaction<'static, Sqlite>,
    db: Db,
    published: bool,
}

impl Tx {
    /// The connection, for the capability's own statements.
    pub fn conn(&mut self) -> &mut SqliteConnection {
        &mut self.tx
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
        .execute(&mut *self.tx)
        .await?;
        self.published = true;
        Ok(res.last_insert_rowid() as u64)
    }

    /// Commits, then wakes feed readers if events were published.
    pub async fn commit(self) -> Result<(), sqlx::Error> {
        self.tx.commit().await?;
        if self.published {
            self.db.inner.outbox.send_modify(|n| *n += 1);
        }
        Ok(())
    }

    /// Rolls back explicitly.
    pub async fn rollback(self) -> Result<(), sqlx::Error> {
        self.tx.rollback().await
    }
}
