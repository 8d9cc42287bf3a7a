//! The load generator: drives a running system over HTTP/1.1 on loopback with
//! a fixed number of connections for a fixed time, and reports throughput,
//! latency percentiles and errors by status.
//!
//! Two ways to apply load:
//!
//! - **closed loop** (default): each of `--connections` workers sends its
//!   next operation as soon as the previous one answered; throughput is what
//!   the system sustains at that concurrency.
//! - **open loop** (`--rate R`): operations are due at a fixed rate whatever
//!   the answers; at most `--connections` are in flight and as many more wait
//!   in a queue, and a due operation that finds the queue full is counted as
//!   *missed*, not silently delayed. Latency runs from the moment an
//!   operation was due, so time spent queued behind a slow system counts
//!   (no coordinated omission).
//!
//! An operation is one scenario step: one request for `create-invoice`,
//! `get-invoice`, `trivial` (Seams' `/healthz`) and `bare` (the baseline's
//! `/json`), and a whole customer journey for `journey` (register, invoice,
//! pay, then poll every 5 ms until the shipment is dispatched and three
//! notifications are delivered; its latency runs to the last effect
//! observed). `returning-journey` is the same journey for a customer who
//! has an account and a session: each worker registers and signs in once,
//! on its first journey, and buys again on every later one, so the
//! Argon2id hashing of registration and sign-in (which dominates
//! `journey`'s CPU) leaves the measurement. Operations that start during
//! `--warmup` are not recorded.
//!
//! Every loop is bounded in time (warm-up + duration, then at most the
//! request and journey timeouts to drain) and in count (`--max-ops`), and
//! only loopback addresses are accepted. A progress line goes to stderr every
//! second; the summary goes to stdout, ending with one JSON line for scripts.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, ensure};
use bytes::Bytes;
use clap::{Parser, ValueEnum};
use hdrhistogram::Histogram;
use http::{Method, Request, StatusCode, header};
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use seams_bench::cpu::CpuSample;
use seams_bench::{Latency, histogram, record};
use serde_json::{Value, json};
use tokio::sync::{Mutex, mpsc};
use tokio::task::JoinSet;

/// What one operation does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Scenario {
    /// `POST /billing/invoices` (one line) with a new `Idempotency-Key` each time.
    CreateInvoice,
    /// `GET /billing/invoices/{id}` over 100 invoices created beforehand.
    GetInvoice,
    /// `GET /healthz` through Seams' whole HTTP stack.
    Trivial,
    /// `GET /json` of `baseline-axum`: the HTTP ceiling.
    Bare,
    /// Register, invoice, pay, then wait for the shipment to be dispatched and 3 notifications delivered.
    Journey,
    /// A signed-in customer's journey: invoice, pay, then wait for the shipment and its 3 notifications (each worker registers once, on its first).
    ReturningJourney,
}

impl Scenario {
    fn name(self) -> &'static str {
        match self {
            Scenario::CreateInvoice => "create-invoice",
            Scenario::GetInvoice => "get-invoice",
            Scenario::Trivial => "trivial",
            Scenario::Bare => "bare",
            Scenario::Journey => "journey",
            Scenario::ReturningJourney => "returning-journey",
        }
    }
}

/// HTTP load generator for Seams benchmarks (loopback only).
#[derive(Debug, Parser)]
#[command(name = "loadgen")]
struct Args {
    /// Base URL of the system, e.g. `http://127.0.0.1:8080` (loopback only).
    #[arg(long)]
    url: String,
    /// What one operation does.
    #[arg(long, value_enum)]
    scenario: Scenario,
    /// Connections, one worker each; with --rate also the most operations in flight.
    #[arg(long, default_value_t = 64)]
    connections: usize,
    /// Seconds of measurement, after the warm-up.
    #[arg(long, default_value_t = 15.0)]
    duration: f64,
    /// Seconds of load before measuring starts.
    #[arg(long, default_value_t = 2.0)]
    warmup: f64,
    /// Open loop: operations due per second (otherwise closed loop).
    #[arg(long)]
    rate: Option<f64>,
    /// Most operations started in the whole run, whatever the duration.
    #[arg(long, default_value_t = 5_000_000)]
    max_ops: u64,
    /// Seconds one request may take before it counts as a `timeout` error.
    #[arg(long, default_value_t = 10.0)]
    timeout: f64,
    /// Journey: seconds to wait for the last effect before a `journey-timeout` error.
    #[arg(long, default_value_t = 30.0)]
    journey_timeout: f64,
    /// Units of stock received for the benchmark's product before the run.
    #[arg(long, default_value_t = 2_000_000)]
    stock: u64,
    /// After the run, read the measured event lags from `/_seams/consistency` into the result.
    #[arg(long)]
    consistency: bool,
    /// Label of this run in the JSON line (defaults to the scenario).
    #[arg(long)]
    label: Option<String>,
    /// Worker threads of the load generator's runtime (default: one per core).
    #[arg(long)]
    threads: Option<usize>,
    /// PID of the server under load: its CPU time over the measured window goes in the result.
    #[arg(long)]
    server_pid: Option<u32>,
    /// The system's data directory: the staff and operator tokens the
    /// setup needs are minted with its signing keys (as `shop token` does).
    /// Without it, `SHOP_STAFF_TOKEN` and `SHOP_OPERATOR_TOKEN` give them.
    #[arg(long)]
    data: Option<std::path::PathBuf>,
    /// The issuer name of the system's tokens.
    #[arg(long, default_value = "seams")]
    issuer: String,
}

/// The tokens of the setup's staff member and the lag report's operator.
struct Credentials {
    staff: String,
    operator: String,
}

impl Credentials {
    fn from(args: &Args) -> anyhow::Result<Credentials> {
        // Bare axum and /healthz need no one; saying so beats demanding keys.
        if matches!(args.scenario, Scenario::Bare | Scenario::Trivial) && !args.consistency {
            return Ok(Credentials {
                staff: String::new(),
                operator: String::new(),
            });
        }
        if let Some(dir) = &args.data {
            let keys = seams_auth::KeyStore::open(&dir.join("keys").join("signing-keys.json"))?;
            let minter = seams_auth::Minter::new(keys, args.issuer.clone());
            let ttl = Duration::from_secs(3600);
            return Ok(Credentials {
                staff: minter
                    .person("loadgen", seams_core::auth::Role::Staff, ttl)?
                    .token,
                operator: minter
                    .person("loadgen", seams_core::auth::Role::Operator, ttl)?
                    .token,
            });
        }
        let var = |name: &str| std::env::var(name).with_context(|| format!("--data or {name}"));
        Ok(Credentials {
            staff: var("SHOP_STAFF_TOKEN")?,
            operator: var("SHOP_OPERATOR_TOKEN")?,
        })
    }
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    ensure!(args.connections >= 1, "--connections must be at least 1");
    ensure!(
        args.duration > 0.0 && args.duration <= 3600.0,
        "--duration must be in (0, 3600] seconds"
    );
    ensure!(
        (0.0..=600.0).contains(&args.warmup),
        "--warmup must be in [0, 600] seconds"
    );
    if let Some(rate) = args.rate {
        ensure!(
            rate > 0.0 && rate <= 1_000_000.0,
            "--rate must be in (0, 1000000]"
        );
    }
    let mut runtime = tokio::runtime::Builder::new_multi_thread();
    if let Some(threads) = args.threads {
        runtime.worker_threads(threads.max(1));
    }
    runtime.enable_all().build()?.block_on(run(args))
}

/// Where the system listens, checked to be loopback.
struct Target {
    addr: SocketAddr,
    /// The `Host` header.
    host: String,
}

async fn target(url: &str) -> anyhow::Result<Target> {
    let rest = url
        .strip_prefix("http://")
        .context("--url must start with http://")?;
    let host = rest.split('/').next().unwrap_or_default().to_owned();
    let addrs: Vec<SocketAddr> = tokio::net::lookup_host(&host)
        .await
        .with_context(|| format!("resolving {host}"))?
        .collect();
    let addr = *addrs
        .first()
        .with_context(|| format!("{host} resolves to nothing"))?;
    ensure!(
        addrs.iter().all(|a| a.ip().is_loopback()),
        "{host} is not a loopback address: the load generator only targets this machine"
    );
    Ok(Target { addr, host })
}

/// How an operation failed, as a key of the error table: an HTTP status
/// (`"503"`), `connect`, `io`, `timeout`, `bad-body` or `journey-timeout`.
type Failure = String;

/// One HTTP/1.1 connection, reopened after a transport error.
struct Conn {
    target: Arc<Target>,
    timeout: Duration,
    sender: Option<SendRequest<Full<Bytes>>>,
    /// `Authorization` sent with every request, if any.
    bearer: Option<http::HeaderValue>,
}

/// An answer.
struct Reply {
    status: StatusCode,
    body: Bytes,
}

impl Reply {
    /// The body as JSON, if the status is `want`.
    fn json(&self, want: StatusCode) -> Result<Value, Failure> {
        if self.status != want {
            return Err(self.status.as_str().to_owned());
        }
        serde_json::from_slice(&self.body).map_err(|_| "bad-body".to_owned())
    }

    fn expect(&self, want: StatusCode) -> Result<(), Failure> {
        if self.status == want {
            Ok(())
        } else {
            Err(self.status.as_str().to_owned())
        }
    }
}

impl Conn {
    fn new(target: Arc<Target>, timeout: Duration) -> Conn {
        Conn {
            target,
            timeout,
            sender: None,
            bearer: None,
        }
    }

    /// From now on, requests present `token`.
    fn act_as(&mut self, token: &str) {
        self.bearer = http::HeaderValue::from_str(&format!("Bearer {token}")).ok();
    }

    async fn get(&mut self, path: &str) -> Result<Reply, Failure> {
        self.send(Method::GET, path, None, None).await
    }

    async fn post(&mut self, path: &str, body: Bytes, key: Option<&str>) -> Result<Reply, Failure> {
        self.send(Method::POST, path, Some(body), key).await
    }

    async fn send(
        &mut self,
        method: Method,
        path: &str,
        body: Option<Bytes>,
        key: Option<&str>,
    ) -> Result<Reply, Failure> {
        let timeout = self.timeout;
        match tokio::time::timeout(timeout, self.exchange(method, path, body, key)).await {
            Ok(Ok(reply)) => Ok(reply),
            Ok(Err(failure)) => {
                self.sender = None;
                Err(failure)
            }
            Err(_) => {
                // The connection may still carry the late answer: start afresh.
                self.sender = None;
                Err("timeout".to_owned())
            }
        }
    }

    async fn exchange(
        &mut self,
        method: Method,
        path: &str,
        body: Option<Bytes>,
        key: Option<&str>,
    ) -> Result<Reply, Failure> {
        if self.sender.is_none() {
            let stream = tokio::net::TcpStream::connect(self.target.addr)
                .await
                .map_err(|_| "connect".to_owned())?;
            stream.set_nodelay(true).map_err(|_| "connect".to_owned())?;
            let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
                .await
                .map_err(|_| "connect".to_owned())?;
            tokio::spawn(async move {
                // Ends when the sender is dropped or the server closes.
                let _ = connection.await;
            });
            self.sender = Some(sender);
        }
        let sender = self.sender.as_mut().expect("connected above");
        sender.ready().await.map_err(|_| "io".to_owned())?;
        let mut req = Request::builder()
            .method(method)
            .uri(path)
            .header(header::HOST, &self.target.host);
        if body.is_some() {
            req = req.header(header::CONTENT_TYPE, "application/json");
        }
        if let Some(key) = key {
            req = req.header("idempotency-key", key);
        }
        if let Some(bearer) = &self.bearer {
            req = req.header(header::AUTHORIZATION, bearer.clone());
        }
        let req = req
            .body(Full::new(body.unwrap_or_default()))
            .map_err(|_| "bad-request".to_owned())?;
        let res = sender
            .send_request(req)
            .await
            .map_err(|_| "io".to_owned())?;
        let status = res.status();
        let body = res
            .into_body()
            .collect()
            .await
            .map_err(|_| "io".to_owned())?
            .to_bytes();
        Ok(Reply { status, body })
    }
}

/// What the scenario set up before the run.
struct Setup {
    scenario: Scenario,
    /// Unique to this run, so keys, emails and SKUs never collide with earlier runs.
    run: String,
    /// The body of `create-invoice`, the same every time (the key differs).
    create_body: Bytes,
    /// The product's SKU.
    sku: String,
    /// Invoices for `get-invoice`.
    invoices: Vec<String>,
    /// How long a journey may wait for its last effect.
    journey_timeout: Duration,
    /// The setup customer's token: what create-invoice and get-invoice present.
    customer_token: String,
}

fn body(value: &Value) -> Bytes {
    Bytes::from(serde_json::to_vec(value).expect("JSON values serialize"))
}

/// Runs a setup step, turning a failed request into an error that says which.
fn step<T>(what: &str, res: Result<T, Failure>) -> anyhow::Result<T> {
    res.map_err(|failure| anyhow::anyhow!("setup: {what} failed: {failure}"))
}

async fn setup(conn: &mut Conn, args: &Args, creds: &Credentials) -> anyhow::Result<Setup> {
    let run = uuid::Uuid::new_v4().simple().to_string()[..12].to_owned();
    let mut setup = Setup {
        scenario: args.scenario,
        sku: format!("BENCH-{run}"),
        run,
        create_body: Bytes::new(),
        invoices: Vec::new(),
        journey_timeout: Duration::from_secs_f64(args.journey_timeout),
        customer_token: String::new(),
    };
    match args.scenario {
        Scenario::Trivial => step(
            "GET /healthz",
            conn.get("/healthz")
                .await
                .and_then(|r| r.expect(StatusCode::OK)),
        )?,
        Scenario::Bare => step(
            "GET /json",
            conn.get("/json")
                .await
                .and_then(|r| r.expect(StatusCode::OK)),
        )?,
        Scenario::CreateInvoice
        | Scenario::GetInvoice
        | Scenario::Journey
        | Scenario::ReturningJourney => {
            let (customer, token) = step(
                "registering the customer",
                register(conn, &format!("setup-{}@example.com", setup.run)).await,
            )?;
            setup.customer_token = token;
            conn.act_as(&creds.staff);
            let product = json!({ "sku": setup.sku, "name": "Benchmark tea", "price": { "amount": 450, "currency": "EUR" } });
            step(
                "adding the product",
                conn.post("/catalog/products", body(&product), None)
                    .await
                    .and_then(|r| r.expect(StatusCode::CREATED)),
            )?;
            // The stock a run needs: every invoice reserves one unit. At most
            // 1,000,000 units per receipt, as fulfillment's contract says.
            let mut left = args.stock;
            let mut receipt = 0;
            while left > 0 && receipt < 100 {
                let quantity = left.min(1_000_000);
                let stock = json!({ "sku": setup.sku, "quantity": quantity });
                let key = format!("{}-stock-{receipt}", setup.run);
                step(
                    "receiving stock",
                    conn.post("/fulfillment/stock", body(&stock), Some(&key))
                        .await
                        .and_then(|r| r.expect(StatusCode::CREATED)),
                )?;
                left -= quantity;
                receipt += 1;
            }
            setup.create_body = body(&json!({
                "customer_id": customer,
                "lines": [{ "sku": setup.sku, "quantity": 1 }],
            }));
            conn.act_as(&setup.customer_token);
            if args.scenario == Scenario::GetInvoice {
                for i in 0..100 {
                    let key = format!("{}-setup-{i}", setup.run);
                    let reply = conn
                        .post("/billing/invoices", setup.create_body.clone(), Some(&key))
                        .await;
                    let invoice = step(
                        "creating invoices",
                        reply.and_then(|r| r.json(StatusCode::CREATED)),
                    )?;
                    setup
                        .invoices
                        .push(invoice["id"].as_str().context("invoice id")?.to_owned());
                }
            }
        }
    }
    Ok(setup)
}

/// The password of every customer the load generator registers.
const PASSWORD: &str = "loadgen correct horse battery";

/// Registers a customer and signs them in: their id and access token.
async fn register(conn: &mut Conn, email: &str) -> Result<(String, String), Failure> {
    conn.bearer = None;
    let customer = json!({ "email": email, "name": "Bench Customer", "password": PASSWORD });
    let reply = conn
        .post("/identity/customers", body(&customer), None)
        .await?;
    let json = reply.json(StatusCode::CREATED)?;
    let id = json["id"]
        .as_str()
        .map(str::to_owned)
        .ok_or_else(|| "bad-body".to_owned())?;
    let session = json!({ "email": email, "password": PASSWORD });
    let reply = conn
        .post("/identity/sessions", body(&session), None)
        .await?;
    let json = reply.json(StatusCode::CREATED)?;
    let token = json["access_token"]
        .as_str()
        .map(str::to_owned)
        .ok_or_else(|| "bad-body".to_owned())?;
    Ok((id, token))
}

/// Times of a journey's steps, from its first request.
type Phases = Vec<(&'static str, Duration)>;

/// The customer a worker's returning journeys buy as: registered and
/// signed in on its first journey, and how far the walk through their
/// deliveries has come.
struct Regular {
    id: String,
    token: String,
    /// The `next` of the last delivered delivery walked past; `None`
    /// before the first.
    seen: Option<String>,
    /// Deliveries their journeys have caused that the walk has not yet
    /// seen delivered.
    owed: usize,
}

impl Regular {
    /// Walks the customer's deliveries oldest first, one per request
    /// (`limit=1`, whose full page names the next cursor), past each one
    /// delivered; whether none is owed any more. The list of a customer
    /// who has bought a thousand times is never read whole.
    async fn walk(&mut self, conn: &mut Conn) -> Result<bool, Failure> {
        while self.owed > 0 {
            let path = match &self.seen {
                Some(after) => format!(
                    "/notification/deliveries?customer_id={}&limit=1&after={after}",
                    self.id
                ),
                None => format!("/notification/deliveries?customer_id={}&limit=1", self.id),
            };
            let page = conn.get(&path).await?.json(StatusCode::OK)?;
            let delivered = page["deliveries"][0]["status"] == "delivered";
            match page["next"].as_str() {
                Some(next) if delivered => {
                    self.seen = Some(next.to_owned());
                    self.owed -= 1;
                }
                _ => return Ok(false),
            }
        }
        Ok(true)
    }
}

impl Setup {
    /// Runs operation `n` of `worker` once.
    async fn op(
        &self,
        conn: &mut Conn,
        worker: usize,
        n: u64,
        phases: &mut Phases,
        regular: &mut Option<Regular>,
    ) -> Result<(), Failure> {
        match self.scenario {
            Scenario::CreateInvoice => {
                let key = format!("{}-{worker}-{n}", self.run);
                conn.post("/billing/invoices", self.create_body.clone(), Some(&key))
                    .await?
                    .expect(StatusCode::CREATED)
            }
            Scenario::GetInvoice => {
                let i = (worker as u64 * 7919 + n) as usize % self.invoices.len();
                conn.get(&format!("/billing/invoices/{}", self.invoices[i]))
                    .await?
                    .expect(StatusCode::OK)
            }
            Scenario::Trivial => conn.get("/healthz").await?.expect(StatusCode::OK),
            Scenario::Bare => conn.get("/json").await?.expect(StatusCode::OK),
            Scenario::Journey | Scenario::ReturningJourney => {
                self.journey(conn, worker, n, phases, regular).await
            }
        }
    }

    async fn journey(
        &self,
        conn: &mut Conn,
        worker: usize,
        n: u64,
        phases: &mut Phases,
        regular: &mut Option<Regular>,
    ) -> Result<(), Failure> {
        let start = Instant::now();
        let customer = if self.scenario == Scenario::ReturningJourney {
            if regular.is_none() {
                let (id, token) =
                    register(conn, &format!("r-{}-{worker}@example.com", self.run)).await?;
                // Registration sends nothing: their deliveries begin with
                // the first invoice's.
                *regular = Some(Regular {
                    id,
                    token,
                    seen: None,
                    owed: 0,
                });
            }
            let regular = regular.as_ref().expect("registered above");
            conn.act_as(&regular.token);
            regular.id.clone()
        } else {
            let (customer, token) =
                register(conn, &format!("j-{}-{worker}-{n}@example.com", self.run)).await?;
            conn.act_as(&token);
            phases.push(("registered", start.elapsed()));
            customer
        };
        let cart =
            json!({ "customer_id": customer, "lines": [{ "sku": self.sku, "quantity": 1 }] });
        let key = format!("{}-{worker}-{n}", self.run);
        let invoice = conn
            .post("/billing/invoices", body(&cart), Some(&format!("{key}-i")))
            .await?
            .json(StatusCode::CREATED)?;
        let invoiced = start.elapsed();
        phases.push(("invoiced", invoiced));
        // What each step causes is owed once the step is done, so that a
        // failed journey leaves the walk counting what really exists.
        if let Some(regular) = regular.as_mut() {
            regular.owed += 1;
        }
        let id = invoice["id"].as_str().ok_or("bad-body")?.to_owned();
        let payment = json!({ "amount": invoice["total"] });
        conn.post(
            &format!("/billing/invoices/{id}/payments"),
            body(&payment),
            Some(&format!("{key}-p")),
        )
        .await?
        .expect(StatusCode::CREATED)?;
        phases.push(("paid", start.elapsed()));
        // The payment's notice and the shipment's.
        if let Some(regular) = regular.as_mut() {
            regular.owed += 2;
        }

        let deadline = start + self.journey_timeout;
        let shipments = format!("/fulfillment/shipments?invoice_id={id}");
        let deliveries = format!("/notification/deliveries?customer_id={customer}");
        let (mut dispatched, mut delivered) = (false, false);
        loop {
            if !dispatched {
                let list = conn.get(&shipments).await?.json(StatusCode::OK)?;
                dispatched = list["shipments"]
                    .as_array()
                    .is_some_and(|s| s.iter().any(|s| s["status"] == "dispatched"));
                if dispatched {
                    let at = start.elapsed();
                    phases.push(("dispatched", at));
                    // The split's cost as issue 4 measures it: invoice
                    // created (answered) to shipment dispatched (seen).
                    phases.push(("created-to-dispatched", at - invoiced));
                }
            }
            if !delivered && let Some(regular) = regular.as_mut() {
                delivered = regular.walk(conn).await?;
                if delivered {
                    phases.push(("3-delivered", start.elapsed()));
                }
            } else if !delivered {
                let list = conn.get(&deliveries).await?.json(StatusCode::OK)?;
                let n_delivered = list["deliveries"].as_array().map_or(0, |d| {
                    d.iter().filter(|d| d["status"] == "delivered").count()
                });
                delivered = n_delivered >= 3;
                if delivered {
                    phases.push(("3-delivered", start.elapsed()));
                }
            }
            if dispatched && delivered {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err("journey-timeout".to_owned());
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
}

/// What one worker measured; merged at the end.
struct Tally {
    latency: Histogram<u64>,
    phases: BTreeMap<&'static str, Histogram<u64>>,
    ok: u64,
    errors: BTreeMap<Failure, u64>,
}

impl Tally {
    fn new() -> Tally {
        Tally {
            latency: histogram(),
            phases: BTreeMap::new(),
            ok: 0,
            errors: BTreeMap::new(),
        }
    }

    fn add(&mut self, res: Result<(), Failure>, latency: Duration, phases: &Phases) {
        match res {
            Ok(()) => {
                self.ok += 1;
                record(&mut self.latency, latency);
                for (name, at) in phases {
                    record(self.phases.entry(name).or_insert_with(histogram), *at);
                }
            }
            Err(failure) => *self.errors.entry(failure).or_default() += 1,
        }
    }

    fn merge(&mut self, other: Tally) {
        self.ok += other.ok;
        self.latency
            .add(&other.latency)
            .expect("histograms with the same bounds merge");
        for (name, hist) in other.phases {
            self.phases
                .entry(name)
                .or_insert_with(histogram)
                .add(&hist)
                .expect("histograms with the same bounds merge");
        }
        for (failure, n) in other.errors {
            *self.errors.entry(failure).or_default() += n;
        }
    }
}

/// Counters the progress line reads while the run goes on.
#[derive(Default)]
struct Live {
    /// Operations started (bounded by `--max-ops`).
    started: AtomicU64,
    ok: AtomicU64,
    failed: AtomicU64,
    /// Sum of the latencies of finished operations, in µs.
    latency_us: AtomicU64,
    /// Open loop: due operations that found the queue full.
    missed: AtomicU64,
}

impl Live {
    fn finish(&self, res: &Result<(), Failure>, latency: Duration) {
        match res {
            Ok(()) => self.ok.fetch_add(1, Ordering::Relaxed),
            Err(_) => self.failed.fetch_add(1, Ordering::Relaxed),
        };
        self.latency_us
            .fetch_add(latency.as_micros() as u64, Ordering::Relaxed);
    }
}

/// The run's timeline.
#[derive(Clone, Copy)]
struct Window {
    start: Instant,
    /// Operations started from here on are recorded.
    measure: Instant,
    /// No operation starts from here on.
    end: Instant,
}

impl Window {
    fn records(&self, started: Instant) -> bool {
        started >= self.measure && started < self.end
    }
}

async fn run(args: Args) -> anyhow::Result<()> {
    let target = Arc::new(target(&args.url).await?);
    let timeout = Duration::from_secs_f64(args.timeout);
    let creds = Credentials::from(&args)?;
    let mut setup_conn = Conn::new(target.clone(), Duration::from_secs(60));
    let setup = Arc::new(setup(&mut setup_conn, &args, &creds).await?);
    // The lag report keeps a window of recent samples per hop; reading it
    // before the run tells how many of the samples after it are this run's.
    let lags_before = if args.consistency {
        setup_conn.act_as(&creds.operator);
        Some(lag_report(&mut setup_conn).await?)
    } else {
        None
    };
    drop(setup_conn);

    let start = Instant::now();
    let measure = start + Duration::from_secs_f64(args.warmup);
    let window = Window {
        start,
        measure,
        end: measure + Duration::from_secs_f64(args.duration),
    };
    let live = Arc::new(Live::default());
    let mode = if args.rate.is_some() {
        "open"
    } else {
        "closed"
    };
    eprintln!(
        "loadgen: {} {mode} loop, {} connections{}, {:.1} s warm-up + {:.1} s against {}",
        args.scenario.name(),
        args.connections,
        args.rate.map_or(String::new(), |r| format!(", {r}/s")),
        args.warmup,
        args.duration,
        args.url
    );

    let mut workers = JoinSet::new();
    let dispatcher = match args.rate {
        None => {
            for worker in 0..args.connections {
                let mut conn = Conn::new(target.clone(), timeout);
                conn.act_as(&setup.customer_token);
                workers.spawn(closed_worker(
                    conn,
                    worker,
                    setup.clone(),
                    live.clone(),
                    window,
                    args.max_ops,
                ));
            }
            None
        }
        Some(rate) => {
            let (tx, rx) = mpsc::channel(args.connections);
            let rx = Arc::new(Mutex::new(rx));
            for worker in 0..args.connections {
                let mut conn = Conn::new(target.clone(), timeout);
                conn.act_as(&setup.customer_token);
                workers.spawn(open_worker(
                    conn,
                    worker,
                    setup.clone(),
                    live.clone(),
                    window,
                    rx.clone(),
                ));
            }
            Some(tokio::spawn(dispatch(
                tx,
                rate,
                window,
                args.max_ops,
                live.clone(),
            )))
        }
    };
    let progress = tokio::spawn(progress(live.clone(), window));
    let cpu = tokio::spawn(cpu_over(window, args.server_pid));

    // Bounded drain: an operation started before the end finishes within its timeouts.
    let drain = timeout
        + if matches!(
            args.scenario,
            Scenario::Journey | Scenario::ReturningJourney
        ) {
            Duration::from_secs_f64(args.journey_timeout)
        } else {
            Duration::ZERO
        }
        + Duration::from_secs(5);
    let mut tally = Tally::new();
    let mut stuck = 0;
    let deadline = tokio::time::Instant::from_std(window.end + drain);
    loop {
        match tokio::time::timeout_at(deadline, workers.join_next()).await {
            Ok(Some(joined)) => tally.merge(joined.context("a worker panicked")?),
            Ok(None) => break,
            Err(_) => {
                stuck = workers.len();
                workers.abort_all();
                break;
            }
        }
    }
    progress.abort();
    if let Some(dispatcher) = dispatcher {
        dispatcher.abort();
    }
    if stuck > 0 {
        eprintln!("loadgen: {stuck} workers were still busy {drain:?} after the end; aborted");
    }

    let lags = match lags_before {
        Some(before) => {
            // Let events committed in the last moments be applied before reading.
            tokio::time::sleep(Duration::from_secs(2)).await;
            let mut conn = Conn::new(target.clone(), Duration::from_secs(10));
            conn.act_as(&creds.operator);
            let mut after = lag_report(&mut conn).await?;
            if let Value::Object(hops) = &mut after {
                for (hop, row) in hops.iter_mut() {
                    let earlier = before[hop.as_str()]["samples"].as_u64().unwrap_or(0);
                    let now = row["samples"].as_u64().unwrap_or(0);
                    row["samples_in_run"] = json!(now.saturating_sub(earlier));
                }
            }
            Some(after)
        }
        None => None,
    };

    // Finished by now: it ends at the window's end, before the drain.
    let cpu = cpu.await.ok().flatten();
    report(&args, &tally, &live, lags, cpu);
    Ok(())
}

/// The `lags` section of `/_seams/consistency`: per hop, samples and percentiles.
async fn lag_report(conn: &mut Conn) -> anyhow::Result<Value> {
    let report = conn.get("/_seams/consistency").await;
    let report = step(
        "reading /_seams/consistency",
        report.and_then(|r| r.json(StatusCode::OK)),
    )?;
    Ok(report["lags"].clone())
}

async fn closed_worker(
    mut conn: Conn,
    worker: usize,
    setup: Arc<Setup>,
    live: Arc<Live>,
    window: Window,
    max_ops: u64,
) -> Tally {
    let mut tally = Tally::new();
    let mut phases = Phases::new();
    let mut regular = None;
    for n in 0.. {
        let started = Instant::now();
        if started >= window.end || live.started.fetch_add(1, Ordering::Relaxed) >= max_ops {
            break;
        }
        phases.clear();
        let res = setup
            .op(&mut conn, worker, n, &mut phases, &mut regular)
            .await;
        let latency = started.elapsed();
        live.finish(&res, latency);
        if window.records(started) {
            tally.add(res, latency, &phases);
        }
    }
    tally
}

async fn open_worker(
    mut conn: Conn,
    worker: usize,
    setup: Arc<Setup>,
    live: Arc<Live>,
    window: Window,
    due: Arc<Mutex<mpsc::Receiver<Instant>>>,
) -> Tally {
    let mut tally = Tally::new();
    let mut phases = Phases::new();
    let mut regular = None;
    for n in 0.. {
        // The dispatcher closes the queue at the end, so this loop ends.
        let Some(due_at) = due.lock().await.recv().await else {
            break;
        };
        phases.clear();
        let res = setup
            .op(&mut conn, worker, n, &mut phases, &mut regular)
            .await;
        // From when the operation was due: queueing counts.
        let latency = due_at.elapsed();
        live.finish(&res, latency);
        if window.records(due_at) {
            tally.add(res, latency, &phases);
        }
    }
    tally
}

/// Puts an operation in the queue every `1/rate` seconds until the end.
async fn dispatch(
    queue: mpsc::Sender<Instant>,
    rate: f64,
    window: Window,
    max_ops: u64,
    live: Arc<Live>,
) {
    let interval = Duration::from_secs_f64(1.0 / rate);
    for i in 0..max_ops {
        let due = window.start + interval.mul_f64(i as f64);
        if due >= window.end {
            break;
        }
        tokio::time::sleep_until(tokio::time::Instant::from_std(due)).await;
        live.started.fetch_add(1, Ordering::Relaxed);
        if queue.try_send(due).is_err() && window.records(due) {
            live.missed.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// Prints one line a second to stderr until aborted.
async fn progress(live: Arc<Live>, window: Window) {
    let mut tick = tokio::time::interval_at(
        tokio::time::Instant::from_std(window.start + Duration::from_secs(1)),
        Duration::from_secs(1),
    );
    let (mut last_ok, mut last_failed, mut last_us) = (0, 0, 0);
    loop {
        tick.tick().await;
        let ok = live.ok.load(Ordering::Relaxed);
        let failed = live.failed.load(Ordering::Relaxed);
        let us = live.latency_us.load(Ordering::Relaxed);
        let done = (ok - last_ok) + (failed - last_failed);
        let mean_ms = if done == 0 {
            0.0
        } else {
            (us - last_us) as f64 / done as f64 / 1000.0
        };
        let now = Instant::now();
        let phase = if now < window.measure {
            " (warm-up)"
        } else if now >= window.end {
            " (draining)"
        } else {
            ""
        };
        eprintln!(
            "[{:>4.0}s] {:>7} ok/s  {:>5} errors/s  mean {:>8.3} ms  total ok {ok}, errors {failed}, missed {}{phase}",
            now.duration_since(window.start).as_secs_f64(),
            ok - last_ok,
            failed - last_failed,
            mean_ms,
            live.missed.load(Ordering::Relaxed),
        );
        (last_ok, last_failed, last_us) = (ok, failed, us);
    }
}

/// Where the machine's CPU went during the measured window: the server, the
/// load generator, and everything else (other tenants of a shared machine).
async fn cpu_over(window: Window, server: Option<u32>) -> Option<Value> {
    tokio::time::sleep_until(tokio::time::Instant::from_std(window.measure)).await;
    let before = CpuSample::now(server)?;
    tokio::time::sleep_until(tokio::time::Instant::from_std(window.end)).await;
    let after = CpuSample::now(server)?;
    Some(after.since(&before, window.end.duration_since(window.measure)))
}

fn report(args: &Args, tally: &Tally, live: &Live, lags: Option<Value>, cpu: Option<Value>) {
    let latency = Latency::of(&tally.latency);
    let throughput = tally.ok as f64 / args.duration;
    let n_errors: u64 = tally.errors.values().sum();
    let missed = live.missed.load(Ordering::Relaxed);
    let phases: BTreeMap<&str, Latency> = tally
        .phases
        .iter()
        .map(|(name, hist)| (*name, Latency::of(hist)))
        .collect();
    let mode = match args.rate {
        Some(rate) => format!("open loop at {rate}/s"),
        None => "closed loop".to_owned(),
    };
    println!(
        "{}: {mode}, {} connections, {:.1} s measured after {:.1} s warm-up",
        args.scenario.name(),
        args.connections,
        args.duration,
        args.warmup
    );
    println!("  throughput  {throughput:.1} ops/s ({} ok)", tally.ok);
    println!("  latency     {latency}");
    for (name, phase) in &phases {
        println!("    {name:<12} {phase}");
    }
    println!("  errors      {n_errors} {:?}", tally.errors);
    if args.rate.is_some() {
        println!("  missed      {missed} (due while the queue was full)");
    }
    if tally.ok == 0 {
        println!(
            "  nothing recorded: no operation started in the measured window (one that started before it was still running)"
        );
    }
    if let Some(cpu) = &cpu {
        println!(
            "  cpu cores   server {}, loadgen {}, others {} (machine busy {})",
            cpu["server_cores"], cpu["own_cores"], cpu["other_cores"], cpu["machine_cores"]
        );
    }
    if let Some(Value::Object(rows)) = &lags {
        for (hop, row) in rows {
            println!(
                "  lag {hop}: p50 {} ms, p99 {} ms, max {} ms ({} samples, {} in this run)",
                row["p50_ms"], row["p99_ms"], row["max_ms"], row["samples"], row["samples_in_run"]
            );
        }
    }
    let result = json!({
        "kind": "loadgen",
        "label": args.label.clone().unwrap_or_else(|| args.scenario.name().to_owned()),
        "scenario": args.scenario.name(),
        "mode": if args.rate.is_some() { "open" } else { "closed" },
        "connections": args.connections,
        "rate": args.rate,
        "duration_s": args.duration,
        "warmup_s": args.warmup,
        "ok": tally.ok,
        "throughput": throughput,
        "latency": latency,
        "phases": phases,
        "errors": tally.errors,
        "error_count": n_errors,
        "missed": missed,
        "lags": lags,
        "cpu": cpu,
        "server_cpu_us_per_op": cpu.as_ref().and_then(|c| c["server_cores"].as_f64()).filter(|_| tally.ok > 0).map(|cores| cores * 1e6 / throughput),
    });
    println!("{result}");
}
