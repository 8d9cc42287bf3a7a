//! The breaker's gauge follows its state: 0 from the first call, 1 once it
//! opens and while a probe is out, 0 again when a probe succeeds.

use std::time::Duration;

use metrics_exporter_prometheus::PrometheusBuilder;

use super::*;

fn gauge(text: &str, callee: &str) -> Option<f64> {
    let prefix = format!("{BREAKER_OPEN}{{callee=\"{callee}\"}} ");
    text.lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .and_then(|v| v.trim().parse().ok())
}

#[test]
fn the_open_gauge_follows_the_breaker() {
    let recorder = PrometheusBuilder::new().build_recorder();
    let handle = recorder.handle();
    let breakers = Breakers::new(BreakerOptions {
        failures_to_open: 2,
        open_for: Duration::ZERO,
        max_in_flight: 8,
    });
    metrics::with_local_recorder(&recorder, || {
        assert!(gauge(&handle.render(), "catalog").is_none());
        drop(breakers.admit("catalog").unwrap());
        assert_eq!(gauge(&handle.render(), "catalog"), Some(0.0));
        breakers.record("catalog", false);
        assert_eq!(gauge(&handle.render(), "catalog"), Some(0.0));
        breakers.record("catalog", false);
        assert_eq!(gauge(&handle.render(), "catalog"), Some(1.0));
        // The probe (open_for has passed) is let through; the breaker stays
        // counted open until it succeeds.
        drop(breakers.admit("catalog").unwrap());
        assert_eq!(breakers.state("catalog"), State::HalfOpen);
        assert_eq!(gauge(&handle.render(), "catalog"), Some(1.0));
        breakers.record("catalog", true);
        assert_eq!(gauge(&handle.render(), "catalog"), Some(0.0));
        // Another callee has its own series.
        drop(breakers.admit("identity").unwrap());
        assert_eq!(gauge(&handle.render(), "identity"), Some(0.0));
    });
}
