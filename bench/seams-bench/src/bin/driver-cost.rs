//! What one write transaction of the store's shape costs in CPU through
//! each SQLite driver, counted in instructions: `COUNT` transactions after
//! a fixed setup, so that `bench/driver-cost.sh` can run it under
//! callgrind at two counts and divide the difference in instructions by
//! the difference in counts. It is there to decide whether the store's
//! SQLite backend should leave sqlx, whose SQLite connection runs every
//! statement on a worker thread of its own and hands the results back
//! through channels, for rusqlite called inline on the calling tokio
//! thread.
//!
//! Every transaction is a group-commit member of `seams-store` alone in
//! its group: `BEGIN IMMEDIATE`, `SAVEPOINT seams_tx`, four
//! `INSERT ... RETURNING id` binding a text, an integer and a text and
//! reading the id, `RELEASE SAVEPOINT seams_tx`, `COMMIT`: eight
//! statements. The database is a fresh file in a temporary folder,
//! removed at the end, set up with the store's own pragmas
//! (`seams_store::location`: WAL, `synchronous=FULL`, its default
//! durability, `busy_timeout`, foreign keys, `temp_store=MEMORY`). The
//! transactions run one after another in one task spawned on a tokio
//! multi-thread runtime of two workers, as a request's handler would run
//! them:
//! - `any`: sqlx's `AnyConnection`, as the store uses it;
//! - `sqlite`: sqlx's `SqliteConnection`, the same driver without `Any`'s
//!   conversions;
//! - `rusqlite`: a rusqlite `Connection` called inline in the task (no
//!   thread, no channel), every statement through `prepare_cached`; the
//!   task yields to the runtime once per transaction, since a store whose
//!   calls never yield would hold its worker for as long as commands come.
//!
//! And the same transaction with its four inserts sent as one batch, as
//! the store's `Batch` sends the statements nobody needs an answer from
//! (`BEGIN IMMEDIATE`, `SAVEPOINT`, `RELEASE`, `COMMIT` stay on their own,
//! so five round trips instead of eight):
//! - `any-batch`, `sqlite-batch`: one query string of the four inserts
//!   without `RETURNING`, placeholders renumbered `$1`..`$12`, executed
//!   once (the string is built once: the store's renumbering is not the
//!   driver's cost);
//! - `rusqlite-batch`: the four inserts without `RETURNING`, each a cached
//!   prepared statement, executed in a row.
//!
//! At the end it counts the rows (and, with `RETURNING`, checks the last
//! id read), so a run that lost writes fails instead of counting less.

use anyhow::{Context, ensure};
use clap::{Parser, ValueEnum};
use sqlx::{ConnectOptions, Connection};

/// The table every insert writes: the store's rows are wider, but the
/// drivers' work per statement is what differs here.
const SCHEMA: &str =
    "CREATE TABLE t (id INTEGER PRIMARY KEY, a TEXT NOT NULL, b INTEGER NOT NULL, c TEXT)";
/// The store's setup of a SQLite connection (`Location::setup`, durability full).
const PRAGMAS: [&str; 5] = [
    "PRAGMA journal_mode = WAL",
    "PRAGMA synchronous = FULL",
    "PRAGMA busy_timeout = 10000",
    "PRAGMA foreign_keys = ON",
    "PRAGMA temp_store = MEMORY",
];
const BEGIN: &str = "BEGIN IMMEDIATE";
/// The store's savepoint statements (`seams_store::writer`).
const SAVEPOINT: &str = "SAVEPOINT seams_tx";
const RELEASE: &str = "RELEASE SAVEPOINT seams_tx";
const COMMIT: &str = "COMMIT";
/// Inserts per transaction.
const INSERTS: i64 = 4;
const INSERT_RETURNING: &str = "INSERT INTO t (a, b, c) VALUES ($1, $2, $3) RETURNING id";
const INSERT_RETURNING_RUSQLITE: &str = "INSERT INTO t (a, b, c) VALUES (?1, ?2, ?3) RETURNING id";
const INSERT_RUSQLITE: &str = "INSERT INTO t (a, b, c) VALUES (?1, ?2, ?3)";
/// `INSERTS` inserts in one query string, as the store's `Batch` joins them.
const INSERT_BATCH: &str = "INSERT INTO t (a, b, c) VALUES ($1, $2, $3);\n\
     INSERT INTO t (a, b, c) VALUES ($4, $5, $6);\n\
     INSERT INTO t (a, b, c) VALUES ($7, $8, $9);\n\
     INSERT INTO t (a, b, c) VALUES ($10, $11, $12)";
/// The third value of every row.
const TEXT: &str = "some text value here";

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Mode {
    Any,
    AnyBatch,
    Sqlite,
    SqliteBatch,
    Rusqlite,
    RusqliteBatch,
}

impl Mode {
    fn batch(self) -> bool {
        matches!(
            self,
            Mode::AnyBatch | Mode::SqliteBatch | Mode::RusqliteBatch
        )
    }
}

#[derive(Debug, Parser)]
#[command(
    name = "driver-cost",
    about = "Runs COUNT store-shaped SQLite write transactions through one driver, for callgrind"
)]
struct Args {
    #[arg(value_enum)]
    mode: Mode,
    count: i64,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    ensure!(
        (1..=10_000_000).contains(&args.count),
        "COUNT must be in 1..=10000000"
    );
    let dir = tempfile::Builder::new()
        .prefix("driver-cost-")
        .tempdir()
        .context("creating the temporary folder")?;
    let path = dir.path().join("driver-cost.db");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let (mode, count) = (args.mode, args.count);
    let rows = runtime.block_on(async move {
        tokio::spawn(async move {
            match mode {
                Mode::Any | Mode::AnyBatch => any(&path, count, mode.batch()).await,
                Mode::Sqlite | Mode::SqliteBatch => sqlite(&path, count, mode.batch()).await,
                Mode::Rusqlite | Mode::RusqliteBatch => {
                    rusqlite_inline(&path, count, mode.batch()).await
                }
            }
        })
        .await
        .context("the transactions' task failed")?
    })?;
    drop(runtime);
    dir.close().context("removing the temporary folder")?;
    println!("{count} transactions, {rows} rows");
    Ok(())
}

/// The text bound first in insert `j` of transaction `i`.
fn name(i: i64, j: i64) -> String {
    format!("inv-{i}-{j}")
}

/// Checks that `count` transactions left their rows, and the last id read.
fn check(count: i64, rows: i64, last_id: Option<i64>) -> anyhow::Result<i64> {
    ensure!(
        rows == count * INSERTS,
        "{rows} rows after {count} transactions"
    );
    if let Some(id) = last_id {
        ensure!(id == rows, "the last id read was {id}, not {rows}");
    }
    Ok(rows)
}

/// The transactions through sqlx, on `$conn` (an `AnyConnection` or a
/// `SqliteConnection`: the same calls, which no generic bound over sqlx's
/// executor traits states as briefly); evaluates to the rows checked.
macro_rules! through_sqlx {
    ($conn:ident, $count:expr, $batch:expr) => {{
        for statement in PRAGMAS.into_iter().chain([SCHEMA]) {
            sqlx::query(statement).execute(&mut $conn).await?;
        }
        let mut last_id = None;
        for i in 0..$count {
            sqlx::query(BEGIN).execute(&mut $conn).await?;
            sqlx::query(SAVEPOINT).execute(&mut $conn).await?;
            if $batch {
                let mut query = sqlx::query(INSERT_BATCH);
                for j in 0..INSERTS {
                    query = query.bind(name(i, j)).bind(i * 10 + j).bind(TEXT);
                }
                query.execute(&mut $conn).await?;
            } else {
                for j in 0..INSERTS {
                    let id: i64 = sqlx::query_scalar(INSERT_RETURNING)
                        .bind(name(i, j))
                        .bind(i * 10 + j)
                        .bind(TEXT)
                        .fetch_one(&mut $conn)
                        .await?;
                    last_id = Some(id);
                }
            }
            sqlx::query(RELEASE).execute(&mut $conn).await?;
            sqlx::query(COMMIT).execute(&mut $conn).await?;
        }
        let rows: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM t")
            .fetch_one(&mut $conn)
            .await?;
        $conn.close().await?;
        check($count, rows, last_id)
    }};
}

/// `sqlx::AnyConnection`, connected and set up as `Location::connect` does.
async fn any(path: &std::path::Path, count: i64, batch: bool) -> anyhow::Result<i64> {
    sqlx::any::install_default_drivers();
    let mut conn =
        sqlx::AnyConnection::connect(&format!("sqlite://{}?mode=rwc", path.display())).await?;
    through_sqlx!(conn, count, batch)
}

/// `sqlx::SqliteConnection`, set up with the same statements.
async fn sqlite(path: &std::path::Path, count: i64, batch: bool) -> anyhow::Result<i64> {
    let mut conn = sqlx::sqlite::SqliteConnectOptions::new()
        .filename(path)
        .create_if_missing(true)
        .connect()
        .await?;
    through_sqlx!(conn, count, batch)
}

/// Runs `sql`, which binds nothing and answers no row, through rusqlite's
/// statement cache.
fn exec(conn: &rusqlite::Connection, sql: &str) -> rusqlite::Result<usize> {
    conn.prepare_cached(sql)?.execute([])
}

/// A rusqlite `Connection` called inline in the task: every statement
/// runs on the tokio worker that polls the task.
async fn rusqlite_inline(path: &std::path::Path, count: i64, batch: bool) -> anyhow::Result<i64> {
    let conn = rusqlite::Connection::open(path)?;
    for statement in PRAGMAS.into_iter().chain([SCHEMA]) {
        // `PRAGMA journal_mode` answers with a row: read it, as sqlx does.
        conn.prepare(statement)?.query([])?.next()?;
    }
    let mut last_id = None;
    for i in 0..count {
        exec(&conn, BEGIN)?;
        exec(&conn, SAVEPOINT)?;
        if batch {
            for j in 0..INSERTS {
                conn.prepare_cached(INSERT_RUSQLITE)?
                    .execute(rusqlite::params![name(i, j), i * 10 + j, TEXT])?;
            }
        } else {
            for j in 0..INSERTS {
                let id: i64 = conn
                    .prepare_cached(INSERT_RETURNING_RUSQLITE)?
                    .query_row(rusqlite::params![name(i, j), i * 10 + j, TEXT], |row| {
                        row.get(0)
                    })?;
                last_id = Some(id);
            }
        }
        exec(&conn, RELEASE)?;
        exec(&conn, COMMIT)?;
        tokio::task::yield_now().await;
    }
    let rows: i64 = conn.query_row("SELECT COUNT(*) FROM t", [], |row| row.get(0))?;
    conn.close().map_err(|(_, e)| e)?;
    check(count, rows, last_id)
}
