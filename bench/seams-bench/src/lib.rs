//! What the benchmark binaries share: how a latency is recorded and summarised.
//!
//! Every latency figure in `BENCHMARKS.md` comes out of [`Latency::of`], so the
//! load generator and the raw SQLite baseline compute percentiles the same
//! way (HdrHistogram, microsecond resolution, three significant digits) and
//! their figures can be divided by each other. The binaries live in
//! `src/bin/`: `loadgen` (HTTP load), `baseline-axum`, `baseline-sqlite`,
//! `baseline-postgres` and `baseline-jetstream`
//! (the same-run baselines), `report` (the table with ratios) and
//! `auth-cost` (what authentication costs, in instructions under callgrind).

use std::time::Duration;

use hdrhistogram::Histogram;
use serde::Serialize;

pub mod cpu;

/// Longest latency a histogram holds, in microseconds (60 s); longer ones are clamped.
pub const MAX_US: u64 = 60_000_000;

/// An empty latency histogram: 1 µs to [`MAX_US`], three significant digits.
pub fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, MAX_US, 3).expect("1 µs..60 s with 3 digits is a valid histogram")
}

/// Records `latency` in `hist`, clamped to the histogram's range.
pub fn record(hist: &mut Histogram<u64>, latency: Duration) {
    let us = latency.as_micros().clamp(1, u128::from(MAX_US)) as u64;
    hist.saturating_record(us);
}

/// Percentiles of a latency distribution, in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Latency {
    /// Median.
    pub p50_ms: f64,
    /// 90th percentile.
    pub p90_ms: f64,
    /// 99th percentile.
    pub p99_ms: f64,
    /// Largest recorded.
    pub max_ms: f64,
    /// Arithmetic mean.
    pub mean_ms: f64,
}

impl Latency {
    /// The summary of `hist` (all zeros when it is empty).
    pub fn of(hist: &Histogram<u64>) -> Latency {
        if hist.is_empty() {
            return Latency {
                p50_ms: 0.0,
                p90_ms: 0.0,
                p99_ms: 0.0,
                max_ms: 0.0,
                mean_ms: 0.0,
            };
        }
        let ms = |us: u64| us as f64 / 1000.0;
        Latency {
            p50_ms: ms(hist.value_at_quantile(0.50)),
            p90_ms: ms(hist.value_at_quantile(0.90)),
            p99_ms: ms(hist.value_at_quantile(0.99)),
            max_ms: ms(hist.max()),
            mean_ms: hist.mean() / 1000.0,
        }
    }
}

impl std::fmt::Display for Latency {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "p50 {:.3} ms  p90 {:.3} ms  p99 {:.3} ms  max {:.3} ms  mean {:.3} ms",
            self.p50_ms, self.p90_ms, self.p99_ms, self.max_ms, self.mean_ms
        )
    }
}

#[cfg(test)]
mod tests;
