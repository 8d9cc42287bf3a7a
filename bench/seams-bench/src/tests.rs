//! Tests of the latency summary: percentiles land where they should and
//! out-of-range latencies are clamped instead of lost.

use std::time::Duration;

use super::*;

#[test]
fn percentiles_of_a_known_distribution() {
    let mut hist = histogram();
    for ms in 1..=100 {
        record(&mut hist, Duration::from_millis(ms));
    }
    let latency = Latency::of(&hist);
    let close = |got: f64, want: f64| (got - want).abs() <= want * 0.01;
    assert!(close(latency.p50_ms, 50.0), "{latency}");
    assert!(close(latency.p90_ms, 90.0), "{latency}");
    assert!(close(latency.p99_ms, 99.0), "{latency}");
    assert!(close(latency.max_ms, 100.0), "{latency}");
    assert!(close(latency.mean_ms, 50.5), "{latency}");
}

#[test]
fn an_empty_histogram_summarises_to_zeros() {
    assert_eq!(Latency::of(&histogram()).max_ms, 0.0);
}

#[test]
fn out_of_range_latencies_are_clamped() {
    let mut hist = histogram();
    record(&mut hist, Duration::ZERO);
    record(&mut hist, Duration::from_secs(3600));
    assert_eq!(hist.len(), 2);
    assert_eq!(hist.min(), 1);
    assert!(hist.max() >= MAX_US);
}
