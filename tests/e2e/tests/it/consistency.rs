//! Consistency end to end: an email change reaches notification's contacts,
//! a read presenting the write's token sees it, later mail goes to the new
//! address; and a consumer slowed down on purpose breaks a declared bound,
//! which the system reports.

use std::time::Duration;

use e2e::{Mode, Shop, expect};
use reqwest::StatusCode;
use serde_json::{Value, json};

async fn email_change_reaches_the_projection(mode: Mode) -> anyhow::Result<()> {
    let shop = Shop::start(mode)?;
    let customer = shop.register("old@example.com").await?;
    shop.add_product("TEA", 450).await?;
    shop.receive_stock("TEA", 5).await?;
    let http = reqwest::Client::new();
    let token = shop.customer_token(&customer)?;
    let r = shop
        .send(
            http.patch(format!("{}/identity/customers/{customer}", shop.url()))
                .bearer_auth(&token)
                .json(&json!({ "email": "new@example.com" })),
        )
        .await?;
    expect(&r, StatusCode::OK)?;
    let consistency = r.headers["seams-consistency-token"].to_str()?.to_owned();
    assert!(consistency.starts_with("identity:"), "{consistency}");
    let read = shop
        .send(
            http.get(format!("{}/notification/contacts/{customer}", shop.url()))
                .bearer_auth(&token)
                .header("Seams-Consistency-Token", &consistency),
        )
        .await?;
    expect(&read, StatusCode::OK)?;
    assert_eq!(
        read.json["email"], "new@example.com",
        "{mode:?}: a read with the token sees the write"
    );
    assert!(
        read.headers["seams-freshness"]
            .to_str()?
            .contains("position=")
    );

    let invoice = shop.create_invoice("i1", &customer, &[("TEA", 1)]).await?;
    expect(&invoice, StatusCode::CREATED)?;
    let list = shop
        .wait_delivered(&customer, 1, Duration::from_secs(30))
        .await?;
    assert_eq!(list[0]["recipient"], "new@example.com");
    Ok(())
}

#[tokio::test]
async fn an_email_change_is_read_back_with_its_token_in_every_mode() {
    for mode in e2e::modes() {
        email_change_reaches_the_projection(mode)
            .await
            .unwrap_or_else(|e| panic!("{mode:?}: {e:#}"));
    }
}

#[tokio::test]
async fn a_slowed_consumer_breaks_a_declared_bound_and_it_is_reported() {
    // Every delivery waits 2.1-2.2 s: over the 2 s bound on contacts.
    let mut shop = Shop::start_with(
        Mode::MonolithChaos,
        &[
            "--chaos-min-delay-ms",
            "2100",
            "--chaos-max-delay-ms",
            "2200",
        ],
    )
    .unwrap();
    shop.register("slow@example.com").await.unwrap();
    let row: Value = shop
        .until(
            "the bound to be reported broken",
            Duration::from_secs(30),
            async || {
                let report = shop.get("/_seams/consistency").await?.json;
                Ok(report["invariants"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .find(|r| {
                        r["invariant"] == "notification.contacts-follow-identity"
                            && r["status"] == "broken"
                    })
                    .cloned())
            },
        )
        .await
        .unwrap();
    assert!(row["measured_ms"].as_f64().unwrap() > 2000.0, "{row}");
    let log = shop.stop().unwrap();
    assert!(log.contains("consistency bound broken"), "{log}");
}
