//! Test helpers shared by every crate's tests: throwaway server processes
//! (SMTP today; PostgreSQL and NATS with the split), and spawning the `shop`
//! binary on a free port with a temporary data directory.
//!
//! Every helper gives each test its own world (fresh port, fresh directory)
//! and tears it down in `Drop`.
#![warn(missing_docs)]
#![deny(unreachable_pub)]

pub mod nats;
pub mod oneshot;
pub mod process;
pub mod smtp;
