//! Logging: lines on stderr, filtered by `RUST_LOG` (default: `info` for
//! the system, `warn` for sqlx), either human-readable (`--log-format text`,
//! the default) or one JSON object per line (`--log-format json`).
//!
//! A JSON line has tracing-subscriber's fields (`timestamp`, `level`,
//! `target`, `message` and the event's own fields at the top level, the
//! enclosing spans under `spans`) plus `service`, naming the process, and,
//! for a line written while a request, a contract call, an event's handling
//! or a mail's sending is under way, that work's `trace_id` and
//! `correlation_id`.

use std::io::IsTerminal;

use serde_json::{Map, Value};
use tracing::{Event, Subscriber};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::Layer;
use tracing_subscriber::field::MakeExt;
use tracing_subscriber::filter::LevelFilter;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::fmt::format::{self, FormatEvent, FormatFields, Json, Writer};
use tracing_subscriber::fmt::{FmtContext, time::SystemTime};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::util::SubscriberInitExt;

/// How log lines look.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// For people reading a terminal.
    Text,
    /// One JSON object per line, for a log pipeline.
    Json,
}

/// Span fields copied to the top level of a JSON line, so that a log
/// pipeline can index and join on them without looking into `spans`.
pub const LIFTED: [&str; 2] = ["trace_id", "correlation_id"];

/// Installs the global subscriber (a second call does nothing) and, when
/// the OpenTelemetry environment names a collector, the layer that exports
/// spans to it: the returned value exports what is queued when dropped, so
/// the caller keeps it until the process ends. `service` names this process
/// in JSON lines: `shop` for the whole system (or the supervisor of a split
/// one), else the capabilities it runs; `traced_as` is its `service.name`
/// in traces unless `OTEL_SERVICE_NAME` gives one.
///
/// The log filter (`RUST_LOG`) applies to the log lines only: the exporter
/// takes what [`seams_telemetry::exported`] says, so a quiet log still
/// exports every span.
pub fn init(
    format: Format,
    service: &str,
    traced_as: &str,
) -> Result<Option<seams_telemetry::Exporting>, seams_telemetry::Error> {
    let exporting = seams_telemetry::Exporting::from_env(traced_as)?;
    let _ = subscriber(format, service, exporting.as_ref(), std::io::stderr).try_init();
    Ok(exporting)
}

/// The subscriber [`init`] installs, writing log lines to `writer` (the
/// tracing benchmark measures it with a writer that drops them).
pub fn subscriber<W>(
    format: Format,
    service: &str,
    exporting: Option<&seams_telemetry::Exporting>,
    writer: W,
) -> impl Subscriber + Send + Sync + for<'a> LookupSpan<'a> + use<W>
where
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info,sqlx=warn"));
    let lines = match format {
        Format::Text if std::io::stderr().is_terminal() => tracing_subscriber::fmt::layer()
            .with_ansi(true)
            .with_writer(writer)
            .boxed(),
        Format::Text => tracing_subscriber::fmt::layer()
            .with_ansi(false)
            .fmt_fields(plain_fields())
            .with_writer(writer)
            .boxed(),
        Format::Json => tracing_subscriber::fmt::layer()
            .json()
            .event_format(JsonLine::new(service))
            .with_writer(writer)
            .boxed(),
    };
    // What any layer wants passes the global filter: the exporter's spans,
    // and whatever level the log filter may show (which then picks its own
    // lines). The exporter has no filter of its own (see `Exporting::layer`).
    let logged = filter.max_level_hint().unwrap_or(LevelFilter::TRACE);
    let traced = exporting.is_some();
    let wanted = tracing_subscriber::filter::filter_fn(move |meta| {
        (traced && seams_telemetry::exported(meta)) || logged >= *meta.level()
    });
    tracing_subscriber::registry()
        .with(wanted)
        .with(lines.with_filter(filter))
        .with(exporting.map(seams_telemetry::Exporting::layer))
}

/// Fields as `name=value`, separated by spaces, the message bare: the
/// lines tracing-subscriber's default writes without colours, written
/// directly. The default styles every name and `=` even when colours are
/// off, and the text layer formats each span's fields when the span is
/// made (whether or not a line is ever written in it): about a tenth of
/// the instructions an invoice cost went there.
pub fn plain_fields() -> impl for<'w> FormatFields<'w> + Send + Sync + 'static {
    format::debug_fn(
        |writer: &mut Writer<'_>, field: &tracing::field::Field, value: &dyn std::fmt::Debug| {
            match field.name() {
                "message" => write!(writer, "{value:?}"),
                name => write!(
                    writer,
                    "{}={value:?}",
                    name.strip_prefix("r#").unwrap_or(name)
                ),
            }
        },
    )
    .delimited(" ")
}

/// tracing-subscriber's JSON format with [`LIFTED`] span fields and
/// `service` added at the top level.
///
/// The crate can flatten an event's own fields but not its spans' (those
/// stay under `span`/`spans`), and has no notion of a field every line
/// carries; so this wraps its formatter rather than replacing it: the
/// crate writes the line, this reads it back, adds those fields, and
/// writes it again.
pub struct JsonLine {
    inner: format::Format<Json, SystemTime>,
    service: String,
}

impl JsonLine {
    /// Lines of the process `service`.
    pub fn new(service: &str) -> JsonLine {
        JsonLine {
            inner: format::format()
                .json()
                .flatten_event(true)
                .with_current_span(false)
                .with_span_list(true),
            service: service.to_owned(),
        }
    }
}

impl<S, N> FormatEvent<S, N> for JsonLine
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> std::fmt::Result {
        let mut line = String::new();
        self.inner
            .format_event(ctx, Writer::new(&mut line), event)?;
        match serde_json::from_str::<Map<String, Value>>(&line) {
            Ok(mut object) => {
                lift(&mut object, &self.service);
                let json = serde_json::to_string(&object).map_err(|_| std::fmt::Error)?;
                writeln!(writer, "{json}")
            }
            // Never expected; the crate's own line is still one JSON
            // object, better than a lost line.
            Err(_) => writer.write_str(&line),
        }
    }
}

/// Adds `service` and, from the innermost span that has each, the
/// [`LIFTED`] fields (an event's own field of that name wins) to `line`.
pub fn lift(line: &mut Map<String, Value>, service: &str) {
    if let Some(Value::Array(spans)) = line.get("spans") {
        let mut found = Vec::new();
        for key in LIFTED {
            if line.contains_key(key) {
                continue;
            }
            if let Some(v) = spans.iter().rev().find_map(|s| s.get(key)) {
                found.push((key, v.clone()));
            }
        }
        for (key, v) in found {
            line.insert(key.to_owned(), v);
        }
    }
    line.insert("service".to_owned(), Value::String(service.to_owned()));
}

#[cfg(test)]
mod tests;
