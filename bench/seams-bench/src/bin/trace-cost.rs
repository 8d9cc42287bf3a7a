//! What tracing costs a request in CPU, counted in instructions: `COUNT`
//! requests of one kind after a fixed setup, so that `bench/trace-cost.sh`
//! can run it under callgrind at two counts and divide the difference in
//! instructions by the difference in counts (the method of
//! `bench/auth-cost.sh`, whose `request-open` is `quiet` here).
//!
//! Every request is a `GET` of an open JSON route through Seams' public
//! router (`seams_http::app::public`, in-process with
//! `tower::ServiceExt::oneshot`: no socket, no token), answered 200:
//! - `quiet`: no subscriber installed (every span disabled): the
//!   floor.
//! - `logged`: the subscriber `shop` installs (`shop::telemetry::
//!   subscriber`, text lines at `info`, written to a sink), traces off: what
//!   a deployment without a collector pays.
//! - `traced`: the same with the exporter's layer, as
//!   `OTEL_EXPORTER_OTLP_ENDPOINT` turns it on: spans built, batched and
//!   encoded into the OTLP protobuf request on the exporter's own thread
//!   (callgrind counts every thread), then dropped instead of posted, so
//!   the HTTP client's work is not counted and nothing uses the network.

use std::hint::black_box;
use std::sync::Arc;

use anyhow::ensure;
use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use clap::{Parser, ValueEnum};
use http_body_util::BodyExt;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::transform::common::tonic::ResourceAttributesWithSchema;
use opentelemetry_proto::transform::trace::tonic::group_spans_by_resource_and_scope;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::trace::{SdkTracerProvider, SpanData, SpanExporter};
use prost::Message;
use seams_auth::{Issuer, KeyStore, SigningKeys, Verifier};
use seams_core::auth::Access;
use seams_http::routes::Doors;
use serde_json::{Value, json};
use shop::telemetry::Format;
use tower::ServiceExt;

const PATH: &str = "/bench/ping";

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Op {
    Quiet,
    Logged,
    Traced,
}

#[derive(Debug, Parser)]
#[command(
    name = "trace-cost",
    about = "Does COUNT requests with one tracing setup, for callgrind"
)]
struct Args {
    #[arg(value_enum)]
    op: Op,
    count: usize,
}

/// Encodes each batch as the OTLP exporter would before posting it, and
/// drops it.
#[derive(Debug, Default)]
struct EncodeAndDrop {
    resource: ResourceAttributesWithSchema,
}

impl SpanExporter for EncodeAndDrop {
    async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
        let request = ExportTraceServiceRequest {
            resource_spans: group_spans_by_resource_and_scope(batch, &self.resource),
        };
        black_box(request.encode_to_vec());
        Ok(())
    }

    fn set_resource(&mut self, resource: &Resource) {
        self.resource = resource.into();
    }
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let exporting = (args.op == Op::Traced).then(|| {
        seams_telemetry::Exporting::with_provider(
            SdkTracerProvider::builder()
                .with_batch_exporter(EncodeAndDrop::default())
                .with_resource(Resource::builder().with_service_name("bench").build())
                .build(),
        )
    });
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let run = || runtime.block_on(requests(args.count));
    match args.op {
        Op::Quiet => run()?,
        Op::Logged | Op::Traced => {
            let subscriber = shop::telemetry::subscriber(
                Format::Text,
                "bench",
                exporting.as_ref(),
                std::io::sink,
            );
            tracing::subscriber::with_default(subscriber, run)?;
        }
    }
    // Dropping it exports what is queued: its cost is in the count.
    drop(exporting);
    eprintln!("{:?}: {} done", args.op, args.count);
    Ok(())
}

/// The handler: the body Seams' `/healthz` answers.
async fn ping() -> axum::Json<Value> {
    axum::Json(json!({ "status": "ok" }))
}

/// A warm-up request, then `count` more, each answered 200 with its whole
/// body read.
async fn requests(count: usize) -> anyhow::Result<()> {
    let keys = KeyStore::in_memory(SigningKeys::generate()?);
    let verifier = Arc::new(Verifier::new(vec![Issuer::deployment("seams", keys)]));
    // A framework door, bounded by the edge alone: what these figures
    // measured before routes carried a declaration.
    let routes = Doors::new().get("/ping", Access::Open, ping).with_state(());
    let app: Router = seams_http::app::public(vec![("bench", routes)], Router::new(), verifier);
    for i in 0..=count {
        let request = Request::get(PATH).body(Body::empty())?;
        let response = app.clone().oneshot(request).await?;
        ensure!(
            response.status() == StatusCode::OK,
            "request {i} answered {}",
            response.status()
        );
        black_box(response.into_body().collect().await?.to_bytes());
    }
    Ok(())
}
