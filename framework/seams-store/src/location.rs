//! Where a capability's database lives, which dialect it speaks, and how
//! a connection to it is opened and set up.

use std::path::PathBuf;

use sqlx::{AnyConnection, Connection, Executor};

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
    pub(crate) fn backend(&self) -> Backend {
        match self {
            Location::Sqlite { .. } => Backend::Sqlite,
            Location::Postgres { .. } => Backend::Postgres,
        }
    }

    pub(crate) fn url(&self, read_only: bool) -> String {
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
    pub(crate) fn setup(&self) -> Vec<String> {
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

    pub(crate) async fn connect(&self, read_only: bool) -> Result<AnyConnection, sqlx::Error> {
        let mut conn = AnyConnection::connect(&self.url(read_only)).await?;
        for statement in self.setup() {
            conn.execute(statement.as_str()).await?;
        }
        Ok(conn)
    }
}
