//! The public API over a real socket: documents, health, and the error
//! shapes every client meets before reaching a capability.

use e2e::{Mode, Shop};
use reqwest::StatusCode;
use serde_json::json;

#[tokio::test]
async fn documents_health_and_edge_errors() {
    let shop = Shop::start(Mode::Monolith).unwrap();
    assert_eq!(shop.get("/healthz").await.unwrap().status, StatusCode::OK);
    let ready = shop.get("/readyz").await.unwrap();
    assert_eq!(
        (ready.status, &ready.json["status"]),
        (StatusCode::OK, &json!("ready"))
    );

    let doc = shop.get("/openapi.json").await.unwrap();
    assert_eq!(doc.status, StatusCode::OK);
    let paths = doc.json["paths"].as_object().unwrap();
    for p in [
        "/identity/customers",
        "/identity/customers/{id}",
        "/catalog/products",
        "/catalog/products/{sku}",
        "/billing/invoices",
        "/billing/invoices/{id}",
        "/billing/invoices/{id}/payments",
        "/notification/deliveries",
    ] {
        assert!(
            paths.contains_key(p),
            "OpenAPI lacks {p}: {:?}",
            paths.keys().collect::<Vec<_>>()
        );
    }
    let contracts = shop.get("/_seams/contracts").await.unwrap();
    assert!(contracts.json.as_array().unwrap().len() >= 8);
    // A route carries its declaration: the document names the operation
    // `shop contracts` lists, with its timeout and its answer when down.
    let row = contracts
        .json
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == "catalog.get-product")
        .expect("GET /catalog/products/{sku} is declared");
    assert_eq!(row["kind"], "query");
    assert_eq!(
        row["when_down"], "fail fast: 503 catalog-unavailable, Retry-After 2s",
        "{row}"
    );
    let entry = &doc.json["paths"]["/catalog/products/{sku}"]["get"];
    assert_eq!(entry["x-seams-operation"], row["name"]);
    assert_eq!(entry["x-seams-timeout-ms"], row["timeout_ms"]);
    let down = &entry["responses"]["503"];
    assert!(
        down["description"]
            .as_str()
            .unwrap()
            .contains("catalog-unavailable"),
        "{down}"
    );
    assert!(down["headers"]["Retry-After"].is_object(), "{down}");

    let r = shop.get("/nowhere").await.unwrap();
    assert_eq!(
        (r.status, r.problem_type()),
        (StatusCode::NOT_FOUND, "urn:seams:problem:not-found")
    );
    assert_eq!(r.headers["content-type"], "application/problem+json");
    let r = shop
        .post(
            "/billing/invoices",
            &json!({ "customer_id": "x", "lines": [] }),
            None,
        )
        .await
        .unwrap();
    assert_eq!(r.status, StatusCode::PRECONDITION_REQUIRED);
    let big = json!({ "email": "a@b.co", "name": "x".repeat(100 * 1024) });
    let r = shop.post("/identity/customers", &big, None).await.unwrap();
    assert_eq!(
        (r.status, r.problem_type()),
        (
            StatusCode::PAYLOAD_TOO_LARGE,
            "urn:seams:problem:body-too-large"
        )
    );
    let r = shop
        .post(
            "/identity/customers",
            &json!({ "email": "not-an-email", "name": "x", "password": e2e::PASSWORD }),
            None,
        )
        .await
        .unwrap();
    assert_eq!(
        (r.status, &r.json["field"]),
        (StatusCode::UNPROCESSABLE_ENTITY, &json!("email"))
    );
}

#[tokio::test]
async fn correlation_ids_are_accepted_and_echoed() {
    let shop = Shop::start(Mode::Monolith).unwrap();
    let r = shop
        .send(
            reqwest::Client::new()
                .get(format!("{}/healthz", shop.url()))
                .header("X-Correlation-Id", "order-42"),
        )
        .await
        .unwrap();
    assert_eq!(r.headers["x-correlation-id"], "order-42");
    let tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    let r = shop
        .send(
            reqwest::Client::new()
                .get(format!("{}/healthz", shop.url()))
                .header("traceparent", tp),
        )
        .await
        .unwrap();
    assert_eq!(
        r.headers["x-correlation-id"],
        "4bf92f3577b34da6a3ce929d0e0e4736"
    );
    assert!(
        r.headers["traceparent"]
            .to_str()
            .unwrap()
            .starts_with("00-4bf92f3577b34da6a3ce929d0e0e4736-")
    );
}

/// The value of the sample of `name` whose labels include every one of `labels`.
fn sample(exposition: &str, name: &str, labels: &[&str]) -> Option<f64> {
    exposition
        .lines()
        .filter(|l| l.starts_with(&format!("{name}{{")))
        .find(|l| labels.iter().all(|want| l.contains(want)))
        .and_then(|l| l.rsplit(' ').next()?.parse().ok())
}

#[tokio::test]
async fn metrics_count_requests_calls_events_and_commits() {
    let shop = Shop::start(Mode::Monolith).unwrap();
    let customer = shop.register("metrics@example.com").await.unwrap();
    shop.add_product("TEA", 450).await.unwrap();
    shop.receive_stock("TEA", 5).await.unwrap();
    let r = shop
        .create_invoice("metrics-1", &customer, &[("TEA", 1)])
        .await
        .unwrap();
    assert_eq!(r.status, StatusCode::CREATED);
    shop.get("/billing/invoices/not-a-uuid").await.unwrap();
    // Events reach fulfillment and notification asynchronously.
    let text = shop
        .until(
            "events counted",
            std::time::Duration::from_secs(10),
            async || {
                let m = shop.get("/metrics").await?;
                anyhow::ensure!(m.status == StatusCode::OK, "{}", m.status);
                let text = String::from_utf8(m.bytes)?;
                let applied = sample(
                    &text,
                    "seams_events_applied_total",
                    &["subscription=\"notification<-billing\""],
                );
                Ok(applied.is_some_and(|n| n >= 1.0).then_some(text))
            },
        )
        .await
        .unwrap();
    let created = sample(
        &text,
        "seams_http_requests_total",
        &[
            "method=\"POST\"",
            "route=\"/billing/invoices\"",
            "status=\"201\"",
        ],
    );
    assert_eq!(created, Some(1.0), "{text}");
    // Routes are templates, never raw paths: the series stay bounded.
    assert!(text.contains("route=\"/billing/invoices/{id}\""), "{text}");
    assert!(!text.contains("not-a-uuid"), "{text}");
    assert!(
        sample(
            &text,
            "seams_calls_total",
            &["operation=\"quote-prices\"", "outcome=\"ok\""]
        )
        .is_some_and(|n| n >= 1.0),
        "{text}"
    );
    assert!(
        sample(
            &text,
            "seams_db_group_commits_total",
            &["database=\"billing\""]
        )
        .is_some_and(|n| n >= 1.0),
        "{text}"
    );
    assert!(
        text.contains("seams_http_request_duration_seconds_bucket"),
        "{text}"
    );
    assert!(text.contains("seams_event_lag_seconds_bucket"), "{text}");
    // The single writer's saturation signals, per database: the invoice's
    // transaction queued for billing's writer once and joined one group.
    for (series, bucket) in [
        ("seams_db_writer_wait_seconds_bucket", "le=\"+Inf\""),
        ("seams_db_commit_seconds_bucket", "le=\"+Inf\""),
        // Counted in transactions, not seconds: its own buckets.
        ("seams_db_group_members_bucket", "le=\"256\""),
    ] {
        assert!(
            sample(&text, series, &["database=\"billing\"", bucket]).is_some_and(|n| n >= 1.0),
            "{series}: {text}"
        );
    }
    assert!(
        !text.contains("seams_db_group_members_bucket{database=\"billing\",le=\"0.0001\"}"),
        "{text}"
    );
}

#[tokio::test]
async fn metrics_show_backlog_lag_dead_letters_and_breakers() {
    let shop = Shop::start(Mode::Monolith).unwrap();
    let customer = shop.register("gauges@example.com").await.unwrap();
    shop.add_product("TEA", 450).await.unwrap();
    shop.receive_stock("TEA", 5).await.unwrap();
    let r = shop
        .create_invoice("gauges-1", &customer, &[("TEA", 1)])
        .await
        .unwrap();
    assert_eq!(r.status, StatusCode::CREATED);
    // Sampled in the background from the start (every 5 s): once the
    // invoice's event is applied, nothing waits in billing's outbox.
    let text = shop
        .until(
            "the gauges sampled after delivery",
            std::time::Duration::from_secs(30),
            async || {
                let m = shop.get("/metrics").await?;
                anyhow::ensure!(m.status == StatusCode::OK, "{}", m.status);
                let text = String::from_utf8(m.bytes)?;
                let applied = sample(
                    &text,
                    "seams_events_applied_total",
                    &["subscription=\"notification<-billing\""],
                );
                let caught_up = sample(
                    &text,
                    "seams_subscription_lag_events",
                    &["subscription=\"notification<-billing\""],
                ) == Some(0.0)
                    && sample(
                        &text,
                        "seams_outbox_backlog_events",
                        &["database=\"billing\""],
                    ) == Some(0.0);
                Ok((applied.is_some_and(|n| n >= 1.0) && caught_up).then_some(text))
            },
        )
        .await
        .unwrap();
    for (series, labels) in [
        ("seams_outbox_backlog_events", "database=\"billing\""),
        (
            "seams_outbox_oldest_unpublished_age_seconds",
            "database=\"billing\"",
        ),
        (
            "seams_subscription_lag_age_seconds",
            "subscription=\"notification<-billing\"",
        ),
        (
            "seams_dead_letters",
            "subscription=\"notification<-billing\"",
        ),
        // Billing called catalog for the prices: its breaker is closed.
        ("seams_breaker_open", "callee=\"catalog\""),
    ] {
        assert_eq!(
            sample(&text, series, &[labels]),
            Some(0.0),
            "{series}: {text}"
        );
        assert!(
            text.contains(&format!("# HELP {series} ")),
            "{series}: {text}"
        );
    }
}

#[tokio::test]
async fn metrics_can_be_switched_off() {
    let shop = Shop::start_with(Mode::Monolith, &["--no-metrics"]).unwrap();
    shop.get("/healthz").await.unwrap();
    let m = shop.get("/metrics").await.unwrap();
    assert_eq!(m.status, StatusCode::OK);
    let text = String::from_utf8(m.bytes).unwrap();
    assert!(!text.contains("seams_http_requests_total"), "{text}");
}
