//! A successor's way into a PostgreSQL database whose writer lock the
//! process it replaces still holds (a rolling restart): the one place the
//! one-writer rule waits instead of refusing, and only when asked to.

use std::sync::Arc;
use std::time::Duration;

use crate::sql::DbError;
use crate::writer::WRITER_LOCK;

/// How a process that replaces another one (a rolling restart) opens a
/// PostgreSQL database whose writer lock its predecessor still holds: it
/// says so once through `waiting` (so that whoever runs both can stop the
/// predecessor now), then waits for the lock for at most `within`. Without
/// one, a held lock is refused at once. SQLite needs none: its own lock
/// serializes two processes' writers, one transaction at a time.
#[derive(Clone)]
pub struct TakeOver {
    /// The longest wait for the predecessor to let go.
    pub within: Duration,
    /// Called with the capability's name when its lock is found held.
    pub waiting: Arc<dyn Fn(&str) + Send + Sync>,
}

impl std::fmt::Debug for TakeOver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TakeOver")
            .field("within", &self.within)
            .finish_non_exhaustive()
    }
}

/// How often a process taking over polls for the writer lock.
const TAKE_OVER_POLL: Duration = Duration::from_millis(20);

/// Claims the writer lock on `conn`, waiting for it as `take_over` says.
pub(crate) async fn claim_writer_lock(
    conn: &mut sqlx::AnyConnection,
    name: &str,
    take_over: Option<&TakeOver>,
) -> Result<(), DbError> {
    let mut deadline = None;
    loop {
        // On sqlx: the bare writer connection, before any `Tx` or reader the surface runs on.
        let (claimed,): (bool,) = sqlx::query_as("SELECT pg_try_advisory_lock($1)")
            .bind(WRITER_LOCK)
            .fetch_one(&mut *conn)
            .await?;
        if claimed {
            return Ok(());
        }
        let Some(take_over) = take_over else {
            return Err(DbError::Protocol(
                "another process is the writer of this database (one writer per capability database)".into(),
            ));
        };
        let deadline = *deadline.get_or_insert_with(|| {
            tracing::info!(
                capability = name,
                "the writer lock is held: waiting for the process this one replaces"
            );
            (take_over.waiting)(name);
            tokio::time::Instant::now() + take_over.within
        });
        if tokio::time::Instant::now() >= deadline {
            return Err(DbError::Protocol(format!(
                "the process holding this database's writer lock did not let go within {} ms",
                take_over.within.as_millis()
            )));
        }
        tokio::time::sleep(TAKE_OVER_POLL).await;
    }
}
