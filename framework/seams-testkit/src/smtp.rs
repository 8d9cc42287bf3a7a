//! A throwaway, real SMTP server process for tests.
//!
//! ```
//! use std::io::{BufRead, BufReader, Write};
//! use std::net::TcpStream;
//!
//! use seams_testkit::smtp::SmtpServer;
//!
//! # fn main() -> anyhow::Result<()> {
//! // `None` means skipped: python3 or aiosmtpd is missing and CI is not set.
//! let Some(server) = SmtpServer::start()? else { return Ok(()) };
//!
//! // Any SMTP client will do; here the protocol is spoken by hand.
//! let mut conn = BufReader::new(TcpStream::connect((server.host(), server.port()))?);
//! fn reply(conn: &mut BufReader<TcpStream>) -> std::io::Result<String> {
//!     let mut line = String::new();
//!     // Multi-line replies continue with `250-`; the last line has `250 `.
//!     while line.is_empty() || line.as_bytes().get(3) == Some(&b'-') {
//!         line.clear();
//!         conn.read_line(&mut line)?;
//!     }
//!     Ok(line)
//! }
//! assert!(reply(&mut conn)?.starts_with("220"));
//! for (command, code) in [
//!     ("HELO test", "250"),
//!     ("MAIL FROM:<shop@example.com>", "250"),
//!     ("RCPT TO:<alice@example.com>", "250"),
//!     ("DATA", "354"),
//!     ("Subject: hello\r\n\r\nHi Alice.\r\n.", "250"),
//!     ("QUIT", "221"),
//! ] {
//!     conn.get_mut().write_all(format!("{command}\r\n").as_bytes())?;
//!     let line = reply(&mut conn)?;
//!     assert!(line.starts_with(code), "{command:?} got {line:?}");
//! }
//!
//! let messages = server.messages();
//! assert_eq!(messages.len(), 1);
//! assert!(messages[0].contains("Subject: hello"));
//! # Ok(())
//! # }
//! ```
//!
//! Tests of the SMTP delivery channel need a server that speaks real SMTP
//! (replies, dot-stuffing, 8BITMIME) rather than a fake that agrees with our
//! own misunderstandings. [`SmtpServer::start`] runs Python's `aiosmtpd` on a
//! fresh loopback port with its `Mailbox` handler, which stores every
//! accepted message in a Maildir inside a temporary directory; the test then
//! reads the raw messages back with [`SmtpServer::messages`]. Each test gets
//! its own process, port and directory, and `Drop` kills the process and
//! removes the directory.
//!
//! [`SmtpServer::start_with`] starts one that secures sessions with a
//! certificate from a [`TestCa`]: either STARTTLS, offered and required
//! before any mail is accepted (aiosmtpd's `--tlscert`, which answers
//! `530` to a `MAIL` sent in the clear), or implicit TLS from the first
//! byte (SMTPS, `--smtpscert`).
//!
//! aiosmtpd is a Python package (`pip install aiosmtpd`), not something cargo
//! can provide. When it is missing the helper prints a loud `SKIPPED:` line
//! and returns `Ok(None)`, so `cargo test` still works on a bare machine;
//! with `CI=true` it returns an error instead, so CI cannot go green by
//! silently skipping.

use std::fs::{self, File};
use std::io;
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::thread;
use std::time::{Duration, Instant, SystemTime};

use anyhow::{Context, bail};
use tempfile::TempDir;

use crate::tls::TestCa;

/// The interface the server listens on; loopback, so tests never expose it.
const HOST: &str = "127.0.0.1";

/// How long Python gets to import aiosmtpd and bind; generous for cold CI
/// machines, and only ever waited in full when something is broken.
const STARTUP_DEADLINE: Duration = Duration::from_secs(20);

/// How often readiness is polled while waiting.
const POLL_INTERVAL: Duration = Duration::from_millis(10);

/// A running `aiosmtpd` process that stores what it receives in a Maildir.
///
/// Killed (by its PID) and its directory removed when dropped.
#[derive(Debug)]
pub struct SmtpServer {
    /// The `python3 -m aiosmtpd` process.
    child: Child,
    /// The port it listens on, on [`HOST`].
    port: u16,
    /// Holds `maildir/` and the server's log; removed on drop.
    dir: TempDir,
}

/// How the server expects clients to secure a session.
#[derive(Debug, Clone, Copy)]
pub enum ServerTls<'a> {
    /// Plain SMTP, as [`SmtpServer::start`].
    None,
    /// STARTTLS with the CA's server certificate, required before `MAIL`.
    StartTls(&'a TestCa),
    /// TLS from the first byte (SMTPS) with the CA's server certificate.
    Implicit(&'a TestCa),
}

/// The server's copies of the certificate and key, in its own directory.
const CERT_FILE: &str = "server.pem";
const KEY_FILE: &str = "server-key.pem";

/// How a wait for the server to listen ended.
enum Startup {
    Listening,
    Exited(ExitStatus),
}

impl SmtpServer {
    /// Starts a server on a free loopback port and waits until it accepts
    /// connections.
    ///
    /// Returns `Ok(None)` after printing `SKIPPED: …` to stderr when
    /// `python3` or its `aiosmtpd` module is missing, unless the environment
    /// has `CI=true`, in which case that is an error. Errors also when the
    /// server does not come up.
    pub fn start() -> anyhow::Result<Option<Self>> {
        Self::start_with(ServerTls::None)
    }

    /// [`start`](Self::start) with the sessions secured as `tls` says.
    pub fn start_with(tls: ServerTls<'_>) -> anyhow::Result<Option<Self>> {
        if let Err(reason) = probe() {
            if crate::in_ci() {
                bail!(
                    "real SMTP server unavailable: {reason} (pip install aiosmtpd); CI=true, so failing instead of skipping"
                );
            }
            eprintln!(
                "SKIPPED: real SMTP server unavailable: {reason} (pip install aiosmtpd); \
                 the test that asked for it did not run"
            );
            return Ok(None);
        }
        let dir = tempfile::Builder::new()
            .prefix("seams-smtp-")
            .tempdir()
            .context("creating the SMTP server's directory")?;
        let tls_args = match tls {
            ServerTls::None => Vec::new(),
            ServerTls::StartTls(ca) => install_tls(dir.path(), ca, "--tlscert", "--tlskey")?,
            ServerTls::Implicit(ca) => install_tls(dir.path(), ca, "--smtpscert", "--smtpskey")?,
        };
        // The free port is found by binding port 0 and releasing it, so
        // another process can take it before aiosmtpd binds; that shows up as
        // aiosmtpd exiting, and a new port is tried.
        let mut last_exit = None;
        for _ in 0..3 {
            let port = crate::free_port()?;
            let mut child = spawn(dir.path(), port, &tls_args)?;
            match wait_listening(&mut child, port) {
                Ok(Startup::Listening) => return Ok(Some(Self { child, port, dir })),
                Ok(Startup::Exited(status)) => last_exit = Some(status),
                Err(err) => {
                    kill(&mut child);
                    return Err(err.context(log_tail(dir.path())));
                }
            }
        }
        bail!(
            "aiosmtpd exited during startup ({}); {}",
            last_exit.map_or_else(|| "no status".to_owned(), |s| s.to_string()),
            log_tail(dir.path())
        )
    }

    /// [`start`](Self::start) for tests that return `()`: `None` means
    /// skipped (the reason is already printed), any error panics.
    ///
    /// ```
    /// # use seams_testkit::smtp::SmtpServer;
    /// let Some(server) = SmtpServer::start_or_skip() else { return };
    /// assert_ne!(server.port(), 0);
    /// ```
    pub fn start_or_skip() -> Option<Self> {
        Self::start_with_or_skip(ServerTls::None)
    }

    /// [`start_with`](Self::start_with) for tests that return `()`: `None`
    /// means skipped (the reason is already printed), any error panics.
    pub fn start_with_or_skip(tls: ServerTls<'_>) -> Option<Self> {
        match Self::start_with(tls) {
            Ok(server) => server,
            Err(err) => panic!("starting the test SMTP server: {err:#}"),
        }
    }

    /// The address to connect to: always the IPv4 loopback, `127.0.0.1`.
    pub fn host(&self) -> &'static str {
        HOST
    }

    /// The port the server listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The Maildir aiosmtpd delivers into (`new/`, `cur/`, `tmp/` inside).
    pub fn maildir(&self) -> PathBuf {
        self.dir.path().join("maildir")
    }

    /// Every message received so far, raw (headers and body as stored,
    /// including the `X-Peer`, `X-MailFrom` and `X-RcptTo` headers aiosmtpd
    /// adds), oldest first.
    ///
    /// aiosmtpd stores a message before it answers the final `250` to
    /// `DATA`, so a message whose send succeeded is already here.
    ///
    /// # Panics
    ///
    /// If the Maildir cannot be read, which only happens if the test broke it.
    pub fn messages(&self) -> Vec<String> {
        read_maildir(&self.maildir())
            .unwrap_or_else(|err| panic!("reading {}: {err}", self.maildir().display()))
    }

    /// Waits until at least `n` messages have arrived and returns all of
    /// them; for when the sending happens in the background (a worker).
    /// Errors with what did arrive if `timeout` passes first.
    pub fn wait_for_messages(&self, n: usize, timeout: Duration) -> anyhow::Result<Vec<String>> {
        let deadline = Instant::now() + timeout;
        loop {
            let messages = self.messages();
            if messages.len() >= n {
                return Ok(messages);
            }
            if Instant::now() >= deadline {
                bail!(
                    "expected {n} message(s) within {timeout:?}, got {}: {messages:#?}",
                    messages.len()
                );
            }
            thread::sleep(POLL_INTERVAL);
        }
    }
}

impl Drop for SmtpServer {
    fn drop(&mut self) {
        kill(&mut self.child);
    }
}

/// Checks that `python3` runs and can import aiosmtpd; `Err` says what is
/// missing.
fn probe() -> Result<(), String> {
    let status = Command::new("python3")
        .args(["-c", "import aiosmtpd"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
    match status {
        Ok(status) if status.success() => Ok(()),
        Ok(_) => Err("python3 has no aiosmtpd module".to_owned()),
        Err(err) if err.kind() == io::ErrorKind::NotFound => {
            Err("python3 is not on PATH".to_owned())
        }
        Err(err) => Err(format!("cannot run python3: {err}")),
    }
}

/// Copies `ca`'s server certificate and key into `dir`; returns aiosmtpd's
/// arguments naming them (`cert_flag FILE key_flag FILE`).
fn install_tls(
    dir: &Path,
    ca: &TestCa,
    cert_flag: &str,
    key_flag: &str,
) -> anyhow::Result<Vec<std::ffi::OsString>> {
    let mut args = Vec::new();
    for (flag, from, to) in [
        (cert_flag, ca.cert_file(), CERT_FILE),
        (key_flag, ca.key_file(), KEY_FILE),
    ] {
        let to = dir.join(to);
        fs::copy(&from, &to).with_context(|| format!("copying {}", from.display()))?;
        args.push(flag.into());
        args.push(to.into_os_string());
    }
    Ok(args)
}

/// Starts aiosmtpd on `port`, storing mail in `dir/maildir` and logging to
/// `dir/aiosmtpd.log` (a file rather than a pipe, which nobody would drain);
/// `tls_args` switch TLS on.
fn spawn(dir: &Path, port: u16, tls_args: &[std::ffi::OsString]) -> anyhow::Result<Child> {
    let log = File::create(dir.join("aiosmtpd.log")).context("creating aiosmtpd.log")?;
    Command::new("python3")
        .args(["-m", "aiosmtpd"])
        // Do not try to setuid to `nobody` (it would fail unless root, and as
        // root it could not write our temp dir).
        .arg("-n")
        .args(["-l", &format!("{HOST}:{port}")])
        .args(tls_args)
        .args(["-c", "aiosmtpd.handlers.Mailbox"])
        .arg(dir.join("maildir"))
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .spawn()
        .context("spawning python3 -m aiosmtpd")
}

/// Polls until `port` accepts connections or the process exits, up to
/// [`STARTUP_DEADLINE`].
fn wait_listening(child: &mut Child, port: u16) -> anyhow::Result<Startup> {
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let deadline = Instant::now() + STARTUP_DEADLINE;
    loop {
        if let Some(status) = child.try_wait()? {
            return Ok(Startup::Exited(status));
        }
        if TcpStream::connect_timeout(&addr, POLL_INTERVAL).is_ok() {
            return Ok(Startup::Listening);
        }
        if Instant::now() >= deadline {
            bail!("aiosmtpd did not listen on {addr} within {STARTUP_DEADLINE:?}");
        }
        thread::sleep(POLL_INTERVAL);
    }
}

/// Kills the process by its PID and reaps it, so no zombie or stray server
/// outlives the test.
fn kill(child: &mut Child) {
    let _ = child.kill();
    let _ = child.wait();
}

/// The end of aiosmtpd's log, to explain a failed start.
fn log_tail(dir: &Path) -> String {
    let log = fs::read_to_string(dir.join("aiosmtpd.log")).unwrap_or_default();
    let tail: Vec<&str> = log.lines().rev().take(20).collect();
    let tail: Vec<&str> = tail.into_iter().rev().collect();
    format!("aiosmtpd log:\n{}", tail.join("\n"))
}

/// Reads every message file in `maildir/new` and `maildir/cur`, oldest first.
///
/// aiosmtpd creates the Maildir when it starts, but a missing directory is
/// still read as "no messages" rather than an error.
fn read_maildir(maildir: &Path) -> io::Result<Vec<String>> {
    let mut files: Vec<(SystemTime, PathBuf)> = Vec::new();
    for sub in ["new", "cur"] {
        let entries = match fs::read_dir(maildir.join(sub)) {
            Ok(entries) => entries,
            Err(err) if err.kind() == io::ErrorKind::NotFound => continue,
            Err(err) => return Err(err),
        };
        for entry in entries {
            let entry = entry?;
            let meta = entry.metadata()?;
            if meta.is_file() {
                files.push((meta.modified()?, entry.path()));
            }
        }
    }
    // Python's Maildir names start with the arrival second, but the
    // sub-second part is not zero-padded, so the names alone do not sort by
    // time; the modification time, then the name, does.
    files.sort();
    files
        .into_iter()
        .map(|(_, path)| fs::read(path).map(|bytes| String::from_utf8_lossy(&bytes).into_owned()))
        .collect()
}
