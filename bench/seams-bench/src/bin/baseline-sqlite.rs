//! The storage baseline: the raw SQLite transaction that create-invoice
//! performs, one transaction per command, with nothing around it.
//!
//! Each command inserts an idempotency record, an invoice row, one line row
//! and an outbox row, in that order and in one transaction, into a database
//! created by billing's and the framework's own migrations (WAL, foreign keys
//! on, `synchronous=FULL`, or `NORMAL` with `--normal`), through sqlx as
//! billing does. The payloads are the real ones: the invoice is priced by
//! `billing::domain::Invoice::build`, the recorded response is billing's
//! invoice JSON and the outbox row is the CloudEvents envelope, so the rows
//! have the size they have in the system.
//!
//! For every pool and concurrency asked for, `C` tasks commit commands in a
//! closed loop for the duration, on a fresh database file:
//!
//! - `single`: a pool of one connection, as Seams' single writer: commands
//!   queue for it, and each commit is its own fsync;
//! - `multi`: a pool of `--multi-connections` connections: SQLite still lets
//!   one writer in at a time, and the others wait in its busy handler.
//!
//! It prints a line per point and one JSON line per point for scripts. The
//! loops are bounded by time and by `--max-commands`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, ensure};
use billing::domain::{Cart, Invoice};
use catalog_contract::{Amount, QuotedPrice};
use clap::{Parser, ValueEnum};
use hdrhistogram::Histogram;
use seams_bench::cpu::CpuSample;
use seams_bench::{Latency, histogram, record};
use seams_core::{CallContext, Clock, Envelope, SystemClock};
use serde_json::{Value, json};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};

/// How the commands reach the database.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Pool {
    /// One connection: commands queue for it (Seams' single writer).
    Single,
    /// Several connections contending for SQLite's one write lock.
    Multi,
}

impl Pool {
    fn name(self) -> &'static str {
        match self {
            Pool::Single => "single",
            Pool::Multi => "multi",
        }
    }
}

/// Raw SQLite create-invoice transactions per second (the storage baseline).
#[derive(Debug, Parser)]
#[command(name = "baseline-sqlite")]
struct Args {
    /// Folder for the database files (default: a fresh one under the temp dir, removed after).
    #[arg(long)]
    dir: Option<PathBuf>,
    /// Seconds of measurement per point.
    #[arg(long, default_value_t = 10.0)]
    duration: f64,
    /// Seconds of load before measuring starts, per point.
    #[arg(long, default_value_t = 1.0)]
    warmup: f64,
    /// Concurrent tasks, one point each (comma-separated).
    #[arg(long, value_delimiter = ',', default_value = "1,16,64")]
    concurrency: Vec<usize>,
    /// Pools to measure, each at every concurrency (`multi` skips concurrency 1).
    #[arg(
        long,
        value_enum,
        value_delimiter = ',',
        default_value = "single,multi"
    )]
    pools: Vec<Pool>,
    /// Connections of the `multi` pool.
    #[arg(long, default_value_t = 8)]
    multi_connections: u32,
    /// `synchronous=NORMAL` (survives a crash, not power loss) instead of `FULL`.
    #[arg(long)]
    normal: bool,
    /// Most commands per point, whatever the duration.
    #[arg(long, default_value_t = 5_000_000)]
    max_commands: u64,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    ensure!(
        args.duration > 0.0 && args.duration <= 3600.0,
        "--duration must be in (0, 3600] seconds"
    );
    ensure!(
        args.concurrency.iter().all(|c| (1..=4096).contains(c)),
        "--concurrency values must be 1..=4096"
    );
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(run(args))
}

async fn run(args: Args) -> anyhow::Result<()> {
    let (dir, remove) = match &args.dir {
        Some(dir) => (dir.clone(), false),
        None => (
            std::env::temp_dir().join(format!("baseline-sqlite-{}", uuid::Uuid::new_v4())),
            true,
        ),
    };
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let result = points(&args, &dir).await;
    if remove {
        let _ = std::fs::remove_dir_all(&dir);
    }
    result
}

async fn points(args: &Args, dir: &Path) -> anyhow::Result<()> {
    let synchronous = if args.normal { "normal" } else { "full" };
    for &pool in &args.pools {
        for &concurrency in &args.concurrency {
            if pool == Pool::Multi && concurrency == 1 {
                continue;
            }
            let connections = match pool {
                Pool::Single => 1,
                Pool::Multi => args.multi_connections,
            };
            let path = dir.join(format!("{}-{concurrency}.db", pool.name()));
            let db = open(&path, connections, args.normal).await?;
            let point = measure(&db, concurrency, args).await;
            db.close().await;
            for suffix in ["", "-wal", "-shm"] {
                let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
            }
            let latency = Latency::of(&point.latency);
            let throughput = point.ok as f64 / args.duration;
            let n_errors: u64 = point.errors.values().sum();
            println!(
                "raw sqlite {synchronous} {} pool ({connections} conn), {concurrency} tasks: {throughput:.1} tx/s; {latency}; {n_errors} errors {:?}; other processes {} cores",
                pool.name(),
                point.errors,
                point
                    .cpu
                    .as_ref()
                    .map_or(Value::Null, |c| c["other_cores"].clone()),
            );
            let result = json!({
                "kind": "raw-sqlite",
                "label": format!("raw-sqlite/{synchronous}/{}/c{concurrency}", pool.name()),
                "synchronous": synchronous,
                "pool": pool.name(),
                "connections": connections,
                "concurrency": concurrency,
                "duration_s": args.duration,
                "ok": point.ok,
                "throughput": throughput,
                "latency": latency,
                "errors": point.errors,
                "error_count": n_errors,
                "cpu": point.cpu,
                "cpu_us_per_op": point.cpu.as_ref().and_then(|c| c["own_cores"].as_f64()).filter(|_| point.ok > 0).map(|cores| cores * 1e6 / throughput),
            });
            println!("{result}");
        }
    }
    Ok(())
}

async fn open(path: &Path, connections: u32, normal: bool) -> anyhow::Result<SqlitePool> {
    // The tables come from billing's and the framework's own migrations, so
    // the baseline writes into exactly what create-invoice writes into.
    seams_store::Db::open(path, "billing", &billing::MIGRATIONS)
        .await?
        .close()
        .await;
    let options = SqliteConnectOptions::from_str(&format!("sqlite://{}", path.display()))?
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(if normal {
            SqliteSynchronous::Normal
        } else {
            SqliteSynchronous::Full
        })
        .busy_timeout(Duration::from_secs(10))
        .foreign_keys(true);
    let pool = SqlitePoolOptions::new()
        .max_connections(connections)
        .min_connections(connections)
        .acquire_timeout(Duration::from_secs(30))
        .connect_with(options)
        .await
        .with_context(|| format!("opening {}", path.display()))?;
    Ok(pool)
}

/// What one point measured.
struct Point {
    latency: Histogram<u64>,
    ok: u64,
    errors: BTreeMap<String, u64>,
    /// Cores used by this process and by others over the measured window.
    cpu: Option<Value>,
}

async fn measure(db: &SqlitePool, concurrency: usize, args: &Args) -> Point {
    let start = Instant::now();
    let from = start + Duration::from_secs_f64(args.warmup);
    let end = from + Duration::from_secs_f64(args.duration);
    let started = Arc::new(AtomicU64::new(0));
    let cpu = tokio::spawn(async move {
        tokio::time::sleep_until(tokio::time::Instant::from_std(from)).await;
        let before = CpuSample::now(None)?;
        tokio::time::sleep_until(tokio::time::Instant::from_std(end)).await;
        Some(CpuSample::now(None)?.since(&before, end.duration_since(from)))
    });
    let mut tasks = tokio::task::JoinSet::new();
    for task in 0..concurrency {
        let db = db.clone();
        let started = started.clone();
        let max = args.max_commands;
        tasks.spawn(async move {
            let mut point = Point {
                latency: histogram(),
                ok: 0,
                errors: BTreeMap::new(),
                cpu: None,
            };
            for n in 0.. {
                let t = Instant::now();
                if t >= end || started.fetch_add(1, Ordering::Relaxed) >= max {
                    break;
                }
                let command = Command::new(task, n);
                let res = command.commit(&db).await;
                if t >= from {
                    match res {
                        Ok(()) => {
                            point.ok += 1;
                            record(&mut point.latency, t.elapsed());
                        }
                        Err(e) => {
                            let mut kind = e.to_string();
                            kind.truncate(80);
                            *point.errors.entry(kind).or_default() += 1;
                        }
                    }
                }
            }
            point
        });
    }
    let mut total = Point {
        latency: histogram(),
        ok: 0,
        errors: BTreeMap::new(),
        cpu: None,
    };
    while let Some(joined) = tasks.join_next().await {
        let Ok(point) = joined else {
            *total.errors.entry("task panicked".into()).or_default() += 1;
            continue;
        };
        total.ok += point.ok;
        total
            .latency
            .add(&point.latency)
            .expect("histograms with the same bounds merge");
        for (kind, n) in point.errors {
            *total.errors.entry(kind).or_default() += n;
        }
    }
    total.cpu = cpu.await.ok().flatten();
    total
}

/// One create-invoice command's rows, with billing's real payloads.
struct Command {
    key: String,
    fingerprint: String,
    body: Vec<u8>,
    invoice: Invoice,
    envelope: Envelope,
    envelope_json: String,
}

impl Command {
    fn new(task: usize, n: u64) -> Command {
        let now = SystemClock.now_rfc3339();
        let cart = Cart::parse(&format!("customer-{task}"), &[("TEA".to_owned(), 1)])
            .expect("a one-line cart is valid");
        let prices = [QuotedPrice {
            sku: "TEA".into(),
            name: "Green tea".into(),
            unit_price: Amount {
                amount: 450,
                currency: "EUR".into(),
            },
        }];
        let (invoice, event) = Invoice::build(
            uuid::Uuid::now_v7().to_string(),
            &cart,
            &prices,
            now.clone(),
        )
        .expect("the cart is priced");
        let body =
            serde_json::to_vec(&billing::service::invoice_dto(&invoice)).expect("DTOs serialize");
        let envelope = Envelope::wrap(
            &event,
            uuid::Uuid::now_v7().to_string(),
            now,
            &CallContext::new_root(),
        )
        .expect("invoice-created carries its invoice id");
        let envelope_json = serde_json::to_string(&envelope).expect("envelopes serialize");
        Command {
            key: format!("raw-{task}-{n}-{}", uuid::Uuid::new_v4().simple()),
            // The size of a SHA-256 fingerprint in hex.
            fingerprint: format!(
                "{}{}",
                uuid::Uuid::new_v4().simple(),
                uuid::Uuid::new_v4().simple()
            ),
            body,
            invoice,
            envelope,
            envelope_json,
        }
    }

    /// The four inserts in one transaction, as billing's store does them.
    async fn commit(&self, db: &SqlitePool) -> Result<(), sqlx::Error> {
        let now_ms = now_ms();
        let inv = &self.invoice;
        let mut tx = db.begin().await?;
        sqlx::query(
            "INSERT INTO seams_idempotency (scope, key, fingerprint, status, body, created_at_ms) \
             VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
        )
        .bind("billing.create-invoice")
        .bind(&self.key)
        .bind(&self.fingerprint)
        .bind(201_i64)
        .bind(&self.body)
        .bind(now_ms)
        .execute(&mut *tx)
        .await?;
        sqlx::query("INSERT INTO invoices (id, customer_id, currency, total_minor, status, created_at) VALUES (?, ?, ?, ?, ?, ?)")
            .bind(&inv.id)
            .bind(&inv.customer_id)
            .bind(inv.total.currency.code())
            .bind(inv.total.minor)
            .bind(inv.status.as_str())
            .bind(&inv.created_at)
            .execute(&mut *tx)
            .await?;
        for (i, line) in inv.lines.iter().enumerate() {
            sqlx::query(
                "INSERT INTO invoice_lines (invoice_id, line_no, sku, quantity, unit_minor, line_total_minor) \
                 VALUES (?, ?, ?, ?, ?, ?)",
            )
            .bind(&inv.id)
            .bind(i as i64)
            .bind(&line.sku)
            .bind(i64::from(line.quantity))
            .bind(line.unit_price.minor)
            .bind(line.line_total.minor)
            .execute(&mut *tx)
            .await?;
        }
        sqlx::query(
            "INSERT INTO seams_outbox (event_id, event_type, subject, envelope, created_at_ms) \
             VALUES (?, ?, ?, ?, ?)",
        )
        .bind(&self.envelope.id)
        .bind(&self.envelope.event_type)
        .bind(&self.envelope.subject)
        .bind(&self.envelope_json)
        .bind(now_ms)
        .execute(&mut *tx)
        .await?;
        tx.commit().await
    }
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}
