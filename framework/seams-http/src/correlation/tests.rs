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
