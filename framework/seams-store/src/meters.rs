//! What the single writer of each database reports about itself, through the
//! `metrics` facade (the runtime installs the Prometheus recorder; without
//! one these calls cost next to nothing).
//!
//! One writer per database is the store's central choice (the crate docs say
//! why), so it is also where a database saturates first. These series say
//! how close it is, per `database` label:
//!
//! - [`WRITER_WAIT`]: how long a transaction queued for the writer. Growing
//!   waits mean the writer is the bottleneck: commands (and consumers)
//!   arrive faster than their transactions can run one after another.
//! - [`COMMIT`]: how long a group's `COMMIT` took: the fsync, and on SQLite
//!   the WAL checkpoint when the commit triggers one. Every member of the
//!   group waits this long after its own work is done.
//! - [`GROUP_MEMBERS`]: transactions per group commit. Near 1 when commands
//!   do not overlap; it grows with load, which is how group commit keeps
//!   the fsyncs per second bounded.
//! - [`GROUP_COMMITS`]: group commits so far.
//! - [`WRITER_REFUSED`]: transactions refused after waiting
//!   [`crate::WRITER_WAIT`] for the writer (each a 503 `overloaded`).
//!
//! The handles are looked up per recording rather than kept: a database is
//! opened before the runtime installs its recorder, and a handle taken then
//! would record into nothing. A recording per transaction and per commit is
//! small next to the round trips to the database that each one costs.

use std::time::Duration;

/// Group commits, by `database` (a counter).
pub const GROUP_COMMITS: &str = "seams_db_group_commits_total";
/// Seconds a transaction waited for the writer, by `database`.
pub const WRITER_WAIT: &str = "seams_db_writer_wait_seconds";
/// Seconds a group's `COMMIT` took, by `database`.
pub const COMMIT: &str = "seams_db_commit_seconds";
/// Transactions in each group commit, by `database`.
pub const GROUP_MEMBERS: &str = "seams_db_group_members";
/// Transactions refused because the writer stayed busy, by `database` (a counter).
pub const WRITER_REFUSED: &str = "seams_db_writer_refused_total";

/// A transaction gave up waiting for the writer.
pub(crate) fn writer_refused(database: &str) {
    metrics::counter!(WRITER_REFUSED, "database" => database.to_owned()).increment(1);
}

/// A transaction got the writer after `waited`.
pub(crate) fn writer_acquired(database: &str, waited: Duration) {
    metrics::histogram!(WRITER_WAIT, "database" => database.to_owned())
        .record(waited.as_secs_f64());
}

/// A group of `members` transactions committed, in `took`.
pub(crate) fn committed(database: &str, members: u32, took: Duration) {
    let label = database.to_owned();
    metrics::counter!(GROUP_COMMITS, "database" => label.clone()).increment(1);
    metrics::histogram!(COMMIT, "database" => label.clone()).record(took.as_secs_f64());
    metrics::histogram!(GROUP_MEMBERS, "database" => label).record(f64::from(members));
}
