//! Faults that only exist once capabilities are separate processes: a
//! consumer service is SIGKILLed mid-journey; the supervisor restarts it and
//! every notification still goes out exactly once. On PostgreSQL and NATS,
//! the database server restarts and the bus goes away mid-journey. With
//! JSON logs, each process's lines name it and a trace crosses them.

use std::time::Duration;

use e2e::{Mode, Shop, expect};
use reqwest::StatusCode;
use serde_json::Value;

#[tokio::test]
async fn a_killed_consumer_service_is_restarted_and_delivers_each_notification_once() {
    const INVOICES: usize = 10;
    let shop = Shop::start(Mode::SplitHttp).unwrap();
    let customer = shop.register("split@example.com").await.unwrap();
    shop.add_product("TEA", 450).await.unwrap();
    shop.receive_stock("TEA", 100).await.unwrap();
    let pid = shop.service_pid("notification").unwrap();
    for i in 0..INVOICES {
        let r = shop
            .create_invoice(&format!("s{i}"), &customer, &[("TEA", 1)])
            .await
            .unwrap();
        expect(&r, StatusCode::CREATED).unwrap();
        if i == INVOICES / 2 {
            let status = std::process::Command::new("kill")
                .args(["-KILL", &pid.to_string()])
                .status()
                .unwrap();
            assert!(status.success());
        }
    }
    let deliveries = shop
        .wait_delivered(&customer, INVOICES, Duration::from_secs(60))
        .await
        .unwrap();
    let mut events: Vec<&str> = deliveries
        .iter()
        .map(|d| d["event_id"].as_str().unwrap())
        .collect();
    events.sort();
    events.dedup();
    assert_eq!(events.len(), INVOICES);
    assert_eq!(
        shop.mails().len(),
        INVOICES,
        "one mail per delivery across the crash"
    );
    assert_ne!(
        shop.service_pid("notification").unwrap(),
        pid,
        "the supervisor restarted it"
    );
}

#[tokio::test]
async fn a_frozen_callee_times_out_opens_the_breaker_and_recovers() {
    let shop = Shop::start(Mode::SplitHttp).unwrap();
    let customer = shop.register("slow@example.com").await.unwrap();
    shop.add_product("TEA", 450).await.unwrap();
    shop.receive_stock("TEA", 10).await.unwrap();
    let catalog = shop.service_pid("catalog").unwrap();
    let signal = |sig: &str| {
        let status = std::process::Command::new("kill")
            .args([sig, &catalog.to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    };
    // Freeze catalog: its socket accepts, nothing answers. Billing's calls time
    // out (2 s per attempt, declared, within create-invoice's declared 5 s)
    // and it answers 503 as create-invoice declares, naming catalog.
    signal("-STOP");
    let started = std::time::Instant::now();
    let r = shop
        .create_invoice("frozen-1", &customer, &[("TEA", 1)])
        .await
        .unwrap();
    assert_eq!(
        (r.status, r.problem_type()),
        (
            StatusCode::SERVICE_UNAVAILABLE,
            "urn:seams:problem:billing-unavailable"
        ),
        "{}",
        r.json
    );
    assert_eq!(r.json["unavailable"], "catalog", "{}", r.json);
    assert!(r.headers.contains_key("retry-after"));
    eprintln!(
        "first call against the frozen catalog answered after {:?}",
        started.elapsed()
    );
    // After enough timeouts the breaker is open: the next call fails fast.
    let mut fast = None;
    for i in 0..6 {
        let t = std::time::Instant::now();
        let r = shop
            .create_invoice(&format!("frozen-{}", i + 2), &customer, &[("TEA", 1)])
            .await
            .unwrap();
        assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE);
        if t.elapsed() < Duration::from_millis(500) {
            fast = Some(t.elapsed());
            break;
        }
    }
    let fast = fast.expect("the breaker never opened");
    eprintln!("with the breaker open the call answered in {fast:?}");
    // Thaw catalog: after the open period a probe succeeds and calls flow again.
    signal("-CONT");
    let ok = shop
        .until(
            "the breaker to close",
            Duration::from_secs(30),
            async || {
                let r = shop
                    .create_invoice("thawed", &customer, &[("TEA", 1)])
                    .await?;
                Ok((r.status == StatusCode::CREATED).then_some(r))
            },
        )
        .await
        .unwrap();
    expect(&ok, StatusCode::CREATED).unwrap();
}

/// Creates an invoice, retrying (same key, so at most one effect) while a
/// fault makes the system answer 5xx; returns its id and total.
async fn create_through_faults(
    shop: &Shop,
    key: &str,
    customer: &str,
) -> anyhow::Result<(String, Value)> {
    let r = shop
        .until(
            &format!("invoice {key} created"),
            Duration::from_secs(60),
            async || {
                let r = shop.create_invoice(key, customer, &[("TEA", 1)]).await?;
                Ok((!r.status.is_server_error()).then_some(r))
            },
        )
        .await?;
    expect(&r, StatusCode::CREATED)?;
    Ok((
        r.json["id"].as_str().unwrap().to_owned(),
        r.json["total"].clone(),
    ))
}

async fn pay_through_faults(shop: &Shop, key: &str, id: &str, total: &Value) -> anyhow::Result<()> {
    let r = shop
        .until(
            &format!("payment {key}"),
            Duration::from_secs(60),
            async || {
                let r = shop.pay(key, id, total).await?;
                Ok((!r.status.is_server_error()).then_some(r))
            },
        )
        .await?;
    expect(&r, StatusCode::CREATED)
}

#[tokio::test]
async fn postgres_restart_and_nats_outage_mid_journey_lose_and_duplicate_nothing() {
    const STOCK: u32 = 100;
    if !e2e::modes().contains(&Mode::SplitPostgresNats) {
        return; // said loudly by modes()
    }
    let mut shop = Shop::start(Mode::SplitPostgresNats).unwrap();
    let customer = shop.register("faults@example.com").await.unwrap();
    shop.add_product("TEA", 450).await.unwrap();
    shop.receive_stock("TEA", STOCK).await.unwrap();
    let mut invoices = Vec::new();
    let mut journey = async |shop: &Shop, phase: &str, n: usize| -> anyhow::Result<()> {
        for i in 0..n {
            let (id, total) =
                create_through_faults(shop, &format!("{phase}-{i}"), &customer).await?;
            pay_through_faults(shop, &format!("{phase}-pay-{i}"), &id, &total).await?;
            invoices.push(id);
        }
        Ok(())
    };
    journey(&shop, "before", 4).await.unwrap();

    // Restart PostgreSQL as if it crashed, with events still on their way.
    let pg = shop.postgres().expect("this mode has a cluster");
    pg.stop(seams_testkit::postgres::Shutdown::Immediate);
    let started = std::time::Instant::now();
    let down = shop
        .create_invoice("during-pg-outage", &customer, &[("TEA", 1)])
        .await
        .unwrap_or_else(|e| panic!("{e:#} after {:?}\n{}", started.elapsed(), shop.log()));
    assert!(
        down.status.is_server_error(),
        "with its database down billing cannot take the invoice: {} {}",
        down.status,
        down.json
    );
    shop.postgres().unwrap().resume().unwrap();
    journey(&shop, "after-pg", 4).await.unwrap();

    // Stop NATS: commands still commit (events wait in the outboxes), then drain.
    shop.nats().expect("this mode has a bus").stop();
    journey(&shop, "nats-down", 4).await.unwrap();
    shop.nats().unwrap().resume().unwrap();
    journey(&shop, "after-nats", 2).await.unwrap();

    let paid = invoices.len();
    // Per invoice: created, paid, shipped.
    let expected = 3 * paid;
    let deliveries = match shop
        .wait_delivered(&customer, expected, Duration::from_secs(90))
        .await
    {
        Ok(d) => d,
        Err(e) => {
            let dead = shop.get("/_seams/dead-letters").await.map(|r| r.json);
            panic!("{e:#}\ndead letters: {dead:?}\nlog:\n{}", shop.log());
        }
    };
    let mut events: Vec<&str> = deliveries
        .iter()
        .map(|d| d["event_id"].as_str().unwrap())
        .collect();
    events.sort();
    events.dedup();
    assert_eq!(events.len(), expected, "one delivery per event");
    assert_eq!(shop.mails().len(), expected, "one mail per delivery");
    for id in &invoices {
        let shipments = shop
            .until(
                "the shipment dispatched",
                Duration::from_secs(30),
                async || {
                    let s = shop.shipments(id).await?;
                    Ok((s.len() == 1 && s[0]["status"] == "dispatched").then_some(s))
                },
            )
            .await
            .unwrap();
        assert_eq!(shipments.len(), 1, "one shipment per paid invoice");
        assert_eq!(shop.invoice_status(id).await.unwrap(), "paid");
    }
    let (on_hand, reserved) = shop.stock("TEA").await.unwrap();
    assert_eq!((on_hand, reserved), ((STOCK as usize - paid) as u64, 0));
    // The invoice refused during the outage left nothing behind.
    let replay = shop
        .create_invoice("during-pg-outage", &customer, &[("TEA", 1)])
        .await
        .unwrap();
    assert_ne!(
        replay
            .headers
            .get("idempotent-replayed")
            .map(|v| v.to_str().unwrap()),
        Some("true"),
        "a refused command has no recorded response"
    );
}

#[tokio::test]
async fn the_monolith_runs_on_postgresql_too() {
    let Some(pg) = seams_testkit::postgres::PostgresServer::start_or_skip() else {
        return;
    };
    let admin = pg.admin_url();
    let shop = Shop::start_with(Mode::Monolith, &["--postgres-admin", &admin]).unwrap();
    let customer = shop.register("pg-monolith@example.com").await.unwrap();
    shop.add_product("TEA", 450).await.unwrap();
    shop.receive_stock("TEA", 3).await.unwrap();
    let (id, total) = create_through_faults(&shop, "pg-1", &customer)
        .await
        .unwrap();
    pay_through_faults(&shop, "pg-pay-1", &id, &total)
        .await
        .unwrap();
    shop.wait_delivered(&customer, 3, Duration::from_secs(30))
        .await
        .unwrap();
    assert_eq!(shop.stock("TEA").await.unwrap(), (2, 0));
    // The state is in PostgreSQL, not in SQLite files.
    let files: Vec<_> = std::fs::read_dir(shop.data_dir())
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".db"))
        .collect();
    assert!(files.is_empty(), "{files:?}");
}

#[tokio::test]
async fn json_logs_name_each_service_and_carry_the_trace_across_processes() {
    const TRACE_ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
    let mut shop = Shop::start_with(Mode::SplitHttp, &["--log-format", "json"]).unwrap();
    let customer = shop.register("split-logs@example.com").await.unwrap();
    shop.add_product("TEA", 450).await.unwrap();
    shop.receive_stock("TEA", 5).await.unwrap();
    let req = shop
        .http()
        .post(format!("{}/billing/invoices", shop.url()))
        .bearer_auth(shop.customer_token(&customer).unwrap())
        .header("Idempotency-Key", "split-logs-1")
        .header("X-Correlation-Id", "split-logs-corr")
        .header("traceparent", format!("00-{TRACE_ID}-00f067aa0ba902b7-01"))
        .json(&serde_json::json!({
            "customer_id": customer, "lines": [{ "sku": "TEA", "quantity": 1 }]
        }));
    expect(&shop.send(req).await.unwrap(), StatusCode::CREATED).unwrap();
    // The sender logs a mail before it records it as delivered.
    shop.wait_delivered(&customer, 1, Duration::from_secs(60))
        .await
        .unwrap();
    let log = shop.stop().unwrap();

    let lines: Vec<Value> = log
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l:?}\n{log}")))
        .collect();
    for line in &lines {
        assert!(line.is_object() && line["service"].is_string(), "{line}");
    }
    // The notification service's mail, two HTTP hops (gateway, billing's
    // feed) and a stored delivery away from the request, names its trace.
    assert!(
        lines.iter().any(|l| l["service"] == "notification"
            && l["message"] == "delivered"
            && l["trace_id"] == TRACE_ID
            && l["correlation_id"] == "split-logs-corr"),
        "{log}"
    );
    // The supervisor passes on what a service prints as a line of its own.
    assert!(
        lines
            .iter()
            .any(|l| l["service"] == "shop" && l["child"] == "identity"),
        "{log}"
    );
}
