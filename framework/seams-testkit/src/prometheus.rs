//! A throwaway Prometheus server for tests: the given configuration, a
//! free loopback port, a temporary TSDB directory, killed by PID in `Drop`;
//! and its HTTP API's two questions tests ask, an instant query and the
//! alerts.
//!
//! Without the `prometheus` binary a test prints a loud `SKIPPED:` line and
//! does not run, except under `CI=true`, where that is an error (CI installs
//! it: `apt-get install -y prometheus`).

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde_json::Value;

/// A running Prometheus.
pub struct PrometheusServer {
    child: Option<Child>,
    port: u16,
    dir: tempfile::TempDir,
    http: reqwest::Client,
}

fn find_binary() -> Option<PathBuf> {
    if let Ok(p) = std::env::var("PROMETHEUS_BIN") {
        return Some(PathBuf::from(p));
    }
    std::env::var_os("PATH")
        .into_iter()
        .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .chain(["/usr/bin".into(), "/usr/local/bin".into()])
        .map(|d| d.join("prometheus"))
        .find(|p| p.is_file())
}

impl PrometheusServer {
    /// Whether tests can start one: `Ok(false)` (after a `SKIPPED:` line)
    /// when the binary is missing outside CI; an error under `CI=true`.
    pub fn available() -> anyhow::Result<bool> {
        if find_binary().is_some() {
            return Ok(true);
        }
        if crate::in_ci() {
            bail!(
                "prometheus not found (apt-get install -y prometheus); CI=true, so failing instead of skipping"
            );
        }
        eprintln!(
            "SKIPPED: prometheus not found (apt-get install -y prometheus); the test that asked for it did not run"
        );
        Ok(false)
    }

    /// Starts Prometheus with `config` (its `rule_files` are read relative
    /// to it); `Ok(None)` (after a `SKIPPED:` line) when the binary is
    /// missing outside CI, an error under `CI=true`.
    pub fn start(config: &Path) -> anyhow::Result<Option<PrometheusServer>> {
        let Some(bin) = find_binary() else {
            if crate::in_ci() {
                bail!(
                    "prometheus not found (apt-get install -y prometheus); CI=true, so failing instead of skipping"
                );
            }
            eprintln!(
                "SKIPPED: prometheus not found (apt-get install -y prometheus); the test that asked for it did not run"
            );
            return Ok(None);
        };
        let dir = tempfile::Builder::new()
            .prefix("seams-prometheus-")
            .tempdir()?;
        let mut server = PrometheusServer {
            child: None,
            port: 0,
            dir,
            http: reqwest::Client::builder()
                .no_proxy()
                .timeout(Duration::from_secs(10))
                .build()?,
        };
        crate::start_on_a_free_port(|port| {
            server.stop(); // a try that failed has exited
            server.port = port;
            server.spawn(&bin, config)
        })?;
        Ok(Some(server))
    }

    fn spawn(&mut self, bin: &Path, config: &Path) -> anyhow::Result<()> {
        let log_path = self.dir.path().join("prometheus.log");
        let log = File::create(&log_path)?;
        let child = Command::new(bin)
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                self.dir.path().join("tsdb").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{}", self.port))
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .with_context(|| format!("spawning {}", bin.display()))?;
        self.child = Some(child);
        // Its own readiness line: a connection alone could reach another
        // process that took the port first.
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let text = std::fs::read_to_string(&log_path).unwrap_or_default();
            if text.contains("Server is ready to receive web requests") {
                return Ok(());
            }
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                self.child = None;
                bail!("prometheus exited ({status}): {text}");
            }
            if Instant::now() > deadline {
                bail!(
                    "prometheus did not say it was ready on port {} within 30 s: {text}",
                    self.port
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// `http://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// What it has logged.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("prometheus.log")).unwrap_or_default()
    }

    /// `GET /api/v1/query?query=…`: the result vector of an instant query.
    pub async fn query(&self, promql: &str) -> anyhow::Result<Vec<Value>> {
        let body: Value = self
            .http
            .get(format!("{}/api/v1/query", self.url()))
            .query(&[("query", promql)])
            .send()
            .await?
            .json()
            .await?;
        anyhow::ensure!(body["status"] == "success", "query {promql}: {body}");
        Ok(body["data"]["result"]
            .as_array()
            .cloned()
            .unwrap_or_default())
    }

    /// `GET /api/v1/alerts`: every pending and firing alert.
    pub async fn alerts(&self) -> anyhow::Result<Vec<Value>> {
        let body: Value = self
            .http
            .get(format!("{}/api/v1/alerts", self.url()))
            .send()
            .await?
            .json()
            .await?;
        anyhow::ensure!(body["status"] == "success", "alerts: {body}");
        Ok(body["data"]["alerts"]
            .as_array()
            .cloned()
            .unwrap_or_default())
    }

    /// `GET /api/v1/targets`: the scrape targets with their health and last error.
    pub async fn targets(&self) -> anyhow::Result<Value> {
        let body: Value = self
            .http
            .get(format!("{}/api/v1/targets", self.url()))
            .send()
            .await?
            .json()
            .await?;
        Ok(body["data"]["activeTargets"].clone())
    }

    fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for PrometheusServer {
    fn drop(&mut self) {
        self.stop();
    }
}
