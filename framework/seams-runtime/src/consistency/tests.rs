//! Bounds are reported against measurements, and token waits are bounded.

use std::time::Duration;

use seams_core::decl::*;

use super::*;

static EVENT: EventContract = EventContract {
    producer: "billing",
    event_type: "billing.invoice-paid",
    summary: "",
    retries: Retries::Nobody,
    idempotency: Idempotency::InboxByEventId,
    ordering: Ordering::Unordered,
    when_down: WhenDown::QueueAndDeliverLater,
    versioning: Versioning {
        current: 1,
        accepts: &[1],
    },
    schema: seams_core::decl::no_body,
    downcast: None,
};

static SHIPS_FAST: Invariant = Invariant {
    capability: "fulfillment",
    name: "ships-fast",
    description: "",
    kind: InvariantKind::Eventual {
        bound: Duration::from_millis(100),
        percentile: 99.0,
        measure: Measure::Hop {
            event: &EVENT,
            consumer: "fulfillment",
        },
    },
};

fn status(c: &Consistency) -> String {
    c.report()["invariants"][0]["status"]
        .as_str()
        .unwrap()
        .to_owned()
}

#[test]
fn an_eventual_bound_is_reported_against_the_measured_percentile() {
    let c = Consistency::new();
    c.declare([&SHIPS_FAST]);
    assert_eq!(status(&c), "no data");
    for _ in 0..99 {
        c.record(
            "billing.invoice-paid->fulfillment",
            Duration::from_millis(10),
        );
    }
    assert_eq!(status(&c), "holds");
    // One slow sample in a hundred is the maximum, not yet the p99 (nearest rank).
    c.record(
        "billing.invoice-paid->fulfillment",
        Duration::from_millis(500),
    );
    assert_eq!(status(&c), "holds");
    c.record(
        "billing.invoice-paid->fulfillment",
        Duration::from_millis(500),
    );
    assert_eq!(status(&c), "broken");
    let row = &c.report()["invariants"][0];
    assert_eq!(row["samples"], 101);
    assert_eq!(row["measured_ms"], 500.0);
    assert_eq!(row["p50_ms"], 10.0);
}

#[test]
fn every_recorded_lag_is_in_its_hops_histogram() {
    let recorder = metrics_exporter_prometheus::PrometheusBuilder::new().build_recorder();
    let handle = recorder.handle();
    metrics::with_local_recorder(&recorder, || {
        let c = Consistency::new();
        for ms in [10, 20, 30] {
            c.record("a->b", Duration::from_millis(ms));
        }
        c.record("c->d", Duration::from_millis(40));
        let text = handle.render();
        let value = |series: &str| {
            text.lines()
                .find_map(|l| l.strip_prefix(series))
                .map(|v| v.trim().to_owned())
        };
        assert_eq!(
            value("seams_event_lag_seconds_count{hop=\"a->b\"} ").as_deref(),
            Some("3"),
            "{text}"
        );
        assert_eq!(
            value("seams_event_lag_seconds_sum{hop=\"a->b\"} ").as_deref(),
            Some("0.06"),
            "{text}"
        );
        assert_eq!(
            value("seams_event_lag_seconds_count{hop=\"c->d\"} ").as_deref(),
            Some("1"),
            "{text}"
        );
    });
}

/// Log lines written while `f` runs.
fn logged(f: impl FnOnce()) -> String {
    #[derive(Clone, Default)]
    struct Lines(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);
    impl std::io::Write for Lines {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let lines = Lines::default();
    let writer = lines.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    tracing::subscriber::with_default(subscriber, f);
    String::from_utf8(lines.0.lock().unwrap().clone()).unwrap()
}

#[test]
fn a_broken_bound_is_logged_once_and_its_recovery_too() {
    let key = "billing.invoice-paid->fulfillment";
    let c = Consistency::new();
    // Samples before the declaration count; other keys do not.
    c.record(key, Duration::from_millis(500));
    c.declare([&SHIPS_FAST]);
    let log = logged(|| {
        c.record("other->hop", Duration::from_secs(9));
        c.record(key, Duration::from_millis(500));
        c.record(key, Duration::from_millis(600));
    });
    assert_eq!(log.matches("consistency bound broken").count(), 1, "{log}");
    assert!(log.contains("invariant=fulfillment.ships-fast"), "{log}");
    // Checked again while still broken: nothing new to say.
    std::thread::sleep(CHECK_EVERY);
    let log = logged(|| c.record(key, Duration::from_millis(700)));
    assert_eq!(log, "");
    // The window's p99 falls under the bound at once, but the bounds are
    // checked at most every CHECK_EVERY: no line yet...
    let log = logged(|| {
        for _ in 0..400 {
            c.record(key, Duration::from_millis(1));
        }
    });
    assert_eq!(log, "");
    // ...then one, at the next check.
    std::thread::sleep(CHECK_EVERY);
    let log = logged(|| c.record(key, Duration::from_millis(1)));
    assert_eq!(
        log.matches("consistency bound holds again").count(),
        1,
        "{log}"
    );
    assert!(!log.contains("broken"), "{log}");
    // Holding, checked again: nothing.
    std::thread::sleep(CHECK_EVERY);
    let log = logged(|| c.record(key, Duration::from_millis(1)));
    assert_eq!(log, "");
}

#[test]
fn a_lag_exactly_at_its_bound_holds() {
    let c = Consistency::new();
    c.declare([&SHIPS_FAST]);
    let log = logged(|| {
        c.record(
            "billing.invoice-paid->fulfillment",
            Duration::from_millis(100),
        )
    });
    assert_eq!(log, "");
    assert_eq!(status(&c), "holds");
}

#[test]
fn hops_are_measured_from_the_commit_time() {
    let c = Consistency::new();
    let committed = time::OffsetDateTime::now_utc() - time::Duration::milliseconds(250);
    c.record_hop(
        "billing.invoice-paid",
        "fulfillment",
        &seams_core::clock::rfc3339(committed),
    );
    let lag = c.report()["lags"]["billing.invoice-paid->fulfillment"]["max_ms"]
        .as_f64()
        .unwrap();
    assert!((250.0..5_000.0).contains(&lag), "{lag}");
    c.record_hop("billing.invoice-paid", "fulfillment", "not a time");
    assert_eq!(
        c.report()["lags"]["billing.invoice-paid->fulfillment"]["samples"],
        1
    );
}

#[test]
fn tokens_parse_strictly() {
    assert_eq!(
        Token::parse("identity:42"),
        Some(Token {
            producer: "identity".into(),
            position: 42
        })
    );
    assert_eq!(
        Token::parse("identity:42").unwrap().to_string(),
        "identity:42"
    );
    let longest = i64::MAX.to_string();
    assert_eq!(longest.len(), Token::MAX_POSITION_DIGITS);
    assert_eq!(
        Token::parse(&format!("identity:{longest}")).map(|t| t.position),
        Some(i64::MAX as u64)
    );
    for bad in [
        "",
        "identity",
        "identity:",
        ":4",
        "identity:-1",
        "Identity:4",
        "id entity:4",
        "identity:4:5",
        "identity:+4",
        "identity: 4",
        "identity:12345678901234567890",
    ] {
        assert_eq!(Token::parse(bad), None, "{bad}");
    }
}

#[tokio::test]
async fn a_token_wait_returns_when_caught_up_or_says_stale() {
    let c = Consistency::new();
    c.advance("notification<-identity", 3);
    let fresh = c
        .wait_for("notification<-identity", 3, Duration::from_millis(10))
        .await
        .unwrap();
    assert_eq!(fresh.position, 3);
    let stale = c
        .wait_for("notification<-identity", 5, Duration::from_millis(20))
        .await
        .unwrap_err();
    assert_eq!(stale.position, 3);
    let waiter = {
        let c = c.clone();
        tokio::spawn(async move {
            c.wait_for("notification<-identity", 5, Duration::from_secs(10))
                .await
        })
    };
    tokio::task::yield_now().await;
    c.advance("notification<-identity", 4);
    c.advance("notification<-identity", 6);
    assert_eq!(waiter.await.unwrap().unwrap().position, 6);
    assert!(
        c.freshness("notification<-identity")
            .unwrap()
            .header()
            .starts_with("subscription=notification<-identity; position=6;")
    );
}

#[test]
fn a_percentile_selected_from_an_unsorted_window_is_the_sorted_windows() {
    // A fixed scramble of 1..=1000 with repeats, in no order.
    let values: Vec<u64> = (0..1000u64).map(|i| (i * 7919) % 1009 / 3).collect();
    let mut sorted = values.clone();
    sorted.sort_unstable();
    for p in [0.0, 1.0, 50.0, 90.0, 99.0, 99.9, 100.0] {
        let mut window = values.clone();
        assert_eq!(
            percentile_of(&mut window, p),
            percentile(&sorted, p),
            "p{p}"
        );
    }
    assert_eq!(percentile_of(&mut [], 99.0), 0);
    assert_eq!(percentile_of(&mut [5, 1, 9], 50.0), 5);
}
