//! Test helpers shared by every crate's tests: throwaway server processes
//! (SMTP, PostgreSQL, NATS JetStream), and spawning the `shop`
//! binary on a free port with a temporary data directory.
//!
//! Every helper gives each test its own world (fresh port, fresh directory)
//! and tears it down in `Drop`.
#![warn(missing_docs)]
#![deny(unreachable_pub)]

pub mod nats;
pub mod oneshot;
pub mod postgres;
pub mod process;
pub mod smtp;

/// Whether this runs under CI (`CI=true` or `CI=1`), where a missing server
/// binary fails a test instead of skipping it.
pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v.eq_ignore_ascii_case("true") || v == "1")
}
