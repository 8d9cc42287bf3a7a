//! `shop demo`: a customer journey against a running system, printing each
//! step and what came back. It uses only the public HTTP API, so it works
//! against any mode, with the credentials a real client would have: the
//! customer registers and signs in for their own token; the staff steps
//! (products, stock) use a staff token, minted with the deployment's keys
//! when they are at hand (`--data`), as `shop token` would, or given in
//! `SHOP_STAFF_TOKEN`.

use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use reqwest::StatusCode;
use serde_json::{Value, json};

struct Step {
    n: usize,
    of: usize,
}

impl Step {
    fn say(&mut self, what: &str, detail: impl std::fmt::Display) {
        self.n += 1;
        println!("[{}/{}] {what}: {detail}", self.n, self.of);
    }
}

async fn send(req: reqwest::RequestBuilder) -> anyhow::Result<(StatusCode, Value)> {
    let res = req
        .send()
        .await
        .context("is the system running? (shop up)")?;
    let status = res.status();
    let body = res.json::<Value>().await.unwrap_or(Value::Null);
    Ok((status, body))
}

fn expect(status: StatusCode, body: &Value, want: StatusCode, what: &str) -> anyhow::Result<()> {
    if status != want {
        bail!("{what}: expected {want}, got {status}: {body}");
    }
    Ok(())
}

/// Runs the journey against `base` with `staff_token` for the staff steps,
/// trusting `authorities` besides the public roots; waits up to `timeout`
/// for notifications.
pub async fn run(
    base: &str,
    staff_token: &str,
    authorities: &[reqwest::Certificate],
    timeout: Duration,
) -> anyhow::Result<()> {
    let base = base.trim_end_matches('/');
    let http = seams_http::tls::client_builder(authorities)
        .timeout(Duration::from_secs(10))
        .build()?;
    let run_id = &uuid::Uuid::new_v4().simple().to_string()[..8];
    let mut step = Step { n: 0, of: 11 };
    println!("demo journey against {base} (run {run_id})");

    let email = format!("ada-{run_id}@example.com");
    let password = format!("demo-password-{}", uuid::Uuid::new_v4().simple());
    let (s, customer) = send(
        http.post(format!("{base}/identity/customers"))
            .json(&json!({ "email": email, "name": "Ada Lovelace", "password": password })),
    )
    .await?;
    expect(s, &customer, StatusCode::CREATED, "register customer")?;
    let customer_id = customer["id"].as_str().context("customer id")?.to_owned();
    step.say(
        "registered customer",
        format!("{s} id={customer_id} email={}", customer["email"]),
    );
    let (s, session) = send(
        http.post(format!("{base}/identity/sessions"))
            .json(&json!({ "email": email, "password": password })),
    )
    .await?;
    expect(s, &session, StatusCode::CREATED, "sign in")?;
    let token = session["access_token"]
        .as_str()
        .context("access token")?
        .to_owned();
    step.say(
        "signed in",
        format!(
            "{s} {} token, valid {} s",
            session["token_type"], session["expires_in"]
        ),
    );

    let products = [("TEA", "Green tea", 450), ("MUG", "Stoneware mug", 1200)];
    let mut skus = Vec::new();
    for (sku, name, amount) in products {
        let sku = format!("{sku}-{run_id}");
        let (s, p) = send(
            http.post(format!("{base}/catalog/products"))
                .bearer_auth(staff_token)
                .json(&json!({
                    "sku": sku, "name": name, "price": { "amount": amount, "currency": "EUR" }
                })),
        )
        .await?;
        expect(s, &p, StatusCode::CREATED, "add product")?;
        step.say("added product", format!("{s} {sku} at {amount} EUR cents"));
        let (s, level) = send(
            http.post(format!("{base}/fulfillment/stock"))
                .bearer_auth(staff_token)
                .header("Idempotency-Key", format!("demo-stock-{sku}"))
                .json(&json!({ "sku": sku, "quantity": 10 })),
        )
        .await?;
        expect(s, &level, StatusCode::CREATED, "receive stock")?;
        step.say(
            "received stock",
            format!("{s} {sku}: on hand {}", level["on_hand"]),
        );
        skus.push(sku);
    }

    let key = format!("demo-invoice-{run_id}");
    let cart = json!({ "customer_id": customer_id, "lines": [
        { "sku": skus[0], "quantity": 2 }, { "sku": skus[1], "quantity": 1 }
    ]});
    let create = || {
        http.post(format!("{base}/billing/invoices"))
            .bearer_auth(&token)
            .header("Idempotency-Key", &key)
            .json(&cart)
    };
    let (s, invoice) = send(create()).await?;
    expect(s, &invoice, StatusCode::CREATED, "create invoice")?;
    let invoice_id = invoice["id"].as_str().context("invoice id")?.to_owned();
    step.say(
        "created invoice",
        format!(
            "{s} id={invoice_id} total={} status={}",
            invoice["total"], invoice["status"]
        ),
    );

    let (s, replay) = send(create()).await?;
    expect(s, &replay, StatusCode::CREATED, "replay invoice")?;
    ensure!(
        replay == invoice,
        "a replay with the same key must return the same invoice"
    );
    step.say(
        "replayed with the same Idempotency-Key",
        format!("{s} same invoice back: id={}", replay["id"]),
    );

    let (s, payment) = send(
        http.post(format!("{base}/billing/invoices/{invoice_id}/payments"))
            .bearer_auth(&token)
            .header("Idempotency-Key", format!("demo-payment-{run_id}"))
            .json(&json!({ "amount": invoice["total"] })),
    )
    .await?;
    expect(s, &payment, StatusCode::CREATED, "pay invoice")?;
    step.say(
        "paid invoice",
        format!("{s} payment={} amount={}", payment["id"], payment["amount"]),
    );

    let started = Instant::now();
    loop {
        let (s, list) = send(
            http.get(format!("{base}/notification/deliveries"))
                .bearer_auth(&token)
                .query(&[("customer_id", &customer_id)]),
        )
        .await?;
        expect(s, &list, StatusCode::OK, "list deliveries")?;
        let deliveries = list["deliveries"].as_array().cloned().unwrap_or_default();
        let delivered = deliveries
            .iter()
            .filter(|d| d["status"] == "delivered")
            .count();
        if delivered >= 3 {
            step.say(
                "notifications delivered (invoice, payment, shipment)",
                format!("{delivered} after {} ms", started.elapsed().as_millis()),
            );
            for d in deliveries {
                println!(
                    "      {} via {} to {}: \"{}\" (caused by {} {})",
                    d["status"].as_str().unwrap_or("?"),
                    d["channel"].as_str().unwrap_or("?"),
                    d["recipient"].as_str().unwrap_or("?"),
                    d["subject"].as_str().unwrap_or("?"),
                    d["event_type"].as_str().unwrap_or("?"),
                    d["event_id"].as_str().unwrap_or("?"),
                );
            }
            break;
        }
        if started.elapsed() > timeout {
            bail!("notifications not delivered within {timeout:?}: {list}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (s, shipments) = send(
        http.get(format!("{base}/fulfillment/shipments"))
            .bearer_auth(&token)
            .query(&[("invoice_id", &invoice_id)]),
    )
    .await?;
    expect(s, &shipments, StatusCode::OK, "list shipments")?;
    let shipment = &shipments["shipments"][0];
    step.say(
        "shipment",
        format!(
            "{} {} dispatched at {}",
            shipment["id"], shipment["status"], shipment["dispatched_at"]
        ),
    );
    println!("demo complete");
    Ok(())
}
