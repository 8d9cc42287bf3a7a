//! The end-to-end harness: starts the real `shop` binary in a given mode on
//! a free port with a temporary data directory, and drives it only through
//! its public HTTP API, as a client would, with the credentials a client
//! would have: customers register and sign in for their own tokens, and the
//! staff and operator tokens are minted with `shop token`, as an operator
//! of the deployment would.
//!
//! [`Shop::get`] and [`Shop::post`] present the token of whoever the route
//! is for (the customer a path or body names, staff for the catalog and
//! stock, an operator for `/_seams/*` and `/metrics`, nobody for the open
//! routes); [`Shop::send`] presents none, for tests that choose themselves.
//!
//! Scenarios take a [`Mode`], so the same scenario runs in every mode the
//! system supports; adding a mode adds a variant here, not a copy of the suite.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use reqwest::StatusCode;
use seams_testkit::process::{Server, cargo_bin};
use serde_json::{Value, json};

/// How the system under test runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// `shop up`: one process, SQLite.
    Monolith,
    /// `shop up --chaos`: the same, with duplicated and delayed deliveries.
    MonolithChaos,
    /// `shop up --split`: one process per capability behind a gateway, calls
    /// and event feeds over HTTP, a SQLite file per service.
    SplitHttp,
    /// `shop up --split --postgres-admin URL --nats URL`: the distributed
    /// configuration: each service on its own PostgreSQL database and role,
    /// NATS JetStream as the event bus (a cluster and a `nats-server -js`
    /// started for the test).
    SplitPostgresNats,
}

/// Every mode this machine can run: all of them, except the distributed one
/// when PostgreSQL or `nats-server` is missing outside CI (said loudly;
/// under `CI=true` their absence fails the run instead).
pub fn modes() -> Vec<Mode> {
    let nats = seams_testkit::nats::NatsServer::available().unwrap_or_else(|e| panic!("{e:#}"));
    let pg =
        seams_testkit::postgres::PostgresServer::available().unwrap_or_else(|e| panic!("{e:#}"));
    Mode::ALL
        .into_iter()
        .filter(|m| *m != Mode::SplitPostgresNats || (nats && pg))
        .collect()
}

impl Mode {
    /// Every mode.
    pub const ALL: [Mode; 4] = [
        Mode::Monolith,
        Mode::MonolithChaos,
        Mode::SplitHttp,
        Mode::SplitPostgresNats,
    ];

    /// The modes that run in one process (where killing the process kills everything).
    pub const ONE_PROCESS: [Mode; 2] = [Mode::Monolith, Mode::MonolithChaos];

    fn args(self) -> &'static [&'static str] {
        match self {
            Mode::Monolith => &[],
            Mode::MonolithChaos => &["--chaos"],
            Mode::SplitHttp | Mode::SplitPostgresNats => &["--split"],
        }
    }
}

/// A running system and a client for it.
pub struct Shop {
    /// The mode.
    pub mode: Mode,
    server: Option<Server>,
    dir: PathBuf,
    _tmp: Option<tempfile::TempDir>,
    http: reqwest::Client,
    extra: Vec<String>,
    /// The bus of [`Mode::SplitPostgresNats`], owned by the test.
    nats: Option<seams_testkit::nats::NatsServer>,
    /// The database server of [`Mode::SplitPostgresNats`], owned by the test.
    postgres: Option<seams_testkit::postgres::PostgresServer>,
    /// Tokens: staff's, an operator's, each signed-in customer's.
    tokens: Tokens,
    /// `ulimit` arguments the process starts under (`-Sn 1024`), if any.
    ulimit: Option<String>,
    /// The authority of every certificate, when the system runs on TLS.
    ca: Option<seams_testkit::tls::TestCa>,
    /// Environment variables the system starts with, besides `RUST_LOG`.
    env: Vec<(String, String)>,
}

/// The tokens the harness holds.
#[derive(Default)]
struct Tokens {
    staff: String,
    operator: String,
    /// Customer id → their token.
    customers: Mutex<HashMap<String, String>>,
    /// Invoice id → its customer, so a payment goes as them.
    invoices: Mutex<HashMap<String, String>>,
}

/// The password of every customer the harness registers.
pub const PASSWORD: &str = "e2e correct horse battery";

/// Whose token a request to `path` presents, by what the route is for.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Who {
    Nobody,
    Staff,
    Operator,
    Customer(String),
}

/// The value of query parameter `name` in `path`, if any.
fn query_param<'a>(path: &'a str, name: &str) -> Option<&'a str> {
    path.split_once('?')?
        .1
        .split('&')
        .find_map(|kv| kv.strip_prefix(name)?.strip_prefix('='))
}

/// The segment after `prefix` in `path`.
fn segment_after<'a>(path: &'a str, prefix: &str) -> Option<&'a str> {
    let rest = path.strip_prefix(prefix)?;
    Some(rest.split(['/', '?']).next().unwrap_or(rest))
}

/// A response.
#[derive(Debug, Clone)]
pub struct Reply {
    /// Status.
    pub status: StatusCode,
    /// Body as JSON (`Null` if not JSON).
    pub json: Value,
    /// Raw body.
    pub bytes: Vec<u8>,
    /// Headers.
    pub headers: reqwest::header::HeaderMap,
}

impl Reply {
    /// Problem `type` of an error.
    pub fn problem_type(&self) -> &str {
        self.json["type"].as_str().unwrap_or("")
    }
}

impl Shop {
    /// Starts the system in `mode` with a fresh data directory.
    pub fn start(mode: Mode) -> anyhow::Result<Shop> {
        Shop::start_with(mode, &[])
    }

    /// Starts the system in `mode` with extra `shop up` arguments, under
    /// the shell's `ulimit ulimit` (`-Sn 1024`: at most 1,024 open files
    /// unless the process raises its own limit).
    pub fn start_under_ulimit(mode: Mode, extra: &[&str], ulimit: &str) -> anyhow::Result<Shop> {
        Shop::start_inner(mode, extra, Some(ulimit.to_owned()))
    }

    /// Starts the system in `mode` with extra `shop up` arguments.
    pub fn start_with(mode: Mode, extra: &[&str]) -> anyhow::Result<Shop> {
        Shop::start_inner(mode, extra, None)
    }

    /// Starts the system in `mode` with TLS wherever a byte leaves a
    /// process: HTTPS at the public address and between services, and in
    /// the distributed mode TLS to PostgreSQL and NATS, all with
    /// certificates of a throwaway CA that only this system and its client
    /// trust.
    pub fn start_tls(mode: Mode) -> anyhow::Result<Shop> {
        let ca = seams_testkit::tls::TestCa::new()?;
        let pem = std::fs::read(ca.ca_file())?;
        let http = reqwest::Client::builder()
            .use_rustls_tls()
            .tls_built_in_root_certs(false)
            .add_root_certificate(reqwest::Certificate::from_pem(&pem)?)
            .timeout(Duration::from_secs(30))
            .build()?;
        let path = |p: PathBuf| p.to_str().map(str::to_owned).context("utf-8 path");
        let extra = [
            "--tls-cert".to_owned(),
            path(ca.cert_file())?,
            "--tls-key".to_owned(),
            path(ca.key_file())?,
            "--ca-file".to_owned(),
            path(ca.ca_file())?,
        ];
        Shop::assemble(mode, &extra, None, Some(ca), http, Vec::new())
    }

    /// A client trusting the system's CA (when it has one).
    pub fn http(&self) -> &reqwest::Client {
        &self.http
    }

    /// The PEM file of the system's CA, when it runs on TLS.
    pub fn ca_file(&self) -> Option<PathBuf> {
        self.ca.as_ref().map(seams_testkit::tls::TestCa::ca_file)
    }

    fn start_inner(mode: Mode, extra: &[&str], ulimit: Option<String>) -> anyhow::Result<Shop> {
        let extra: Vec<String> = extra.iter().map(|s| s.to_string()).collect();
        Shop::assemble(mode, &extra, ulimit, None, client()?, Vec::new())
    }

    /// Starts the system in `mode` with these environment variables set
    /// (the OpenTelemetry ones, say).
    pub fn start_with_env(mode: Mode, env: &[(&str, &str)]) -> anyhow::Result<Shop> {
        let env = env
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        Shop::assemble(mode, &[], None, None, client()?, env)
    }

    fn assemble(
        mode: Mode,
        extra: &[String],
        ulimit: Option<String>,
        ca: Option<seams_testkit::tls::TestCa>,
        http: reqwest::Client,
        env: Vec<(String, String)>,
    ) -> anyhow::Result<Shop> {
        let tmp = tempfile::tempdir()?;
        let dir = tmp.path().to_owned();
        let mut shop = Shop {
            mode,
            server: None,
            dir,
            _tmp: Some(tmp),
            http,
            extra: extra.to_vec(),
            nats: None,
            postgres: None,
            tokens: Tokens::default(),
            ulimit,
            ca,
            env,
        };
        shop.restart()?;
        shop.tokens.staff = shop.mint(&["--role", "staff", "--subject", "e2e-staff"])?;
        shop.tokens.operator = shop.mint(&["--role", "operator", "--subject", "e2e-operator"])?;
        Ok(shop)
    }

    /// Runs `shop token …` against this system's keys; the token.
    pub fn mint(&self, args: &[&str]) -> anyhow::Result<String> {
        let data = self.data_dir();
        let out = std::process::Command::new(cargo_bin("shop")?)
            .arg("token")
            .args(args)
            .arg("--data")
            .arg(&data)
            .env_remove("SHOP_SIGNING_KEYS")
            .output()
            .context("running shop token")?;
        anyhow::ensure!(
            out.status.success(),
            "shop token {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Ok(String::from_utf8(out.stdout)?.trim().to_owned())
    }

    /// A staff member's token.
    pub fn staff_token(&self) -> &str {
        &self.tokens.staff
    }

    /// An operator's token.
    pub fn operator_token(&self) -> &str {
        &self.tokens.operator
    }

    /// The token of customer `id`: theirs if they signed in through the
    /// harness, else one minted for that id (a customer identity never saw).
    pub fn customer_token(&self, id: &str) -> anyhow::Result<String> {
        if let Some(t) = self.lock_customers().get(id) {
            return Ok(t.clone());
        }
        let t = self.mint(&["--role", "customer", "--subject", id])?;
        self.lock_customers().insert(id.to_owned(), t.clone());
        Ok(t)
    }

    fn lock_customers(&self) -> std::sync::MutexGuard<'_, HashMap<String, String>> {
        self.tokens
            .customers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
    }

    /// Who a request to `path` (with `body`) is made as.
    fn who(&self, method: &str, path: &str, body: Option<&Value>) -> Who {
        let bare = path.split('?').next().unwrap_or(path);
        if matches!(
            bare,
            "/healthz" | "/readyz" | "/openapi.json" | "/identity/.well-known/jwks.json"
        ) || (method == "POST" && matches!(bare, "/identity/customers" | "/identity/sessions"))
        {
            return Who::Nobody;
        }
        if bare.starts_with("/_seams/") || bare == "/metrics" {
            return Who::Operator;
        }
        if bare == "/notification/deliveries"
            && let Some(c) = query_param(path, "customer_id")
        {
            return Who::Customer(c.to_owned());
        }
        for prefix in ["/notification/contacts/", "/identity/customers/"] {
            if let Some(c) = segment_after(path, prefix) {
                return Who::Customer(c.to_owned());
            }
        }
        if method == "POST"
            && bare == "/billing/invoices"
            && let Some(c) = body.and_then(|b| b["customer_id"].as_str())
        {
            return Who::Customer(c.to_owned());
        }
        if method == "POST"
            && let Some(invoice) = segment_after(path, "/billing/invoices/")
            && bare.ends_with("/payments")
        {
            let owner = self
                .tokens
                .invoices
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .get(invoice)
                .cloned();
            if let Some(c) = owner {
                return Who::Customer(c);
            }
        }
        Who::Staff
    }

    /// `req` with the token of `who`.
    fn authorized(
        &self,
        req: reqwest::RequestBuilder,
        who: Who,
    ) -> anyhow::Result<reqwest::RequestBuilder> {
        Ok(match who {
            Who::Nobody => req,
            Who::Staff => req.bearer_auth(&self.tokens.staff),
            Who::Operator => req.bearer_auth(&self.tokens.operator),
            Who::Customer(id) => req.bearer_auth(self.customer_token(&id)?),
        })
    }

    /// (Re)starts the process on the same data directory.
    pub fn restart(&mut self) -> anyhow::Result<()> {
        anyhow::ensure!(self.server.is_none(), "already running");
        let data = self.dir.join("data");
        let data_s = data.to_str().context("utf-8 path")?;
        let mut args = vec![
            "up",
            "--addr",
            "127.0.0.1:0",
            "--data",
            data_s,
            "--durability",
            "normal",
        ];
        args.extend_from_slice(self.mode.args());
        args.extend(self.extra.iter().map(String::as_str));
        if self.mode == Mode::SplitPostgresNats && self.nats.is_none() {
            use seams_testkit::{nats::NatsServer, postgres::PostgresServer};
            let (nats, postgres) = match &self.ca {
                Some(ca) => (NatsServer::start_tls(ca)?, PostgresServer::start_tls(ca)?),
                None => (NatsServer::start()?, PostgresServer::start()?),
            };
            self.nats = Some(nats.context("nats-server is missing")?);
            self.postgres = Some(postgres.context("PostgreSQL is missing")?);
        }
        let nats_url = self.nats.as_ref().map(|n| n.url());
        if let Some(url) = &nats_url {
            args.extend(["--nats", url.as_str()]);
        }
        let admin_url = self.postgres.as_ref().map(|p| match &self.ca {
            Some(ca) => p.admin_url_verified(&ca.ca_file()),
            None => p.admin_url(),
        });
        if let Some(url) = &admin_url {
            args.extend(["--postgres-admin", url.as_str()]);
        }
        let log = self
            .dir
            .join(format!("shop-{}.log", uuid::Uuid::new_v4().simple()));
        let shop = cargo_bin("shop")?;
        // `E2E_RUST_LOG` sets the systems' log filter when a failure needs more.
        let filter = std::env::var("E2E_RUST_LOG").unwrap_or_else(|_| "info,sqlx=warn".into());
        let mut envs = vec![("RUST_LOG", filter.as_str())];
        envs.extend(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        self.server = Some(match &self.ulimit {
            None => Server::start(&shop, &args, &envs, &log)?,
            Some(limit) => {
                // `exec`, so the PID signalled is the shop's own.
                let script = format!("ulimit {limit} && exec \"$0\" \"$@\"");
                let shop = shop.to_str().context("utf-8 path")?;
                let mut wrapped = vec!["-c", script.as_str(), shop];
                wrapped.extend(args.iter().copied());
                Server::start(Path::new("sh"), &wrapped, &envs, &log)?
            }
        });
        Ok(())
    }

    /// SIGKILL.
    pub fn kill(&mut self) -> anyhow::Result<()> {
        self.server.take().context("not running")?.kill()
    }

    /// SIGTERM and wait for a clean exit; returns the log.
    pub fn stop(&mut self) -> anyhow::Result<String> {
        let server = self.server.take().context("not running")?;
        let log_path = server.log_path().to_owned();
        let status = server.stop(Duration::from_secs(60))?;
        let log = std::fs::read_to_string(log_path)?;
        anyhow::ensure!(status.success(), "exit status {status}; log:\n{log}");
        Ok(log)
    }

    /// The Maildir notification writes to.
    pub fn maildir(&self) -> PathBuf {
        self.dir.join("data").join("mail")
    }

    /// Messages in the Maildir (new/ and cur/), raw.
    pub fn mails(&self) -> Vec<String> {
        let mut out = Vec::new();
        for sub in ["new", "cur"] {
            if let Ok(entries) = std::fs::read_dir(self.maildir().join(sub)) {
                for e in entries.flatten() {
                    out.push(std::fs::read_to_string(e.path()).unwrap_or_default());
                }
            }
        }
        out
    }

    /// The PostgreSQL cluster of [`Mode::SplitPostgresNats`], to inflict faults on.
    pub fn postgres(&mut self) -> Option<&mut seams_testkit::postgres::PostgresServer> {
        self.postgres.as_mut()
    }

    /// The NATS server of [`Mode::SplitPostgresNats`], to inflict faults on.
    pub fn nats(&mut self) -> Option<&mut seams_testkit::nats::NatsServer> {
        self.nats.as_mut()
    }

    /// What the running system has logged so far (for a failing test's message).
    pub fn log(&self) -> String {
        self.server
            .as_ref()
            .and_then(|s| std::fs::read_to_string(s.log_path()).ok())
            .unwrap_or_default()
    }

    /// Base URL.
    pub fn url(&self) -> &str {
        self.server.as_ref().map_or("", Server::url)
    }

    /// Data directory.
    pub fn data_dir(&self) -> PathBuf {
        self.dir.join("data")
    }

    /// The base URL of the service running `capability` (split modes),
    /// from the supervisor's `services.json`.
    pub fn service_url(&self, capability: &str) -> anyhow::Result<String> {
        Ok(self.service(capability)?["url"]
            .as_str()
            .context("no url")?
            .to_owned())
    }

    /// The PID of the service running `capability` (split modes).
    pub fn service_pid(&self, capability: &str) -> anyhow::Result<u32> {
        let pid = self.service(capability)?["pid"]
            .as_u64()
            .context("no pid")?;
        Ok(u32::try_from(pid)?)
    }

    /// The token the supervisor minted for the service running
    /// `capability` (split modes): what that service presents to others.
    pub fn service_token(&self, capability: &str) -> anyhow::Result<String> {
        let service = self.service(capability)?;
        let label = service["capabilities"]
            .as_array()
            .context("no capabilities")?
            .iter()
            .filter_map(Value::as_str)
            .collect::<Vec<_>>()
            .join(",");
        let path = self.data_dir().join("secrets").join(format!("{label}.jwt"));
        Ok(std::fs::read_to_string(&path)
            .with_context(|| format!("reading {}", path.display()))?
            .trim()
            .to_owned())
    }

    fn service(&self, capability: &str) -> anyhow::Result<Value> {
        let text = std::fs::read_to_string(self.data_dir().join("services.json"))?;
        let doc: Value = serde_json::from_str(&text)?;
        doc["services"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|s| {
                s["capabilities"]
                    .as_array()
                    .is_some_and(|c| c.iter().any(|c| c == capability))
            })
            .cloned()
            .with_context(|| format!("{capability} not in services.json: {text}"))
    }

    /// A token signed with this deployment's own key for `role`, that
    /// expired `ago` ago (well past any clock leeway).
    pub fn expired_token(
        &self,
        role: &str,
        subject: &str,
        ago: Duration,
    ) -> anyhow::Result<String> {
        let keys =
            seams_auth::SigningKeys::load(&self.data_dir().join("keys").join("signing-keys.json"))?;
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)?
            .as_secs();
        let exp = now - ago.as_secs();
        keys.sign(&seams_auth::Claims {
            iss: "seams".to_owned(),
            sub: subject.to_owned(),
            role: role.to_owned(),
            iat: exp - 900,
            exp,
            caps: Vec::new(),
        })
    }

    /// A well-formed, unexpired token for `role` signed with a key this
    /// deployment never had.
    pub fn foreign_token(&self, role: &str, subject: &str) -> anyhow::Result<String> {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)?
            .as_secs();
        seams_auth::SigningKeys::generate()?.sign(&seams_auth::Claims {
            iss: "seams".to_owned(),
            sub: subject.to_owned(),
            role: role.to_owned(),
            iat: now,
            exp: now + 900,
            caps: Vec::new(),
        })
    }

    /// A request sent byte for byte as given (`raw_path` is not parsed,
    /// so dot segments and percent-escapes reach the server as written),
    /// with `token` if any; the status and the body. Plain HTTP only.
    pub fn raw(
        &self,
        method: &str,
        raw_path: &str,
        token: Option<&str>,
    ) -> anyhow::Result<(u16, String)> {
        use std::io::{Read, Write};
        let authority = self.url().trim_start_matches("http://");
        let mut s = std::net::TcpStream::connect(authority)?;
        s.set_read_timeout(Some(Duration::from_secs(30)))?;
        let auth = token.map_or(String::new(), |t| format!("authorization: Bearer {t}\r\n"));
        write!(
            s,
            "{method} {raw_path} HTTP/1.1\r\nhost: {authority}\r\n{auth}content-length: 0\r\nconnection: close\r\n\r\n"
        )?;
        let mut out = String::new();
        s.read_to_string(&mut out)?;
        let status = out
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .with_context(|| format!("no status in {out:?}"))?;
        let body = out.split_once("\r\n\r\n").map_or("", |(_, b)| b).to_owned();
        Ok((status, body))
    }

    /// Any request, as it is (no token added).
    pub async fn send(&self, req: reqwest::RequestBuilder) -> anyhow::Result<Reply> {
        let res = req.send().await?;
        let status = res.status();
        let headers = res.headers().clone();
        let bytes = res.bytes().await?.to_vec();
        let json = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        Ok(Reply {
            status,
            json,
            bytes,
            headers,
        })
    }

    /// `GET path`, as whoever the route is for.
    pub async fn get(&self, path: &str) -> anyhow::Result<Reply> {
        let req = self.http.get(format!("{}{path}", self.url()));
        let req = self.authorized(req, self.who("GET", path, None))?;
        self.send(req).await
    }

    /// `GET path` with `token` (or none).
    pub async fn get_as(&self, path: &str, token: Option<&str>) -> anyhow::Result<Reply> {
        let mut req = self.http.get(format!("{}{path}", self.url()));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        self.send(req).await
    }

    /// `POST path` with JSON and an optional idempotency key, as whoever
    /// the route is for.
    pub async fn post(&self, path: &str, body: &Value, key: Option<&str>) -> anyhow::Result<Reply> {
        let req = self.http.post(format!("{}{path}", self.url()));
        let req = self.authorized(req, self.who("POST", path, Some(body)))?;
        self.post_with(req, body, key).await
    }

    /// `POST path` with `token` (or none), JSON and an optional key.
    pub async fn post_as(
        &self,
        path: &str,
        token: Option<&str>,
        body: &Value,
        key: Option<&str>,
    ) -> anyhow::Result<Reply> {
        let mut req = self.http.post(format!("{}{path}", self.url()));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        self.post_with(req, body, key).await
    }

    async fn post_with(
        &self,
        req: reqwest::RequestBuilder,
        body: &Value,
        key: Option<&str>,
    ) -> anyhow::Result<Reply> {
        let mut req = req.json(body);
        if let Some(k) = key {
            req = req.header("Idempotency-Key", k);
        }
        self.send(req).await
    }

    /// Registers a customer and signs them in; returns its id (their token
    /// is [`Shop::customer_token`]).
    pub async fn register(&self, email: &str) -> anyhow::Result<String> {
        let r = self
            .post(
                "/identity/customers",
                &json!({ "email": email, "name": "Test Customer", "password": PASSWORD }),
                None,
            )
            .await?;
        expect(&r, StatusCode::CREATED)?;
        let id = r.json["id"].as_str().context("id")?.to_owned();
        let token = self.sign_in(email, PASSWORD).await?;
        self.lock_customers().insert(id.clone(), token);
        Ok(id)
    }

    /// Signs in; the access token.
    pub async fn sign_in(&self, email: &str, password: &str) -> anyhow::Result<String> {
        let r = self
            .post(
                "/identity/sessions",
                &json!({ "email": email, "password": password }),
                None,
            )
            .await?;
        expect(&r, StatusCode::CREATED)?;
        Ok(r.json["access_token"].as_str().context("token")?.to_owned())
    }

    /// Adds a product.
    pub async fn add_product(&self, sku: &str, amount: i64) -> anyhow::Result<()> {
        let body = json!({ "sku": sku, "name": format!("Product {sku}"), "price": { "amount": amount, "currency": "EUR" } });
        expect(
            &self.post("/catalog/products", &body, None).await?,
            StatusCode::CREATED,
        )
    }

    /// Creates an invoice under `key`.
    pub async fn create_invoice(
        &self,
        key: &str,
        customer_id: &str,
        lines: &[(&str, u32)],
    ) -> anyhow::Result<Reply> {
        let lines: Vec<Value> = lines
            .iter()
            .map(|(s, q)| json!({ "sku": s, "quantity": q }))
            .collect();
        let r = self
            .post(
                "/billing/invoices",
                &json!({ "customer_id": customer_id, "lines": lines }),
                Some(key),
            )
            .await?;
        if let Some(id) = r.json["id"].as_str() {
            self.tokens
                .invoices
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert(id.to_owned(), customer_id.to_owned());
        }
        Ok(r)
    }

    /// Pays an invoice under `key`.
    pub async fn pay(&self, key: &str, invoice_id: &str, amount: &Value) -> anyhow::Result<Reply> {
        self.post(
            &format!("/billing/invoices/{invoice_id}/payments"),
            &json!({ "amount": amount }),
            Some(key),
        )
        .await
    }

    /// Receives `quantity` units of `sku`.
    pub async fn receive_stock(&self, sku: &str, quantity: u32) -> anyhow::Result<()> {
        let key = format!("stock-{}", uuid::Uuid::new_v4());
        let r = self
            .post(
                "/fulfillment/stock",
                &json!({ "sku": sku, "quantity": quantity }),
                Some(&key),
            )
            .await?;
        expect(&r, StatusCode::CREATED)
    }

    /// `(on_hand, reserved)` of `sku`.
    pub async fn stock(&self, sku: &str) -> anyhow::Result<(u64, u64)> {
        let r = self.get(&format!("/fulfillment/stock/{sku}")).await?;
        if r.status == StatusCode::NOT_FOUND {
            return Ok((0, 0));
        }
        expect(&r, StatusCode::OK)?;
        Ok((
            r.json["on_hand"].as_u64().context("on_hand")?,
            r.json["reserved"].as_u64().context("reserved")?,
        ))
    }

    /// An invoice's status.
    pub async fn invoice_status(&self, id: &str) -> anyhow::Result<String> {
        let r = self.get(&format!("/billing/invoices/{id}")).await?;
        expect(&r, StatusCode::OK)?;
        Ok(r.json["status"].as_str().context("status")?.to_owned())
    }

    /// An invoice's shipments.
    pub async fn shipments(&self, invoice_id: &str) -> anyhow::Result<Vec<Value>> {
        let r = self
            .get(&format!("/fulfillment/shipments?invoice_id={invoice_id}"))
            .await?;
        expect(&r, StatusCode::OK)?;
        Ok(r.json["shipments"].as_array().cloned().unwrap_or_default())
    }

    /// Polls `check` until it returns `Some`, at most `timeout`.
    pub async fn until<T>(
        &self,
        what: &str,
        timeout: Duration,
        mut check: impl AsyncFnMut() -> anyhow::Result<Option<T>>,
    ) -> anyhow::Result<T> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(v) = check().await? {
                return Ok(v);
            }
            if Instant::now() > deadline {
                bail!(
                    "{:?}: timed out after {timeout:?} waiting for {what}",
                    self.mode
                );
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    /// A customer's deliveries.
    pub async fn deliveries(&self, customer_id: &str) -> anyhow::Result<Vec<Value>> {
        let r = self
            .get(&format!(
                "/notification/deliveries?customer_id={customer_id}"
            ))
            .await?;
        expect(&r, StatusCode::OK)?;
        Ok(r.json["deliveries"].as_array().cloned().unwrap_or_default())
    }

    /// Waits until `customer_id` has `n` delivered notifications (never more).
    pub async fn wait_delivered(
        &self,
        customer_id: &str,
        n: usize,
        timeout: Duration,
    ) -> anyhow::Result<Vec<Value>> {
        let deadline = Instant::now() + timeout;
        loop {
            // A service being restarted by the supervisor answers 503 through the gateway for a moment.
            let r = self
                .get(&format!(
                    "/notification/deliveries?customer_id={customer_id}"
                ))
                .await?;
            if r.status == StatusCode::SERVICE_UNAVAILABLE && Instant::now() < deadline {
                tokio::time::sleep(Duration::from_millis(25)).await;
                continue;
            }
            expect(&r, StatusCode::OK)?;
            let list = r.json["deliveries"].as_array().cloned().unwrap_or_default();
            let delivered = list.iter().filter(|d| d["status"] == "delivered").count();
            if delivered > n {
                bail!("{delivered} deliveries, expected {n}: {list:?}");
            }
            if delivered == n {
                return Ok(list);
            }
            if Instant::now() > deadline {
                bail!("only {delivered} of {n} delivered after {timeout:?}: {list:?}");
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }
}

fn client() -> anyhow::Result<reqwest::Client> {
    Ok(reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()?)
}

/// Fails with the body unless `r` has status `want`.
pub fn expect(r: &Reply, want: StatusCode) -> anyhow::Result<()> {
    if r.status != want {
        bail!("expected {want}, got {}: {}", r.status, r.json);
    }
    Ok(())
}

/// Files directly in `dir` (recursive count not needed).
pub fn count_files(dir: &Path) -> usize {
    std::fs::read_dir(dir)
        .map(|d| d.flatten().count())
        .unwrap_or(0)
}
