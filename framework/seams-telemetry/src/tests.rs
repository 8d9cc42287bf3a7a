//! The environment's say over tracing, what is exported, and the bridge
//! between exported spans and the context Seams carries.

use std::collections::HashMap;

use opentelemetry_sdk::trace::SdkTracerProvider;
use seams_core::TraceContext;
use tracing_subscriber::layer::SubscriberExt;

use super::*;

fn config(vars: &[(&str, &str)]) -> Result<Option<Config>, Error> {
    let vars: HashMap<String, String> = vars
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    config_from(|k| vars.get(k).cloned(), "billing")
}

#[test]
fn traces_are_off_unless_an_endpoint_is_named() {
    assert_eq!(config(&[]).unwrap(), None);
    assert_eq!(
        config(&[("OTEL_EXPORTER_OTLP_ENDPOINT", " ")]).unwrap(),
        None
    );
    assert_eq!(config(&[("OTEL_SERVICE_NAME", "x")]).unwrap(), None);
    let on = Some(Config {
        service: "billing".into(),
    });
    assert_eq!(
        config(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4318")]).unwrap(),
        on
    );
    assert_eq!(
        config(&[(
            "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
            "http://127.0.0.1:4318/v1/traces"
        )])
        .unwrap(),
        on
    );
}

#[test]
fn the_standard_switches_turn_an_endpoint_off() {
    let endpoint = ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4318");
    assert_eq!(
        config(&[endpoint, ("OTEL_SDK_DISABLED", "TRUE")]).unwrap(),
        None
    );
    assert_eq!(
        config(&[endpoint, ("OTEL_TRACES_EXPORTER", "none")]).unwrap(),
        None
    );
    assert!(
        config(&[endpoint, ("OTEL_SDK_DISABLED", "false")])
            .unwrap()
            .is_some()
    );
    assert!(
        config(&[endpoint, ("OTEL_TRACES_EXPORTER", "otlp")])
            .unwrap()
            .is_some()
    );
}

#[test]
fn what_this_build_cannot_send_is_refused_by_name() {
    let endpoint = ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4318");
    let err = config(&[endpoint, ("OTEL_TRACES_EXPORTER", "zipkin")]).unwrap_err();
    assert!(err.to_string().contains("zipkin"), "{err}");
    for var in [
        "OTEL_EXPORTER_OTLP_PROTOCOL",
        "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL",
    ] {
        let err = config(&[endpoint, (var, "grpc")]).unwrap_err();
        assert!(err.to_string().starts_with(var), "{err}");
        assert!(
            config(&[endpoint, (var, "http/protobuf")])
                .unwrap()
                .is_some()
        );
    }
}

#[test]
fn the_service_name_is_the_environment_s_or_the_process_s() {
    let endpoint = ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4318");
    assert_eq!(
        config(&[endpoint, ("OTEL_SERVICE_NAME", "shop-eu")])
            .unwrap()
            .unwrap()
            .service,
        "shop-eu"
    );
}

fn with_layer<T>(f: impl FnOnce() -> T) -> T {
    let exporting = Exporting {
        provider: SdkTracerProvider::builder().build(),
    };
    // As the app installs it: the exporter's filter is global.
    let subscriber = tracing_subscriber::registry()
        .with(tracing_subscriber::filter::filter_fn(exported))
        .with(exporting.layer());
    tracing::subscriber::with_default(subscriber, f)
}

fn parent() -> TraceContext {
    TraceContext::parse("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01").unwrap()
}

#[test]
fn an_exported_span_continues_the_remote_parent_under_its_own_id() {
    with_layer(|| {
        let span = tracing::debug_span!("deliver");
        let own = continue_from(&span, Some(&parent())).unwrap();
        assert_eq!(own.trace_id, parent().trace_id);
        assert_ne!(own.span_id, parent().span_id);
        assert_eq!(own.flags, 1);
        // The context it hands back is the span's: asking again agrees.
        assert_eq!(continue_from(&span, None), Some(own));
        // A span opened inside it continues it without being told.
        let inner = span.in_scope(|| tracing::debug_span!("call"));
        let call = continue_from(&inner, None).unwrap();
        assert_eq!(call.trace_id, own.trace_id);
        assert_ne!(call.span_id, own.span_id);
    });
}

#[test]
fn a_span_without_a_parent_starts_a_trace() {
    with_layer(|| {
        let a = continue_from(&tracing::info_span!("request"), None).unwrap();
        let b = continue_from(&tracing::info_span!("request"), None).unwrap();
        assert_ne!(a.trace_id, b.trace_id);
    });
}

#[test]
fn without_the_layer_or_below_its_floor_nothing_is_adopted() {
    let span = tracing::info_span!("request");
    assert_eq!(continue_from(&span, Some(&parent())), None);
    with_layer(|| {
        let span = tracing::trace_span!("too fine");
        assert_eq!(continue_from(&span, Some(&parent())), None);
    });
}

#[test]
fn spans_from_debug_and_events_from_info_are_exported_but_not_the_libraries() {
    use tracing::Level;
    use tracing::callsite::Identifier;
    use tracing::field::FieldSet;
    use tracing::metadata::Kind;
    struct Site;
    impl tracing::callsite::Callsite for Site {
        fn set_interest(&self, _: tracing::subscriber::Interest) {}
        fn metadata(&self) -> &tracing::Metadata<'_> {
            unreachable!("not registered")
        }
    }
    static SITE: Site = Site;
    let meta = |target: &'static str, level: Level, kind: Kind| {
        tracing::Metadata::new(
            "m",
            target,
            level,
            None,
            None,
            None,
            FieldSet::new(&[], Identifier(&SITE)),
            kind,
        )
    };
    assert!(exported(&meta(
        "billing::service",
        Level::DEBUG,
        Kind::SPAN
    )));
    assert!(!exported(&meta(
        "billing::service",
        Level::TRACE,
        Kind::SPAN
    )));
    assert!(exported(&meta(
        "billing::service",
        Level::INFO,
        Kind::EVENT
    )));
    assert!(!exported(&meta(
        "billing::service",
        Level::DEBUG,
        Kind::EVENT
    )));
    assert!(!exported(&meta("sqlx::query", Level::INFO, Kind::SPAN)));
    assert!(!exported(&meta("hyper", Level::WARN, Kind::EVENT)));
    // Only the crate itself, not a crate whose name starts the same.
    assert!(exported(&meta("tokio_util_user", Level::INFO, Kind::SPAN)));
    assert!(exported(&meta(
        "seams_runtime::relay",
        Level::DEBUG,
        Kind::SPAN
    )));
}

/// Keeps what it is given to export.
#[derive(Debug, Clone, Default)]
struct Recording(std::sync::Arc<std::sync::Mutex<Vec<opentelemetry_sdk::trace::SpanData>>>);

impl opentelemetry_sdk::trace::SpanExporter for Recording {
    async fn export(
        &self,
        batch: Vec<opentelemetry_sdk::trace::SpanData>,
    ) -> opentelemetry_sdk::error::OTelSdkResult {
        self.0.lock().unwrap().extend(batch);
        Ok(())
    }
}

fn recording() -> (Exporting, Recording) {
    let exported = Recording::default();
    let exporting = Exporting::with_provider(
        SdkTracerProvider::builder()
            .with_batch_exporter(exported.clone())
            .build(),
    );
    (exporting, exported)
}

#[test]
fn dropping_the_exporter_sends_what_is_queued_under_the_names_given() {
    let (exporting, sent) = recording();
    assert!(format!("{exporting:?}").starts_with("Exporting"));
    let subscriber = tracing_subscriber::registry()
        .with(tracing_subscriber::filter::filter_fn(exported))
        .with(exporting.layer());
    // Installed, as the app's is for the whole process: its tracer keeps
    // the provider alive past the `Exporting`.
    let installed = tracing::subscriber::set_default(subscriber);
    let span = tracing::info_span!("request", otel.name = tracing::field::Empty);
    let own = continue_named(&span, Some(&parent()), || "POST /billing/invoices".into()).unwrap();
    drop(span);
    // The batch's timer is seconds away: only the drop sends it.
    assert!(sent.0.lock().unwrap().is_empty());
    drop(exporting);
    let spans = sent.0.lock().unwrap();
    assert_eq!(spans.len(), 1);
    assert_eq!(spans[0].name, "POST /billing/invoices");
    assert_eq!(spans[0].span_context.span_id().to_bytes(), own.span_id);
    assert_eq!(spans[0].parent_span_id.to_bytes(), parent().span_id);
    drop(installed);
}
