//! The process's Prometheus exposition at `GET /metrics`.
//!
//! Everything in Seams records through the `metrics` facade: request counts
//! and latencies per route (seams-http), contract calls per operation and
//! outcome (the governed transport), events applied, failed and
//! dead-lettered per subscription (relays), event lags per hop
//! (consistency), and per database the writer's queueing, commit time and
//! group size (`seams_store::meters`). This module installs the one
//! Prometheus recorder a process can have and renders it. With metrics
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
