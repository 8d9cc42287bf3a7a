//! PostgreSQL's [`Driver`]: sqlx's `Any` connection, one statement per
//! round trip, and how the writer's connection is opened (the advisory
//! writer lock claimed before anything is written).

use seams_core::BoxFuture;
use sqlx::any::AnyArguments;
use sqlx::{AnyConnection, Arguments};

use crate::driver::{Answer, Committed, Driver, Ran, Want};
use crate::location::Location;
use crate::sql::{DbError, Row, Value};
use crate::take_over::TakeOver;

/// Opens the writer's connection to `location` and claims the database's
/// writer lock, waiting for a predecessor's as `take_over` says.
pub(crate) async fn open_writer(
    location: &Location,
    name: &str,
    take_over: Option<&TakeOver>,
) -> Result<AnyConnection, DbError> {
    let mut conn = location.connect(false).await?;
    // A second process writing the same database would interleave outbox
    // sequence numbers with commits out of order, and consumers' cursors
    // would skip events: refuse it.
    crate::take_over::claim_writer_lock(&mut conn, name, take_over).await?;
    Ok(conn)
}

/// `values` as sqlx's arguments.
fn arguments(values: Vec<Value<'_>>) -> Result<AnyArguments<'_>, DbError> {
    let mut args = AnyArguments::default();
    args.reserve(values.len(), 0);
    for value in values {
        value.add_to(&mut args).map_err(DbError::Encode)?;
    }
    Ok(args)
}

impl Driver for AnyConnection {
    fn run<'c, 'q: 'c>(
        &'c mut self,
        sql: &'q str,
        values: Vec<Value<'q>>,
        want: Want,
    ) -> Answer<'c, Ran> {
        let query = match arguments(values) {
            Ok(args) => sqlx::query_with(sql, args),
            Err(e) => return Answer::Now(Err(e)),
        };
        Answer::Later(Box::pin(async move {
            Ok(match want {
                Want::Changes => Ran {
                    rows: Vec::new(),
                    changes: query.execute(self).await?.rows_affected(),
                },
                Want::First => Ran {
                    rows: query
                        .fetch_optional(self)
                        .await?
                        .map(Row::any)
                        .into_iter()
                        .collect(),
                    changes: 0,
                },
                Want::All => Ran {
                    rows: query
                        .fetch_all(self)
                        .await?
                        .into_iter()
                        .map(Row::any)
                        .collect(),
                    changes: 0,
                },
            })
        }))
    }

    fn exec(&mut self, sql: &'static str) -> Answer<'_, ()> {
        Answer::Later(Box::pin(async move {
            // One at a time: sqlx prepares what `query` is given, and
            // PostgreSQL prepares one statement at a time (`UNDO` is two).
            for statement in sql.split(';').map(str::trim).filter(|s| !s.is_empty()) {
                sqlx::query(statement).execute(&mut *self).await?;
            }
            Ok(())
        }))
    }

    fn commit(mut self: Box<Self>) -> BoxFuture<'static, Committed> {
        Box::pin(async move {
            let result = self.exec("COMMIT").get().await;
            (Some(self as Box<dyn Driver>), result)
        })
    }

    fn close(self: Box<Self>) -> BoxFuture<'static, ()> {
        Box::pin(async move {
            let _ = sqlx::Connection::close(*self).await;
        })
    }
}
