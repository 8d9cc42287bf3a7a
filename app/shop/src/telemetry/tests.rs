//! JSON lines carry the service and their work's ids at the top level.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::*;

/// Lines written by a JSON subscriber while `f` runs, each parsed.
fn lines_of(f: impl FnOnce()) -> Vec<Map<String, Value>> {
    let buf = Buffer::default();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(buf.maker())
        .json()
        .event_format(JsonLine::new("billing,catalog"))
        .finish();
    tracing::subscriber::with_default(subscriber, f);
    buf.text()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

/// Where a test's subscriber writes its lines.
#[derive(Clone, Default)]
struct Buffer(Arc<Mutex<Vec<u8>>>);

impl Buffer {
    /// A writer for the subscriber: each line into this buffer.
    fn maker(&self) -> impl Fn() -> Buffer + Send + Sync + 'static {
        let buf = self.clone();
        move || buf.clone()
    }

    /// What was written.
    fn text(&self) -> String {
        String::from_utf8(self.0.lock().unwrap().clone()).unwrap()
    }
}

impl std::io::Write for Buffer {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[test]
fn a_line_inside_a_request_carries_its_ids_at_the_top_level() {
    let lines = lines_of(|| {
        tracing::info!("outside");
        let request = tracing::info_span!(
            "request",
            trace_id = "4bf92f3577b34da6a3ce929d0e0e4736",
            correlation_id = "order-42"
        );
        let _r = request.enter();
        let inner = tracing::info_span!("create_invoice", invoice_id = "inv-1");
        let _i = inner.enter();
        tracing::warn!(amount = 3, "inside");
    });
    assert_eq!(lines.len(), 2, "{lines:?}");
    let (outside, inside) = (&lines[0], &lines[1]);
    assert_eq!(outside["service"], "billing,catalog");
    assert_eq!(outside["message"], "outside");
    assert!(!outside.contains_key("trace_id"), "{outside:?}");
    assert!(!outside.contains_key("correlation_id"), "{outside:?}");

    assert_eq!(inside["service"], "billing,catalog");
    assert_eq!(inside["trace_id"], "4bf92f3577b34da6a3ce929d0e0e4736");
    assert_eq!(inside["correlation_id"], "order-42");
    assert_eq!(inside["level"], "WARN");
    assert_eq!(inside["message"], "inside");
    assert_eq!(inside["amount"], 3, "the event's fields are flattened");
    assert_eq!(inside["spans"][1]["invoice_id"], "inv-1");
}

#[test]
fn the_innermost_span_wins_and_an_event_s_own_field_wins_over_both() {
    let mut line: Map<String, Value> = serde_json::from_value(serde_json::json!({
        "message": "m",
        "spans": [
            {"name": "request", "trace_id": "outer", "correlation_id": "c-outer"},
            {"name": "deliver", "trace_id": "inner"},
        ],
    }))
    .unwrap();
    lift(&mut line, "shop");
    assert_eq!(line["trace_id"], "inner");
    assert_eq!(line["correlation_id"], "c-outer");
    assert_eq!(line["service"], "shop");

    let mut own: Map<String, Value> = serde_json::from_value(serde_json::json!({
        "correlation_id": "own",
        "spans": [{"correlation_id": "span's"}],
    }))
    .unwrap();
    lift(&mut own, "shop");
    assert_eq!(own["correlation_id"], "own");
}

/// What a text subscriber without colours writes while `f` runs, with
/// `fields` formatting the fields (no timestamps, so that two runs compare).
fn text_of<N>(fields: N, f: impl Fn()) -> String
where
    N: for<'w> FormatFields<'w> + Send + Sync + 'static,
{
    let buf = Buffer::default();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(buf.maker())
        .with_ansi(false)
        .without_time()
        .fmt_fields(fields)
        .finish();
    tracing::subscriber::with_default(subscriber, f);
    buf.text()
}

#[test]
fn plain_fields_write_what_the_default_writes_without_colours() {
    let work = || {
        let span = tracing::info_span!(
            "deliver",
            subscription = %"fulfillment<-billing",
            attempt = 2_i64,
            r#type = "billing.invoice-created",
            trace_id = tracing::field::Empty,
            retried = true,
        );
        span.record("trace_id", "4bf92f3577b34da6a3ce929d0e0e4736");
        let _entered = span.enter();
        tracing::info!(lag = ?Duration::from_millis(3), note = "it's \"quoted\"", "applied");
        tracing::warn!("only a message");
    };
    let plain = text_of(plain_fields(), work);
    let default = text_of(format::DefaultFields::new(), work);
    assert_eq!(plain, default);
    assert!(
        plain.contains(
            "deliver{subscription=fulfillment<-billing attempt=2 type=\"billing.invoice-created\" retried=true trace_id=\"4bf92f3577b34da6a3ce929d0e0e4736\"}"
        ),
        "{plain}"
    );
    assert!(
        plain.contains(": applied lag=3ms note=\"it's \\\"quoted\\\"\""),
        "{plain}"
    );
}
