//! A split-mode remote call, measured the way a caller service makes it:
//! `catalog.quote-prices` through the typed contract client
//! (`seams_core::Client` asking `QuotePrices`), over the governed transport (declared timeout,
//! retries, circuit breaker, in-flight limit) and the HTTP transport
//! (`POST /_seams/ops/catalog.quote-prices` with JSON, trace and deadline
//! headers), against a running catalog service (`shop serve catalog`).
//! This is what billing does on every invoice in split mode, without the
//! rest of billing around it, so it can be set against a peer's
//! request-reply (Moleculer over NATS) in the same run.
//!
//! Before measuring it adds one product through the service's public API,
//! as a member of staff. The calls present a service token of billing (the
//! capability that calls quote-prices in the shop), as billing's service
//! would: both tokens are minted with the system's signing keys in
//! `--data` (as `shop token` does), or read from `SHOP_STAFF_TOKEN` and
//! `SHOP_SERVICE_TOKEN`.
//! Then, for every `--in-flight` N, N tasks call for `--duration` seconds
//! after `--warmup`, each starting its next call when its last one
//! answered. Calls are bounded by time and by `--max-calls`; every call by
//! the operation's declared 2 s timeout. Only a loopback URL is accepted.
//! It prints a line per point and one JSON line per point for scripts
//! (`"kind":"remote-call"`, the fields loadgen uses).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, ensure};
use catalog_contract::QuotePrices;
use clap::Parser;
use seams_bench::{Latency, histogram, record};
use seams_core::{CallContext, Client, Transport};
use serde_json::json;

#[derive(Parser, Debug)]
#[command(about = "Split-mode remote calls (catalog.quote-prices) against a catalog service")]
struct Args {
    /// Base URL of the catalog service (loopback only).
    #[arg(long)]
    url: String,
    /// Calls in flight, one point each (comma-separated).
    #[arg(long, value_delimiter = ',', default_value = "1,64")]
    in_flight: Vec<usize>,
    /// Seconds measured per point.
    #[arg(long, default_value_t = 10.0)]
    duration: f64,
    /// Seconds called but not measured before each point.
    #[arg(long, default_value_t = 2.0)]
    warmup: f64,
    /// At most this many calls per point.
    #[arg(long, default_value_t = 5_000_000)]
    max_calls: u64,
    /// Label prefix of the JSON lines (`<label>/in<N>`).
    #[arg(long, default_value = "seams-remote-call")]
    label: String,
    /// The catalog service's data directory, whose signing keys mint the tokens.
    #[arg(long)]
    data: Option<std::path::PathBuf>,
    /// The issuer name of the system's tokens.
    #[arg(long, default_value = "seams")]
    issuer: String,
}

/// A token fixed for the whole run (it outlives the run).
struct Fixed(Arc<str>);

impl seams_auth::Credential for Fixed {
    fn token(&self) -> anyhow::Result<Arc<str>> {
        Ok(self.0.clone())
    }
}

/// The staff member's token and billing's service token.
fn tokens(args: &Args) -> anyhow::Result<(String, String)> {
    if let Some(dir) = &args.data {
        let keys = seams_auth::KeyStore::open(&dir.join("keys").join("signing-keys.json"))?;
        let minter = seams_auth::Minter::new(keys, args.issuer.clone());
        let ttl = Duration::from_secs(3600);
        let staff = minter.person("remote-calls", seams_core::auth::Role::Staff, ttl)?;
        let service = minter.service("billing", &["billing".to_owned()], ttl)?;
        return Ok((staff.token, service.token));
    }
    let var = |name: &str| std::env::var(name).with_context(|| format!("--data or {name}"));
    Ok((var("SHOP_STAFF_TOKEN")?, var("SHOP_SERVICE_TOKEN")?))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let url = args.url.trim_end_matches('/').to_owned();
    ensure!(
        url.starts_with("http://127.0.0.1:") || url.starts_with("http://localhost:"),
        "--url must be a loopback http:// URL, got {url}"
    );
    let (staff, service) = tokens(&args)?;
    let http = seams_http::remote::HttpTransport::default_client();
    let sku = format!("RC-{}", &uuid::Uuid::new_v4().simple().to_string()[..10]);
    let product = json!({ "sku": sku, "name": "Remote-call tea", "price": { "amount": 450, "currency": "EUR" } });
    let created = http
        .post(format!("{url}/catalog/products"))
        .bearer_auth(&staff)
        .json(&product)
        .send()
        .await
        .with_context(|| format!("adding a product at {url}"))?;
    ensure!(
        created.status().as_u16() == 201,
        "adding a product: {} {}",
        created.status(),
        created.text().await.unwrap_or_default()
    );
    let transport: Arc<dyn Transport> = Arc::new(seams_runtime::governed::Governed::new(Arc::new(
        seams_http::remote::HttpTransport::new(url.clone(), http)
            .with_credential(Arc::new(Fixed(service.into()))),
    )));
    let client = Client::new(transport);
    // One call first: a wrong URL or a broken contract fails here, loudly.
    client
        .ask(quote(&sku), &CallContext::new_root())
        .await
        .map_err(|e| anyhow::anyhow!("first call: {e:?}"))?;
    for &n in &args.in_flight {
        point(&args, &client, &sku, n.max(1)).await?;
    }
    Ok(())
}

/// The request every call sends: the price of one SKU.
fn quote(sku: &str) -> QuotePrices {
    QuotePrices {
        skus: vec![sku.to_owned()],
    }
}

async fn point(args: &Args, client: &Client, sku: &str, n: usize) -> anyhow::Result<()> {
    let start = Instant::now();
    let measure = start + Duration::from_secs_f64(args.warmup);
    let end = measure + Duration::from_secs_f64(args.duration);
    let started = Arc::new(AtomicU64::new(0));
    let errors = Arc::new(AtomicU64::new(0));
    let tasks: Vec<_> = (0..n)
        .map(|_| {
            let client = client.clone();
            let sku = sku.to_owned();
            let started = started.clone();
            let errors = errors.clone();
            let max = args.max_calls;
            tokio::spawn(async move {
                let mut hist = histogram();
                let mut ok = 0u64;
                while Instant::now() < end && started.fetch_add(1, Ordering::Relaxed) < max {
                    let t = Instant::now();
                    let res = client.ask(quote(&sku), &CallContext::new_root()).await;
                    if t < measure {
                        continue;
                    }
                    match res {
                        Ok(_) => {
                            record(&mut hist, t.elapsed());
                            ok += 1;
                        }
                        Err(_) => {
                            errors.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }
                (hist, ok)
            })
        })
        .collect();
    let mut hist = histogram();
    let mut ok = 0;
    for t in tasks {
        let (h, n_ok) = t.await?;
        hist.add(h)?;
        ok += n_ok;
    }
    let latency = Latency::of(&hist);
    let throughput = ok as f64 / args.duration;
    let n_errors = errors.load(Ordering::Relaxed);
    println!(
        "remote call catalog.quote-prices, {n} in flight: {throughput:.0} calls/s, {latency}, {n_errors} errors"
    );
    println!(
        "{}",
        json!({
            "kind": "remote-call",
            "label": format!("{}/in{n}", args.label),
            "scenario": "remote-call",
            "connections": n,
            "duration_s": args.duration,
            "warmup_s": args.warmup,
            "ok": ok,
            "throughput": throughput,
            "latency": latency,
            "error_count": n_errors,
        })
    );
    Ok(())
}
