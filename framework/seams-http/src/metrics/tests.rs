//! The series cache counts what the recorder would have counted, and keeps
//! the method label bounded.

use metrics_util::debugging::{DebugValue, DebuggingRecorder};
use metrics_util::{CompositeKey, MetricKind};

use super::*;

fn counts(recorder: &DebuggingRecorder) -> Vec<(Vec<(String, String)>, u64)> {
    let mut out: Vec<_> = recorder
        .snapshotter()
        .snapshot()
        .into_vec()
        .into_iter()
        .filter_map(|(key, _, _, value)| match (key.kind(), value) {
            (MetricKind::Counter, DebugValue::Counter(n)) => Some((labels(&key), n)),
            _ => None,
        })
        .collect();
    out.sort();
    out
}

fn labels(key: &CompositeKey) -> Vec<(String, String)> {
    key.key()
        .labels()
        .map(|l| (l.key().to_owned(), l.value().to_owned()))
        .collect()
}

fn series(method: &str, route: &str, status: &str) -> Vec<(String, String)> {
    vec![
        ("method".to_owned(), method.to_owned()),
        ("route".to_owned(), route.to_owned()),
        ("status".to_owned(), status.to_owned()),
    ]
}

#[test]
fn repeated_requests_count_on_the_series_first_seen() {
    let recorder = DebuggingRecorder::new();
    let cache = Series::default();
    metrics::with_local_recorder(&recorder, || {
        for _ in 0..3 {
            cache.record(&Method::GET, "/a/{id}", StatusCode::OK, 0.001);
        }
        cache.record(&Method::POST, "/a/{id}", StatusCode::OK, 0.001);
        cache.record(&Method::GET, "/a/{id}", StatusCode::NOT_FOUND, 0.001);
        cache.record(&Method::GET, UNMATCHED, StatusCode::NOT_FOUND, 0.001);
    });
    assert_eq!(
        counts(&recorder),
        vec![
            (series("GET", "/a/{id}", "200"), 3),
            (series("GET", "/a/{id}", "404"), 1),
            (series("GET", "unmatched", "404"), 1),
            (series("POST", "/a/{id}", "200"), 1),
        ]
    );
}

#[test]
fn invented_methods_share_one_series() {
    let recorder = DebuggingRecorder::new();
    let cache = Series::default();
    metrics::with_local_recorder(&recorder, || {
        for m in ["BREW", "WHEN", "X-ANYTHING-AT-ALL"] {
            let method = Method::from_bytes(m.as_bytes()).unwrap();
            cache.record(&method, "/a", StatusCode::METHOD_NOT_ALLOWED, 0.001);
        }
    });
    assert_eq!(counts(&recorder), vec![(series("OTHER", "/a", "405"), 3)]);
}
