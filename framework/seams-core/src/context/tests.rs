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
fn every_position_takes_only_what_the_grammar_allows() {
    let valid = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    for at in 0..valid.len() {
        for byte in 0..=127u8 {
            let mut value = valid.as_bytes().to_vec();
            value[at] = byte;
            let value = String::from_utf8(value).expect("ASCII");
            let allowed = match at {
                0 | 1 => byte == b'0',
                2 | 35 | 52 => byte == b'-',
                _ => byte.is_ascii_digit() || (b'a'..=b'f').contains(&byte),
            };
            // Whitespace at either end is trimmed, which leaves too few bytes.
            let parsed = TraceContext::parse(&value);
            assert_eq!(parsed.is_some(), allowed, "{value:?}");
            if let Some(t) = parsed {
                assert_eq!(t.to_traceparent(), value, "decoded and written back");
            }
        }
    }
}

#[test]
fn surrounding_whitespace_is_trimmed_and_every_digit_decoded() {
    let t = TraceContext::parse(" \t00-0123456789abcdef0123456789abcdef-fedcba9876543210-ff\n")
        .unwrap();
    assert_eq!(
        t.trace_id,
        [
            0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef, 0x01, 0x23, 0x45, 0x67, 0x89, 0xab,
            0xcd, 0xef
        ]
    );
    assert_eq!(t.span_id, [0xfe, 0xdc, 0xba, 0x98, 0x76, 0x54, 0x32, 0x10]);
    assert_eq!(t.flags, 0xff);
    // Multi-byte characters of the right length are not digits.
    assert!(
        TraceContext::parse("00-4bf92f3577b34da6a3ce929d0e0e47é-00f067aa0ba902b7-01").is_none()
    );
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
