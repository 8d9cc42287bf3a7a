//! A throwaway `nats-server -js` process for tests: a free loopback port, a
//! temporary store directory, killed by PID in `Drop`; it can be stopped and
//! started again on the same port and store, to test an outage.
//! [`NatsServer::start_tls`] starts one that requires TLS of every client,
//! presenting a certificate from a [`TestCa`].
//!
//! Without the `nats-server` binary a test prints a loud `SKIPPED:` line and
//! does not run, except under `CI=true`, where that is an error (CI installs
//! it: `apt-get install -y nats-server`).
//!
//! ```no_run
//! let Some(nats) = seams_testkit::nats::NatsServer::start_or_skip() else { return };
//! assert!(nats.url().starts_with("nats://127.0.0.1:"));
//! ```

use std::fs::File;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

use crate::tls::TestCa;

/// A running (or stopped) JetStream server.
pub struct NatsServer {
    child: Option<Child>,
    port: u16,
    dir: tempfile::TempDir,
    bin: PathBuf,
    /// Whether it requires TLS, with the certificate and key in `dir`.
    tls: bool,
}

/// The server's copies of the certificate and key, so a restart does not
/// depend on the [`TestCa`] still being around.
const CERT_FILE: &str = "server.pem";
const KEY_FILE: &str = "server-key.pem";

fn find_binary() -> Option<PathBuf> {
    if let Ok(p) = std::env::var("NATS_SERVER_BIN") {
        return Some(PathBuf::from(p));
    }
    std::env::var_os("PATH")
        .into_iter()
        .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .chain(["/usr/sbin".into(), "/usr/local/bin".into()])
        .map(|d| d.join("nats-server"))
        .find(|p| p.is_file())
}

impl NatsServer {
    /// Whether tests can start a server: `Ok(false)` (after a `SKIPPED:` line)
    /// when the binary is missing outside CI; an error under `CI=true`.
    pub fn available() -> anyhow::Result<bool> {
        if find_binary().is_some() {
            return Ok(true);
        }
        if crate::in_ci() {
            bail!(
                "nats-server not found (apt-get install -y nats-server); CI=true, so failing instead of skipping"
            );
        }
        eprintln!(
            "SKIPPED: nats-server not found (apt-get install -y nats-server); the NATS mode did not run"
        );
        Ok(false)
    }

    /// Starts a server; `Ok(None)` (after a `SKIPPED:` line) when the binary is missing outside CI.
    pub fn start() -> anyhow::Result<Option<NatsServer>> {
        NatsServer::start_with(None)
    }

    /// [`NatsServer::start`] requiring TLS (`--tls`): the server presents
    /// `ca`'s server certificate and refuses clients that do not speak TLS.
    pub fn start_tls(ca: &TestCa) -> anyhow::Result<Option<NatsServer>> {
        NatsServer::start_with(Some(ca))
    }

    /// [`NatsServer::start_tls`] for tests: `None` means skipped; errors panic.
    pub fn start_tls_or_skip(ca: &TestCa) -> Option<NatsServer> {
        NatsServer::start_tls(ca).unwrap_or_else(|e| panic!("starting nats-server with TLS: {e:#}"))
    }

    fn start_with(tls: Option<&TestCa>) -> anyhow::Result<Option<NatsServer>> {
        let Some(bin) = find_binary() else {
            if crate::in_ci() {
                bail!(
                    "nats-server not found (apt-get install -y nats-server); CI=true, so failing instead of skipping"
                );
            }
            eprintln!(
                "SKIPPED: nats-server not found (apt-get install -y nats-server); the test that asked for it did not run"
            );
            return Ok(None);
        };
        let dir = tempfile::Builder::new().prefix("seams-nats-").tempdir()?;
        if let Some(ca) = tls {
            for (from, to) in [(ca.cert_file(), CERT_FILE), (ca.key_file(), KEY_FILE)] {
                std::fs::copy(&from, dir.path().join(to))
                    .with_context(|| format!("copying {}", from.display()))?;
            }
        }
        let mut server = NatsServer {
            child: None,
            port: 0,
            dir,
            bin,
            tls: tls.is_some(),
        };
        crate::start_on_a_free_port(|port| {
            server.child = None; // a try that failed has exited
            server.port = port;
            server.resume()
        })?;
        Ok(Some(server))
    }

    /// [`NatsServer::start`] for tests: `None` means skipped; errors panic.
    pub fn start_or_skip() -> Option<NatsServer> {
        NatsServer::start().unwrap_or_else(|e| panic!("starting nats-server: {e:#}"))
    }

    /// `nats://127.0.0.1:<port>`, or `tls://127.0.0.1:<port>` when it requires TLS.
    pub fn url(&self) -> String {
        let scheme = if self.tls { "tls" } else { "nats" };
        format!("{scheme}://127.0.0.1:{}", self.port)
    }

    /// What the server has logged (across restarts).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("nats.log")).unwrap_or_default()
    }

    /// Kills the server (SIGKILL), keeping its store; [`NatsServer::resume`] brings it back.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the server again on the same port and store, and waits until it accepts connections.
    pub fn resume(&mut self) -> anyhow::Result<()> {
        anyhow::ensure!(self.child.is_none(), "already running");
        let log_path = self.dir.path().join("nats.log");
        let log = File::options().create(true).append(true).open(&log_path)?;
        // The log is kept across restarts; this start's lines begin here.
        let from = log.metadata()?.len() as usize;
        let store = self.dir.path().join("store");
        let mut cmd = Command::new(&self.bin);
        cmd.args(["-js", "-a", "127.0.0.1", "-p", &self.port.to_string()])
            .arg("-sd")
            .arg(&store);
        if self.tls {
            cmd.arg("--tls")
                .arg("--tlscert")
                .arg(self.dir.path().join(CERT_FILE))
                .arg("--tlskey")
                .arg(self.dir.path().join(KEY_FILE));
        }
        let child = cmd
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .with_context(|| format!("spawning {}", self.bin.display()))?;
        self.child = Some(child);
        // Ready means its own "Server is ready" line: a connection alone
        // could reach another process that took the port first.
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let text = std::fs::read(&log_path).unwrap_or_default();
            let text = String::from_utf8_lossy(text.get(from..).unwrap_or_default());
            if text.contains("Server is ready") {
                return Ok(());
            }
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                bail!("nats-server exited ({status}): {text}");
            }
            if Instant::now() > deadline {
                bail!(
                    "nats-server did not say it was ready on port {} within 20 s: {text}",
                    self.port
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        self.stop();
    }
}
