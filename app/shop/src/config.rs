//! The system's configuration: where it listens, where it keeps data, how
//! notifications leave, and whether delivery is made deliberately unreliable.
//!
//! Every value can come from a flag or an environment variable (`SHOP_*`);
//! flags win. Validation happens before anything starts and names the key.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::Args;

/// Versions each narrowed consumer reads, by (consumer, event type).
pub type Narrowed = std::collections::BTreeMap<(String, String), Vec<u32>>;

/// Configuration of `shop up`. `Debug` shows URLs with their passwords
/// replaced by `***`.
#[derive(Clone, Args)]
pub struct Config {
    /// Address of the public API (a socket passed in `LISTEN_FDS`, as the
    /// split supervisor and systemd pass them, is served instead).
    #[arg(long, env = "SHOP_ADDR", default_value = "127.0.0.1:8080")]
    pub addr: SocketAddr,
    /// Directory of the per-capability SQLite files and the Maildir.
    #[arg(long = "data", env = "SHOP_DATA", default_value = "./data")]
    pub data_dir: PathBuf,
    /// Inject duplicate deliveries and random delays into event delivery, and
    /// send in-process calls through JSON as the network would.
    #[arg(long, env = "SHOP_CHAOS")]
    pub chaos: bool,
    /// With --chaos: shortest delay before each delivery, in ms (slows every consumer down).
    #[arg(long, env = "SHOP_CHAOS_MIN_DELAY_MS", default_value_t = 0)]
    pub chaos_min_delay_ms: u64,
    /// With --chaos: longest delay before each delivery, in ms.
    #[arg(long, env = "SHOP_CHAOS_MAX_DELAY_MS", default_value_t = 50)]
    pub chaos_max_delay_ms: u64,
    /// Send notifications over SMTP to this host instead of the Maildir.
    #[arg(long, env = "SHOP_SMTP_HOST")]
    pub smtp_host: Option<String>,
    /// SMTP port.
    #[arg(long, env = "SHOP_SMTP_PORT", default_value_t = 25)]
    pub smtp_port: u16,
    /// TLS to the SMTP server: `none`, `starttls` (required, port 587) or
    /// `implicit` (port 465); with TLS, `--ca-file` names the authority
    /// trusted instead of the public roots.
    #[arg(long, env = "SHOP_SMTP_TLS", default_value = "none", value_parser = ["none", "starttls", "implicit"])]
    pub smtp_tls: String,
    /// Sender address of notifications.
    #[arg(
        long,
        env = "SHOP_MAIL_FROM",
        default_value = "Seams Shop <shop@localhost>"
    )]
    pub mail_from: String,
    /// Use NATS JetStream at this URL as the event bus (every feed reads from it).
    #[arg(long, env = "SHOP_NATS_URL")]
    pub nats: Option<String>,
    /// Commit durability of the SQLite files: `full` (survives power loss) or
    /// `normal` (survives a crash).
    #[arg(long, env = "SHOP_DURABILITY", default_value = "full", value_parser = ["full", "normal"])]
    pub durability: String,
    /// How log lines on stderr look: `text` (for people) or `json` (one
    /// object per line, for a log pipeline; each names its service and,
    /// inside a request or an event's handling, its trace and correlation ids).
    #[arg(long, env = "SHOP_LOG_FORMAT", default_value = "text", value_parser = ["text", "json"])]
    pub log_format: String,
    /// A capability's own PostgreSQL database, `CAP=postgres://…` (repeatable;
    /// comma-separated in the variable). Given, every capability of this
    /// process uses PostgreSQL instead of a SQLite file, and each needs one.
    #[arg(long = "database", env = "SHOP_DATABASES", value_delimiter = ',')]
    pub databases: Vec<String>,
    /// At start, create (or update) a role and a database of its own for each
    /// capability through this PostgreSQL admin URL, and use them. Passwords
    /// are new at every start; a service only ever learns its own.
    #[arg(long, env = "SHOP_POSTGRES_ADMIN")]
    pub postgres_admin: Option<String>,
    /// How long idempotency records are kept, in seconds (the longest a
    /// client may retry a command and get the first answer back).
    #[arg(long, env = "SHOP_RETAIN_IDEMPOTENCY_SECS", default_value_t = 24 * 3600)]
    pub retain_idempotency_secs: u64,
    /// How long delivered outbox rows are kept, in seconds (how far a
    /// subscriber can be rewound).
    #[arg(long, env = "SHOP_RETAIN_OUTBOX_SECS", default_value_t = 3600)]
    pub retain_outbox_secs: u64,
    /// How long inbox ids are kept, in seconds; refused at start unless it
    /// covers outbox retention plus the longest bus retry horizon.
    #[arg(long, env = "SHOP_RETAIN_INBOX_SECS", default_value_t = 2 * 3600)]
    pub retain_inbox_secs: u64,
    /// How often pruning runs, in seconds.
    #[arg(long, env = "SHOP_PRUNE_EVERY_SECS", default_value_t = 60)]
    pub prune_every_secs: u64,
    /// Record no metrics and serve none at /metrics (to measure what they cost).
    #[arg(long, env = "SHOP_NO_METRICS")]
    pub no_metrics: bool,
    /// The deployment's signing keys: a private JWK set (mode 0600),
    /// created with one key at the first start. Default
    /// `<data>/keys/signing-keys.json`. Only the process running identity
    /// (and `shop token`) reads it.
    #[arg(long, env = "SHOP_SIGNING_KEYS")]
    pub signing_keys: Option<PathBuf>,
    /// The issuer name (`iss`) of every token this deployment mints.
    #[arg(long, env = "SHOP_ISSUER", default_value = "seams")]
    pub issuer: String,
    /// How long a customer's access token lives, in seconds.
    #[arg(long, env = "SHOP_TOKEN_TTL_SECS", default_value_t = 900)]
    pub token_ttl_secs: u64,
    /// Sign-in attempts allowed per email address per minute.
    #[arg(long, env = "SHOP_SIGN_IN_PER_EMAIL", default_value_t = 5)]
    pub sign_in_per_email: u32,
    /// Sign-ins and sign-ups allowed per client address per minute.
    #[arg(long, env = "SHOP_SIGN_IN_PER_ADDRESS", default_value_t = 30)]
    pub sign_in_per_address: u32,
    /// Also trust people's tokens from this OIDC issuer (its `iss`), for
    /// example a Keycloak realm or an Auth0 tenant. Needs
    /// `--oidc-jwks-url` and `--oidc-audience`.
    #[arg(long, env = "SHOP_OIDC_ISSUER")]
    pub oidc_issuer: Option<String>,
    /// Where that issuer publishes its keys (its `jwks_uri`).
    #[arg(long, env = "SHOP_OIDC_JWKS_URL")]
    pub oidc_jwks_url: Option<String>,
    /// The audience its tokens must name (the client id of this API).
    #[arg(long, env = "SHOP_OIDC_AUDIENCE")]
    pub oidc_audience: Option<String>,
    /// The claim holding the role (`customer`, `staff` or `operator`; a
    /// string, or an array of which the first known role counts).
    #[arg(long, env = "SHOP_OIDC_ROLE_CLAIM", default_value = "role")]
    pub oidc_role_claim: String,
    /// The longest a client may take to send a request's head, and to stay
    /// idle between requests on a kept-alive connection, in seconds.
    #[arg(long, env = "SHOP_HEADER_READ_TIMEOUT_SECS", default_value_t = 20)]
    pub header_read_timeout_secs: u64,
    /// The longest a request may take to be answered, in seconds (then 503
    /// `request-timeout`).
    #[arg(long, env = "SHOP_REQUEST_TIMEOUT_SECS", default_value_t = 30)]
    pub request_timeout_secs: u64,
    /// Connections served at once at most (also bounded by the process's
    /// file-descriptor limit, which is raised to its maximum at start).
    #[arg(long, env = "SHOP_MAX_CONNECTIONS", default_value_t = 10_000)]
    pub max_connections: usize,
    /// Requests handled at once at most; more are shed with 503 `overloaded`.
    #[arg(long, env = "SHOP_MAX_IN_FLIGHT", default_value_t = 1024)]
    pub max_in_flight: usize,
    /// How long in-flight requests may take to finish at shutdown before
    /// their connections are closed, in seconds.
    #[arg(long, env = "SHOP_DRAIN_TIMEOUT_SECS", default_value_t = 10)]
    pub drain_timeout_secs: u64,
    /// At shutdown, how long open connections are still served before the
    /// drain, each answer closing its connection, so that clients move to a
    /// successor on the same socket, in milliseconds. Default: 500 when the
    /// socket was passed in (`LISTEN_FDS`, as the split supervisor and
    /// systemd do), else 0.
    #[arg(long, env = "SHOP_LAME_DUCK_MS")]
    pub lame_duck_ms: Option<u64>,
    /// Start as the successor of a running process of the same service (a
    /// rolling restart, as `shop rollout` does): a PostgreSQL database whose
    /// writer lock the predecessor holds is waited for (at most 60 s) after
    /// saying so on stdout, instead of refused.
    #[arg(long, env = "SHOP_TAKE_OVER")]
    pub take_over: bool,
    /// Serve HTTPS with this PEM certificate chain (with `--tls-key`).
    /// `shop up --split` serves the gateway and every service with it, so
    /// it must name 127.0.0.1 as well as the public name.
    #[arg(long, env = "SHOP_TLS_CERT", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// The PEM private key of `--tls-cert` (readable by its owner only).
    #[arg(long, env = "SHOP_TLS_KEY", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// Also trust the authorities in this PEM file (a deployment's own CA)
    /// when calling other services and fetching keys; for a `tls://` NATS
    /// URL and SMTP with `--smtp-tls`, trust it instead of the public roots.
    /// (PostgreSQL takes its CA in the URL: `sslmode=verify-full&sslrootcert=…`.)
    #[arg(long, env = "SHOP_CA_FILE")]
    pub ca_file: Option<PathBuf>,
    /// This service's own token, in a file only its user can read, kept
    /// fresh by whoever deploys it (`shop up --split` does): presented to
    /// the services it calls and reads feeds from.
    #[arg(long, env = "SHOP_SERVICE_TOKEN_FILE")]
    pub service_token_file: Option<PathBuf>,
    /// During a rollout, write an event type in an older version, or in
    /// several at once: `TYPE=VERSION`, for example
    /// `billing.invoice-created=1` while some consumer reads only version 1
    /// (repeatable; comma-separated in the variable; the same type twice
    /// writes both versions in one event, each consumer reading the newest
    /// it accepts). Unnamed types are written in their current version.
    #[arg(long = "emit", env = "SHOP_EMIT", value_delimiter = ',')]
    pub emit: Vec<String>,
    /// Let a consumer read only some of the versions its code accepts, as
    /// the older build that knew only those would: `CONSUMER:TYPE=VERSION`,
    /// for example `fulfillment:billing.invoice-created=1` (repeatable;
    /// comma-separated in the variable). For rehearsing a rollout from such
    /// a build with one binary; an event carrying none of the versions is
    /// dead-lettered with the reason, to replay once the setting is gone.
    #[arg(long = "accept", env = "SHOP_ACCEPT", value_delimiter = ',')]
    pub accept: Vec<String>,
}

impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Config")
            .field("addr", &self.addr)
            .field("data_dir", &self.data_dir)
            .field("chaos", &self.chaos)
            .field("chaos_min_delay_ms", &self.chaos_min_delay_ms)
            .field("chaos_max_delay_ms", &self.chaos_max_delay_ms)
            .field("smtp_host", &self.smtp_host)
            .field("smtp_port", &self.smtp_port)
            .field("smtp_tls", &self.smtp_tls)
            .field("mail_from", &self.mail_from)
            .field("nats", &self.nats.as_deref().map(redacted))
            .field("durability", &self.durability)
            .field("log_format", &self.log_format)
            .field(
                "databases",
                &self
                    .databases
                    .iter()
                    .map(|d| redacted(d))
                    .collect::<Vec<_>>(),
            )
            .field(
                "postgres_admin",
                &self.postgres_admin.as_deref().map(redacted),
            )
            .field("retain_idempotency_secs", &self.retain_idempotency_secs)
            .field("retain_outbox_secs", &self.retain_outbox_secs)
            .field("retain_inbox_secs", &self.retain_inbox_secs)
            .field("prune_every_secs", &self.prune_every_secs)
            .field("no_metrics", &self.no_metrics)
            .field("signing_keys", &self.signing_keys)
            .field("issuer", &self.issuer)
            .field("token_ttl_secs", &self.token_ttl_secs)
            .field("sign_in_per_email", &self.sign_in_per_email)
            .field("sign_in_per_address", &self.sign_in_per_address)
            .field("oidc_issuer", &self.oidc_issuer)
            .field(
                "oidc_jwks_url",
                &self.oidc_jwks_url.as_deref().map(redacted),
            )
            .field("oidc_audience", &self.oidc_audience)
            .field("oidc_role_claim", &self.oidc_role_claim)
            .field("service_token_file", &self.service_token_file)
            .field("header_read_timeout_secs", &self.header_read_timeout_secs)
            .field("request_timeout_secs", &self.request_timeout_secs)
            .field("max_connections", &self.max_connections)
            .field("max_in_flight", &self.max_in_flight)
            .field("drain_timeout_secs", &self.drain_timeout_secs)
            .field("lame_duck_ms", &self.lame_duck_ms)
            .field("take_over", &self.take_over)
            .field("tls_cert", &self.tls_cert)
            .field("tls_key", &self.tls_key)
            .field("ca_file", &self.ca_file)
            .field("emit", &self.emit)
            .field("accept", &self.accept)
            .finish()
    }
}

pub use seams_core::redact as redacted;

impl Config {
    /// The default configuration with data under `data_dir`, listening on `addr`.
    pub fn new(addr: SocketAddr, data_dir: PathBuf) -> Config {
        Config {
            addr,
            data_dir,
            chaos: false,
            nats: None,
            chaos_min_delay_ms: 0,
            chaos_max_delay_ms: 50,
            smtp_host: None,
            smtp_port: 25,
            smtp_tls: "none".to_owned(),
            mail_from: "Seams Shop <shop@localhost>".into(),
            durability: "full".into(),
            log_format: "text".into(),
            databases: Vec::new(),
            postgres_admin: None,
            no_metrics: false,
            emit: Vec::new(),
            accept: Vec::new(),
            retain_idempotency_secs: 24 * 3600,
            retain_outbox_secs: 3600,
            retain_inbox_secs: 2 * 3600,
            prune_every_secs: 60,
            signing_keys: None,
            issuer: "seams".into(),
            token_ttl_secs: 900,
            sign_in_per_email: 5,
            sign_in_per_address: 30,
            oidc_issuer: None,
            oidc_jwks_url: None,
            oidc_audience: None,
            oidc_role_claim: "role".into(),
            service_token_file: None,
            header_read_timeout_secs: 20,
            request_timeout_secs: 30,
            max_connections: 10_000,
            max_in_flight: 1024,
            drain_timeout_secs: 10,
            lame_duck_ms: None,
            take_over: false,
            tls_cert: None,
            tls_key: None,
            ca_file: None,
        }
    }

    /// The server's TLS configuration, when `--tls-cert` and `--tls-key` are given.
    pub fn server_tls(&self) -> anyhow::Result<Option<std::sync::Arc<rustls::ServerConfig>>> {
        match (&self.tls_cert, &self.tls_key) {
            (Some(cert), Some(key)) => Ok(Some(seams_http::tls::server_config(cert, key)?)),
            (None, None) => Ok(None),
            _ => anyhow::bail!("--tls-cert and --tls-key go together"),
        }
    }

    /// The extra authorities `--ca-file` names.
    pub fn authorities(&self) -> anyhow::Result<Vec<reqwest::Certificate>> {
        match &self.ca_file {
            Some(path) => seams_http::tls::authorities(path),
            None => Ok(Vec::new()),
        }
    }

    /// The edge's limits, the connections also held within `fd_limit`
    /// (the process's file descriptors, of which 256 are kept for the rest).
    pub fn edge(&self, fd_limit: u64) -> seams_http::server::Limits {
        let room = fd_limit.saturating_sub(256).max(64) as usize;
        seams_http::server::Limits {
            header_read_timeout: Duration::from_secs(self.header_read_timeout_secs),
            request_timeout: Duration::from_secs(self.request_timeout_secs),
            max_connections: self.max_connections.min(room),
            max_in_flight: self.max_in_flight,
            drain_timeout: Duration::from_secs(self.drain_timeout_secs),
            lame_duck: Duration::from_millis(self.lame_duck_ms.unwrap_or(0)),
        }
    }

    /// Where the deployment's signing keys are kept.
    pub fn signing_keys_path(&self) -> PathBuf {
        self.signing_keys
            .clone()
            .unwrap_or_else(|| self.data_dir.join("keys").join("signing-keys.json"))
    }

    /// Checks what only makes sense together; errors name the flag.
    pub fn validate(&self) -> anyhow::Result<()> {
        self.emit_versions()?;
        self.accept_versions()?;
        anyhow::ensure!(
            !self.issuer.is_empty() && self.issuer.len() <= 256,
            "--issuer must be 1-256 characters"
        );
        anyhow::ensure!(
            (60..=24 * 3600).contains(&self.token_ttl_secs),
            "--token-ttl-secs {}: expected 60-86400",
            self.token_ttl_secs
        );
        anyhow::ensure!(
            self.sign_in_per_email > 0 && self.sign_in_per_address > 0,
            "--sign-in-per-email and --sign-in-per-address must be at least 1"
        );
        for (flag, secs) in [
            ("--header-read-timeout-secs", self.header_read_timeout_secs),
            ("--request-timeout-secs", self.request_timeout_secs),
            ("--drain-timeout-secs", self.drain_timeout_secs),
        ] {
            anyhow::ensure!((1..=3600).contains(&secs), "{flag} {secs}: expected 1-3600");
        }
        if let Some(ms) = self.lame_duck_ms {
            anyhow::ensure!(ms <= 60_000, "--lame-duck-ms {ms}: expected 0-60000");
        }
        anyhow::ensure!(
            self.max_connections >= 1 && self.max_in_flight >= 1,
            "--max-connections and --max-in-flight must be at least 1"
        );
        match (&self.oidc_issuer, &self.oidc_jwks_url, &self.oidc_audience) {
            (None, None, None) => {}
            (Some(iss), Some(url), Some(aud)) => {
                anyhow::ensure!(
                    iss != &self.issuer,
                    "--oidc-issuer {iss}: the external issuer needs a name of its own, not this deployment's --issuer"
                );
                anyhow::ensure!(
                    url.starts_with("https://") || url.starts_with("http://"),
                    "--oidc-jwks-url {}: expected an http(s) URL",
                    redacted(url)
                );
                anyhow::ensure!(!aud.is_empty(), "--oidc-audience must not be empty");
            }
            _ => anyhow::bail!(
                "--oidc-issuer, --oidc-jwks-url and --oidc-audience go together: give all three or none"
            ),
        }
        Ok(())
    }

    /// Identity's sign-in limits.
    pub fn sign_in_limits(&self) -> identity::credentials::Limits {
        let n = |v: u32| std::num::NonZeroU32::new(v.max(1)).expect("at least 1");
        identity::credentials::Limits {
            per_email: n(self.sign_in_per_email),
            per_address: n(self.sign_in_per_address),
        }
    }

    /// `--emit TYPE=VERSION` values as a map from event type to the versions
    /// to write; refuses what does not parse and types no capability
    /// consumes. Whether the producer can write a version is checked by the
    /// process running it, against its contract.
    pub fn emit_versions(&self) -> anyhow::Result<std::collections::BTreeMap<String, Vec<u32>>> {
        let mut versions: std::collections::BTreeMap<String, Vec<u32>> = Default::default();
        for e in &self.emit {
            let (event_type, version) = e
                .split_once('=')
                .ok_or_else(|| anyhow::anyhow!("--emit `{e}`: expected TYPE=VERSION"))?;
            let version: u32 = version
                .parse()
                .map_err(|_| anyhow::anyhow!("--emit `{e}`: the version is not a number"))?;
            let known = crate::system::declared()
                .iter()
                .any(|d| d.consumes.iter().any(|c| c.event_type == event_type));
            anyhow::ensure!(
                known,
                "--emit `{e}`: no capability consumes an event `{event_type}`"
            );
            let list = versions.entry(event_type.to_owned()).or_default();
            if !list.contains(&version) {
                list.push(version);
            }
        }
        Ok(versions)
    }

    /// `--accept CONSUMER:TYPE=VERSION` values as a map from (consumer,
    /// event type) to the versions it reads; refuses what does not parse
    /// and a consumer that does not consume the type. Whether its code
    /// accepts the versions is checked by the process running it.
    pub fn accept_versions(&self) -> anyhow::Result<Narrowed> {
        let mut versions = Narrowed::new();
        for a in &self.accept {
            let parsed = a.split_once(':').and_then(|(consumer, rest)| {
                let (event_type, version) = rest.split_once('=')?;
                Some((consumer, event_type, version))
            });
            let (consumer, event_type, version) = parsed
                .ok_or_else(|| anyhow::anyhow!("--accept `{a}`: expected CONSUMER:TYPE=VERSION"))?;
            let version: u32 = version
                .parse()
                .map_err(|_| anyhow::anyhow!("--accept `{a}`: the version is not a number"))?;
            let consumes = crate::system::declared().iter().any(|d| {
                d.capability == consumer && d.consumes.iter().any(|c| c.event_type == event_type)
            });
            anyhow::ensure!(
                consumes,
                "--accept `{a}`: no capability {consumer:?} consumes an event `{event_type}`"
            );
            let list = versions
                .entry((consumer.to_owned(), event_type.to_owned()))
                .or_default();
            if !list.contains(&version) {
                list.push(version);
            }
        }
        Ok(versions)
    }

    /// `--database CAP=URL` values as a map; refuses unknown capabilities
    /// and URLs that are not PostgreSQL's.
    pub fn database_urls(&self) -> anyhow::Result<std::collections::BTreeMap<String, String>> {
        let mut urls = std::collections::BTreeMap::new();
        for d in &self.databases {
            let (cap, url) = d
                .split_once('=')
                .ok_or_else(|| anyhow::anyhow!("--database `{}`: expected CAP=URL", redacted(d)))?;
            anyhow::ensure!(
                crate::system::CAPABILITIES.contains(&cap),
                "--database: unknown capability `{cap}`"
            );
            anyhow::ensure!(
                url.starts_with("postgres://") || url.starts_with("postgresql://"),
                "--database {cap}=…: expected a postgres:// URL"
            );
            urls.insert(cap.to_owned(), url.to_owned());
        }
        Ok(urls)
    }

    /// The faults injected into delivery, if any.
    pub fn chaos(&self) -> Option<seams_runtime::Chaos> {
        self.chaos.then(|| seams_runtime::Chaos {
            min_delay: Duration::from_millis(self.chaos_min_delay_ms),
            max_delay: Duration::from_millis(self.chaos_max_delay_ms.max(self.chaos_min_delay_ms)),
            ..seams_runtime::Chaos::DEFAULT
        })
    }

    /// Retention of the framework's tables.
    pub fn retention(&self) -> seams_runtime::Retention {
        seams_runtime::Retention {
            idempotency: Duration::from_secs(self.retain_idempotency_secs),
            outbox: Duration::from_secs(self.retain_outbox_secs),
            inbox: Duration::from_secs(self.retain_inbox_secs),
            interval: Duration::from_secs(self.prune_every_secs.max(1)),
        }
    }

    /// Commit durability.
    pub fn durability(&self) -> seams_store::Durability {
        match self.durability.as_str() {
            "normal" => seams_store::Durability::Normal,
            _ => seams_store::Durability::Full,
        }
    }

    /// How log lines look.
    pub fn log_format(&self) -> crate::telemetry::Format {
        match self.log_format.as_str() {
            "json" => crate::telemetry::Format::Json,
            _ => crate::telemetry::Format::Text,
        }
    }

    /// TLS to the SMTP server.
    pub fn smtp_security(&self) -> notification::channel::SmtpTls {
        match self.smtp_tls.as_str() {
            "starttls" => notification::channel::SmtpTls::StartTls,
            "implicit" => notification::channel::SmtpTls::Implicit,
            _ => notification::channel::SmtpTls::None,
        }
    }

    /// How the connection to NATS is secured: a `tls://` URL trusts
    /// `--ca-file` (or the system's roots); a `nats://` one asks nothing
    /// more than its URL says, so a deployment CA for HTTPS alone does not
    /// demand TLS of a plain bus.
    pub fn nats_tls(&self) -> seams_nats::NatsTls {
        let tls_url = self
            .nats
            .as_deref()
            .is_some_and(|u| u.trim_start().to_ascii_lowercase().starts_with("tls://"));
        seams_nats::NatsTls {
            ca_file: if tls_url { self.ca_file.clone() } else { None },
        }
    }

    /// How notifications leave.
    pub fn channel(&self) -> notification::ChannelOptions {
        match &self.smtp_host {
            Some(host) => notification::ChannelOptions::Smtp(notification::channel::SmtpOptions {
                host: host.clone(),
                port: self.smtp_port,
                from: self.mail_from.clone(),
                timeout: Duration::from_secs(10),
                tls: self.smtp_security(),
                ca_file: match self.smtp_security() {
                    notification::channel::SmtpTls::None => None,
                    _ => self.ca_file.clone(),
                },
            }),
            None => notification::ChannelOptions::Maildir {
                dir: self.data_dir.join("mail"),
            },
        }
    }
}

/// A configuration file (`--config FILE`, TOML): the same keys as the
/// flags, under the same names, plus what only files carry (peers, groups).
/// Precedence: a flag, then its `SHOP_*` environment variable, then the
/// file, then the default.
#[derive(Clone, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    /// `--addr`.
    pub addr: Option<SocketAddr>,
    /// `--data`.
    pub data: Option<PathBuf>,
    /// `--chaos`.
    pub chaos: Option<bool>,
    /// `--chaos-min-delay-ms`.
    pub chaos_min_delay_ms: Option<u64>,
    /// `--chaos-max-delay-ms`.
    pub chaos_max_delay_ms: Option<u64>,
    /// `--durability` (`full` or `normal`).
    pub durability: Option<String>,
    /// `--log-format` (`text` or `json`).
    pub log_format: Option<String>,
    /// `--nats`.
    pub nats: Option<String>,
    /// `--postgres-admin`.
    pub postgres_admin: Option<String>,
    /// `--database`: `capability = "postgres://…"`.
    #[serde(default)]
    pub databases: std::collections::BTreeMap<String, String>,
    /// SMTP instead of the Maildir.
    pub smtp: Option<SmtpFile>,
    /// `serve`: where each capability not served here is (`capability = "http://…"`).
    #[serde(default)]
    pub peers: std::collections::BTreeMap<String, String>,
    /// `up --split`: colocation groups, e.g. `[["billing", "catalog"], ["identity"]]`.
    #[serde(default)]
    pub groups: Vec<Vec<String>>,
    /// `--emit`: event type to the versions to write, e.g.
    /// `"billing.invoice-created" = [1, 2]`.
    #[serde(default)]
    pub emit: std::collections::BTreeMap<String, Vec<u32>>,
    /// `--accept`: consumer and event type to the versions it reads, e.g.
    /// `"fulfillment:billing.invoice-created" = [1]`.
    #[serde(default)]
    pub accept: std::collections::BTreeMap<String, Vec<u32>>,
    /// `--signing-keys`.
    pub signing_keys: Option<PathBuf>,
    /// `--issuer`.
    pub issuer: Option<String>,
    /// `--token-ttl-secs`.
    pub token_ttl_secs: Option<u64>,
    /// `--sign-in-per-email`.
    pub sign_in_per_email: Option<u32>,
    /// `--sign-in-per-address`.
    pub sign_in_per_address: Option<u32>,
    /// `--service-token-file`.
    pub service_token_file: Option<PathBuf>,
    /// An external OIDC issuer trusted for people.
    pub oidc: Option<OidcFile>,
    /// `--tls-cert`.
    pub tls_cert: Option<PathBuf>,
    /// `--tls-key`.
    pub tls_key: Option<PathBuf>,
    /// `--ca-file`.
    pub ca_file: Option<PathBuf>,
}

/// `[oidc]` of a configuration file.
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OidcFile {
    /// `--oidc-issuer`.
    pub issuer: String,
    /// `--oidc-jwks-url`.
    pub jwks_url: String,
    /// `--oidc-audience`.
    pub audience: String,
    /// `--oidc-role-claim`.
    pub role_claim: Option<String>,
}

/// `[smtp]` of a configuration file.
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SmtpFile {
    /// `--smtp-host`.
    pub host: String,
    /// `--smtp-port`.
    pub port: Option<u16>,
    /// `--mail-from`.
    pub from: Option<String>,
    /// `--smtp-tls`.
    pub tls: Option<String>,
}

impl std::fmt::Debug for FileConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FileConfig")
            .field("addr", &self.addr)
            .field("data", &self.data)
            .field("chaos", &self.chaos)
            .field("chaos_min_delay_ms", &self.chaos_min_delay_ms)
            .field("chaos_max_delay_ms", &self.chaos_max_delay_ms)
            .field("durability", &self.durability)
            .field("log_format", &self.log_format)
            .field("nats", &self.nats.as_deref().map(redacted))
            .field(
                "postgres_admin",
                &self.postgres_admin.as_deref().map(redacted),
            )
            .field(
                "databases",
                &self
                    .databases
                    .iter()
                    .map(|(cap, url)| (cap, redacted(url)))
                    .collect::<std::collections::BTreeMap<_, _>>(),
            )
            .field("smtp", &self.smtp)
            .field("peers", &self.peers)
            .field("groups", &self.groups)
            .field("signing_keys", &self.signing_keys)
            .field("issuer", &self.issuer)
            .field("token_ttl_secs", &self.token_ttl_secs)
            .field("sign_in_per_email", &self.sign_in_per_email)
            .field("sign_in_per_address", &self.sign_in_per_address)
            .field("service_token_file", &self.service_token_file)
            .field("oidc", &self.oidc.as_ref().map(|o| &o.issuer))
            .field("tls_cert", &self.tls_cert)
            .field("tls_key", &self.tls_key)
            .field("ca_file", &self.ca_file)
            .finish()
    }
}

impl FileConfig {
    /// Reads and parses `path`; errors name the file and the offending key.
    pub fn load(path: &std::path::Path) -> anyhow::Result<FileConfig> {
        use anyhow::Context;
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        FileConfig::parse(&text).with_context(|| format!("in {}", path.display()))
    }

    /// The file's `[peers]` as `--peer CAPABILITY=URL` values, so that
    /// `shop serve` reads them exactly as it reads the flags.
    pub fn peer_args(&self) -> Vec<String> {
        self.peers
            .iter()
            .map(|(cap, url)| format!("{cap}={url}"))
            .collect()
    }

    /// Parses a configuration file's text; errors name the offending key.
    pub fn parse(text: &str) -> anyhow::Result<FileConfig> {
        let file: FileConfig = toml::from_str(text)?;
        if let Some(d) = &file.durability {
            anyhow::ensure!(
                d == "full" || d == "normal",
                "durability = {d:?}: expected \"full\" or \"normal\""
            );
        }
        if let Some(f) = &file.log_format {
            anyhow::ensure!(
                f == "text" || f == "json",
                "log_format = {f:?}: expected \"text\" or \"json\""
            );
        }
        if let Some(tls) = file.smtp.as_ref().and_then(|s| s.tls.as_deref()) {
            anyhow::ensure!(
                matches!(tls, "none" | "starttls" | "implicit"),
                "smtp.tls = {tls:?}: expected \"none\", \"starttls\" or \"implicit\""
            );
        }
        Ok(file)
    }

    /// Fills every value of `config` that `given` says was not set by a flag
    /// or an environment variable.
    pub fn apply(&self, config: &mut Config, given: &dyn Fn(&str) -> bool) {
        macro_rules! fill {
            ($id:literal, $field:ident, $value:expr) => {
                if !given($id)
                    && let Some(v) = $value
                {
                    config.$field = v;
                }
            };
        }
        fill!("addr", addr, self.addr);
        fill!("data_dir", data_dir, self.data.clone());
        fill!("chaos", chaos, self.chaos);
        fill!(
            "chaos_min_delay_ms",
            chaos_min_delay_ms,
            self.chaos_min_delay_ms
        );
        fill!(
            "chaos_max_delay_ms",
            chaos_max_delay_ms,
            self.chaos_max_delay_ms
        );
        fill!("durability", durability, self.durability.clone());
        fill!("log_format", log_format, self.log_format.clone());
        if !given("nats") && self.nats.is_some() {
            config.nats = self.nats.clone();
        }
        if !given("postgres_admin") && self.postgres_admin.is_some() {
            config.postgres_admin = self.postgres_admin.clone();
        }
        if !given("emit") && !self.emit.is_empty() {
            config.emit = self
                .emit
                .iter()
                .flat_map(|(t, versions)| versions.iter().map(move |v| format!("{t}={v}")))
                .collect();
        }
        if !given("accept") && !self.accept.is_empty() {
            config.accept = self
                .accept
                .iter()
                .flat_map(|(k, versions)| versions.iter().map(move |v| format!("{k}={v}")))
                .collect();
        }
        if !given("databases") && !self.databases.is_empty() {
            config.databases = self
                .databases
                .iter()
                .map(|(cap, url)| format!("{cap}={url}"))
                .collect();
        }
        fill!(
            "signing_keys",
            signing_keys,
            self.signing_keys.clone().map(Some)
        );
        fill!("issuer", issuer, self.issuer.clone());
        fill!("token_ttl_secs", token_ttl_secs, self.token_ttl_secs);
        fill!(
            "sign_in_per_email",
            sign_in_per_email,
            self.sign_in_per_email
        );
        fill!(
            "sign_in_per_address",
            sign_in_per_address,
            self.sign_in_per_address
        );
        fill!(
            "service_token_file",
            service_token_file,
            self.service_token_file.clone().map(Some)
        );
        if let Some(oidc) = &self.oidc {
            fill!("oidc_issuer", oidc_issuer, Some(Some(oidc.issuer.clone())));
            fill!(
                "oidc_jwks_url",
                oidc_jwks_url,
                Some(Some(oidc.jwks_url.clone()))
            );
            fill!(
                "oidc_audience",
                oidc_audience,
                Some(Some(oidc.audience.clone()))
            );
            fill!("oidc_role_claim", oidc_role_claim, oidc.role_claim.clone());
        }
        if let Some(smtp) = &self.smtp {
            if !given("smtp_host") {
                config.smtp_host = Some(smtp.host.clone());
            }
            fill!("smtp_port", smtp_port, smtp.port);
            fill!("mail_from", mail_from, smtp.from.clone());
            fill!("smtp_tls", smtp_tls, smtp.tls.clone());
        }
        fill!("tls_cert", tls_cert, self.tls_cert.clone().map(Some));
        fill!("tls_key", tls_key, self.tls_key.clone().map(Some));
        fill!("ca_file", ca_file, self.ca_file.clone().map(Some));
    }
}

#[cfg(test)]
mod tests;
