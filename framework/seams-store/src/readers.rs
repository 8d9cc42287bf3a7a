//! The connections reads go through: committed snapshots, never waiting
//! for the writer.

use std::time::Duration;

use sqlx::AnyPool;
use sqlx::any::AnyPoolOptions;

use crate::location::Location;
use crate::sql::Target;

/// How many connections read at once.
pub(crate) const READERS: usize = 4;
/// How long a read waits for a free reader before it fails: short, so that
/// while a PostgreSQL server restarts a read fails (503, try again) rather
/// than holding its request.
const READ_WAIT: Duration = Duration::from_secs(3);

/// The connections reads go through.
///
/// On SQLite they are rusqlite connections in a `deadpool`, each statement
/// run inline on the task that reads ([`crate::sqlite`] says why): no
/// worker thread, no ping when a connection goes back (a file does not go
/// away), and a read cannot be dropped half-way, since it does not wait. On
/// PostgreSQL sqlx's pool stays: there a connection does die with a server
/// restart, and the pool tests it before handing it out.
pub(crate) enum Readers {
    Sqlite(deadpool::unmanaged::Pool<rusqlite::Connection>),
    Postgres(AnyPool),
}

impl Readers {
    pub(crate) async fn open(location: &Location) -> Result<Readers, sqlx::Error> {
        match location {
            Location::Sqlite { .. } => {
                let pool =
                    deadpool::unmanaged::Pool::from_config(&deadpool::unmanaged::PoolConfig {
                        max_size: READERS,
                        timeout: Some(READ_WAIT),
                        runtime: Some(deadpool::Runtime::Tokio1),
                    });
                for _ in 0..READERS {
                    let conn = crate::sqlite::open_reader(location)?;
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
                // Reads only, as SQLite's readers open the file read-only:
                // a write belongs to the single writer, whose order is the
                // outbox's order.
                .after_connect(|conn, _| {
                    Box::pin(async move {
                        sqlx::Executor::execute(
                            conn,
                            "SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY",
                        )
                        .await
                        .map(drop)
                    })
                })
                .connect(&location.url(true))
                .await
                .map(Readers::Postgres),
        }
    }

    pub(crate) async fn get(&self) -> Result<ReadConn, sqlx::Error> {
        match self {
            Readers::Sqlite(pool) => match pool.get().await {
                Ok(conn) => Ok(ReadConn(Reader::Sqlite(conn))),
                Err(deadpool::unmanaged::PoolError::Timeout) => Err(sqlx::Error::PoolTimedOut),
                Err(_) => Err(sqlx::Error::PoolClosed),
            },
            Readers::Postgres(pool) => Ok(ReadConn(Reader::Postgres(pool.acquire().await?))),
        }
    }

    pub(crate) async fn close(&self) {
        match self {
            Readers::Sqlite(pool) => {
                // Waits (a while) for reads in flight to hand theirs back.
                for _ in 0..pool.status().size {
                    match pool.timeout_remove(Some(READ_WAIT)).await {
                        Ok(conn) => {
                            let _ = conn.close();
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

/// A connection for reads, from [`crate::Db::read`]; back to the readers when dropped.
pub struct ReadConn(Reader);

enum Reader {
    Sqlite(deadpool::unmanaged::Object<rusqlite::Connection>),
    Postgres(sqlx::pool::PoolConnection<sqlx::Any>),
}

impl ReadConn {
    pub(crate) fn target(&mut self) -> Target<'_> {
        match &mut self.0 {
            Reader::Sqlite(conn) => Target(&mut **conn),
            Reader::Postgres(conn) => Target(&mut **conn),
        }
    }
}

impl std::fmt::Debug for ReadConn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReadConn").finish_non_exhaustive()
    }
}
