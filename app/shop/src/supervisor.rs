//! The local supervisor of `shop up --split`: one `shop serve` process per
//! colocation group, each on its own loopback port and told where every other
//! capability lives, plus the [`gateway`](crate::gateway) on the public
//! address, so clients see one API exactly as with `shop up`.
//!
//! It owns the processes' lives. It starts them and waits until each says it
//! is listening, prints where each one is, writes what it started to
//! `<data>/services.json` (the discovery file other tools read), restarts a
//! process that exits on its own (same port, exponential backoff), and on
//! shutdown drains the gateway first and then stops every process with
//! SIGTERM, killing those that do not stop in time.
//!
//! It also gives each service its identity: a service token naming the
//! capabilities the service runs, signed with the deployment's keys and
//! kept in `<data>/secrets/<service>.jwt` (0600, renewed well before it
//! expires), whose path the service finds in `SHOP_SERVICE_TOKEN_FILE`.
//! Only the service running identity is told where the signing keys are.
//!
//! Children run in their own process group, led by a watchdog: a tiny `sh`
//! whose stdin is a pipe from the supervisor. A Ctrl-C in the terminal
//! reaches only the supervisor, which stops the services in order (gateway
//! first, so no request meets a half-stopped system). If the supervisor dies
//! without stopping them (SIGKILL, a crash, the terminal closing), the pipe
//! closes and the watchdog sends SIGTERM to the whole group, then SIGKILL
//! 30 s later, so no service outlives its supervisor for long. This needs
//! neither unsafe code (`prctl(PR_SET_PDEATHSIG)`) nor a flag on `serve`.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, ChildStdout, Command};
use tokio_util::sync::CancellationToken;

use seams_auth::Minter;

use crate::gateway::{self, Routes};
use crate::telemetry::Format;

mod rollout;
pub use rollout::{Rolled, RolloutRequest, Versions};

/// Every capability, in dependency order: the order services start in, and
/// the default grouping (one service each). The names of the app's one
/// capability table, [`crate::capabilities::TABLE`], as the composition root
/// builds them.
pub use crate::capabilities::NAMES as CAPABILITIES;

/// How long a service may take to say it is listening.
const START_TIMEOUT: Duration = Duration::from_secs(60);
/// The fd a service finds its listening socket at (`SD_LISTEN_FDS_START`).
#[cfg(unix)]
const PASSED_SOCKET_FD: i32 = 3;
/// How long a service may take to stop after SIGTERM before it is killed.
const STOP_TIMEOUT: Duration = Duration::from_secs(30);
/// How long the gateway may take to drain in-flight requests (which are
/// themselves bounded by its 30 s forwarding timeout).
const GATEWAY_DRAIN_TIMEOUT: Duration = Duration::from_secs(35);

/// Options of `shop up --split`.
#[derive(Debug, Clone)]
pub struct SplitOptions {
    /// Public address of the gateway.
    pub addr: SocketAddr,
    /// Data directory shared by every service (each capability keeps its own
    /// SQLite file in it); `services.json` is written here.
    pub data_dir: PathBuf,
    /// Colocation groups: the capabilities of each group run in one process.
    /// A capability named in no group runs alone; empty means one process
    /// per capability.
    pub groups: Vec<Vec<String>>,
    /// Arguments passed to every `serve` after the ones the supervisor
    /// computes (for example `--chaos` or `--durability normal`).
    pub extra_args: Vec<String>,
    /// Each capability's PostgreSQL URL; empty means SQLite files. A service
    /// gets the URLs of its own capabilities only, in its environment
    /// (`SHOP_DATABASES`), not on its command line where `ps` would show them.
    pub databases: BTreeMap<String, String>,
    /// Mints every service's token (and the gateway's) with the
    /// deployment's keys.
    pub minter: Minter,
    /// How every service writes its log lines (`--log-format`), and how the
    /// supervisor passes on what services print on stdout.
    pub log_format: Format,
    /// The key file, whose path only the service running identity learns.
    pub signing_keys: Option<PathBuf>,
    /// The gateway's edge limits (each service gets its own from its flags).
    pub edge: seams_http::server::Limits,
    /// The NATS URL every service uses as its bus, if any; handed over in
    /// `SHOP_NATS_URL`, never on a command line (it may carry credentials).
    pub nats: Option<String>,
    /// The gateway serves HTTPS with this configuration.
    pub tls: Option<Arc<rustls::ServerConfig>>,
    /// How the gateway and the services reach each other.
    pub upstream: Upstream,
    /// The versions events are written in and consumers read, passed to
    /// every service (the one publishing or consuming applies them); a
    /// rollout may change them per service.
    pub versions: Versions,
    /// Verifies the tokens of operators asking for a rollout.
    pub verifier: Arc<seams_auth::Verifier>,
}

/// How the gateway and the services reach each other.
#[derive(Clone, Debug)]
pub struct Upstream {
    /// `http`, or `https` when the services serve TLS.
    pub scheme: &'static str,
    /// Authorities the gateway trusts (the services' CA).
    pub authorities: Vec<reqwest::Certificate>,
}

impl Default for Upstream {
    fn default() -> Upstream {
        Upstream {
            scheme: "http",
            authorities: Vec::new(),
        }
    }
}

impl SplitOptions {
    /// One process per capability, data under `data_dir`, gateway on
    /// `addr`, tokens minted by `minter`.
    pub fn new(addr: SocketAddr, data_dir: PathBuf, minter: Minter) -> SplitOptions {
        SplitOptions {
            addr,
            data_dir,
            groups: default_groups(),
            extra_args: Vec::new(),
            databases: BTreeMap::new(),
            minter,
            log_format: Format::Text,
            signing_keys: None,
            edge: seams_http::server::Limits::default(),
            nats: None,
            tls: None,
            upstream: Upstream::default(),
            versions: Versions::default(),
            verifier: Arc::new(seams_auth::Verifier::new(Vec::new())),
        }
    }
}

/// How long a service token the supervisor mints lives.
const SERVICE_TOKEN_TTL: Duration = Duration::from_secs(3600);
/// How often the supervisor renews the service tokens: a third of their
/// life, so a service that rereads its file late still holds a valid one.
const SERVICE_TOKEN_RENEW: Duration = Duration::from_secs(1200);

/// Where the service `label`'s token is kept.
fn token_path(data_dir: &Path, label: &str) -> PathBuf {
    data_dir.join("secrets").join(format!("{label}.jwt"))
}

/// Mints a token for every service and writes it to its private file.
fn write_service_tokens(
    minter: &Minter,
    data_dir: &Path,
    specs: &[ServiceSpec],
) -> anyhow::Result<()> {
    seams_auth::private::create_dir(&data_dir.join("secrets"))?;
    for spec in specs {
        let minted = minter.service(&spec.label(), &spec.capabilities, SERVICE_TOKEN_TTL)?;
        seams_auth::private::write(
            &token_path(data_dir, &spec.label()),
            minted.token.as_bytes(),
        )?;
    }
    Ok(())
}

/// One group per capability.
pub fn default_groups() -> Vec<Vec<String>> {
    CAPABILITIES.iter().map(|c| vec![(*c).to_owned()]).collect()
}

/// Runs the split system until `shutdown` resolves (or the terminal hangs
/// up), then stops it: gateway first, then every service.
///
/// Prints one `service <caps> at <url> (pid N)` line per service and then
/// exactly `shop listening on http[s]://<addr> (split: N services, data in <dir>)`
/// on stdout once the gateway serves.
pub async fn run(opts: SplitOptions, shutdown: impl Future<Output = ()>) -> anyhow::Result<()> {
    let exe = std::env::current_exe().context("finding the shop executable")?;
    run_with(
        Program {
            path: exe.into(),
            leading_args: Vec::new(),
        },
        opts,
        shutdown,
    )
    .await
}

/// The program that serves a group: `path leading_args… serve …`. It is the
/// `shop` executable itself, except in tests.
#[derive(Debug, Clone)]
pub(crate) struct Program {
    pub(crate) path: OsString,
    pub(crate) leading_args: Vec<OsString>,
}

/// One service process to run: which capabilities, on which port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ServiceSpec {
    /// `http`, or `https` when services serve TLS.
    pub(crate) scheme: &'static str,
    /// The capabilities it serves, in [`CAPABILITIES`] order.
    pub(crate) capabilities: Vec<String>,
    /// Its loopback port.
    pub(crate) port: u16,
}

impl ServiceSpec {
    /// Its base URL.
    pub(crate) fn url(&self) -> String {
        format!("{}://127.0.0.1:{}", self.scheme, self.port)
    }

    /// Its name in logs and output: `billing` or `billing,catalog`.
    pub(crate) fn label(&self) -> String {
        self.capabilities.join(",")
    }
}

/// Checks `groups` and completes them: every capability exactly once, each
/// capability named in no group running alone, groups and their members in
/// [`CAPABILITIES`] order.
pub fn normalize_groups(groups: &[Vec<String>]) -> anyhow::Result<Vec<Vec<String>>> {
    let rank = |c: &str| CAPABILITIES.iter().position(|k| *k == c);
    let mut out: Vec<Vec<String>> = Vec::new();
    let mut seen: Vec<&str> = Vec::new();
    for group in groups {
        let mut members = Vec::new();
        for cap in group {
            if rank(cap).is_none() {
                bail!(
                    "groups: unknown capability {cap:?} (known: {})",
                    CAPABILITIES.join(", ")
                );
            }
            if seen.contains(&cap.as_str()) {
                bail!("groups: capability {cap:?} is in more than one group");
            }
            seen.push(cap);
            members.push(cap.clone());
        }
        if !members.is_empty() {
            members.sort_by_key(|c| rank(c));
            out.push(members);
        }
    }
    for cap in CAPABILITIES {
        if !seen.contains(&cap) {
            out.push(vec![cap.to_owned()]);
        }
    }
    out.sort_by_key(|g| rank(&g[0]));
    Ok(out)
}

/// Pairs each group with its port.
pub(crate) fn plan(groups: Vec<Vec<String>>, ports: &[u16]) -> anyhow::Result<Vec<ServiceSpec>> {
    if groups.len() != ports.len() {
        bail!("{} groups but {} ports", groups.len(), ports.len());
    }
    Ok(groups
        .into_iter()
        .zip(ports)
        .map(|(capabilities, &port)| ServiceSpec {
            scheme: "http",
            capabilities,
            port,
        })
        .collect())
}

/// `n` listening sockets on distinct free loopback ports, one per service.
///
/// The supervisor binds them itself and keeps them for as long as it runs: on
/// Unix each start of a service (the first and every restart) gets a copy as
/// fd 3 (systemd's `LISTEN_FDS` protocol). A port released between picking
/// and binding could be taken by any other process, even as the local port
/// of an outgoing connection (CI saw a service fail to start that way), and
/// connections that arrive while a service restarts wait in the backlog
/// instead of being refused.
pub(crate) fn bind_ports(n: usize) -> std::io::Result<Vec<std::net::TcpListener>> {
    (0..n)
        .map(|_| std::net::TcpListener::bind("127.0.0.1:0"))
        .collect()
}

/// Where every capability is served: (capability, base URL), in
/// [`CAPABILITIES`] order.
pub(crate) fn peers(specs: &[ServiceSpec]) -> Vec<(String, String)> {
    let mut peers: Vec<(String, String)> = specs
        .iter()
        .flat_map(|s| s.capabilities.iter().map(move |c| (c.clone(), s.url())))
        .collect();
    peers.sort_by_key(|(c, _)| CAPABILITIES.iter().position(|k| k == c));
    peers
}

/// The gateway's routes: every capability to its service.
pub(crate) fn routes(specs: &[ServiceSpec]) -> Routes {
    peers(specs).into_iter().collect()
}

/// The arguments of `serve` for `spec`: its capabilities, its address, the
/// shared data directory, where every capability it does not serve lives,
/// then `extra_args`.
pub(crate) fn serve_args(
    spec: &ServiceSpec,
    all: &[ServiceSpec],
    data_dir: &Path,
    extra_args: &[String],
) -> Vec<OsString> {
    let mut args: Vec<OsString> = vec!["serve".into()];
    args.extend(spec.capabilities.iter().map(OsString::from));
    args.push("--addr".into());
    args.push(format!("127.0.0.1:{}", spec.port).into());
    args.push("--data".into());
    args.push(data_dir.as_os_str().to_owned());
    for (cap, url) in peers(all) {
        if !spec.capabilities.contains(&cap) {
            args.push("--peer".into());
            args.push(format!("{cap}={url}").into());
        }
    }
    args.extend(extra_args.iter().map(OsString::from));
    args
}

/// The discovery document: `{"services": [{"capabilities", "url", "pid"}]}`;
/// `pid` is null while a service is being restarted.
pub(crate) fn discovery_json(specs: &[ServiceSpec], pids: &[Option<u32>]) -> Value {
    let services: Vec<Value> = specs
        .iter()
        .zip(pids)
        .map(|(s, pid)| json!({ "capabilities": s.capabilities, "url": s.url(), "pid": pid }))
        .collect();
    json!({ "services": services })
}

/// The delay before restarting a service that exited: 250 ms, doubling up to
/// 10 s while the service keeps failing, and back to 250 ms once it has run
/// for 30 s (a crash after a long run is news, not a loop).
#[derive(Debug, Clone)]
pub(crate) struct Backoff {
    next: Duration,
}

impl Backoff {
    pub(crate) const FIRST: Duration = Duration::from_millis(250);
    pub(crate) const MAX: Duration = Duration::from_secs(10);
    pub(crate) const RESET_AFTER: Duration = Duration::from_secs(30);

    pub(crate) fn new() -> Backoff {
        Backoff { next: Self::FIRST }
    }

    /// The delay before the next start of a service that ran for `uptime`
    /// (zero for a start that failed).
    pub(crate) fn delay_after(&mut self, uptime: Duration) -> Duration {
        if uptime >= Self::RESET_AFTER {
            self.next = Self::FIRST;
        }
        let delay = self.next;
        self.next = (self.next * 2).min(Self::MAX);
        delay
    }
}

/// `services.json`, rewritten whenever a service's PID changes.
struct Discovery {
    path: PathBuf,
    specs: Vec<ServiceSpec>,
    pids: Mutex<Vec<Option<u32>>>,
}

impl Discovery {
    fn set_pid(&self, idx: usize, pid: Option<u32>) {
        let doc = {
            let mut pids = self.pids.lock().unwrap_or_else(|e| e.into_inner());
            pids[idx] = pid;
            discovery_json(&self.specs, &pids)
        };
        if let Err(e) = self.write(&doc) {
            tracing::warn!(path = %self.path.display(), error = %e, "writing the discovery file");
        }
    }

    /// Writes through a temporary file, so readers never see half a document.
    fn write(&self, doc: &Value) -> std::io::Result<()> {
        let tmp = self.path.with_extension("json.tmp");
        std::fs::write(&tmp, format!("{doc:#}\n"))?;
        std::fs::rename(&tmp, &self.path)
    }
}

/// The leader of the services' process group, which stops them all when the
/// supervisor goes away without doing so (see the module documentation).
pub(crate) struct Watchdog {
    /// The `sh` process; killed when dropped. Its stdin is the pipe whose end
    /// of file means "the supervisor is gone".
    child: Child,
    /// Its PID, which is the process group of every service.
    pgid: u32,
}

/// Ignores the signals meant for the supervisor's own group, waits for its
/// stdin to close, then stops its process group: politely, then for good.
/// `kill 0` signals the caller's own process group.
const WATCHDOG_SCRIPT: &str =
    "trap '' INT TERM HUP; cat >/dev/null; kill -TERM 0; sleep 30; kill -KILL 0";

impl Watchdog {
    /// Starts the watchdog in a new process group of its own.
    pub(crate) fn spawn() -> anyhow::Result<Watchdog> {
        let mut cmd = Command::new("sh");
        cmd.args(["-c", WATCHDOG_SCRIPT])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true);
        #[cfg(unix)]
        cmd.process_group(0);
        let child = cmd.spawn().context("starting the watchdog (sh)")?;
        let pgid = child.id().context("watchdog exited at once")?;
        Ok(Watchdog { child, pgid })
    }

    /// The process group services join.
    pub(crate) fn pgid(&self) -> u32 {
        self.pgid
    }

    /// Stops the watchdog without it stopping anyone: killed while its pipe
    /// is still open, it never reaches its `kill`.
    pub(crate) async fn stop(mut self) {
        let _ = self.child.start_kill();
        let _ = self.child.wait().await;
    }

    /// Closes the pipe, as the supervisor's death would.
    #[cfg(test)]
    pub(crate) fn close_pipe(&mut self) {
        drop(self.child.stdin.take());
    }
}

/// How to start one service, again and again.
struct Launcher {
    program: Program,
    args: Vec<OsString>,
    /// `SHOP_DATABASES` of this service (`cap=url,…`), empty for SQLite.
    databases: String,
    /// Its token file (`SHOP_SERVICE_TOKEN_FILE`).
    token_file: PathBuf,
    /// The signing keys' path, for the service running identity only.
    signing_keys: Option<PathBuf>,
    /// `SHOP_NATS_URL`, if the system has a bus.
    nats: Option<String>,
    label: String,
    /// How to pass on what the service prints on stdout.
    log_format: Format,
    /// The watchdog's process group, or none (a group of its own).
    pgid: Option<u32>,
    /// `--emit` and `--accept`, after `args`: what the last rollout of
    /// this service set (shared with the rollout route).
    versions: Arc<Mutex<Versions>>,
    /// The service's listening socket, from [`bind_ports`]; every start gets
    /// a copy. Elsewhere than Unix the socket is closed before the first
    /// start and the service binds the port itself.
    #[cfg(unix)]
    socket: std::net::TcpListener,
}

impl Launcher {
    /// Starts the service and waits until it says it is listening.
    async fn start(&self) -> anyhow::Result<Child> {
        Ok(self.start_replacing(None).await?.0)
    }

    /// Starts the service and waits until it says it is listening; with a
    /// `predecessor`, as its successor (`--take-over`): if the successor
    /// says it waits for a database the predecessor still writes, the
    /// predecessor is stopped then, and how long that took comes back.
    async fn start_replacing(
        &self,
        mut predecessor: Option<&mut Child>,
    ) -> anyhow::Result<(Child, Option<Duration>)> {
        let take_over = predecessor.is_some();
        let mut child = match self.spawn(self.pgid, take_over) {
            Ok(child) => child,
            // Joining the group fails once the watchdog is gone (someone
            // killed it); a service without one beats no service.
            Err(e) if self.pgid.is_some() => {
                tracing::warn!(child = %self.label, error = %e, "cannot join the watchdog's process group");
                self.spawn(None, take_over)?
            }
            Err(e) => return Err(e),
        };
        let stdout = child.stdout.take().context("child has no stdout")?;
        let mut lines = BufReader::new(stdout).lines();
        let (label, format) = (self.label.clone(), self.log_format);
        let mut handed_over = None;
        let announced = tokio::time::timeout(START_TIMEOUT, async {
            while let Some(line) = lines.next_line().await? {
                if line.contains("listening on http://") || line.contains("listening on https://") {
                    return Ok(true);
                }
                echo(format, &label, &line);
                if line.ends_with(crate::system::TAKING_OVER)
                    && let Some(predecessor) = predecessor.take()
                {
                    // Connections meanwhile wait in the socket's backlog.
                    let stopping = Instant::now();
                    terminate(&label, predecessor).await;
                    handed_over = Some(stopping.elapsed());
                }
            }
            Ok::<_, std::io::Error>(false)
        })
        .await;
        match announced {
            Ok(Ok(true)) => {
                tokio::spawn(drain_stdout(self.log_format, self.label.clone(), lines));
                Ok((child, handed_over))
            }
            Ok(Ok(false)) => {
                let status = child.wait().await?;
                bail!("service {} exited before listening ({status})", self.label)
            }
            Ok(Err(e)) => {
                let _ = child.start_kill();
                let _ = child.wait().await;
                Err(e).with_context(|| format!("reading the output of service {}", self.label))
            }
            Err(_) => {
                let _ = child.start_kill();
                let _ = child.wait().await;
                bail!(
                    "service {} did not start listening within {} s",
                    self.label,
                    START_TIMEOUT.as_secs()
                )
            }
        }
    }

    fn spawn(&self, pgid: Option<u32>, take_over: bool) -> anyhow::Result<Child> {
        let versions = self
            .versions
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .args();
        let mut cmd = Command::new(&self.program.path);
        cmd.args(&self.program.leading_args)
            .args(&self.args)
            .args(versions)
            // Services never hold the admin's credentials, only their own.
            .env_remove("SHOP_POSTGRES_ADMIN")
            .env_remove("SHOP_DATABASES")
            .env_remove("SHOP_SIGNING_KEYS")
            .env_remove("SHOP_NATS_URL")
            // Each service's spans are under its own `service.name`.
            .env_remove("OTEL_SERVICE_NAME")
            .env("SHOP_SERVICE_TOKEN_FILE", &self.token_file)
            .env_remove("SHOP_TAKE_OVER");
        if take_over {
            cmd.env("SHOP_TAKE_OVER", "true");
        }
        if let Some(url) = &self.nats {
            cmd.env("SHOP_NATS_URL", url);
        }
        if !self.databases.is_empty() {
            cmd.env("SHOP_DATABASES", &self.databases);
        }
        if let Some(keys) = &self.signing_keys {
            cmd.env("SHOP_SIGNING_KEYS", keys);
        }
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            // A child whose start is abandoned (a timeout, or shutdown while
            // starting) must not live on.
            .kill_on_drop(true);
        #[cfg(unix)]
        {
            use command_fds::{CommandFdExt, FdMapping};
            let socket = self
                .socket
                .try_clone()
                .context("copying the service's socket")?;
            cmd.fd_mappings(vec![FdMapping {
                parent_fd: socket.into(),
                child_fd: PASSED_SOCKET_FD,
            }])
            .context("passing the service's socket")?;
            // No LISTEN_PID: the child's PID is not known before it starts.
            cmd.env("LISTEN_FDS", "1")
                .env_remove("LISTEN_PID")
                .env_remove("LISTEN_FDS_FIRST_FD");
            cmd.process_group(pgid.map_or(0, |g| g as i32));
        }
        #[cfg(not(unix))]
        let _ = pgid;
        cmd.spawn()
            .with_context(|| format!("starting service {}", self.label))
    }
}

/// A child's stdout after its listening line goes to our stderr: our stdout
/// carries only the lines scripts read. (Its stderr, its log, is our stderr
/// as it is.) With JSON logs it goes as a log line of our own, naming the
/// child, so that stderr stays one JSON object per line.
fn echo(format: Format, label: &str, line: &str) {
    match format {
        Format::Text => eprintln!("[{label}] {line}"),
        Format::Json => tracing::info!(child = %label, "{line}"),
    }
}

async fn drain_stdout(
    format: Format,
    label: String,
    mut lines: tokio::io::Lines<BufReader<ChildStdout>>,
) {
    while let Ok(Some(line)) = lines.next_line().await {
        echo(format, &label, &line);
    }
}

/// Asks `child` to stop with SIGTERM (by PID, through `kill`: unsafe code is
/// denied, so no libc), and kills it if it has not exited after [`STOP_TIMEOUT`].
async fn terminate(label: &str, child: &mut Child) {
    let Some(pid) = child.id() else {
        return; // Already reaped.
    };
    let sent = Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .await;
    if !matches!(sent, Ok(s) if s.success()) {
        tracing::warn!(child = label, pid, "could not send SIGTERM; killing");
        let _ = child.start_kill();
    }
    match tokio::time::timeout(STOP_TIMEOUT, child.wait()).await {
        Ok(Ok(status)) => tracing::info!(child = label, pid, %status, "service stopped"),
        Ok(Err(e)) => tracing::error!(child = label, pid, error = %e, "waiting for service"),
        Err(_) => {
            tracing::warn!(
                child = label,
                pid,
                "service did not stop within {} s; killing it",
                STOP_TIMEOUT.as_secs()
            );
            let _ = child.start_kill();
            let _ = child.wait().await;
        }
    }
}

/// When a watcher stops restarting and when it stops its service.
#[derive(Clone)]
struct Stopping {
    /// Shutdown began: a service that exits now stays down.
    no_restart: CancellationToken,
    /// The gateway has drained: stop the service.
    stop: CancellationToken,
}

/// Watches one running service: restarts it whenever it exits on its own,
/// rolls it when asked ([`roll`]), and terminates it when told to.
async fn supervise(
    idx: usize,
    launcher: Launcher,
    mut child: Child,
    discovery: Arc<Discovery>,
    stopping: Stopping,
    mut rolls: tokio::sync::mpsc::Receiver<rollout::Roll>,
) {
    let label = launcher.label.clone();
    let mut backoff = Backoff::new();
    let mut started = Instant::now();
    loop {
        let status = tokio::select! {
            status = child.wait() => status,
            () = stopping.stop.cancelled() => {
                terminate(&label, &mut child).await;
                return;
            }
            Some(request) = rolls.recv() => {
                let result = tokio::select! {
                    r = roll(&launcher, &mut child, request.versions) => r,
                    // Dropping the start kills the half-started successor.
                    () = stopping.no_restart.cancelled() => Err("the system is shutting down".into()),
                };
                if let Ok(rolled) = &result {
                    discovery.set_pid(idx, rolled.new_pid);
                    started = Instant::now();
                    backoff = Backoff::new();
                }
                let _ = request.reply.send(result);
                continue;
            }
        };
        discovery.set_pid(idx, None);
        if stopping.no_restart.is_cancelled() {
            tracing::warn!(child = %label, ?status, "service exited during shutdown");
            return;
        }
        let uptime = started.elapsed();
        let mut delay = backoff.delay_after(uptime);
        match status {
            Ok(status) => tracing::warn!(
                child = %label, %status, uptime_ms = uptime.as_millis() as u64,
                "service exited; restarting in {} ms", delay.as_millis()
            ),
            Err(e) => tracing::warn!(
                child = %label, error = %e,
                "lost track of service; restarting in {} ms", delay.as_millis()
            ),
        }
        loop {
            tokio::select! {
                () = tokio::time::sleep(delay) => {}
                () = stopping.no_restart.cancelled() => return,
            }
            let attempt = tokio::select! {
                r = launcher.start() => r,
                // Dropping the start kills the half-started child.
                () = stopping.no_restart.cancelled() => return,
            };
            match attempt {
                Ok(restarted) => {
                    child = restarted;
                    started = Instant::now();
                    discovery.set_pid(idx, child.id());
                    tracing::warn!(child = %label, pid = child.id(), "service restarted");
                    break;
                }
                Err(e) => {
                    delay = backoff.delay_after(Duration::ZERO);
                    tracing::error!(
                        child = %label, error = %format!("{e:#}"),
                        "restart failed; trying again in {} ms", delay.as_millis()
                    );
                }
            }
        }
    }
}

/// Replaces `child` with a successor started with `versions` on the same
/// socket, then stops it (see [`rollout`]). If the successor does not
/// start, `child` and the launcher's settings stay as they were.
async fn roll(
    launcher: &Launcher,
    child: &mut Child,
    versions: Versions,
) -> Result<Rolled, String> {
    let began = Instant::now();
    let old_pid = child.id();
    let previous = std::mem::replace(
        &mut *launcher.versions.lock().unwrap_or_else(|e| e.into_inner()),
        versions.clone(),
    );
    let (successor, handed_over) = match launcher.start_replacing(Some(child)).await {
        Ok(started) => started,
        Err(e) => {
            *launcher.versions.lock().unwrap_or_else(|e| e.into_inner()) = previous;
            tracing::error!(child = %launcher.label, error = %format!("{e:#}"), "rollout: the successor did not start");
            // A predecessor stopped for the successor's sake has exited:
            // the supervisor restarts the service with its old settings.
            return Err(match child.try_wait() {
                Ok(Some(_)) => format!(
                    "{e:#}; its predecessor had already stopped for it, so the service is restarted with its previous settings"
                ),
                _ => format!("{e:#}; the service keeps running its previous process"),
            });
        }
    };
    let ready = began.elapsed();
    let mut old = std::mem::replace(child, successor);
    tracing::info!(child = %launcher.label, old_pid, new_pid = child.id(), "rollout: successor listening; stopping its predecessor");
    let stopping = Instant::now();
    // Already stopped if the successor waited for its databases.
    terminate(&launcher.label, &mut old).await;
    let stopped = handed_over.unwrap_or_else(|| stopping.elapsed());
    Ok(Rolled {
        service: launcher.label.clone(),
        old_pid,
        new_pid: child.id(),
        ready_ms: ready.as_millis() as u64,
        stopped_ms: stopped.as_millis() as u64,
        emit: versions.emit,
        accept: versions.accept,
    })
}

/// [`run`], with the program that serves a group given.
pub(crate) async fn run_with(
    program: Program,
    opts: SplitOptions,
    shutdown: impl Future<Output = ()>,
) -> anyhow::Result<()> {
    let groups = normalize_groups(&opts.groups)?;
    let sockets = bind_ports(groups.len()).context("binding the services' ports")?;
    let ports = sockets
        .iter()
        .map(|s| s.local_addr().map(|a| a.port()))
        .collect::<std::io::Result<Vec<_>>>()?;
    let mut specs = plan(groups, &ports)?;
    for spec in &mut specs {
        spec.scheme = opts.upstream.scheme;
    }
    seams_auth::private::create_dir(&opts.data_dir)?;
    write_service_tokens(&opts.minter, &opts.data_dir, &specs)
        .context("minting the services' tokens")?;
    let watchdog = match Watchdog::spawn() {
        Ok(w) => Some(w),
        Err(e) => {
            tracing::warn!(error = %format!("{e:#}"), "no watchdog: services will outlive a killed supervisor");
            None
        }
    };
    let extra_args: Vec<String> = [
        "--log-format".to_owned(),
        match opts.log_format {
            Format::Text => "text",
            Format::Json => "json",
        }
        .to_owned(),
    ]
    .into_iter()
    .chain(opts.extra_args.iter().cloned())
    .collect();
    let launchers: Vec<Launcher> = specs
        .iter()
        .zip(sockets)
        .map(|(spec, socket)| Launcher {
            versions: Arc::new(Mutex::new(opts.versions.clone())),
            #[cfg(unix)]
            socket,
            program: program.clone(),
            args: serve_args(spec, &specs, &opts.data_dir, &extra_args),
            databases: spec
                .capabilities
                .iter()
                .filter_map(|c| opts.databases.get(c).map(|url| format!("{c}={url}")))
                .collect::<Vec<_>>()
                .join(","),
            label: spec.label(),
            log_format: opts.log_format,
            pgid: watchdog.as_ref().map(Watchdog::pgid),
            token_file: token_path(&opts.data_dir, &spec.label()),
            nats: opts.nats.clone(),
            signing_keys: spec
                .capabilities
                .iter()
                .any(|c| c == "identity")
                .then(|| opts.signing_keys.clone())
                .flatten(),
        })
        .collect();
    let discovery = Arc::new(Discovery {
        path: opts.data_dir.join("services.json"),
        specs: specs.clone(),
        pids: Mutex::new(vec![None; specs.len()]),
    });
    let mut shutdown = std::pin::pin!(shutdown);

    // Start in dependency order, each once the previous one listens. A
    // failure, or a shutdown meanwhile, stops what already runs.
    let mut children: Vec<Child> = Vec::new();
    let started = tokio::select! {
        r = start_all(&launchers, &mut children) => Some(r),
        () = &mut shutdown => None,
    };
    match started {
        Some(Ok(())) => {}
        Some(Err(e)) => {
            stop_all(&launchers, children, watchdog).await;
            return Err(e);
        }
        None => {
            stop_all(&launchers, children, watchdog).await;
            tracing::info!("shutdown requested while starting; stopped");
            return Ok(());
        }
    }
    for (idx, (spec, child)) in specs.iter().zip(&children).enumerate() {
        println!(
            "service {} at {} (pid {})",
            spec.label(),
            spec.url(),
            child.id().unwrap_or_default()
        );
        discovery.set_pid(idx, child.id());
    }

    let listener = match tokio::net::TcpListener::bind(opts.addr).await {
        Ok(l) => l,
        Err(e) => {
            stop_all(&launchers, children, watchdog).await;
            let _ = std::fs::remove_file(&discovery.path);
            return Err(e).with_context(|| format!("binding {}", opts.addr));
        }
    };
    let addr = listener.local_addr()?;
    let gateway_stop = CancellationToken::new();
    let drain = gateway_stop.clone();
    let tls = opts.tls.clone();
    let mut rolls = Vec::new();
    let control = rollout::Control {
        services: specs
            .iter()
            .zip(&launchers)
            .map(|(spec, launcher)| {
                let (tx, rx) = tokio::sync::mpsc::channel(1);
                rolls.push(rx);
                rollout::Rollable {
                    capabilities: spec.capabilities.clone(),
                    versions: launcher.versions.clone(),
                    rolls: tx,
                }
            })
            .collect(),
        verifier: opts.verifier.clone(),
        busy: Arc::new(tokio::sync::Mutex::new(())),
    };
    let app = gateway::router(
        routes(&specs),
        &opts.upstream.authorities,
        Arc::new(seams_auth::SelfMinted::new(
            opts.minter.clone(),
            "gateway",
            Vec::new(),
            SERVICE_TOKEN_TTL,
        )),
    )
    .merge(rollout::router(control));
    // The gateway answers a forward that takes too long itself (504), and
    // a rollout that does; its own request timeout only catches what those
    // do not.
    let limits = seams_http::server::Limits {
        request_timeout: opts
            .edge
            .request_timeout
            .max(gateway::FORWARD_TIMEOUT.max(rollout::ROLLOUT_TIMEOUT) + Duration::from_secs(5)),
        ..opts.edge
    };
    let app = seams_http::server::limited(app, &limits);
    let renewing = tokio::spawn({
        let (minter, data_dir, specs) = (opts.minter.clone(), opts.data_dir.clone(), specs.clone());
        async move {
            loop {
                tokio::time::sleep(SERVICE_TOKEN_RENEW).await;
                if let Err(e) = write_service_tokens(&minter, &data_dir, &specs) {
                    tracing::error!(error = format!("{e:#}"), "renewing the services' tokens");
                }
            }
        }
    });
    let gateway = tokio::spawn(async move {
        seams_http::server::serve(listener, app, limits, tls, async move {
            drain.cancelled().await
        })
        .await
    });
    // Tests and scripts read this line to learn the port (the address may be port 0).
    println!(
        "shop listening on {}://{addr} (split: {} services, data in {})",
        if opts.tls.is_some() { "https" } else { "http" },
        specs.len(),
        opts.data_dir.display()
    );

    let stopping = Stopping {
        no_restart: CancellationToken::new(),
        stop: CancellationToken::new(),
    };
    let watchers: Vec<_> = launchers
        .into_iter()
        .zip(children)
        .zip(rolls)
        .enumerate()
        .map(|(idx, ((launcher, child), rolls))| {
            tokio::spawn(supervise(
                idx,
                launcher,
                child,
                discovery.clone(),
                stopping.clone(),
                rolls,
            ))
        })
        .collect();

    shutdown.await;
    tracing::info!("shutting down: draining the gateway, then stopping the services");
    stopping.no_restart.cancel();
    gateway_stop.cancel();
    match tokio::time::timeout(GATEWAY_DRAIN_TIMEOUT, gateway).await {
        Ok(Ok(Ok(()))) => tracing::info!("gateway drained"),
        Ok(Ok(Err(e))) => tracing::error!(error = %e, "gateway failed"),
        Ok(Err(e)) => tracing::error!(error = %e, "gateway task failed"),
        Err(_) => tracing::warn!("gateway did not drain in time"),
    }
    stopping.stop.cancel();
    for watcher in futures::future::join_all(watchers).await {
        if let Err(e) = watcher {
            tracing::error!(error = %e, "service watcher failed");
        }
    }
    renewing.abort();
    // The PIDs in it are stale now.
    let _ = std::fs::remove_file(&discovery.path);
    if let Some(watchdog) = watchdog {
        watchdog.stop().await;
    }
    tracing::info!("stopped cleanly");
    Ok(())
}

async fn start_all(launchers: &[Launcher], children: &mut Vec<Child>) -> anyhow::Result<()> {
    for launcher in launchers {
        let child = launcher.start().await?;
        tracing::info!(child = %launcher.label, pid = child.id(), "service listening");
        children.push(child);
    }
    Ok(())
}

/// Stops every started service at once, then the watchdog.
async fn stop_all(launchers: &[Launcher], children: Vec<Child>, watchdog: Option<Watchdog>) {
    let stops = launchers
        .iter()
        .zip(children)
        .map(|(l, mut child)| async move {
            terminate(&l.label, &mut child).await;
        });
    futures::future::join_all(stops).await;
    if let Some(watchdog) = watchdog {
        watchdog.stop().await;
    }
}

#[cfg(test)]
mod tests;
