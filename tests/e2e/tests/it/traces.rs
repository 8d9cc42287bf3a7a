//! Traces exported over OTLP, in every mode: one customer journey is one
//! trace whose spans (the request, each contract call, each event's
//! delivery to each consumer, in each process under its own
//! `service.name`, and the mail a delivery sends) form one tree, received
//! and decoded by a real OTLP/HTTP receiver.

use std::collections::HashSet;
use std::time::Duration;

use e2e::{Mode, Shop, expect, modes};
use reqwest::StatusCode;
use seams_testkit::otlp::{Receiver, Span};

const SERVER: i32 = 2;
const CLIENT: i32 = 3;
const CONSUMER: i32 = 5;

fn in_trace<'a>(spans: &'a [Span], trace: &str) -> Vec<&'a Span> {
    spans.iter().filter(|s| s.trace_id == trace).collect()
}

/// The subscription a delivery span is of.
fn subscription(s: &Span) -> Option<&str> {
    s.attributes.get("subscription").map(String::as_str)
}

fn delivered_to(spans: &[&Span], consumer: &str) -> bool {
    spans.iter().any(|s| {
        s.kind == CONSUMER
            && subscription(s).is_some_and(|sub| sub.starts_with(&format!("{consumer}<-billing")))
    })
}

/// Whether every span's parent is a span of `t`, but for roots.
fn one_tree(t: &[&Span]) -> bool {
    let ids: HashSet<&str> = t.iter().map(|s| s.span_id.as_str()).collect();
    t.iter()
        .all(|s| s.parent_span_id.is_empty() || ids.contains(s.parent_span_id.as_str()))
}

/// The trace id of the `traceparent` a reply carries.
fn trace_of(reply: &e2e::Reply) -> anyhow::Result<String> {
    let traceparent = reply.headers["traceparent"].to_str()?;
    let trace = traceparent.split('-').nth(1);
    Ok(trace
        .ok_or_else(|| anyhow::anyhow!("{traceparent:?}"))?
        .to_owned())
}

/// (service, name, kind) of each span, for failure messages.
fn labels<'a>(t: &[&'a Span]) -> Vec<(&'a str, &'a str, i32)> {
    t.iter()
        .map(|s| (s.service.as_str(), s.name.as_str(), s.kind))
        .collect()
}

async fn one_journey_is_one_trace(mode: Mode) -> anyhow::Result<()> {
    let receiver = Receiver::start().await;
    let shop = Shop::start_with_env(
        mode,
        &[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", receiver.endpoint()),
            // Export every 100 ms rather than every 5 s.
            ("OTEL_BSP_SCHEDULE_DELAY", "100"),
        ],
    )?;
    let customer = shop.register("traced@example.com").await?;
    shop.add_product("TEA", 450).await?;
    shop.receive_stock("TEA", 10).await?;
    let invoice = shop
        .create_invoice("tr-1", &customer, &[("TEA", 2)])
        .await?;
    expect(&invoice, StatusCode::CREATED)?;
    // The trace the system started for the request, as it told the client.
    let trace = trace_of(&invoice)?;

    let spans = receiver
        .wait_for(Duration::from_secs(30), |spans| {
            // Each process exports on its own schedule: wait for all of them.
            let t = in_trace(spans, &trace);
            delivered_to(&t, "fulfillment")
                && delivered_to(&t, "notification")
                && t.iter()
                    .any(|s| s.kind == SERVER && s.name == "POST /billing/invoices")
                && t.iter()
                    .any(|s| s.kind == CLIENT && s.name == "catalog.quote-prices")
                && t.iter().any(|s| s.name == "send maildir")
                && (mode != Mode::SplitPostgresNats
                    || t.iter().any(|s| s.name == "billing publish"))
                && (matches!(mode, Mode::Monolith | Mode::MonolithChaos)
                    || t.iter().any(|s| s.service == "catalog" && s.kind == SERVER))
                && one_tree(&t)
        })
        .await;
    let t = in_trace(&spans, &trace);
    let names = labels(&t);
    assert!(
        delivered_to(&t, "fulfillment") && delivered_to(&t, "notification"),
        "{mode:?}: both consumers' deliveries are in the request's trace {trace}: {names:#?}"
    );
    let request = t
        .iter()
        .find(|s| s.kind == SERVER && s.name == "POST /billing/invoices")
        .unwrap_or_else(|| panic!("{mode:?}: the request's span: {names:#?}"));
    assert!(
        t.iter()
            .any(|s| s.kind == CLIENT && s.name == "catalog.quote-prices"),
        "{mode:?}: billing's call to catalog: {names:#?}"
    );
    // One tree: every span's parent is a span of the same trace, but for
    // the root, which is where the gateway (split) or the request
    // (monolith) started it.
    let ids: HashSet<&str> = t.iter().map(|s| s.span_id.as_str()).collect();
    let roots: Vec<&&Span> = t.iter().filter(|s| s.parent_span_id.is_empty()).collect();
    assert_eq!(roots.len(), 1, "{mode:?}: one root: {names:#?}");
    for s in &t {
        assert!(
            s.parent_span_id.is_empty() || ids.contains(s.parent_span_id.as_str()),
            "{mode:?}: {} ({}) has a parent outside the trace: {names:#?}",
            s.name,
            s.service
        );
    }
    // Billing's transaction committed in a group, under its request.
    assert!(
        t.iter().any(|s| s.name == "commit"
            && s.attributes.get("database").map(String::as_str) == Some("billing")
            && s.attributes.contains_key("group_member")),
        "{mode:?}: billing's commit: {names:#?}"
    );
    // On JetStream, billing's publisher hands the event to the bus in the
    // same trace.
    if mode == Mode::SplitPostgresNats {
        assert!(
            t.iter()
                .any(|s| s.service == "billing" && s.name == "billing publish" && s.kind == 4),
            "{mode:?}: the publish to JetStream: {names:#?}"
        );
    }
    // The mail, sent later by notification's own worker, continues the
    // delivery that recorded it.
    let mail = t
        .iter()
        .find(|s| s.name == "send maildir")
        .unwrap_or_else(|| panic!("{mode:?}: the mail's span: {names:#?}"));
    let recorded_by = t
        .iter()
        .find(|s| s.span_id == mail.parent_span_id)
        .unwrap_or_else(|| panic!("{mode:?}: the mail's parent: {names:#?}"));
    assert_eq!(
        subscription(recorded_by),
        Some("notification<-billing"),
        "{mode:?}"
    );
    let services: HashSet<&str> = t.iter().map(|s| s.service.as_str()).collect();
    match mode {
        Mode::Monolith | Mode::MonolithChaos => {
            assert_eq!(services, HashSet::from(["shop"]), "{mode:?}");
            assert!(roots[0].span_id == request.span_id, "{mode:?}: {names:#?}");
        }
        Mode::SplitHttp | Mode::SplitPostgresNats => {
            // The gateway starts the trace; the request is served by
            // billing, the call by catalog, the deliveries by the consumers.
            assert_eq!(roots[0].service, "gateway", "{mode:?}: {names:#?}");
            assert_eq!(request.service, "billing", "{mode:?}");
            for service in [
                "gateway",
                "billing",
                "catalog",
                "fulfillment",
                "notification",
            ] {
                assert!(
                    services.contains(service),
                    "{mode:?}: {service} in {services:?}"
                );
            }
            assert!(
                t.iter().any(|s| s.service == "catalog" && s.kind == SERVER),
                "{mode:?}: catalog serves the call: {names:#?}"
            );
        }
    }
    // Paying continues through fulfillment's dispatcher, a worker of its
    // own: the shipment-dispatched event and its mail are in the payment's
    // trace, under the dispatch.
    let id = invoice.json["id"].as_str().expect("an invoice id");
    let paid = shop.pay("tr-pay-1", id, &invoice.json["total"]).await?;
    expect(&paid, StatusCode::CREATED)?;
    let paid_trace = trace_of(&paid)?;
    let dispatched =
        |s: &&Span| s.kind == CONSUMER && subscription(s) == Some("notification<-fulfillment");
    let spans = receiver
        .wait_for(Duration::from_secs(30), |spans| {
            let t = in_trace(spans, &paid_trace);
            t.iter().any(|s| s.name == "dispatch") && t.iter().any(dispatched) && one_tree(&t)
        })
        .await;
    let t = in_trace(&spans, &paid_trace);
    let names = labels(&t);
    let dispatch = t
        .iter()
        .find(|s| s.name == "dispatch")
        .unwrap_or_else(|| panic!("{mode:?}: the dispatch: {names:#?}"));
    let delivered = t
        .iter()
        .find(|s| dispatched(s))
        .unwrap_or_else(|| panic!("{mode:?}: shipment-dispatched delivered: {names:#?}"));
    assert_eq!(delivered.parent_span_id, dispatch.span_id, "{mode:?}");
    assert!(one_tree(&t), "{mode:?}: one tree: {names:#?}");
    Ok(())
}

#[tokio::test]
async fn one_journey_is_one_trace_across_every_hop_in_every_mode() {
    for mode in modes() {
        one_journey_is_one_trace(mode)
            .await
            .unwrap_or_else(|e| panic!("{mode:?}: {e:#}"));
    }
}

#[tokio::test]
async fn switched_off_with_a_collector_named_nothing_is_exported_and_requests_are_answered() {
    // The collector is named, but the standard switch turns export off:
    // after many export intervals nothing has arrived.
    let receiver = Receiver::start().await;
    let shop = Shop::start_with_env(
        Mode::Monolith,
        &[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", receiver.endpoint()),
            ("OTEL_BSP_SCHEDULE_DELAY", "50"),
            ("OTEL_TRACES_EXPORTER", "none"),
        ],
    )
    .unwrap();
    let customer = shop.register("untraced@example.com").await.unwrap();
    assert!(!customer.is_empty());
    // An absence can only be waited out: ten export intervals.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(receiver.spans().is_empty());
}
