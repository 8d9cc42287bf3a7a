//! Schema histories: the framework's own tables and each capability's,
//! one history per backend, applied in order when a database opens.

use sqlx::AnyConnection;
use sqlx::migrate::Migrator;

use crate::location::Backend;

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

impl Migrations {
    /// The history for `backend`.
    pub(crate) fn for_backend(&self, backend: Backend) -> &Migrator {
        match backend {
            Backend::Sqlite => &self.sqlite,
            Backend::Postgres => &self.postgres,
        }
    }
}

/// Runs `migrator` over `conn`, ignoring the other migrator's versions in
/// `_sqlx_migrations` (framework and capability share that table).
pub(crate) async fn migrate(
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
