//! The PostgreSQL storage baseline: the raw transaction that create-invoice
//! performs on PostgreSQL, one transaction per command, with nothing around
//! it, so the split configuration's figures can be read against what the
//! database alone sustains on the same machine in the same run.
//!
//! Each command is `BEGIN`, an idempotency record, an invoice row, one line
//! row, an outbox row and `COMMIT`: six statements, six round trips, in the
//! order and with the SQL billing's PostgreSQL store uses, through sqlx
//! (prepared statements, cached per connection). The tables are billing's
//! `invoices` and `invoice_lines` and the framework's `seams_outbox` and
//! `seams_idempotency` with their final DDL (copied below from the
//! PostgreSQL migrations), in a database `baseline_<random>` this tool
//! creates through `--admin-url` and drops at the end. The server's own
//! durability settings are kept (default: `synchronous_commit=on`, fsync on)
//! and reported. The payloads are the real ones: the invoice is priced by
//! `billing::domain::Invoice::build`, the recorded response is billing's
//! invoice JSON and the outbox row is the CloudEvents envelope.
//!
//! For every concurrency asked for, a fresh pool of `C` connections serves
//! `C` tasks committing commands in a closed loop for the duration, on
//! emptied tables after a checkpoint. The latency is the whole transaction,
//! from `BEGIN` to the answer to `COMMIT`.
//!
//! With `--server-pid` (the postmaster), the CPU of the server's processes
//! is read from `/proc` too: `cpu_us_per_op` is then this process plus the
//! server per command (the same work that raw SQLite's figure holds in one
//! process), and "other processes" excludes both.
//!
//! It prints a line per point and one JSON line per point for scripts. The
//! loops are bounded by time and by `--max-commands`; only loopback servers
//! (or a Unix socket) are accepted.

use std::collections::BTreeMap;
use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, ensure};
use billing::domain::{Cart, Invoice};
use catalog_contract::{Amount, QuotedPrice};
use clap::Parser;
use hdrhistogram::Histogram;
use seams_bench::cpu::{CpuSample, process_ticks};
use seams_bench::{Latency, histogram, record};
use seams_core::{CallContext, Clock, Envelope, SystemClock};
use serde_json::{Value, json};
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::{Connection, Executor, PgConnection};

/// The tables create-invoice writes, as billing's and the framework's
/// PostgreSQL migrations leave them.
const SCHEMA: &[&str] = &[
    "CREATE TABLE invoices (
        id           TEXT   PRIMARY KEY,
        customer_id  TEXT   NOT NULL,
        currency     TEXT   NOT NULL CONSTRAINT invoices_currency_check CHECK (length(currency) = 3),
        total_minor  BIGINT NOT NULL CONSTRAINT invoices_total_minor_check CHECK (total_minor >= 0),
        status       TEXT   NOT NULL CONSTRAINT invoices_status_check CHECK (status IN ('open', 'paid', 'voided', 'refunded')),
        created_at   TEXT   NOT NULL
    )",
    "CREATE INDEX invoices_customer ON invoices (customer_id)",
    "CREATE TABLE invoice_lines (
        invoice_id       TEXT   NOT NULL REFERENCES invoices (id),
        line_no          BIGINT NOT NULL,
        sku              TEXT   NOT NULL,
        quantity         BIGINT NOT NULL CHECK (quantity > 0),
        unit_minor       BIGINT NOT NULL CHECK (unit_minor >= 0),
        line_total_minor BIGINT NOT NULL CHECK (line_total_minor = unit_minor * quantity),
        PRIMARY KEY (invoice_id, line_no)
    )",
    "CREATE TABLE seams_outbox (
        seq           BIGSERIAL PRIMARY KEY,
        event_id      TEXT   NOT NULL UNIQUE,
        event_type    TEXT   NOT NULL,
        subject       TEXT   NOT NULL,
        envelope      TEXT   NOT NULL,
        created_at_ms BIGINT NOT NULL
    )",
    "CREATE TABLE seams_idempotency (
        scope         TEXT   NOT NULL,
        key           TEXT   NOT NULL,
        fingerprint   TEXT   NOT NULL,
        status        BIGINT NOT NULL,
        body          BYTEA  NOT NULL,
        created_at_ms BIGINT NOT NULL,
        PRIMARY KEY (scope, key)
    )",
    "CREATE INDEX seams_idempotency_age ON seams_idempotency (created_at_ms)",
];

/// Raw PostgreSQL create-invoice transactions per second (the PostgreSQL storage baseline).
#[derive(Debug, Parser)]
#[command(name = "baseline-postgres")]
struct Args {
    /// A role allowed to create databases, e.g.
    /// `postgres://postgres:PW@127.0.0.1:5432/postgres` (loopback or Unix socket only).
    #[arg(long, env = "BASELINE_PG_ADMIN_URL")]
    admin_url: String,
    /// Seconds of measurement per point.
    #[arg(long, default_value_t = 10.0)]
    duration: f64,
    /// Seconds of load before measuring starts, per point.
    #[arg(long, default_value_t = 1.0)]
    warmup: f64,
    /// Concurrent tasks, each with its own connection, one point each (comma-separated).
    #[arg(long, value_delimiter = ',', default_value = "1,16,64")]
    concurrency: Vec<usize>,
    /// PID of the postmaster: its processes' CPU is reported as the server's.
    #[arg(long)]
    server_pid: Option<u32>,
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
        (0.0..=600.0).contains(&args.warmup),
        "--warmup must be in [0, 600] seconds"
    );
    ensure!(
        args.concurrency.iter().all(|c| (1..=512).contains(c)),
        "--concurrency values must be 1..=512 (one connection each)"
    );
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(run(args))
}

async fn run(args: Args) -> anyhow::Result<()> {
    let admin_options = PgConnectOptions::from_str(&args.admin_url).context("--admin-url")?;
    ensure_loopback(&admin_options).await?;
    let name = format!("baseline_{}", uuid::Uuid::new_v4().simple());
    let mut admin = PgConnection::connect_with(&admin_options)
        .await
        .context("connecting with --admin-url")?;
    admin
        .execute(format!("CREATE DATABASE \"{name}\"").as_str())
        .await
        .with_context(|| format!("creating database {name}"))?;
    let options = admin_options.clone().database(&name);
    let result = points(&args, &options, &mut admin).await;
    let dropped = admin
        .execute(format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)").as_str())
        .await;
    let _ = admin.close().await;
    result?;
    dropped.with_context(|| format!("dropping database {name}"))?;
    Ok(())
}

/// Refuses servers that are not on this machine: this tool loads its target flat out.
async fn ensure_loopback(options: &PgConnectOptions) -> anyhow::Result<()> {
    let host = options.get_host();
    if host.starts_with('/') {
        return Ok(());
    }
    let addrs: Vec<_> = tokio::net::lookup_host((host, options.get_port()))
        .await
        .with_context(|| format!("resolving {host}"))?
        .collect();
    ensure!(
        !addrs.is_empty() && addrs.iter().all(|a| a.ip().is_loopback()),
        "{host} is not a loopback address: the baseline only targets this machine"
    );
    Ok(())
}

async fn points(
    args: &Args,
    options: &PgConnectOptions,
    admin: &mut PgConnection,
) -> anyhow::Result<()> {
    let mut setup = PgConnection::connect_with(options).await?;
    for statement in SCHEMA {
        setup.execute(*statement).await?;
    }
    let show = |name: &'static str| format!("SHOW {name}");
    let mut settings = BTreeMap::new();
    for name in [
        "server_version",
        "synchronous_commit",
        "fsync",
        "wal_sync_method",
    ] {
        let (value,): (String,) = sqlx::query_as(&show(name)).fetch_one(&mut setup).await?;
        settings.insert(name, value);
    }
    setup.close().await?;
    let synchronous_commit = settings["synchronous_commit"].clone();
    if synchronous_commit != "on" || settings["fsync"] != "on" {
        eprintln!(
            "warning: the server runs with synchronous_commit={synchronous_commit}, fsync={}: not durable commits",
            settings["fsync"]
        );
    }
    for &concurrency in &args.concurrency {
        let db = open(options, concurrency as u32).await?;
        sqlx::query(
            "TRUNCATE invoice_lines, invoices, seams_outbox, seams_idempotency RESTART IDENTITY",
        )
        .execute(&db)
        .await?;
        // So that every point starts right after a checkpoint rather than
        // meeting one at a random moment (needs a superuser; skipped otherwise).
        let _ = admin.execute("CHECKPOINT").await;
        let point = measure(&db, concurrency, args).await;
        db.close().await;
        let latency = Latency::of(&point.latency);
        let throughput = point.ok as f64 / args.duration;
        let n_errors: u64 = point.errors.values().sum();
        let cores = |field: &str| point.cpu.as_ref().and_then(|c| c[field].as_f64());
        let per_op = |cores: Option<f64>| {
            cores
                .filter(|_| point.ok > 0)
                .map(|cores| cores * 1e6 / throughput)
        };
        let server = cores("server_cores");
        println!(
            "raw postgres {} (synchronous_commit={synchronous_commit}), {concurrency} connections: {throughput:.1} tx/s; {latency}; {n_errors} errors {:?}; server {} cores; other processes {} cores",
            settings["server_version"],
            point.errors,
            server.map_or("n/a".into(), |c| format!("{c:.2}")),
            point
                .cpu
                .as_ref()
                .map_or(Value::Null, |c| c["other_cores"].clone()),
        );
        let result = json!({
            "kind": "raw-postgres",
            "label": format!("raw-postgres/c{concurrency}"),
            "server_version": settings["server_version"],
            "synchronous_commit": synchronous_commit,
            "fsync": settings["fsync"],
            "wal_sync_method": settings["wal_sync_method"],
            "statements_per_command": 6,
            "connections": concurrency,
            "concurrency": concurrency,
            "duration_s": args.duration,
            "ok": point.ok,
            "throughput": throughput,
            "latency": latency,
            "errors": point.errors,
            "error_count": n_errors,
            "cpu": point.cpu,
            "cpu_us_per_op": per_op(cores("own_cores").map(|own| own + server.unwrap_or(0.0))),
            "client_cpu_us_per_op": per_op(cores("own_cores")),
            "server_cpu_us_per_op": per_op(server),
        });
        println!("{result}");
    }
    Ok(())
}

async fn open(options: &PgConnectOptions, connections: u32) -> anyhow::Result<PgPool> {
    PgPoolOptions::new()
        .max_connections(connections)
        .min_connections(connections)
        .acquire_timeout(Duration::from_secs(30))
        .connect_with(options.clone())
        .await
        .context("opening the pool")
}

/// CPU ticks of `pid` and of its children (the postmaster and its backends).
fn tree_ticks(pid: u32) -> Option<u64> {
    let mut total = process_ticks(&pid.to_string())?;
    let parent = pid.to_string();
    for entry in std::fs::read_dir("/proc").ok()?.flatten() {
        let name = entry.file_name();
        let Some(child) = name
            .to_str()
            .filter(|n| n.bytes().all(|b| b.is_ascii_digit()))
        else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{child}/stat")) else {
            continue;
        };
        // The field after the state, past the parenthesised command name, is the parent's PID.
        let ppid = stat
            .rfind(')')
            .and_then(|i| stat.get(i + 2..))
            .and_then(|rest| rest.split_whitespace().nth(1));
        if ppid == Some(parent.as_str()) {
            total += process_ticks(child).unwrap_or(0);
        }
    }
    Some(total)
}

fn cpu_sample(server_pid: Option<u32>) -> Option<CpuSample> {
    let mut sample = CpuSample::now(None)?;
    sample.server = server_pid.and_then(tree_ticks);
    Some(sample)
}

/// What one point measured.
struct Point {
    latency: Histogram<u64>,
    ok: u64,
    errors: BTreeMap<String, u64>,
    /// Cores used by this process, the server and others over the measured window.
    cpu: Option<Value>,
}

async fn measure(db: &PgPool, concurrency: usize, args: &Args) -> Point {
    let start = Instant::now();
    let from = start + Duration::from_secs_f64(args.warmup);
    let end = from + Duration::from_secs_f64(args.duration);
    let started = Arc::new(AtomicU64::new(0));
    let server_pid = args.server_pid;
    let cpu = tokio::spawn(async move {
        tokio::time::sleep_until(tokio::time::Instant::from_std(from)).await;
        let before = cpu_sample(server_pid)?;
        tokio::time::sleep_until(tokio::time::Instant::from_std(end)).await;
        Some(cpu_sample(server_pid)?.since(&before, end.duration_since(from)))
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
                if Instant::now() >= end || started.fetch_add(1, Ordering::Relaxed) >= max {
                    break;
                }
                // Built before the clock starts: the latency is the transaction's alone.
                let command = Command::new(task, n);
                let t = Instant::now();
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

    /// `BEGIN`, the four inserts and `COMMIT`, as billing's PostgreSQL store does them.
    async fn commit(&self, db: &PgPool) -> Result<(), sqlx::Error> {
        let now_ms = now_ms();
        let inv = &self.invoice;
        let mut tx = db.begin().await?;
        sqlx::query(
            "INSERT INTO seams_idempotency (scope, key, fingerprint, status, body, created_at_ms) \
             VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING",
        )
        .bind("billing.create-invoice")
        .bind(&self.key)
        .bind(&self.fingerprint)
        .bind(201_i64)
        .bind(&self.body)
        .bind(now_ms)
        .execute(&mut *tx)
        .await?;
        sqlx::query("INSERT INTO invoices (id, customer_id, currency, total_minor, status, created_at) VALUES ($1, $2, $3, $4, $5, $6)")
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
                 VALUES ($1, $2, $3, $4, $5, $6)",
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
             VALUES ($1, $2, $3, $4, $5) RETURNING seq",
        )
        .bind(&self.envelope.id)
        .bind(&self.envelope.event_type)
        .bind(&self.envelope.subject)
        .bind(&self.envelope_json)
        .bind(now_ms)
        .fetch_one(&mut *tx)
        .await?;
        tx.commit().await
    }
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}
