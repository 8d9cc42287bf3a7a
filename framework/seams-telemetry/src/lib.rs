//! Traces: OpenTelemetry spans from the `tracing` spans the framework
//! already opens, exported over OTLP when the standard environment asks for
//! it, and the bridge between those spans and the W3C trace context Seams
//! carries on HTTP calls and in event envelopes.
//!
//! Off unless `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` or
//! `OTEL_EXPORTER_OTLP_ENDPOINT` names a collector (and neither
//! `OTEL_SDK_DISABLED=true` nor `OTEL_TRACES_EXPORTER=none` says otherwise).
//! Off, no layer is installed: a span the framework opens only for traces
//! is at DEBUG level, which the default log filter never enables, so the
//! hot path pays a cached callsite check and nothing else.
//!
//! The exporter speaks OTLP over HTTP/protobuf (a collector's port 4318);
//! the SDK and exporter read the rest of the standard variables themselves
//! (`OTEL_EXPORTER_OTLP_HEADERS`, `OTEL_TRACES_SAMPLER`,
//! `OTEL_BSP_SCHEDULE_DELAY`, `OTEL_RESOURCE_ATTRIBUTES`, ...).
//!
//! Seams keeps its own [`TraceContext`] in every [`seams_core::CallContext`]
//! (it is what goes on the wire, traced or not). Where work arrives from
//! elsewhere (a request, a delivered event) or leaves (a contract call),
//! [`continue_from`] makes the exported span the child of what arrived and
//! hands back that span's own ids, which the context then carries on: so the
//! spans of one customer journey form one tree across processes and
//! asynchronous hops, and the trace id in the logs is the exported one.
#![warn(missing_docs)]

use opentelemetry::trace::{
    SpanContext, SpanId, TraceContextExt, TraceFlags, TraceId, TraceState, TracerProvider as _,
};
use opentelemetry_otlp::{Protocol, WithExportConfig};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::SdkTracerProvider;
use seams_core::TraceContext;
use tracing::{Level, Metadata, Subscriber};
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::Layer;
use tracing_subscriber::registry::LookupSpan;

/// Why traces cannot be exported as configured.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A protocol other than the one this build speaks.
    #[error(
        "{var}={value:?}: Seams exports traces over OTLP http/protobuf only (a collector's port 4318)"
    )]
    Protocol {
        /// The variable that asked for it.
        var: &'static str,
        /// What it asked for.
        value: String,
    },
    /// An exporter other than OTLP.
    #[error("OTEL_TRACES_EXPORTER={0:?}: Seams exports traces with `otlp` (or `none`)")]
    Exporter(String),
    /// The exporter could not be built (an endpoint that is no URL, say).
    #[error("the OTLP trace exporter: {0}")]
    Build(String),
}

/// What the environment asks of tracing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// `service.name` of this process's spans.
    pub service: String,
}

/// Reads the standard variables through `var`: `None` when traces are off.
/// `default_service` names the service when `OTEL_SERVICE_NAME` does not.
pub fn config_from(
    var: impl Fn(&str) -> Option<String>,
    default_service: &str,
) -> Result<Option<Config>, Error> {
    let set = |name: &str| {
        var(name)
            .map(|v| v.trim().to_owned())
            .filter(|v| !v.is_empty())
    };
    if set("OTEL_SDK_DISABLED").is_some_and(|v| v.eq_ignore_ascii_case("true")) {
        return Ok(None);
    }
    match set("OTEL_TRACES_EXPORTER").as_deref() {
        None | Some("otlp") => {}
        Some("none") => return Ok(None),
        Some(other) => return Err(Error::Exporter(other.to_owned())),
    }
    if set("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT").is_none()
        && set("OTEL_EXPORTER_OTLP_ENDPOINT").is_none()
    {
        return Ok(None);
    }
    for name in [
        "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL",
        "OTEL_EXPORTER_OTLP_PROTOCOL",
    ] {
        if let Some(value) = set(name)
            && value != "http/protobuf"
        {
            return Err(Error::Protocol { var: name, value });
        }
    }
    Ok(Some(Config {
        service: set("OTEL_SERVICE_NAME").unwrap_or_else(|| default_service.to_owned()),
    }))
}

/// Spans being exported; dropping it exports what is still queued (within
/// the SDK's export timeout) and stops the exporter's thread.
pub struct Exporting {
    provider: SdkTracerProvider,
}

impl std::fmt::Debug for Exporting {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Exporting").finish_non_exhaustive()
    }
}

impl Exporting {
    /// Starts exporting as the process environment asks: `None` when traces
    /// are off.
    pub fn from_env(default_service: &str) -> Result<Option<Exporting>, Error> {
        let Some(config) = config_from(|v| std::env::var(v).ok(), default_service)? else {
            return Ok(None);
        };
        // The endpoint, headers and timeout come from the environment
        // (the exporter reads them); only the protocol is fixed here.
        let exporter = opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .with_protocol(Protocol::HttpBinary)
            .build()
            .map_err(|e| Error::Build(e.to_string()))?;
        let provider = SdkTracerProvider::builder()
            .with_batch_exporter(exporter)
            .with_resource(
                Resource::builder()
                    .with_service_name(config.service)
                    .build(),
            )
            .build();
        Ok(Some(Exporting { provider }))
    }

    /// Exports through `provider` (a benchmark's exporter that encodes and
    /// drops, say) as [`Exporting::from_env`] would through OTLP.
    pub fn with_provider(provider: SdkTracerProvider) -> Exporting {
        Exporting { provider }
    }

    /// The layer that turns `tracing` spans into exported ones. It takes
    /// what the subscriber lets through: install [`exported`] in the
    /// subscriber's global filter, beside what the logs want.
    ///
    /// Not a per-layer filter: with one on this layer, in a process talking
    /// to PostgreSQL the layer stopped seeing every span the log layer also
    /// enabled (only DEBUG spans reached it, each as a root), so the filter
    /// is global and exact for this layer's purpose.
    pub fn layer<S>(&self) -> impl Layer<S> + use<S>
    where
        S: Subscriber + for<'a> LookupSpan<'a>,
    {
        EXPORTING.store(true, std::sync::atomic::Ordering::Relaxed);
        tracing_opentelemetry::layer()
            .with_tracer(self.provider.tracer("seams"))
            // A span's parent is the current `tracing` span, not the
            // OpenTelemetry thread-local context the layer would keep in
            // step with it: that context follows `enter`/`exit` per thread,
            // and a guard a library holds across an `.await` leaves it
            // naming another task's span (seen with PostgreSQL and NATS:
            // every span became a root).
            .with_context_activation(false)
    }
}

impl Drop for Exporting {
    /// Shuts the provider down explicitly: the installed layer's tracer
    /// holds the provider too, and the global subscriber lives until the
    /// process ends, so the provider would never drop on its own.
    fn drop(&mut self) {
        // Nothing to tell anyone at exit if the collector is gone: the
        // spans are lost either way, and the SDK has logged why.
        let _ = self.provider.shutdown();
    }
}

/// Crates whose own spans and events are not the system's story.
const UNDERNEATH: [&str; 9] = [
    "sqlx",
    "hyper",
    "h2",
    "reqwest",
    "tower",
    "rustls",
    "async_nats",
    "tokio",
    "opentelemetry",
];

/// Whether a span or event is exported: every span at DEBUG or above (the
/// framework's trace-only spans are DEBUG), and events at INFO or above as
/// span events, from everything but the libraries underneath, whose spans
/// would bury the system's own.
pub fn exported(meta: &Metadata<'_>) -> bool {
    let target = meta.target();
    let underneath = UNDERNEATH.iter().any(|c| {
        target
            .strip_prefix(c)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with("::"))
    });
    if underneath {
        return false;
    }
    let floor = if meta.is_span() {
        Level::DEBUG
    } else {
        Level::INFO
    };
    *meta.level() <= floor
}

/// Set once a layer that exports spans exists.
static EXPORTING: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// [`continue_from`], naming the exported span `name()` first (the name
/// must be given before the span is built, which [`continue_from`] does);
/// `name` runs only when spans are exported, so naming costs nothing
/// otherwise.
pub fn continue_named(
    span: &tracing::Span,
    parent: Option<&TraceContext>,
    name: impl FnOnce() -> String,
) -> Option<TraceContext> {
    if EXPORTING.load(std::sync::atomic::Ordering::Relaxed) {
        span.record("otel.name", name());
    }
    continue_from(span, parent)
}

/// Makes `span` continue `parent` (work that arrived from another process
/// or through an event), and returns the trace context this hop carries
/// from here on: `span`'s own ids when it is exported, `None` when it is
/// not (traces off, or the span filtered out), and the caller keeps the
/// context it made itself. Without a `parent` the span continues whatever
/// span is current, or starts a trace.
pub fn continue_from(span: &tracing::Span, parent: Option<&TraceContext>) -> Option<TraceContext> {
    // No layer exports spans in this process: none could take the parent or
    // give the span ids, and building the context to find that out is
    // allocations on every request and every delivered event.
    if !EXPORTING.load(std::sync::atomic::Ordering::Relaxed) {
        return None;
    }
    if let Some(p) = parent {
        let remote = SpanContext::new(
            TraceId::from_bytes(p.trace_id),
            SpanId::from_bytes(p.span_id),
            TraceFlags::new(p.flags),
            true,
            TraceState::default(),
        );
        // An error means the span is not exported; `context` below says so.
        let _ = span.set_parent(opentelemetry::Context::new().with_remote_span_context(remote));
    }
    let cx = span.context();
    let own = cx.span().span_context().clone();
    own.is_valid().then(|| TraceContext {
        trace_id: own.trace_id().to_bytes(),
        span_id: own.span_id().to_bytes(),
        flags: own.trace_flags().to_u8(),
    })
}

#[cfg(test)]
mod tests;
