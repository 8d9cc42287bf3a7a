//! The `shop` command line.
//!
//! - `shop up` runs every capability in this process on SQLite under `./data`.
//! - `shop demo` walks a customer journey against a running system.
//! - `shop contracts` prints every declared contract as a table;
//!   `shop contracts snapshot` commits their schemas beside each contract
//!   crate and `shop contracts check` fails on a breaking change that no new
//!   version covers, against those snapshots or a running deployment.
//! - `shop token` mints an access token with the deployment's keys (as
//!   `kubectl create token` does), and `shop keys rotate` rotates them.

use std::time::Duration;

use anyhow::Context;
use clap::{Parser, Subcommand};
use seams_runtime::system::ContractRow;

use crate::config::Config;
use crate::system::Placement;

/// The Seams reference shop.
#[derive(Debug, Parser)]
#[command(name = "shop", version, about)]
pub struct Cli {
    /// A TOML configuration file (keys as the flags; flags and `SHOP_*` variables win).
    #[arg(long, global = true, env = "SHOP_CONFIG")]
    pub config: Option<std::path::PathBuf>,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the whole system: one process (default), or `--split` into one process per capability behind a gateway.
    Up {
        /// The configuration.
        #[command(flatten)]
        config: Config,
        /// Run each capability as its own process, behind a gateway on `--addr`.
        #[arg(long)]
        split: bool,
    },
    /// Run only the named capabilities in this process; reach the others at their `--peer` URLs.
    Serve {
        /// Capabilities to run here.
        #[arg(required = true, value_parser = clap::builder::PossibleValuesParser::new(crate::capabilities::NAMES))]
        capabilities: Vec<String>,
        /// The configuration.
        #[command(flatten)]
        config: Config,
        /// Where a capability not run here is served: `CAP=URL`, once per capability.
        #[arg(long = "peer", env = "SHOP_PEERS", value_delimiter = ',')]
        peers: Vec<String>,
    },
    /// Walk a customer journey against a running system.
    Demo {
        /// Base URL of the system.
        #[arg(long, env = "SHOP_URL", default_value = "http://127.0.0.1:8080")]
        url: String,
        /// How long to wait for notifications.
        #[arg(long, default_value_t = 30)]
        timeout_secs: u64,
        /// The system's keys and CA (the staff token, unless
        /// `SHOP_STAFF_TOKEN` gives one).
        #[command(flatten)]
        system: System,
    },
    /// Print every contract's answers to the five questions; snapshot their
    /// schemas, or check them for breaking changes.
    Contracts {
        /// Snapshot or check; without one, print the table.
        #[command(subcommand)]
        action: Option<ContractsAction>,
    },
    /// Mint an access token with the deployment's signing keys and print it
    /// (for staff, operators, or a service of a split deployment).
    Token {
        /// The role: staff, operator, customer or service.
        #[arg(long, value_parser = ["staff", "operator", "customer", "service"])]
        role: String,
        /// Who the token is for: a person's name, a customer id, or a
        /// service's name.
        #[arg(long)]
        subject: String,
        /// For a service: the capabilities it runs (repeatable; default its subject).
        #[arg(long = "capability")]
        capabilities: Vec<String>,
        /// How long it is valid: `900`, `15m`, `1h`, `7d` (at most 30 days).
        #[arg(long, default_value = "1h")]
        ttl: String,
        /// The directory of `shop up` (its keys are in `<data>/keys/`).
        #[arg(long = "data", env = "SHOP_DATA", default_value = "./data")]
        data_dir: std::path::PathBuf,
        /// The key file, if not under the data directory.
        #[arg(long, env = "SHOP_SIGNING_KEYS")]
        signing_keys: Option<std::path::PathBuf>,
        /// The issuer name the deployment uses.
        #[arg(long, env = "SHOP_ISSUER", default_value = "seams")]
        issuer: String,
    },
    /// Files for operating the system with other tools.
    Ops {
        /// What to write.
        #[command(subcommand)]
        action: OpsAction,
    },
    /// Restart the services of a running `shop up --split`, one at a time,
    /// each successor started (from the executable on disk) and listening
    /// before its predecessor drains: no request meets a closed door.
    Rollout {
        /// Capabilities whose services to roll, in this order (default:
        /// every service, in dependency order).
        #[arg(value_parser = clap::builder::PossibleValuesParser::new(crate::capabilities::NAMES))]
        capabilities: Vec<String>,
        /// Base URL of the split system's gateway.
        #[arg(long, env = "SHOP_URL", default_value = "http://127.0.0.1:8080")]
        url: String,
        /// From now on, the rolled services write events in these versions
        /// (`TYPE=VERSION`, repeatable, as `shop up --emit`).
        #[arg(long = "emit", value_delimiter = ',')]
        emit: Vec<String>,
        /// From now on, the rolled services' consumers read only these
        /// versions (`CONSUMER:TYPE=VERSION`, as `shop up --accept`).
        #[arg(long = "accept", value_delimiter = ',')]
        accept: Vec<String>,
        /// Clear the rolled services' `--emit` settings.
        #[arg(long, conflicts_with = "emit")]
        clear_emit: bool,
        /// Clear the rolled services' `--accept` settings.
        #[arg(long, conflicts_with = "accept")]
        clear_accept: bool,
        /// The system's keys and CA (the operator token, unless
        /// `SHOP_OPERATOR_TOKEN` gives one).
        #[command(flatten)]
        system: System,
    },
    /// Manage the deployment's signing keys.
    Keys {
        /// What to do.
        #[command(subcommand)]
        action: KeysAction,
    },
}

/// How a command talking to a running system trusts it and speaks for a
/// person in it: the token it mints with the deployment's keys, and the
/// CA of a system serving HTTPS.
#[derive(Debug, clap::Args)]
pub struct System {
    /// The system's data directory, whose keys mint the command's token.
    #[arg(long = "data", env = "SHOP_DATA", default_value = "./data")]
    data_dir: std::path::PathBuf,
    /// The key file, if not under the data directory.
    #[arg(long, env = "SHOP_SIGNING_KEYS")]
    signing_keys: Option<std::path::PathBuf>,
    /// The issuer name the deployment uses.
    #[arg(long, env = "SHOP_ISSUER", default_value = "seams")]
    issuer: String,
    /// Also trust the authorities in this PEM file (for a system serving
    /// HTTPS with its own CA).
    #[arg(long, env = "SHOP_CA_FILE")]
    ca_file: Option<std::path::PathBuf>,
}

impl System {
    /// The authorities to trust besides the public roots.
    fn authorities(&self) -> anyhow::Result<Vec<reqwest::Certificate>> {
        match &self.ca_file {
            Some(path) => seams_http::tls::authorities(path),
            None => Ok(Vec::new()),
        }
    }

    /// A person's token: the one in the environment variable `var` (never
    /// on the command line), else one minted for ten minutes with the
    /// deployment's keys.
    fn person_token(
        self,
        var: &str,
        (subject, role): (&str, seams_core::auth::Role),
    ) -> anyhow::Result<String> {
        if let Ok(token) = std::env::var(var)
            && !token.trim().is_empty()
        {
            return Ok(token.trim().to_owned());
        }
        let config = Config {
            signing_keys: self.signing_keys,
            ..Config::new("127.0.0.1:0".parse()?, self.data_dir)
        };
        let path = config.signing_keys_path();
        anyhow::ensure!(
            path.exists(),
            "no signing keys at {} to mint the {role} token: \
             point --data at the system's data directory, or set {var}",
            path.display()
        );
        let keys = crate::trust::open_keys(&config)?;
        Ok(seams_auth::Minter::new(keys, self.issuer)
            .person(subject, role, Duration::from_secs(600))?
            .token)
    }
}

/// `shop contracts …`.
#[derive(Debug, Subcommand)]
pub enum ContractsAction {
    /// Write every capability's contract schemas to
    /// `capabilities/<cap>-contract/contract-snapshot.json`, on purpose:
    /// what `check` compares with afterwards.
    Snapshot {
        /// The workspace's root directory.
        #[arg(long, default_value = ".")]
        root: std::path::PathBuf,
    },
    /// Compare the contracts declared now with the snapshots (or with what
    /// a running deployment serves) and fail on a breaking change that no
    /// new version, with the old one still accepted, covers.
    Check {
        /// The workspace's root directory (where the snapshots are).
        #[arg(long, default_value = ".")]
        root: std::path::PathBuf,
        /// Check against what the deployment at this URL serves at
        /// `/_seams/contracts` instead of the snapshots. It needs an
        /// operator token: `SHOP_OPERATOR_TOKEN`, or a 0600 file named by
        /// `--token-file` (never the token itself on the command line).
        #[arg(long)]
        against: Option<String>,
        /// A file holding an operator token (`shop token --role operator`), private to its owner.
        #[arg(long, env = "SHOP_OPERATOR_TOKEN_FILE")]
        token_file: Option<std::path::PathBuf>,
        /// Also trust the authorities in this PEM file (a deployment with its own CA).
        #[arg(long, env = "SHOP_CA_FILE")]
        ca_file: Option<std::path::PathBuf>,
    },
}

/// `shop keys …`.
#[derive(Debug, Subcommand)]
pub enum KeysAction {
    /// Add a new signing key and keep only the one before it. The new key is
    /// published at once and signs after a few minutes; a running identity
    /// picks the file up without a restart.
    Rotate {
        /// The directory of `shop up`.
        #[arg(long = "data", env = "SHOP_DATA", default_value = "./data")]
        data_dir: std::path::PathBuf,
        /// The key file, if not under the data directory.
        #[arg(long, env = "SHOP_SIGNING_KEYS")]
        signing_keys: Option<std::path::PathBuf>,
    },
}

/// `shop ops …`.
#[derive(Debug, Subcommand)]
pub enum OpsAction {
    /// Write Prometheus alerting rules derived from the declarations (eventual
    /// invariants, objectives, outboxes), their `promtool test rules` tests,
    /// and a scrape configuration for the system's `/metrics`.
    Prometheus {
        /// The directory to write `seams-rules.yml`, `seams-rules-test.yml` and `prometheus.yml` to.
        #[arg(long, default_value = "./prometheus")]
        out: std::path::PathBuf,
        /// `host:port` of the system's public address (the gateway when split).
        #[arg(long, default_value = "127.0.0.1:8080")]
        target: String,
        /// How Prometheus reaches it.
        #[arg(long, value_parser = ["http", "https"], default_value = "http")]
        scheme: String,
        /// The file Prometheus reads an operator token from (relative to `--out`
        /// unless absolute); the token is never written into the configuration.
        #[arg(long, default_value = "operator.jwt")]
        credentials_file: std::path::PathBuf,
        /// The CA to trust for `https` (the deployment's own).
        #[arg(long)]
        ca_file: Option<std::path::PathBuf>,
        /// How often Prometheus scrapes and evaluates the rules: `15s`, `1m`.
        #[arg(long, default_value = "15s")]
        interval: String,
    },
}

/// The listening socket this process was handed, if any: fd 3 when
/// `LISTEN_FDS` says so (systemd's socket activation protocol, without the
/// `LISTEN_PID` check when it is unset). The split supervisor starts every
/// service this way; `shop serve` and `shop up` then serve on it instead of
/// binding `--addr`.
pub fn passed_socket() -> anyhow::Result<Option<std::net::TcpListener>> {
    listenfd::ListenFd::from_env()
        .take_tcp_listener(0)
        .context("taking the listening socket passed in LISTEN_FDS")
}

/// Parses the command line (and the configuration file it names) and runs
/// it; `passed` is what [`passed_socket`] found.
pub async fn main(passed: Option<std::net::TcpListener>) -> anyhow::Result<()> {
    use clap::{CommandFactory, FromArgMatches};
    let matches = Cli::command().get_matches();
    let cli = Cli::from_arg_matches(&matches)?;
    let file = match &cli.config {
        Some(path) => Some(crate::config::FileConfig::load(path)?),
        None => None,
    };
    let given = given_by_user(&matches);
    run(cli, file.as_ref(), &given, passed).await
}

/// Whether the subcommand's argument `id` came from the command line or
/// the environment: those win over the configuration file, which fills
/// only what they left unset (clap's defaults included).
pub fn given_by_user(matches: &clap::ArgMatches) -> impl Fn(&str) -> bool + use<> {
    let sub = matches.subcommand().map(|(_, m)| m.clone());
    move |id: &str| {
        sub.as_ref()
            .and_then(|m| m.value_source(id))
            .is_some_and(|source| {
                matches!(
                    source,
                    clap::parser::ValueSource::CommandLine | clap::parser::ValueSource::EnvVariable
                )
            })
    }
}

/// Runs a parsed command; `file` fills what `given` says flags and environment left unset.
pub async fn run(
    cli: Cli,
    file: Option<&crate::config::FileConfig>,
    given: &dyn Fn(&str) -> bool,
    passed: Option<std::net::TcpListener>,
) -> anyhow::Result<()> {
    let with_file = |mut config: Config| {
        if let Some(f) = file {
            f.apply(&mut config, given);
        }
        config
    };
    match cli.command {
        Command::Up {
            config,
            split: false,
        } => serve(with_file(config), Placement::monolith(), passed).await,
        Command::Up {
            config,
            split: true,
        } => {
            if passed.is_some() {
                anyhow::bail!(
                    "`shop up --split` binds its gateway on --addr; a socket passed in \
                     LISTEN_FDS is served by `shop up` and `shop serve` only"
                );
            }
            let groups = file.map(|f| f.groups.clone()).unwrap_or_default();
            up_split(with_file(config), groups).await
        }
        Command::Serve {
            capabilities,
            config,
            mut peers,
        } => {
            if !given("peers")
                && let Some(f) = file
            {
                peers = f.peer_args();
            }
            serve(
                with_file(config),
                Placement::split(&capabilities, &peers)?,
                passed,
            )
            .await
        }
        Command::Demo {
            url,
            timeout_secs,
            system,
        } => {
            let authorities = system.authorities()?;
            let staff =
                system.person_token("SHOP_STAFF_TOKEN", ("demo", seams_core::auth::Role::Staff))?;
            crate::demo::run(
                &url,
                &staff,
                &authorities,
                Duration::from_secs(timeout_secs),
            )
            .await
        }
        Command::Rollout {
            capabilities,
            url,
            emit,
            accept,
            clear_emit,
            clear_accept,
            system,
        } => {
            let authorities = system.authorities()?;
            let operator = system.person_token(
                "SHOP_OPERATOR_TOKEN",
                ("rollout", seams_core::auth::Role::Operator),
            )?;
            let set =
                |values: Vec<String>, clear: bool| (clear || !values.is_empty()).then_some(values);
            rollout(
                &url,
                &operator,
                &authorities,
                capabilities,
                set(emit, clear_emit),
                set(accept, clear_accept),
            )
            .await
        }
        Command::Contracts { action: None } => contracts().await,
        Command::Contracts {
            action: Some(ContractsAction::Snapshot { root }),
        } => contracts_snapshot(&root).await,
        Command::Contracts {
            action:
                Some(ContractsAction::Check {
                    root,
                    against,
                    token_file,
                    ca_file,
                }),
        } => contracts_check(&root, against.as_deref(), token_file, ca_file).await,
        Command::Ops {
            action:
                OpsAction::Prometheus {
                    out,
                    target,
                    scheme,
                    credentials_file,
                    ca_file,
                    interval,
                },
        } => {
            let interval = humantime::parse_duration(&interval)
                .with_context(|| format!("--interval {interval}: expected a duration like 15s"))?;
            anyhow::ensure!(!interval.is_zero(), "--interval must be positive");
            let scrape = crate::ops::Scrape {
                target,
                scheme,
                credentials_file,
                ca_file,
                interval,
            };
            for path in crate::ops::write(&out, &declared().await?, &scrape)? {
                println!("wrote {}", path.display());
            }
            Ok(())
        }
        Command::Token {
            role,
            subject,
            capabilities,
            ttl,
            data_dir,
            signing_keys,
            issuer,
        } => {
            let config = Config {
                signing_keys,
                ..Config::new("127.0.0.1:0".parse()?, data_dir)
            };
            let ttl = parse_ttl(&ttl)?;
            let minter = seams_auth::Minter::new(crate::trust::open_keys(&config)?, issuer);
            let minted = match role.as_str() {
                "service" => {
                    let caps = if capabilities.is_empty() {
                        subject.split(',').map(str::to_owned).collect()
                    } else {
                        capabilities
                    };
                    for cap in &caps {
                        anyhow::ensure!(
                            crate::system::CAPABILITIES.contains(&cap.as_str()),
                            "--capability {cap}: unknown capability (known: {})",
                            crate::system::CAPABILITIES.join(", ")
                        );
                    }
                    minter.service(&subject, &caps, ttl)?
                }
                person => {
                    anyhow::ensure!(
                        capabilities.is_empty(),
                        "--capability is for service tokens only"
                    );
                    let role = seams_core::auth::Role::parse(person)
                        .context("checked by the argument parser")?;
                    minter.person(&subject, role, ttl)?
                }
            };
            println!("{}", minted.token);
            Ok(())
        }
        Command::Keys {
            action:
                KeysAction::Rotate {
                    data_dir,
                    signing_keys,
                },
        } => {
            let config = Config {
                signing_keys,
                ..Config::new("127.0.0.1:0".parse()?, data_dir)
            };
            let path = config.signing_keys_path();
            let keys = seams_auth::SigningKeys::rotate(&path)?;
            println!(
                "rotated {}: live keys {} (the newest signs once it has been published for {} s)",
                path.display(),
                keys.kids().join(", "),
                seams_auth::keys::PUBLISH_AHEAD.as_secs()
            );
            Ok(())
        }
    }
}

/// The longest a token `shop token` mints may live.
pub const MAX_TTL: Duration = Duration::from_secs(30 * 24 * 3600);

/// A lifetime given as seconds (`900`) or with units (`15m`, `1h`, `7d`).
pub fn parse_ttl(text: &str) -> anyhow::Result<Duration> {
    let ttl = match text.parse::<u64>() {
        Ok(secs) => Duration::from_secs(secs),
        Err(_) => humantime::parse_duration(text)
            .with_context(|| format!("--ttl {text}: expected seconds or a duration like 15m"))?,
    };
    anyhow::ensure!(
        ttl >= Duration::from_secs(1) && ttl <= MAX_TTL,
        "--ttl {text}: must be between 1 s and 30 days"
    );
    Ok(ttl)
}

async fn serve(
    mut config: Config,
    placement: Placement,
    passed: Option<std::net::TcpListener>,
) -> anyhow::Result<()> {
    if passed.is_some() && config.lame_duck_ms.is_none() {
        // A successor may be accepting on this socket (a rollout).
        config.lame_duck_ms = Some(PASSED_SOCKET_LAME_DUCK_MS);
    }
    let _exporting = {
        let name = placement.service_name();
        crate::telemetry::init(config.log_format(), &name, &name)?
    };
    // Made (or tightened) before anything is put in it: a data directory
    // made by an older version, or by hand, may be open to others.
    seams_auth::private::create_dir(&config.data_dir)?;
    let builder = crate::system::build(&config, &placement).await?;
    let listener = match passed {
        Some(socket) => {
            socket.set_nonblocking(true)?;
            tokio::net::TcpListener::from_std(socket)
                .context("serving on the socket passed in LISTEN_FDS")?
        }
        None => tokio::net::TcpListener::bind(config.addr)
            .await
            .with_context(|| format!("binding {}", config.addr))?,
    };
    let running = builder.start(listener).await?;
    let shutdown = shutdown_signal();
    if placement.here("identity") {
        println!(
            "signing keys in {} (a staff token: shop token --role staff --subject you --data {})",
            config.signing_keys_path().display(),
            config.data_dir.display()
        );
    }
    // Tests and scripts read this line to learn the port (the address may be port 0).
    println!(
        "shop listening on {}://{} (data in {}{})",
        if config.tls_cert.is_some() {
            "https"
        } else {
            "http"
        },
        running.addr(),
        config.data_dir.display(),
        if config.chaos { ", chaos on" } else { "" }
    );
    shutdown.await;
    tracing::info!("shutting down: draining requests, then delivery");
    tokio::time::timeout(crate::system::STOP_TIMEOUT, running.stop())
        .await
        .context("stopping took too long")??;
    Ok(())
}

async fn up_split(config: Config, groups: Vec<Vec<String>>) -> anyhow::Result<()> {
    // Traced as the gateway: the services trace under their own names.
    let _exporting = crate::telemetry::init(config.log_format(), "shop", "gateway")?;
    // `--log-format` too is passed on, by the supervisor (`log_format` below).
    let mut extra_args = vec!["--durability".to_owned(), config.durability.clone()];
    if config.chaos {
        extra_args.extend([
            "--chaos".to_owned(),
            "--chaos-min-delay-ms".to_owned(),
            config.chaos_min_delay_ms.to_string(),
            "--chaos-max-delay-ms".to_owned(),
            config.chaos_max_delay_ms.to_string(),
        ]);
    }
    if config.no_metrics {
        extra_args.push("--no-metrics".to_owned());
    }
    for (flag, secs) in [
        ("--retain-idempotency-secs", config.retain_idempotency_secs),
        ("--retain-outbox-secs", config.retain_outbox_secs),
        ("--retain-inbox-secs", config.retain_inbox_secs),
        ("--prune-every-secs", config.prune_every_secs),
        (
            "--header-read-timeout-secs",
            config.header_read_timeout_secs,
        ),
        ("--request-timeout-secs", config.request_timeout_secs),
        ("--drain-timeout-secs", config.drain_timeout_secs),
        ("--max-connections", config.max_connections as u64),
        ("--max-in-flight", config.max_in_flight as u64),
    ] {
        extra_args.extend([flag.to_owned(), secs.to_string()]);
    }
    if let Some(host) = &config.smtp_host {
        extra_args.extend([
            "--smtp-host".to_owned(),
            host.clone(),
            "--smtp-port".to_owned(),
            config.smtp_port.to_string(),
            "--smtp-tls".to_owned(),
            config.smtp_tls.clone(),
        ]);
    }
    extra_args.extend([
        "--issuer".to_owned(),
        config.issuer.clone(),
        "--token-ttl-secs".to_owned(),
        config.token_ttl_secs.to_string(),
        "--sign-in-per-email".to_owned(),
        config.sign_in_per_email.to_string(),
        "--sign-in-per-address".to_owned(),
        config.sign_in_per_address.to_string(),
        "--oidc-role-claim".to_owned(),
        config.oidc_role_claim.clone(),
    ]);
    for (flag, value) in [
        ("--oidc-issuer", &config.oidc_issuer),
        ("--oidc-jwks-url", &config.oidc_jwks_url),
        ("--oidc-audience", &config.oidc_audience),
    ] {
        if let Some(v) = value {
            extra_args.extend([flag.to_owned(), v.clone()]);
        }
    }
    // Paths, not secrets: each service reads the key file itself, which
    // must be private.
    for (flag, path) in [
        ("--tls-cert", &config.tls_cert),
        ("--tls-key", &config.tls_key),
        ("--ca-file", &config.ca_file),
    ] {
        if let Some(p) = path {
            extra_args.extend([flag.to_owned(), p.display().to_string()]);
        }
    }
    config.validate()?;
    let fd_limit = crate::system::raise_fd_limit();
    let keys = crate::trust::open_keys(&config)?;
    println!(
        "signing keys in {} (a staff token: shop token --role staff --subject you --data {})",
        config.signing_keys_path().display(),
        config.data_dir.display()
    );
    // The supervisor provisions every capability's database, so that each
    // service is handed only its own credentials, never the admin's.
    let databases = crate::system::database_urls(&config, &crate::system::CAPABILITIES).await?;
    let opts = crate::supervisor::SplitOptions {
        addr: config.addr,
        data_dir: config.data_dir.clone(),
        databases,
        // Empty means one process per capability; a capability in no group runs alone.
        groups,
        extra_args,
        verifier: crate::trust::supervisor(&config, keys.clone())?,
        minter: seams_auth::Minter::new(keys, config.issuer.clone()),
        // Every service is told; the one publishing or consuming the type
        // applies it.
        versions: crate::supervisor::Versions {
            emit: config.emit.clone(),
            accept: config.accept.clone(),
        },
        log_format: config.log_format(),
        signing_keys: Some(config.signing_keys_path()),
        edge: config.edge(fd_limit),
        nats: config.nats.clone(),
        tls: config.server_tls()?,
        upstream: crate::supervisor::Upstream {
            scheme: if config.tls_cert.is_some() {
                "https"
            } else {
                "http"
            },
            authorities: config.authorities()?,
        },
    };
    crate::supervisor::run(opts, shutdown_signal()).await
}

/// `shop rollout`: rolls each named capability's service in turn (each
/// service once, however many of its capabilities are named), stopping at
/// the first that fails; prints a line per service.
async fn rollout(
    url: &str,
    operator: &str,
    authorities: &[reqwest::Certificate],
    capabilities: Vec<String>,
    emit: Option<Vec<String>>,
    accept: Option<Vec<String>>,
) -> anyhow::Result<()> {
    let client = seams_http::tls::client_builder(authorities)
        .no_proxy()
        .timeout(Duration::from_secs(120))
        .build()?;
    let capabilities = if capabilities.is_empty() {
        crate::capabilities::NAMES
            .iter()
            .map(|c| (*c).to_owned())
            .collect()
    } else {
        capabilities
    };
    let mut rolled: Vec<String> = Vec::new();
    for capability in capabilities {
        if rolled
            .iter()
            .any(|service| service.split(',').any(|c| c == capability))
        {
            continue;
        }
        let request = crate::supervisor::RolloutRequest {
            capability: capability.clone(),
            emit: emit.clone(),
            accept: accept.clone(),
        };
        let res = client
            .post(format!("{}/_seams/rollout", url.trim_end_matches('/')))
            .bearer_auth(operator)
            .json(&request)
            .send()
            .await
            .with_context(|| format!("asking {url} to roll {capability}"))?;
        let status = res.status();
        let body = res.text().await.unwrap_or_default();
        if !status.is_success() {
            anyhow::bail!("rolling {capability}: {status}: {body}");
        }
        let r: crate::supervisor::Rolled = serde_json::from_str(&body)
            .with_context(|| format!("reading the answer for {capability}: {body}"))?;
        let pid = |p: Option<u32>| p.map_or_else(|| "?".to_owned(), |p| p.to_string());
        println!(
            "rolled {}: pid {} -> {}, successor ready in {} ms, predecessor stopped in {} ms",
            r.service,
            pid(r.old_pid),
            pid(r.new_pid),
            r.ready_ms,
            r.stopped_ms
        );
        rolled.push(r.service);
    }
    Ok(())
}

/// The lame duck of a process serving a socket passed in `LISTEN_FDS`:
/// long enough for a busy client to send one more request on each kept-alive
/// connection and be told to close it.
const PASSED_SOCKET_LAME_DUCK_MS: u64 = 500;

/// Resolves at Ctrl-C or SIGTERM. The SIGTERM handler is installed when
/// this is called, not when it is first awaited: a SIGTERM sent as soon as
/// the listening line is out must stop the process cleanly, not kill it.
fn shutdown_signal() -> impl std::future::Future<Output = ()> {
    #[cfg(unix)]
    let term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate());
    async move {
        let ctrl_c = async {
            if let Err(e) = tokio::signal::ctrl_c().await {
                tracing::error!(error = %e, "listening for Ctrl-C");
                std::future::pending::<()>().await;
            }
        };
        #[cfg(unix)]
        let term = async move {
            match term {
                Ok(mut s) => {
                    s.recv().await;
                }
                Err(_) => std::future::pending::<()>().await,
            }
        };
        #[cfg(not(unix))]
        let term = std::future::pending::<()>();
        tokio::select! {
            _ = ctrl_c => {}
            _ = term => {}
        }
    }
}

async fn contracts() -> anyhow::Result<()> {
    // Components open their databases when built; a throwaway directory keeps
    // `shop contracts` from touching real data.
    let dir = tempdir()?;
    let config = Config::new("127.0.0.1:0".parse()?, dir.clone());
    let builder = crate::system::build(&config, &Placement::monolith()).await?;
    builder.check()?;
    print!("{}", render_table(&builder.contracts()));
    print!("{}", render_invariants(&builder.invariants()));
    print!("{}", render_objectives(&crate::system::objectives()?));
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

/// Every capability's contract document as the code declares it now.
async fn documents() -> anyhow::Result<Vec<seams_schema::Document>> {
    let dir = tempdir()?;
    let config = Config::new("127.0.0.1:0".parse()?, dir.clone());
    let builder = crate::system::build(&config, &Placement::monolith()).await?;
    builder.check()?;
    let docs = builder.documents();
    drop(builder);
    let _ = std::fs::remove_dir_all(&dir);
    Ok(docs)
}

/// Where a capability's snapshot is committed: beside its contract crate,
/// which is under `capabilities/`, or under `examples/` for the example
/// capability of the guide once an app lists it.
pub fn snapshot_path(root: &std::path::Path, capability: &str) -> std::path::PathBuf {
    let crate_dir = format!("{capability}-contract");
    let example = root.join("examples").join(&crate_dir);
    let dir = match example.is_dir() {
        true => example,
        false => root.join("capabilities").join(crate_dir),
    };
    dir.join("contract-snapshot.json")
}

fn read_snapshot(path: &std::path::Path) -> anyhow::Result<Option<seams_schema::Document>> {
    match std::fs::read_to_string(path) {
        Ok(text) => Ok(Some(
            serde_json::from_str(&text).with_context(|| format!("reading {}", path.display()))?,
        )),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
    }
}

async fn contracts_snapshot(root: &std::path::Path) -> anyhow::Result<()> {
    for doc in documents().await? {
        let path = snapshot_path(root, &doc.capability);
        let dir = path.parent().unwrap_or(root);
        anyhow::ensure!(
            dir.is_dir(),
            "no contract crate at {}: run from the workspace's root or give --root",
            dir.display()
        );
        let previous = read_snapshot(&path)?;
        let doc = doc.keeping(previous.as_ref());
        std::fs::write(&path, doc.to_pretty())
            .with_context(|| format!("writing {}", path.display()))?;
        println!("wrote {}", path.display());
    }
    Ok(())
}

async fn contracts_check(
    root: &std::path::Path,
    against: Option<&str>,
    token_file: Option<std::path::PathBuf>,
    ca_file: Option<std::path::PathBuf>,
) -> anyhow::Result<()> {
    let now = documents().await?;
    let (before, what) = match against {
        Some(url) => {
            let token = operator_token(token_file.as_deref())?;
            let authorities = match &ca_file {
                Some(path) => seams_http::tls::authorities(path)?,
                None => Vec::new(),
            };
            (
                served_documents(url, &token, &authorities).await?,
                format!("what {url} serves"),
            )
        }
        None => {
            // Run from elsewhere, every snapshot would be missing and every
            // contract would pass as new.
            anyhow::ensure!(
                root.join("capabilities").is_dir(),
                "no capabilities/ under {}: run from the workspace's root or give --root",
                root.display()
            );
            let mut before = Vec::new();
            for doc in &now {
                let path = snapshot_path(root, &doc.capability);
                match read_snapshot(&path)? {
                    Some(snap) => before.push(snap),
                    None => println!(
                        "no snapshot of {} at {} (its contracts count as new; \
                         `shop contracts snapshot` writes it)",
                        doc.capability,
                        path.display()
                    ),
                }
            }
            (before, "the snapshots".to_owned())
        }
    };
    let report = seams_schema::check(&before, &now);
    println!("contracts checked against {what}");
    print!("{report}");
    anyhow::ensure!(
        !report.fails(),
        "contract check failed: a breaking change without a new version (see above)"
    );
    Ok(())
}

/// An operator token from `SHOP_OPERATOR_TOKEN` or a private file: never
/// from the command line, where other users' `ps` would show it.
fn operator_token(file: Option<&std::path::Path>) -> anyhow::Result<String> {
    if let Ok(token) = std::env::var("SHOP_OPERATOR_TOKEN")
        && !token.trim().is_empty()
    {
        return Ok(token.trim().to_owned());
    }
    let Some(file) = file else {
        anyhow::bail!(
            "--against needs an operator token: set SHOP_OPERATOR_TOKEN, or name a 0600 file \
             with --token-file (shop token --role operator --subject you > operator.jwt)"
        );
    };
    let bytes = seams_auth::private::read(file)?;
    let token = String::from_utf8(bytes).context("the token file is not text")?;
    Ok(token.trim().to_owned())
}

/// The contract documents a deployment serves at `/_seams/contracts`.
async fn served_documents(
    url: &str,
    token: &str,
    authorities: &[reqwest::Certificate],
) -> anyhow::Result<Vec<seams_schema::Document>> {
    let http = seams_http::tls::client_builder(authorities)
        .timeout(Duration::from_secs(30))
        .build()?;
    let at = format!("{}/_seams/contracts", url.trim_end_matches('/'));
    let res = http
        .get(&at)
        .bearer_auth(token)
        .send()
        .await
        .with_context(|| format!("fetching {at}"))?;
    let status = res.status();
    anyhow::ensure!(
        status.is_success(),
        "{at} answered {status}: {}",
        res.text().await.unwrap_or_default()
    );
    let rows: serde_json::Value = res.json().await.with_context(|| format!("reading {at}"))?;
    Ok(seams_schema::from_rows(&rows)?)
}

/// What `shop ops prometheus` derives alerts from: the system's eventual
/// invariants, objectives, and each producer's outbox with the longest
/// retry horizon its events declare.
async fn declared() -> anyhow::Result<crate::ops::Declared> {
    let dir = tempdir()?;
    let config = Config::new("127.0.0.1:0".parse()?, dir.clone());
    let builder = crate::system::build(&config, &Placement::monolith()).await?;
    builder.check()?;
    let outboxes = builder
        .components()
        .iter()
        .filter(|c| !c.publishes.is_empty())
        .map(|c| crate::ops::Outbox {
            database: c.db.name().to_owned(),
            horizon: seams_runtime::retention::Retention::longest_horizon(
                c.publishes.iter().copied(),
            )
            .0,
        })
        .collect();
    let declared = crate::ops::Declared {
        invariants: builder.invariants(),
        objectives: crate::system::objectives()?,
        outboxes,
    };
    drop(builder);
    let _ = std::fs::remove_dir_all(&dir);
    Ok(declared)
}

fn tempdir() -> anyhow::Result<std::path::PathBuf> {
    let dir = std::env::temp_dir().join(format!("shop-contracts-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}

/// The declared invariants, immediate and eventual.
pub fn render_invariants(invariants: &[&seams_core::decl::Invariant]) -> String {
    use seams_core::decl::{InvariantKind, Measure};
    let mut out = String::from("INVARIANTS\n");
    for inv in invariants {
        match inv.kind {
            InvariantKind::Immediate { enforced_by } => {
                out.push_str(&format!(
                    "  immediate  {}: {}\n             enforced by {enforced_by}\n",
                    inv.id(),
                    inv.description
                ));
            }
            InvariantKind::Eventual {
                bound,
                percentile,
                measure,
            } => {
                let measured = match measure {
                    Measure::Hop { event, consumer } => {
                        format!("{} committed -> applied by {consumer}", event.event_type)
                    }
                    Measure::Recorded(name) => format!("{name} (recorded by {})", inv.capability),
                };
                out.push_str(&format!(
                    "  eventual   {}: {}\n             within {} ms at p{percentile}, measured as {measured}\n",
                    inv.id(),
                    inv.description,
                    bound.as_millis()
                ));
            }
        }
    }
    out
}

/// The declared service level objectives.
pub fn render_objectives(objectives: &[&seams_core::decl::Objective]) -> String {
    let mut out = String::from("OBJECTIVES\n");
    for o in objectives {
        out.push_str(&format!(
            "  {}: {} {}\n             {}% of requests answered without a server error (not 5xx) over {} days\n",
            o.id(),
            o.method,
            o.route,
            o.availability_percent,
            o.window.as_secs() / 86_400
        ));
    }
    out
}

/// The contract table as aligned text, one block per interaction.
pub fn render_table(rows: &[ContractRow]) -> String {
    let mut out = String::new();
    for r in rows {
        out.push_str(&format!(
            "{} {}  (owner: {})\n",
            r.kind.to_uppercase(),
            r.name,
            r.owner
        ));
        out.push_str(&format!("  {}\n", r.summary));
        if !r.consumers.is_empty() {
            let verb = if r.kind == "event" {
                "consumed by"
            } else {
                "called by  "
            };
            // An event's consumers with the versions each accepts, which
            // must include what its producer writes.
            let names: Vec<String> = r
                .consumers
                .iter()
                .enumerate()
                .map(|(i, c)| match r.accepted.get(i) {
                    Some(v) => format!(
                        "{c} (reads {})",
                        v.iter()
                            .map(|v| format!("v{v}"))
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                    None => (*c).to_owned(),
                })
                .collect();
            out.push_str(&format!("  {verb}   {}\n", names.join(", ")))
        }
        if let Some(t) = r.timeout {
            out.push_str(&format!(
                "  timeout       {} ms per attempt\n",
                t.as_millis()
            ));
        }
        out.push_str(&format!("  1 retries     {}\n", r.retries));
        out.push_str(&format!("  2 idempotency {}\n", r.idempotency));
        out.push_str(&format!("  3 ordering    {}\n", r.ordering));
        out.push_str(&format!("  4 when down   {}\n", r.when_down));
        out.push_str(&format!("  5 versions    {}\n\n", r.versioning));
    }
    out
}

#[cfg(test)]
mod tests;
