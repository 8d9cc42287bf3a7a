//! What SQLite runs for a write, pinned where it was found to cost: no
//! table of any capability (or of the framework) checks a written row by
//! building a temporary B-tree. SQLite evaluates `CHECK (x IN (a, b, c))`,
//! more than two values, by filling a temporary B-tree with the list on
//! every insert and update, about 10,000 instructions a row; the tables
//! an invoice writes had four of them (bench/invoice-cost.sh), rewritten
//! into comparisons joined by OR by a migration of each capability.

use std::str::FromStr;

use e2e::{Mode, Shop};
use sqlx::{ConnectOptions, Connection, Row};

/// Counts `OpenEphemeral` (a temporary B-tree) in SQLite's program for `sql`.
async fn temporary_btrees(conn: &mut sqlx::SqliteConnection, sql: &str) -> anyhow::Result<usize> {
    let program = sqlx::raw_sql(&format!("EXPLAIN {sql}"))
        .fetch_all(&mut *conn)
        .await?;
    let mut n = 0;
    for op in &program {
        if op.try_get::<String, _>("opcode")? == "OpenEphemeral" {
            n += 1;
        }
    }
    Ok(n)
}

#[tokio::test]
async fn no_write_builds_a_temporary_btree() -> anyhow::Result<()> {
    let mut shop = Shop::start(Mode::Monolith)?;
    let mut databases = Vec::new();
    for entry in std::fs::read_dir(shop.data_dir())? {
        let path = entry?.path();
        if path.extension().is_some_and(|e| e == "db") {
            databases.push(path);
        }
    }
    databases.sort();
    assert_eq!(databases.len(), 5, "{databases:?}");
    let mut offending = Vec::new();
    let mut checked = 0;
    for path in &databases {
        let mut conn = sqlx::sqlite::SqliteConnectOptions::from_str("sqlite:")?
            .filename(path)
            .read_only(true)
            .connect()
            .await?;
        let tables: Vec<String> = sqlx::query_scalar(
            "SELECT name FROM sqlite_schema WHERE type = 'table' \
             AND name NOT LIKE 'sqlite_%' AND name <> '_sqlx_migrations' ORDER BY name",
        )
        .fetch_all(&mut conn)
        .await?;
        for table in tables {
            // An insert runs every CHECK of the table; an update of a
            // column runs the same expressions.
            if temporary_btrees(
                &mut conn,
                &format!("INSERT INTO \"{table}\" DEFAULT VALUES"),
            )
            .await?
                > 0
            {
                offending.push(format!("{}: {table}", path.display()));
            }
            checked += 1;
        }
        conn.close().await?;
    }
    assert!(checked >= 30, "only {checked} tables");
    assert!(
        offending.is_empty(),
        "tables whose writes build a temporary B-tree: {offending:#?}"
    );
    // The check itself sees one: a CHECK with an IN list of three values.
    let mut scratch = sqlx::sqlite::SqliteConnectOptions::from_str("sqlite::memory:")?
        .connect()
        .await?;
    sqlx::raw_sql("CREATE TABLE t (s TEXT CHECK (s IN ('a', 'b', 'c')))")
        .execute(&mut scratch)
        .await?;
    assert_eq!(
        temporary_btrees(&mut scratch, "INSERT INTO t DEFAULT VALUES").await?,
        1
    );
    shop.stop()?;
    Ok(())
}
