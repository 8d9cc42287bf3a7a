//! A throwaway PostgreSQL cluster for tests: `initdb` in a temporary
//! directory, `postgres` on a free loopback port with password
//! (scram-sha-256) authentication, stopped by PID in `Drop`. It can be
//! stopped and started again on the same port and data, to test a restart.
//!
//! PostgreSQL refuses to run as root; when the tests run as root the cluster
//! runs as the `postgres` system user (which the Debian package creates).
//! `fsync=off`: the cluster is thrown away, and a restart here is a server
//! restart, not a power cut.
//!
//! [`PostgresServer::start_tls`] starts one that accepts TCP connections
//! over TLS only (`hostssl` in `pg_hba.conf`), presenting a certificate
//! from a [`TestCa`]: a client that gets in at all got in encrypted.
//!
//! Without the binaries a test prints a loud `SKIPPED:` line and does not
//! run, except under `CI=true`, where that is an error (CI installs them:
//! `apt-get install -y postgresql`).
//!
//! ```no_run
//! # async fn demo() -> anyhow::Result<()> {
//! let Some(pg) = seams_testkit::postgres::PostgresServer::start_or_skip() else { return Ok(()) };
//! let billing = pg.provision("billing").await?; // its own role and database
//! # Ok(()) }
//! ```

use std::fs::File;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

use crate::tls::TestCa;

/// How [`PostgresServer::stop`] shuts the server down.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shutdown {
    /// SIGINT: clients are disconnected, then a clean shutdown.
    Fast,
    /// SIGQUIT: like a crash; recovery replays the WAL at the next start.
    Immediate,
}

/// A running (or stopped) cluster.
pub struct PostgresServer {
    child: Option<Child>,
    port: u16,
    dir: tempfile::TempDir,
    bin: PathBuf,
    password: String,
    /// `Some((uid, gid))` of the user the server runs as, when we are root.
    run_as: Option<(u32, u32)>,
    /// Whether it serves TLS, with the certificate and key in `dir`.
    tls: bool,
}

/// The server's copies of the certificate and key, in its own directory:
/// the server may run as another user, who can read neither the CA's
/// directory nor a key it does not own.
const CERT_FILE: &str = "server.pem";
const KEY_FILE: &str = "server-key.pem";

/// The directory holding `initdb` and `postgres`: `$PG_BIN`, the newest
/// `/usr/lib/postgresql/<version>/bin`, or `$PATH`.
fn find_bin_dir() -> Option<PathBuf> {
    if let Ok(p) = std::env::var("PG_BIN") {
        return Some(PathBuf::from(p));
    }
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let v = e.file_name().to_str()?.parse::<u32>().ok()?;
            let bin = e.path().join("bin");
            bin.join("initdb").is_file().then_some((v, bin))
        })
        .collect();
    versions.sort();
    if let Some((_, bin)) = versions.pop() {
        return Some(bin);
    }
    std::env::var_os("PATH")
        .into_iter()
        .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .find(|d| d.join("initdb").is_file() && d.join("postgres").is_file())
}

/// The `postgres` system user's uid and gid, from `/etc/passwd`.
fn postgres_user() -> anyhow::Result<(u32, u32)> {
    let passwd = std::fs::read_to_string("/etc/passwd")?;
    passwd
        .lines()
        .map(|l| l.split(':').collect::<Vec<_>>())
        .find(|f| f.first() == Some(&"postgres") && f.len() > 3)
        .and_then(|f| Some((f[2].parse().ok()?, f[3].parse().ok()?)))
        .context("running as root, and there is no `postgres` user to run PostgreSQL as")
}

fn missing(what: &str) -> anyhow::Result<()> {
    if crate::in_ci() {
        bail!(
            "PostgreSQL binaries not found (apt-get install -y postgresql); CI=true, so failing instead of skipping"
        );
    }
    eprintln!(
        "SKIPPED: PostgreSQL binaries (initdb, postgres) not found (apt-get install -y postgresql); {what} did not run"
    );
    Ok(())
}

impl PostgresServer {
    /// Whether tests can start a server: `Ok(false)` (after a `SKIPPED:` line)
    /// when the binaries are missing outside CI; an error under `CI=true`.
    pub fn available() -> anyhow::Result<bool> {
        if find_bin_dir().is_some() {
            return Ok(true);
        }
        missing("the PostgreSQL mode")?;
        Ok(false)
    }

    /// Initializes and starts a cluster; `Ok(None)` (after a `SKIPPED:` line)
    /// when the binaries are missing outside CI.
    pub fn start() -> anyhow::Result<Option<PostgresServer>> {
        PostgresServer::start_with(None)
    }

    /// [`PostgresServer::start`] with TLS on: the server presents `ca`'s
    /// server certificate and refuses TCP connections without TLS. Clients
    /// verify it with `?sslmode=verify-full&sslrootcert=<ca.ca_file()>`.
    pub fn start_tls(ca: &TestCa) -> anyhow::Result<Option<PostgresServer>> {
        PostgresServer::start_with(Some(ca))
    }

    /// [`PostgresServer::start_tls`] for tests: `None` means skipped; errors panic.
    pub fn start_tls_or_skip(ca: &TestCa) -> Option<PostgresServer> {
        PostgresServer::start_tls(ca)
            .unwrap_or_else(|e| panic!("starting postgres with TLS: {e:#}"))
    }

    fn start_with(tls: Option<&TestCa>) -> anyhow::Result<Option<PostgresServer>> {
        let Some(bin) = find_bin_dir() else {
            missing("the test that asked for it")?;
            return Ok(None);
        };
        let dir = tempfile::Builder::new().prefix("seams-pg-").tempdir()?;
        let run_as = if is_root() {
            let (uid, gid) = postgres_user()?;
            std::os::unix::fs::chown(dir.path(), Some(uid), Some(gid))?;
            Some((uid, gid))
        } else {
            None
        };
        let password = seams_store::postgres::new_password();
        let pwfile = dir.path().join("pwfile");
        std::fs::write(&pwfile, &password)?;
        if let Some((uid, gid)) = run_as {
            std::os::unix::fs::chown(&pwfile, Some(uid), Some(gid))?;
        }
        let log = File::create(dir.path().join("initdb.log"))?;
        let mut initdb = Command::new(bin.join("initdb"));
        initdb
            .arg("-D")
            .arg(dir.path().join("data"))
            .args([
                "-U",
                "postgres",
                "--auth=scram-sha-256",
                "--no-sync",
                "-E",
                "UTF8",
                "--locale=C",
            ])
            .arg(format!("--pwfile={}", pwfile.display()))
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log);
        if let Some((uid, gid)) = run_as {
            initdb.uid(uid).gid(gid);
        }
        let status = initdb.status().context("running initdb")?;
        if !status.success() {
            let log = std::fs::read_to_string(dir.path().join("initdb.log")).unwrap_or_default();
            bail!("initdb failed ({status}): {log}");
        }
        if let Some(ca) = tls {
            install_tls(dir.path(), ca, run_as)?;
        }
        let mut server = PostgresServer {
            child: None,
            port: 0,
            dir,
            bin,
            password,
            run_as,
            tls: tls.is_some(),
        };
        crate::start_on_a_free_port(|port| {
            server.child = None; // a try that failed has exited
            server.port = port;
            server.resume()
        })?;
        Ok(Some(server))
    }

    /// [`PostgresServer::start`] for tests: `None` means skipped; errors panic.
    pub fn start_or_skip() -> Option<PostgresServer> {
        PostgresServer::start().unwrap_or_else(|e| panic!("starting postgres: {e:#}"))
    }

    /// The superuser's URL (database `postgres`).
    pub fn admin_url(&self) -> String {
        format!(
            "postgres://postgres:{}@127.0.0.1:{}/postgres",
            self.password, self.port
        )
    }

    /// The superuser's URL with the server's certificate verified in full
    /// (chain and host name) against `ca_file`, for a [`start_tls`](Self::start_tls) server.
    pub fn admin_url_verified(&self, ca_file: &Path) -> String {
        format!(
            "{}?sslmode=verify-full&sslrootcert={}",
            self.admin_url(),
            ca_file.display()
        )
    }

    /// The port it listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Creates `capability`'s own role and database; returns its URL.
    pub async fn provision(&self, capability: &str) -> anyhow::Result<String> {
        let p = seams_store::postgres::provision(
            &self.admin_url(),
            capability,
            &seams_store::postgres::new_password(),
        )
        .await?;
        Ok(p.url)
    }

    /// Stops the server, keeping its data; [`PostgresServer::resume`] brings it back.
    pub fn stop(&mut self, how: Shutdown) {
        if let Some(mut child) = self.child.take() {
            let signal = match how {
                Shutdown::Fast => "-INT",
                Shutdown::Immediate => "-QUIT",
            };
            // SIGKILL would orphan the backends, which keep the shared
            // memory and stop the next start; the postmaster's own
            // shutdown signals take them down with it.
            let _ = Command::new("kill")
                .args([signal, &child.id().to_string()])
                .status();
            let deadline = Instant::now() + Duration::from_secs(30);
            while Instant::now() < deadline {
                if child.try_wait().ok().flatten().is_some() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// What the server has logged since it last started.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("postgres.log")).unwrap_or_default()
    }

    /// Starts the server on the same port and data, and waits until it accepts connections.
    pub fn resume(&mut self) -> anyhow::Result<()> {
        anyhow::ensure!(self.child.is_none(), "already running");
        let log_path = self.dir.path().join("postgres.log");
        // The log is read for the readiness line; start each run on a fresh one.
        let _ = std::fs::remove_file(&log_path);
        let log = File::create(&log_path)?;
        if let Some((uid, gid)) = self.run_as {
            std::os::unix::fs::chown(&log_path, Some(uid), Some(gid))?;
        }
        let mut cmd = Command::new(self.bin.join("postgres"));
        cmd.arg("-D")
            .arg(self.dir.path().join("data"))
            .args(["-h", "127.0.0.1", "-p", &self.port.to_string(), "-k"])
            .arg(self.dir.path())
            .args(["-c", "fsync=off", "-c", "max_connections=200"]);
        if self.tls {
            cmd.args(["-c", "ssl=on", "-c"])
                .arg(setting("ssl_cert_file", &self.dir.path().join(CERT_FILE)))
                .arg("-c")
                .arg(setting("ssl_key_file", &self.dir.path().join(KEY_FILE)));
        }
        cmd.stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log);
        if let Some((uid, gid)) = self.run_as {
            cmd.uid(uid).gid(gid);
        }
        let child = cmd
            .spawn()
            .with_context(|| format!("spawning {}", self.bin.join("postgres").display()))?;
        self.child = Some(child);
        wait_ready(self.child.as_mut().expect("just spawned"), &log_path)
    }
}

/// `name=path` for `postgres -c`.
fn setting(name: &str, path: &Path) -> std::ffi::OsString {
    let mut s = std::ffi::OsString::from(format!("{name}="));
    s.push(path);
    s
}

/// Copies `ca`'s server certificate and key into the cluster's directory,
/// owned by the user the server runs as (PostgreSQL refuses a key file that
/// another user owns or that others can read), and lets TCP clients in over
/// TLS only.
fn install_tls(dir: &Path, ca: &TestCa, run_as: Option<(u32, u32)>) -> anyhow::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    for (from, to, mode) in [
        (ca.cert_file(), CERT_FILE, 0o644),
        (ca.key_file(), KEY_FILE, 0o600),
    ] {
        let to = dir.join(to);
        std::fs::copy(&from, &to)
            .with_context(|| format!("copying {} to {}", from.display(), to.display()))?;
        std::fs::set_permissions(&to, std::fs::Permissions::from_mode(mode))?;
        if let Some((uid, gid)) = run_as {
            std::os::unix::fs::chown(&to, Some(uid), Some(gid))?;
        }
    }
    // initdb's `host` lines accept TCP with or without TLS; `hostssl` only with.
    let hba = dir.join("data").join("pg_hba.conf");
    let text =
        std::fs::read_to_string(&hba).with_context(|| format!("reading {}", hba.display()))?;
    let ssl_only: String = text
        .lines()
        .map(|line| match line.strip_prefix("host") {
            Some(rest) if rest.starts_with(char::is_whitespace) => format!("hostssl{rest}\n"),
            _ => format!("{line}\n"),
        })
        .collect();
    // Rewriting the file in place keeps its owner (the server's user).
    std::fs::write(&hba, ssl_only).with_context(|| format!("writing {}", hba.display()))?;
    Ok(())
}

fn is_root() -> bool {
    // The effective uid, without unsafe code: /proc/self is owned by it.
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
}

/// Waits for the postmaster's "ready to accept connections" line (a TCP
/// accept comes earlier, while it still answers "starting up").
fn wait_ready(child: &mut Child, log: &Path) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let text = std::fs::read_to_string(log).unwrap_or_default();
        if text.contains("ready to accept connections") {
            return Ok(());
        }
        if let Some(status) = child.try_wait()? {
            bail!("postgres exited ({status}): {text}");
        }
        if Instant::now() > deadline {
            bail!("postgres was not ready within 60 s: {text}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

impl Drop for PostgresServer {
    fn drop(&mut self) {
        self.stop(Shutdown::Immediate);
    }
}
