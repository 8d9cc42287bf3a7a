//! The process's Prometheus exposition at `GET /metrics`.
//!
//! Everything in Seams records through the `metrics` facade: request counts
//! and latencies per route (seams-http), contract calls per operation and
//! outcome (the governed transport), events applied, failed and
//! dead-lettered per subscription (relays), event lags per hop
//! (consistency), per database the writer's queueing, commit time and
//! group size (`seams_store::meters`), breaker state per callee
//! ([`crate::breaker`]), and the gauges sampled from the databases
//! ([`crate::gauges`]): outbox backlog, lag and dead letters per
//! subscription. This module installs the one Prometheus recorder a
//! process can have, describes every series, and renders it. With metrics
//! switched off (`SystemOptions::metrics = false`, for measuring what they
//! cost) nothing is installed and every recording is a no-op.

use std::sync::OnceLock;

use axum::http::header;
use axum::response::{IntoResponse, Response};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

/// Buckets for every `*_seconds` histogram: 100 µs to 30 s, roughly
/// doubling, which covers an in-process call and a timed-out remote one.
const BUCKETS: &[f64] = &[
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0, 30.0,
];

/// Buckets for transactions per group commit, the one histogram that is
/// not in seconds: 1 (no overlap) to 256 (more than the HTTP concurrency
/// the benchmarks use).
const MEMBER_BUCKETS: &[f64] = &[1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0];

static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();

/// Installs the process-wide recorder on first use and returns its handle;
/// `None` if another recorder was installed first (then `/metrics` says so).
pub fn install() -> Option<PrometheusHandle> {
    HANDLE
        .get_or_init(|| {
            let builder = PrometheusBuilder::new()
                .set_buckets(BUCKETS)
                .and_then(|b| {
                    b.set_buckets_for_metric(
                        Matcher::Full(seams_store::meters::GROUP_MEMBERS.to_owned()),
                        MEMBER_BUCKETS,
                    )
                })
                .expect("the bucket lists are not empty");
            match builder.install_recorder() {
                Ok(handle) => {
                    describe();
                    keep_up(handle.clone());
                    Some(handle)
                }
                Err(e) => {
                    tracing::warn!(error = %e, "metrics recorder not installed; /metrics stays empty");
                    None
                }
            }
        })
        .clone()
}

/// The `# HELP` line of every series Seams records.
fn describe() {
    use crate::gauges;
    use metrics::{Unit, describe_counter, describe_gauge, describe_histogram};
    use seams_store::meters;
    describe_counter!(
        seams_http::metrics::REQUESTS,
        Unit::Count,
        "HTTP requests answered, by method, route template and status."
    );
    describe_histogram!(
        seams_http::metrics::DURATION,
        Unit::Seconds,
        "Seconds from a request's arrival to its response head, by method, route template and status."
    );
    describe_counter!(
        "seams_calls_total",
        Unit::Count,
        "Contract calls made, by operation, callee and outcome."
    );
    describe_histogram!(
        "seams_call_duration_seconds",
        Unit::Seconds,
        "Seconds a contract call took, retries included, by operation and callee."
    );
    describe_counter!(
        "seams_events_applied_total",
        Unit::Count,
        "Events applied durably, by subscription."
    );
    describe_counter!(
        "seams_event_failures_total",
        Unit::Count,
        "Failed attempts to apply an event that will be retried, by subscription."
    );
    describe_counter!(
        "seams_events_dead_lettered_total",
        Unit::Count,
        "Events parked as dead letters so far, by subscription (replay does not lower it; see seams_dead_letters)."
    );
    describe_histogram!(
        "seams_event_lag_seconds",
        Unit::Seconds,
        "Seconds from an event's commit at the producer to its application, by hop (event type -> consumer)."
    );
    describe_counter!(
        meters::GROUP_COMMITS,
        Unit::Count,
        "Group commits of the database's single writer, by database."
    );
    describe_histogram!(
        meters::WRITER_WAIT,
        Unit::Seconds,
        "Seconds a transaction queued for the database's single writer, by database."
    );
    describe_histogram!(
        meters::COMMIT,
        Unit::Seconds,
        "Seconds a group's COMMIT took, by database."
    );
    describe_histogram!(
        meters::GROUP_MEMBERS,
        Unit::Count,
        "Transactions per group commit, by database."
    );
    describe_counter!(
        meters::WRITER_REFUSED,
        Unit::Count,
        "Transactions refused (503 overloaded) after waiting too long for the writer, by database."
    );
    describe_gauge!(
        crate::breaker::BREAKER_OPEN,
        Unit::Count,
        "1 while calls to the callee fail fast (breaker open, or one probe out), 0 while closed, by callee."
    );
    describe_gauge!(
        gauges::OUTBOX_BACKLOG,
        Unit::Count,
        "Outbox rows not yet published, by database: past the position every reader of the outbox (its subscriptions, or the bus publisher) has acknowledged. Sampled."
    );
    describe_gauge!(
        gauges::OUTBOX_OLDEST_AGE,
        Unit::Seconds,
        "Age of the oldest unpublished outbox row (0 when none), by database. Sampled."
    );
    describe_gauge!(
        gauges::SUBSCRIPTION_LAG,
        Unit::Count,
        "Events in the producer's outbox after the position the subscription has acknowledged (not yet applied), by subscription; measured at the producer, absent with a bus. Sampled."
    );
    describe_gauge!(
        gauges::SUBSCRIPTION_LAG_AGE,
        Unit::Seconds,
        "Age of the oldest event the subscription has not yet applied (0 when caught up): how stale its read model is, by subscription; measured at the producer, absent with a bus. Sampled."
    );
    describe_gauge!(
        gauges::DEAD_LETTERS,
        Unit::Count,
        "Dead letters not yet delivered (parked or queued for replay), by subscription; a delivered replay lowers it. Sampled."
    );
    describe_gauge!(
        gauges::RETRYING,
        Unit::Count,
        "Events set aside for another attempt, or waiting behind one of their key, by subscription; the feed goes on past them. Sampled."
    );
}

/// How often histogram samples are folded into their buckets.
const UPKEEP_EVERY: std::time::Duration = std::time::Duration::from_secs(5);

/// Folds histogram samples into their buckets every [`UPKEEP_EVERY`], for
/// the life of the process. The recorder keeps each sample until upkeep
/// runs, and without an HTTP listener of the exporter's own only a scrape
/// ran it: a process nobody scraped grew with every sample it recorded
/// (`bench/growth.sh` saw RSS rise with the invoices made). A thread rather
/// than a task: the recorder is process-wide and outlives any one runtime.
fn keep_up(handle: PrometheusHandle) {
    let spawned = std::thread::Builder::new()
        .name("metrics-upkeep".into())
        .spawn(move || {
            loop {
                std::thread::sleep(UPKEEP_EVERY);
                handle.run_upkeep();
            }
        });
    if let Err(e) = spawned {
        tracing::warn!(error = %e, "metrics upkeep thread not started; histograms are folded only when scraped");
    }
}

/// `GET /metrics` in the Prometheus text format (version 0.0.4).
pub fn render(handle: Option<&PrometheusHandle>) -> Response {
    let body = match handle {
        Some(h) => {
            // Histograms are kept in windows that upkeep drains; without an
            // HTTP listener of the exporter's own, scraping is the moment.
            h.run_upkeep();
            h.render()
        }
        None => "# metrics are switched off in this process\n".to_owned(),
    };
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        body,
    )
        .into_response()
}
