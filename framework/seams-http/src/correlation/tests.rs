//! Where a request's correlation id comes from.

use super::*;

fn headers(pairs: &[(&HeaderName, &str)]) -> HeaderMap {
    let mut h = HeaderMap::new();
    for (k, v) in pairs {
        h.insert((*k).clone(), HeaderValue::from_str(v).unwrap());
    }
    h
}

#[test]
fn traceparent_sets_the_trace_and_the_correlation() {
    let tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    let ctx = context_from_headers(&headers(&[(&TRACEPARENT, tp)]));
    assert_eq!(ctx.correlation_id, "4bf92f3577b34da6a3ce929d0e0e4736");
    assert_eq!(ctx.trace.trace_id_hex(), "4bf92f3577b34da6a3ce929d0e0e4736");
}

#[test]
fn a_client_correlation_id_is_kept_and_a_bad_one_replaced() {
    let ctx = context_from_headers(&headers(&[(&CORRELATION_ID, "order-42")]));
    assert_eq!(ctx.correlation_id, "order-42");
    let ctx = context_from_headers(&headers(&[(&CORRELATION_ID, "no spaces allowed")]));
    assert_eq!(ctx.correlation_id, ctx.trace.trace_id_hex());
    let ctx = context_from_headers(&headers(&[(&TRACEPARENT, "garbage")]));
    assert_eq!(ctx.correlation_id.len(), 32);
}

#[test]
fn each_request_gets_its_own_request_id_and_a_deadline_ahead() {
    let a = context_from_headers(&HeaderMap::new());
    let b = context_from_headers(&HeaderMap::new());
    let (a, b) = (a.causation_id.unwrap(), b.causation_id.unwrap());
    assert!(a.starts_with("req-") && a.len() == 40, "{a}");
    assert_ne!(a, b);
    let ctx = context_from_headers(&headers(&[(&DEADLINE_MS, "60000")]));
    let left = ctx.remaining().unwrap();
    assert!(
        left > Duration::from_secs(50) && left <= Duration::from_secs(60),
        "{left:?}"
    );
}

/// Runs `f` with a subscriber whose spans are exported (to nowhere).
fn traced<T>(f: impl FnOnce() -> T) -> T {
    use tracing_subscriber::layer::SubscriberExt;
    let exporting = seams_telemetry::Exporting::with_provider(
        opentelemetry_sdk::trace::SdkTracerProvider::builder().build(),
    );
    let subscriber = tracing_subscriber::registry()
        .with(tracing_subscriber::filter::filter_fn(
            seams_telemetry::exported,
        ))
        .with(exporting.layer());
    tracing::subscriber::with_default(subscriber, f)
}

fn request_span() -> tracing::Span {
    tracing::info_span!(
        "request",
        trace_id = tracing::field::Empty,
        correlation_id = tracing::field::Empty,
        otel.name = tracing::field::Empty,
    )
}

#[test]
fn untraced_a_request_keeps_the_context_it_made() {
    let mut ctx = context_from_headers(&HeaderMap::new());
    let before = ctx.clone();
    assert!(!trace(&request_span(), &mut ctx, None, || "GET /x".into()));
    assert_eq!(ctx, before);
}

#[test]
fn traced_a_new_request_carries_the_exported_span_and_its_trace_names_the_correlation() {
    traced(|| {
        let mut ctx = context_from_headers(&HeaderMap::new());
        let made = ctx.clone();
        assert!(trace(&request_span(), &mut ctx, None, || "GET /x".into()));
        assert_ne!(ctx.trace, made.trace);
        assert_eq!(ctx.correlation_id, ctx.trace.trace_id_hex());
        // A client's own correlation id stays, whatever the trace.
        let mut ctx = context_from_headers(&headers(&[(&CORRELATION_ID, "order-42")]));
        assert!(trace(&request_span(), &mut ctx, None, || "GET /x".into()));
        assert_eq!(ctx.correlation_id, "order-42");
    });
}

#[test]
fn traced_a_continued_request_keeps_its_trace_under_a_span_of_its_own() {
    traced(|| {
        let tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        let (mut ctx, parent) = context_and_parent(&headers(&[(&TRACEPARENT, tp)]));
        let parent = parent.unwrap();
        let made = ctx.clone();
        assert!(trace(&request_span(), &mut ctx, Some(&parent), || "GET /x".into()));
        assert_eq!(ctx.trace.trace_id, parent.trace_id);
        assert_ne!(ctx.trace.span_id, parent.span_id);
        assert_ne!(ctx.trace.span_id, made.trace.span_id);
        assert_eq!(ctx.correlation_id, "4bf92f3577b34da6a3ce929d0e0e4736");
    });
}
