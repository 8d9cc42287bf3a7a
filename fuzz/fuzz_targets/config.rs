//! Fuzzes the `shop` command line and configuration file: the argument
//! parser, the file parser, and every check and conversion that runs on
//! them before anything starts (validation, `--database` and `--peer`
//! lists, `--split` groups, token lifetimes, edge limits, redaction).
//!
//! An input is the arguments separated by NUL bytes, then optionally two
//! NULs and the text of a `--config` file. Errors are expected; a panic, or
//! a value that passed its check yet breaks what the check promises, is a
//! finding.
//!
//! clap reads `SHOP_*` variables for unset flags, so a run must not depend
//! on the shell it was started from: the target restarts itself without
//! them before the first input.

#![no_main]

use std::ffi::OsString;
use std::os::unix::ffi::OsStringExt;
use std::time::Duration;

use clap::{CommandFactory, FromArgMatches};
use libfuzzer_sys::fuzz_target;
use seams_core::auth::Role;
use shop::cli::{Cli, Command};
use shop::config::{Config, FileConfig};
use shop::system::{CAPABILITIES, Placement};

/// Restarts this process without `SHOP_*` variables, if it has any.
fn scrub_environment() {
    use std::os::unix::process::CommandExt;
    let inherited: Vec<OsString> = std::env::vars_os()
        .map(|(name, _)| name)
        .filter(|name| name.as_encoded_bytes().starts_with(b"SHOP_"))
        .collect();
    if inherited.is_empty() {
        return;
    }
    let exe = std::env::current_exe().expect("the fuzz target knows its own path");
    let mut again = std::process::Command::new(exe);
    again.args(std::env::args_os().skip(1));
    for name in &inherited {
        again.env_remove(name);
    }
    // `exec` returns only when it failed.
    let error = again.exec();
    panic!("restarting without the SHOP_* variables: {error}");
}

fuzz_target!(init: scrub_environment(), |data: &[u8]| {
    let (args, file) = match data.windows(2).position(|w| w == b"\0\0") {
        Some(at) => (&data[..at], Some(&data[at + 2..])),
        None => (data, None),
    };
    let file = match file.map(std::str::from_utf8) {
        None => None,
        Some(Err(_)) => return,
        Some(Ok(text)) => match FileConfig::parse(text) {
            Ok(file) => Some(file),
            Err(e) => {
                let _ = format!("{e:#}");
                return;
            }
        },
    };
    let argv = std::iter::once(OsString::from("shop")).chain(
        args.split(|b| *b == 0)
            .filter(|_| !args.is_empty())
            .map(|arg| OsString::from_vec(arg.to_vec())),
    );
    let matches = match Cli::command().try_get_matches_from(argv) {
        Ok(matches) => matches,
        Err(e) => {
            let _ = e.render().to_string();
            return;
        }
    };
    let cli = match Cli::from_arg_matches(&matches) {
        Ok(cli) => cli,
        Err(e) => panic!("arguments clap matched make no command: {e}"),
    };
    // As `shop::cli::main` decides which values the file may fill.
    let given = shop::cli::given_by_user(&matches);
    let with_file = |mut config: Config| {
        if let Some(f) = &file {
            f.apply(&mut config, &given);
        }
        config
    };
    match cli.command {
        Command::Up { config, split } => {
            check(&with_file(config));
            if split {
                groups(&file.as_ref().map(|f| f.groups.clone()).unwrap_or_default());
            }
        }
        Command::Serve {
            capabilities,
            config,
            mut peers,
        } => {
            if !given("peers")
                && let Some(f) = &file
            {
                peers = f.peer_args();
            }
            check(&with_file(config));
            placement(&capabilities, &peers);
        }
        Command::Token {
            role,
            capabilities,
            ttl,
            ..
        } => {
            // The role parser lets through the roles and `service` only.
            assert!(role == "service" || Role::parse(&role).is_some(), "{role:?}");
            let _ = capabilities.len();
            if let Ok(ttl) = shop::cli::parse_ttl(&ttl) {
                assert!(ttl >= Duration::from_secs(1) && ttl <= shop::cli::MAX_TTL);
            }
        }
        Command::Rollout { emit, accept, .. } => {
            // What the supervisor checks of a rollout's settings: an answer, never a panic.
            let mut config = Config::new(([127, 0, 0, 1], 0).into(), std::path::PathBuf::new());
            config.emit = emit;
            config.accept = accept;
            let _ = config.emit_versions();
            let _ = config.accept_versions();
        }
        Command::Demo { .. } | Command::Contracts { .. } | Command::Keys { .. } | Command::Ops { .. } => {}
    }
});

/// A configuration that validates converts into what the system is built
/// from without surprises, and shows no credentials.
fn check(config: &Config) {
    for url in config
        .nats
        .iter()
        .chain(&config.postgres_admin)
        .chain(&config.oidc_jwks_url)
        .chain(&config.databases)
    {
        redacted(&seams_core::redact(url));
    }
    let _ = format!("{config:?}");
    let _ = config.signing_keys_path();
    if config.validate().is_err() {
        return;
    }
    let edge = config.edge(1024);
    assert!(edge.max_connections >= 1 && edge.max_in_flight >= 1);
    assert!(!edge.header_read_timeout.is_zero() && !edge.request_timeout.is_zero());
    let retention = config.retention();
    assert!(!retention.interval.is_zero());
    if let Some(chaos) = config.chaos() {
        assert!(chaos.min_delay <= chaos.max_delay);
    }
    let _ = config.sign_in_limits();
    let _ = config.durability();
    let _ = config.channel();
    if let Ok(urls) = config.database_urls() {
        for (cap, url) in &urls {
            assert!(CAPABILITIES.contains(&cap.as_str()), "{cap}");
            assert!(url.starts_with("postgres://") || url.starts_with("postgresql://"));
        }
    }
}

/// Every authority in `text` that carries credentials shows them blanked:
/// `user:***@` or `***@`. Looked for after every `://`, wherever it is, so a
/// URL hidden inside another one is judged too.
fn redacted(text: &str) {
    let mut from = 0;
    while let Some(found) = text[from..].find("://") {
        let start = from + found + 3;
        let tail = &text[start..];
        let end = tail
            .find(|c: char| matches!(c, '/' | '?' | '#') || c.is_whitespace())
            .unwrap_or(tail.len());
        if let Some(at) = tail[..end].rfind('@') {
            let userinfo = &tail[..at];
            assert!(
                userinfo == "***" || userinfo.ends_with(":***"),
                "credentials shown in {text:?}"
            );
        }
        from = start;
    }
}

/// `--split` groups that normalize name every capability exactly once.
fn groups(groups: &[Vec<String>]) {
    if let Ok(normal) = shop::supervisor::normalize_groups(groups) {
        let mut all: Vec<&str> = normal.iter().flatten().map(String::as_str).collect();
        assert!(normal.iter().all(|g| !g.is_empty()));
        all.sort_unstable();
        let mut known = CAPABILITIES.to_vec();
        known.sort_unstable();
        assert_eq!(all, known, "{groups:?} became {normal:?}");
    }
}

/// A placement that `shop serve` accepts runs or reaches every capability,
/// and never both.
fn placement(local: &[String], peers: &[String]) {
    if let Ok(placement) = Placement::split(local, peers) {
        for cap in CAPABILITIES {
            let here = placement.local.iter().any(|l| l == cap);
            let there = placement.peers.contains_key(cap);
            assert!(here != there, "{cap}: here {here}, peer {there}");
        }
        for url in placement.peers.values() {
            assert!(url.starts_with("http://") || url.starts_with("https://"));
        }
    }
}
