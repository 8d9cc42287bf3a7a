//! Test helpers shared by every crate's tests: throwaway server processes
//! (SMTP, PostgreSQL, NATS JetStream, Prometheus), spawning the `shop` binary on a free
//! port with a temporary data directory, driving routes without a socket,
//! tokens from a throwaway issuer, certificates from a throwaway CA (each
//! server can be started with TLS on), and a consumer fed by a stand-in
//! producer.
//!
//! Every helper gives each test its own world (fresh port, fresh directory)
//! and tears it down in `Drop`.
#![warn(missing_docs)]
#![deny(unreachable_pub)]

pub mod auth;
pub mod consumer;
pub mod nats;
pub mod oneshot;
pub mod otlp;
pub mod postgres;
pub mod process;
pub mod prometheus;
pub mod smtp;
pub mod tls;

/// Whether this runs under CI (`CI=true` or `CI=1`), where a missing server
/// binary fails a test instead of skipping it.
pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v.eq_ignore_ascii_case("true") || v == "1")
}

/// A loopback port nothing listens on right now, picked by the OS. It is
/// released before the caller's server binds it, so another process (even an
/// outgoing connection's local port) can take it first; servers that cannot
/// be handed a bound socket are started through [`start_on_a_free_port`].
pub(crate) fn free_port() -> anyhow::Result<u16> {
    use anyhow::Context;
    let listener = std::net::TcpListener::bind((std::net::Ipv4Addr::LOCALHOST, 0))
        .context("finding a free port")?;
    Ok(listener.local_addr()?.port())
}

/// Runs `start` on a free port, and on a new one (three tries in all) when
/// it failed because that port was taken in between.
pub(crate) fn start_on_a_free_port(
    mut start: impl FnMut(u16) -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    let mut tries = 1;
    loop {
        match start(free_port()?) {
            Err(e) if tries < 3 && port_taken(&e) => {
                eprintln!("port taken before the server bound it; trying another: {e:#}");
                tries += 1;
            }
            done => return done,
        }
    }
}

/// Whether a server's start failed because its port was in use (both
/// nats-server and postgres log the OS's words).
fn port_taken(e: &anyhow::Error) -> bool {
    format!("{e:#}")
        .to_ascii_lowercase()
        .contains("address already in use")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_taken_port_is_retried_on_another_and_other_failures_are_not() {
        let mut ports = Vec::new();
        start_on_a_free_port(|port| {
            ports.push(port);
            match ports.len() {
                1 => anyhow::bail!("listen tcp 127.0.0.1:{port}: bind: address already in use"),
                _ => Ok(()),
            }
        })
        .unwrap();
        assert_eq!(ports.len(), 2);

        let mut calls = 0;
        let err = start_on_a_free_port(|_| {
            calls += 1;
            anyhow::bail!("initdb: permission denied")
        })
        .unwrap_err();
        assert_eq!(calls, 1, "{err:#}");

        let mut calls = 0;
        start_on_a_free_port(|_| {
            calls += 1;
            anyhow::bail!("could not bind: Address already in use")
        })
        .unwrap_err();
        assert_eq!(calls, 3, "gives up after three tries");
    }
}
