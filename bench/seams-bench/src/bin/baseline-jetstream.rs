//! The bus baseline: raw JetStream publish-with-ack, with nothing around it,
//! so the split configuration's event hops can be read against what
//! JetStream alone sustains on the same machine in the same run.
//!
//! It publishes what the outbox publisher publishes, as it publishes it: the
//! CloudEvents envelope of a real `invoice-created` (priced by
//! `billing::domain::Invoice::build`, wrapped by `Envelope::wrap`, a new
//! UUID v7 id per message, serialized per message), with `Nats-Msg-Id` set to
//! the event id, to a stream configured like the framework's (file storage,
//! one replica, 2-minute duplicate window) with one subject. Each point gets
//! a fresh, uniquely named stream, deleted after it.
//!
//! For every `--in-flight` N, one task publishes for the duration: with 1 it
//! publishes and awaits each ack before the next publish (the round trip);
//! with N it keeps N acks outstanding, publishing again as soon as one
//! arrives, as the outbox publisher pipelines a batch. The latency is from
//! the publish call to its ack. JetStream acknowledges before its fsync
//! unless the server runs with `sync_interval: always` (see PEERS.md), so
//! these are acknowledged, not necessarily synced, messages.
//!
//! With `--server-pid` (nats-server), its CPU is read from `/proc` too:
//! `cpu_us_per_op` is then this process plus the server per message, and
//! "other processes" excludes both.
//!
//! It prints a line per point and one JSON line per point for scripts. The
//! loops are bounded by time and by `--max-messages`; every ack wait by the
//! client's 5 s ack timeout; only a loopback server is accepted.

use std::collections::BTreeMap;
use std::str::FromStr;
use std::time::{Duration, Instant};

use anyhow::{Context, ensure};
use async_nats::jetstream::{self, stream};
use billing::domain::{Cart, Invoice};
use catalog_contract::{Amount, QuotedPrice};
use clap::Parser;
use futures::StreamExt;
use futures::stream::FuturesUnordered;
use hdrhistogram::Histogram;
use seams_bench::cpu::CpuSample;
use seams_bench::{Latency, histogram, record};
use seams_core::{CallContext, Clock, Envelope, SystemClock};
use serde_json::{Value, json};

/// Raw JetStream publishes-with-ack per second (the bus baseline).
#[derive(Debug, Parser)]
#[command(name = "baseline-jetstream")]
struct Args {
    /// The NATS server with JetStream, e.g. `nats://127.0.0.1:4222` (loopback only).
    #[arg(long)]
    url: String,
    /// Seconds of measurement per point.
    #[arg(long, default_value_t = 10.0)]
    duration: f64,
    /// Seconds of load before measuring starts, per point.
    #[arg(long, default_value_t = 1.0)]
    warmup: f64,
    /// Acks kept outstanding, one point each (comma-separated; 1 = publish, await the ack, repeat).
    #[arg(long, value_delimiter = ',', default_value = "1,64,256")]
    in_flight: Vec<usize>,
    /// PID of nats-server: its CPU is reported as the server's.
    #[arg(long)]
    server_pid: Option<u32>,
    /// Most messages per point, whatever the duration.
    #[arg(long, default_value_t = 5_000_000)]
    max_messages: u64,
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
    // The client refuses (or blocks) past 5,000 outstanding acks.
    ensure!(
        args.in_flight.iter().all(|n| (1..=4096).contains(n)),
        "--in-flight values must be 1..=4096"
    );
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(run(args))
}

async fn run(args: Args) -> anyhow::Result<()> {
    ensure_loopback(&args.url).await?;
    let client = async_nats::ConnectOptions::new()
        .connection_timeout(Duration::from_secs(5))
        .connect(args.url.as_str())
        .await
        .with_context(|| format!("connecting to NATS at {}", args.url))?;
    let server_version = client.server_info().version;
    let js = jetstream::new(client.clone());
    let template = template_envelope();
    let run_id = uuid::Uuid::new_v4().simple().to_string()[..12].to_owned();
    for &in_flight in &args.in_flight {
        let name = format!("BASELINE_{}_IN{in_flight}", run_id.to_uppercase());
        let subject = format!("baseline.{run_id}.in{in_flight}.events");
        js.create_stream(stream::Config {
            name: name.clone(),
            subjects: vec![subject.clone()],
            storage: stream::StorageType::File,
            num_replicas: 1,
            duplicate_window: Duration::from_secs(120),
            ..Default::default()
        })
        .await
        .with_context(|| format!("creating stream {name}"))?;
        let point = measure(&js, &subject, &template, in_flight, &args).await;
        let deleted = js.delete_stream(&name).await;
        deleted.with_context(|| format!("deleting stream {name}"))?;
        report(&point, in_flight, &server_version, &args);
    }
    client.flush().await.ok();
    Ok(())
}

/// Refuses servers that are not on this machine: this tool loads its target flat out.
async fn ensure_loopback(url: &str) -> anyhow::Result<()> {
    let addr = async_nats::ServerAddr::from_str(url).context("--url")?;
    let host = addr.host().trim_start_matches('[').trim_end_matches(']');
    let addrs: Vec<_> = tokio::net::lookup_host((host, addr.port()))
        .await
        .with_context(|| format!("resolving {host}"))?
        .collect();
    ensure!(
        !addrs.is_empty() && addrs.iter().all(|a| a.ip().is_loopback()),
        "{host} is not a loopback address: the baseline only targets this machine"
    );
    Ok(())
}

fn report(point: &Point, in_flight: usize, server_version: &str, args: &Args) {
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
        "raw jetstream {server_version} (file, R1), {in_flight} in flight, {} B envelopes: {throughput:.1} msgs/s; {latency}; {n_errors} errors {:?}; server {} cores; other processes {} cores",
        point.payload_bytes,
        point.errors,
        server.map_or("n/a".into(), |c| format!("{c:.2}")),
        point
            .cpu
            .as_ref()
            .map_or(Value::Null, |c| c["other_cores"].clone()),
    );
    let result = json!({
        "kind": "raw-jetstream",
        "label": format!("raw-jetstream/in{in_flight}"),
        "server_version": server_version,
        "storage": "file",
        "replicas": 1,
        "in_flight": in_flight,
        "concurrency": in_flight,
        "payload_bytes": point.payload_bytes,
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

/// What one point measured.
struct Point {
    latency: Histogram<u64>,
    ok: u64,
    errors: BTreeMap<String, u64>,
    /// Size of the last envelope published, in bytes.
    payload_bytes: usize,
    /// Cores used by this process, the server and others over the measured window.
    cpu: Option<Value>,
}

impl Point {
    fn error(&mut self, mut kind: String) {
        kind.truncate(80);
        *self.errors.entry(kind).or_default() += 1;
    }
}

async fn measure(
    js: &jetstream::Context,
    subject: &str,
    template: &Envelope,
    in_flight: usize,
    args: &Args,
) -> Point {
    let start = Instant::now();
    let from = start + Duration::from_secs_f64(args.warmup);
    let end = from + Duration::from_secs_f64(args.duration);
    let server_pid = args.server_pid;
    let cpu = tokio::spawn(async move {
        tokio::time::sleep_until(tokio::time::Instant::from_std(from)).await;
        let before = CpuSample::now(server_pid)?;
        tokio::time::sleep_until(tokio::time::Instant::from_std(end)).await;
        Some(CpuSample::now(server_pid)?.since(&before, end.duration_since(from)))
    });
    let mut point = Point {
        latency: histogram(),
        ok: 0,
        errors: BTreeMap::new(),
        payload_bytes: 0,
        cpu: None,
    };
    let mut pending = FuturesUnordered::new();
    let mut started = 0_u64;
    loop {
        // Top up to `in_flight` outstanding acks while the point lasts.
        while pending.len() < in_flight && started < args.max_messages {
            if Instant::now() >= end {
                break;
            }
            started += 1;
            let mut envelope = template.clone();
            envelope.id = uuid::Uuid::now_v7().to_string();
            let payload = serde_json::to_vec(&envelope).expect("envelopes serialize");
            point.payload_bytes = payload.len();
            let mut headers = async_nats::HeaderMap::new();
            headers.insert("Nats-Msg-Id", envelope.id.as_str());
            let t = Instant::now();
            match js
                .publish_with_headers(subject.to_owned(), headers, payload.into())
                .await
            {
                Ok(ack) => pending.push(async move { (t, ack.await) }),
                Err(e) if t >= from => point.error(e.to_string()),
                Err(_) => {}
            }
        }
        // Then wait for the next ack; when none is outstanding, the point is over.
        let Some((t, res)) = pending.next().await else {
            break;
        };
        if t < from {
            continue;
        }
        match res {
            Ok(ack) if ack.duplicate => point.error("duplicate".into()),
            Ok(_) => {
                point.ok += 1;
                record(&mut point.latency, t.elapsed());
            }
            Err(e) => point.error(e.to_string()),
        }
    }
    point.cpu = cpu.await.ok().flatten();
    point
}

/// The envelope of a real `invoice-created` for a two-line cart, as the outbox holds it.
fn template_envelope() -> Envelope {
    let now = SystemClock.now_rfc3339();
    let cart = Cart::parse(
        "customer-0",
        &[("TEA".to_owned(), 2), ("MUG".to_owned(), 1)],
    )
    .expect("a two-line cart is valid");
    let price = |sku: &str, name: &str, amount| QuotedPrice {
        sku: sku.into(),
        name: name.into(),
        unit_price: Amount {
            amount,
            currency: "EUR".into(),
        },
    };
    let prices = [price("TEA", "Green tea", 450), price("MUG", "Mug", 1200)];
    let (_, event) = Invoice::build(
        uuid::Uuid::now_v7().to_string(),
        &cart,
        &prices,
        now.clone(),
    )
    .expect("the cart is priced");
    Envelope::wrap(
        &event,
        uuid::Uuid::now_v7().to_string(),
        now,
        &CallContext::new_root(),
    )
    .expect("invoice-created carries its invoice id")
}
