//! Operating the split system with a real Prometheus: the gateway's merged
//! `/metrics` is for operators only; Prometheus, configured by `shop ops
//! prometheus` (its scrape configuration, its rules, an operator token in a
//! 0600 file), scrapes the series an operator watches from one target; and
//! a consumer slowed down on purpose breaks a declared bound, which the
//! generated rules turn into a firing alert.

use std::path::Path;
use std::time::{Duration, Instant};

use e2e::{Mode, Shop, expect};
use reqwest::StatusCode;
use seams_testkit::process::cargo_bin;
use seams_testkit::prometheus::PrometheusServer;
use serde_json::Value;

#[tokio::test]
async fn the_gateway_serves_every_services_metrics_to_operators_only() {
    let shop = Shop::start(Mode::SplitHttp).unwrap();
    let customer = shop.register("gateway-metrics@example.com").await.unwrap();
    let http = reqwest::Client::new();
    let url = format!("{}/metrics", shop.url());

    let r = shop.send(http.get(&url)).await.unwrap();
    expect(&r, StatusCode::UNAUTHORIZED).unwrap();
    let customer_token = shop.customer_token(&customer).unwrap();
    let r = shop
        .send(http.get(&url).bearer_auth(&customer_token))
        .await
        .unwrap();
    expect(&r, StatusCode::FORBIDDEN).unwrap();
    let staff = shop.staff_token().to_owned();
    let r = shop.send(http.get(&url).bearer_auth(&staff)).await.unwrap();
    expect(&r, StatusCode::FORBIDDEN).unwrap();

    let r = shop.get("/metrics").await.unwrap();
    expect(&r, StatusCode::OK).unwrap();
    let text = String::from_utf8(r.bytes).unwrap();
    for service in [
        "identity",
        "catalog",
        "billing",
        "fulfillment",
        "notification",
    ] {
        assert!(
            text.contains(&format!("seams_service_up{{service=\"{service}\"}} 1\n")),
            "{service}: {text}"
        );
    }
    assert!(
        text.contains(
            "seams_http_requests_total{service=\"identity\",method=\"POST\",route=\"/identity/customers\",status=\"201\"}"
        ),
        "{text}"
    );
    assert_eq!(
        text.matches("# TYPE seams_http_requests_total ").count(),
        1,
        "{text}"
    );
}

/// Polls `check` every 250 ms until it gives a value or `timeout` passes.
async fn poll<T>(
    what: &str,
    timeout: Duration,
    mut check: impl AsyncFnMut() -> anyhow::Result<Option<T>>,
) -> anyhow::Result<T> {
    let deadline = Instant::now() + timeout;
    let mut last = String::new();
    loop {
        match check().await {
            Ok(Some(v)) => return Ok(v),
            Ok(None) => {}
            Err(e) => last = format!("{e:#}"),
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what} (last error: {last})"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Runs `shop ops prometheus` into `out` for the system at `target`.
fn generate(out: &Path, target: &str, token_file: &Path) -> anyhow::Result<()> {
    let status = std::process::Command::new(cargo_bin("shop")?)
        .args(["ops", "prometheus", "--interval", "1s", "--target", target])
        .arg("--out")
        .arg(out)
        .arg("--credentials-file")
        .arg(token_file)
        .status()?;
    anyhow::ensure!(status.success(), "shop ops prometheus: {status}");
    Ok(())
}

#[tokio::test]
async fn prometheus_scrapes_the_split_system_and_a_broken_bound_fires_its_alert() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("prometheus.yml");
    // Checked before starting the system: without the binary there is nothing to do.
    if !PrometheusServer::available().unwrap_or_else(|e| panic!("{e:#}")) {
        return;
    }
    // Every delivery waits 3-3.2 s: over the 2 s bound on contacts.
    let shop = Shop::start_with(
        Mode::SplitHttp,
        &[
            "--chaos",
            "--chaos-min-delay-ms",
            "3000",
            "--chaos-max-delay-ms",
            "3200",
        ],
    )
    .unwrap();
    let token_file = dir.path().join("operator.jwt");
    write_private(&token_file, shop.operator_token());
    let target = shop.url().trim_start_matches("http://").to_owned();
    generate(dir.path(), &target, &token_file).unwrap();
    let text = std::fs::read_to_string(&config).unwrap();
    assert!(!text.contains(shop.operator_token()), "{text}");
    let Some(prom) = PrometheusServer::start(&config).unwrap() else {
        return;
    };

    let customer = shop.register("alerting@example.com").await.unwrap();
    shop.register("alerting-2@example.com").await.unwrap();
    shop.add_product("TEA", 450).await.unwrap();
    shop.receive_stock("TEA", 5).await.unwrap();
    let r = shop
        .create_invoice("alerts-1", &customer, &[("TEA", 1)])
        .await
        .unwrap();
    expect(&r, StatusCode::CREATED).unwrap();

    // Each series, from its own service, through the one target.
    for (series, owner) in [
        (
            "seams_http_requests_total{route=\"/identity/customers\",status=\"201\"}",
            "identity",
        ),
        (
            "seams_http_request_duration_seconds_bucket{route=\"/billing/invoices\"}",
            "billing",
        ),
        (
            "seams_calls_total{operation=\"quote-prices\",outcome=\"ok\"}",
            "billing",
        ),
        (
            "seams_outbox_backlog_events{database=\"identity\"}",
            "identity",
        ),
        (
            "seams_outbox_oldest_unpublished_age_seconds{database=\"billing\"}",
            "billing",
        ),
        (
            "seams_subscription_lag_events{subscription=\"notification<-identity\"}",
            "identity",
        ),
        (
            "seams_subscription_lag_age_seconds{subscription=\"notification<-identity\"}",
            "identity",
        ),
        (
            "seams_dead_letters{subscription=\"notification<-identity\"}",
            "notification",
        ),
        ("seams_breaker_open{callee=\"catalog\"}", "billing"),
        (
            "seams_db_group_members_bucket{database=\"billing\"}",
            "billing",
        ),
        (
            "seams_event_lag_seconds_bucket{hop=\"identity.customer-registered->notification\"}",
            "notification",
        ),
        ("seams_service_up{service=\"notification\"}", "notification"),
    ] {
        let found = match poll(series, Duration::from_secs(60), async || {
            let result = prom.query(series).await?;
            Ok((!result.is_empty()).then_some(result))
        })
        .await
        {
            Ok(found) => found,
            Err(e) => panic!(
                "{e:#}\ntargets: {}\nprometheus log: {}",
                prom.targets().await.unwrap_or_default(),
                prom.log()
            ),
        };
        assert_eq!(found[0]["metric"]["service"], owner, "{series}: {found:?}");
    }
    // A recording rule of a declared objective is evaluated.
    poll(
        "an objective's error ratio",
        Duration::from_secs(60),
        async || {
            let r = prom
                .query(
                    "seams:objective_errors:ratio_rate5m{objective=\"identity.register-customer\"}",
                )
                .await?;
            Ok((!r.is_empty()).then_some(r))
        },
    )
    .await
    .unwrap();

    // The generated rule waits a minute past the bound before firing.
    let alert: Value = poll(
        "the broken bound's alert to fire",
        Duration::from_secs(180),
        async || {
            Ok(prom.alerts().await?.into_iter().find(|a| {
                a["labels"]["alertname"] == "SeamsEventualInvariantBroken"
                    && a["labels"]["invariant"] == "notification.contacts-follow-identity"
                    && a["state"] == "firing"
            }))
        },
    )
    .await
    .unwrap_or_else(|e| panic!("{e:#}\nprometheus log: {}", prom.log()));
    assert_eq!(alert["labels"]["severity"], "page", "{alert}");
    assert!(
        alert["annotations"]["runbook"]
            .as_str()
            .is_some_and(|r| r.contains("/_seams/consistency")),
        "{alert}"
    );
}

/// Writes `token` to `path`, readable by this user only.
fn write_private(path: &Path, token: &str) {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .unwrap();
    f.write_all(token.as_bytes()).unwrap();
}
