//! `traceparent` parsing against the W3C examples and malformed inputs.

use super::*;

#[test]
fn parses_the_w3c_example() {
    let v = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    let t = TraceContext::parse(v).unwrap();
    assert_eq!(t.trace_id_hex(), "4bf92f3577b34da6a3ce929d0e0e4736");
    assert_eq!(t.flags, 1);
    assert_eq!(t.to_traceparent(), v);
}

#[test]
fn rejects_malformed_values() {
    for bad in [
        "",
        "00",
        "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
        "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
        "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
        "00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01",
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-1",
        "00-zzf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        // Found by the envelope fuzz target: uppercase flags were taken,
        // and written back lowercase.
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-A1",
    ] {
        assert!(TraceContext::parse(bad).is_none(), "{bad:?}");
    }
}

#[test]
fn calls_keep_the_trace_and_the_earlier_deadline() {
    let root = CallContext::new_root();
    let call = root.for_call(Duration::from_secs(5));
    assert_eq!(call.trace.trace_id, root.trace.trace_id);
    assert_ne!(call.trace.span_id, root.trace.span_id);
    let nested = call.for_call(Duration::from_secs(60));
    assert!(nested.remaining().unwrap() <= Duration::from_secs(5));
}
