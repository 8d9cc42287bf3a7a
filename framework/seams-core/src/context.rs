//! The context one unit of work runs in: which chain it belongs to
//! (correlation), what directly caused it (causation), its W3C trace context,
//! and its deadline.
//!
//! The same context is carried on HTTP calls (headers) and on events
//! (envelope attributes), so a request's causal chain can be followed across
//! capabilities in every mode. The W3C `traceparent` format is parsed here by
//! hand: it is 55 fixed-width characters, and taking the OpenTelemetry SDK
//! into this I/O-free crate for it would be the wrong trade.

use std::time::{Duration, Instant};

use crate::envelope::Envelope;

/// W3C trace context (`traceparent`, version 00).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TraceContext {
    /// 16-byte trace id.
    pub trace_id: [u8; 16],
    /// 8-byte id of the current span.
    pub span_id: [u8; 8],
    /// Trace flags (bit 0: sampled).
    pub flags: u8,
}

impl TraceContext {
    /// A new trace with a random trace id.
    pub fn new_root() -> TraceContext {
        let trace = uuid::Uuid::new_v4().into_bytes();
        TraceContext {
            trace_id: trace,
            span_id: new_span_id(),
            flags: 1,
        }
    }

    /// A child span in the same trace.
    pub fn child(&self) -> TraceContext {
        TraceContext {
            span_id: new_span_id(),
            ..*self
        }
    }

    /// Parses a `traceparent` header value; `None` if it is not valid version-00 syntax.
    pub fn parse(value: &str) -> Option<TraceContext> {
        // Version 00 has one layout: `00-`, 32 digits, `-`, 16 digits, `-`,
        // 2 digits, every digit lowercase hex (W3C `HEXDIGLC`). Read at fixed
        // offsets: splitting on `-` and decoding each part through `hex` cost
        // about 2,000 instructions a call, and every request and delivered
        // event parses one.
        let b: &[u8; 55] = value.trim().as_bytes().try_into().ok()?;
        if b[..3] != *b"00-" || b[35] != b'-' || b[52] != b'-' {
            return None;
        }
        let mut trace_id = [0u8; 16];
        let mut span_id = [0u8; 8];
        let mut flags = [0u8; 1];
        decode_lower_hex(&b[3..35], &mut trace_id)?;
        decode_lower_hex(&b[36..52], &mut span_id)?;
        decode_lower_hex(&b[53..], &mut flags)?;
        // All-zero ids are invalid per the W3C spec.
        if trace_id == [0; 16] || span_id == [0; 8] {
            return None;
        }
        Some(TraceContext {
            trace_id,
            span_id,
            flags: flags[0],
        })
    }

    /// The `traceparent` header value.
    pub fn to_traceparent(&self) -> String {
        // Written into a fixed buffer: `format!` with `hex::encode` built three
        // strings per call, and this runs for every request and event.
        let mut buf = [0u8; 55];
        buf[..3].copy_from_slice(b"00-");
        encode_hex(&self.trace_id, &mut buf[3..35]);
        buf[35] = b'-';
        encode_hex(&self.span_id, &mut buf[36..52]);
        buf[52] = b'-';
        encode_hex(&[self.flags], &mut buf[53..]);
        ascii(&buf)
    }

    /// The trace id as 32 lowercase hex digits.
    pub fn trace_id_hex(&self) -> String {
        let mut buf = [0u8; 32];
        encode_hex(&self.trace_id, &mut buf);
        ascii(&buf)
    }
}

fn encode_hex(bytes: &[u8], out: &mut [u8]) {
    hex::encode_to_slice(bytes, out).expect("the buffer is twice the input's length");
}

fn ascii(buf: &[u8]) -> String {
    String::from_utf8(buf.to_vec()).expect("hex digits and dashes are ASCII")
}

/// Decodes `digits` (two per byte of `out`), lowercase hex only.
fn decode_lower_hex(digits: &[u8], out: &mut [u8]) -> Option<()> {
    for (pair, byte) in digits.chunks_exact(2).zip(out.iter_mut()) {
        *byte = lower_hex_digit(pair[0])? * 16 + lower_hex_digit(pair[1])?;
    }
    Some(())
}

fn lower_hex_digit(d: u8) -> Option<u8> {
    match d {
        b'0'..=b'9' => Some(d - b'0'),
        b'a'..=b'f' => Some(d - b'a' + 10),
        _ => None,
    }
}

fn new_span_id() -> [u8; 8] {
    let bytes = uuid::Uuid::new_v4().into_bytes();
    let mut span = [0u8; 8];
    span.copy_from_slice(&bytes[..8]);
    if span == [0; 8] {
        span[7] = 1;
    }
    span
}

/// What every handler, call and event of one chain carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallContext {
    /// Correlation id: the trace id unless the client supplied its own.
    pub correlation_id: String,
    /// The request or event that directly caused this work.
    pub causation_id: Option<String>,
    /// Trace context of the current span.
    pub trace: TraceContext,
    /// When the caller stops waiting.
    pub deadline: Option<Instant>,
}

impl CallContext {
    /// Starts a new chain (a request that arrived with no context).
    pub fn new_root() -> CallContext {
        let trace = TraceContext::new_root();
        CallContext {
            correlation_id: trace.trace_id_hex(),
            causation_id: None,
            trace,
            deadline: None,
        }
    }

    /// The context of a consumer handling `env`: the span its
    /// `traceparent` names. The relay hands a consumer the event with the
    /// `traceparent` of the delivery span it opened (a child of the
    /// producer's), so what the consumer does continues that span.
    pub fn caused_by_event(env: &Envelope) -> CallContext {
        let trace = env
            .traceparent
            .as_deref()
            .and_then(TraceContext::parse)
            .unwrap_or_else(TraceContext::new_root);
        CallContext {
            correlation_id: env.correlationid.clone(),
            causation_id: Some(env.id.clone()),
            trace,
            deadline: None,
        }
    }

    /// The context for an outgoing call: a child span, same chain, the earlier of the two deadlines.
    pub fn for_call(&self, timeout: Duration) -> CallContext {
        let own = Instant::now() + timeout;
        CallContext {
            correlation_id: self.correlation_id.clone(),
            causation_id: self.causation_id.clone(),
            trace: self.trace.child(),
            deadline: Some(self.deadline.map_or(own, |d| d.min(own))),
        }
    }

    /// Time left before the deadline, if there is one.
    pub fn remaining(&self) -> Option<Duration> {
        self.deadline
            .map(|d| d.saturating_duration_since(Instant::now()))
    }
}

#[cfg(test)]
mod tests;
