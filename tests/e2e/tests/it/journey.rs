//! The customer journey of the README, in every mode: register, products,
//! invoice, replay with the same key, pay, notifications delivered exactly once.

use std::time::Duration;

use e2e::{Mode, Shop, expect};
use reqwest::StatusCode;

async fn journey(mode: Mode) -> anyhow::Result<()> {
    let shop = Shop::start(mode)?;
    let customer = shop.register("ada@example.com").await?;
    shop.add_product("TEA", 450).await?;
    shop.add_product("MUG", 1200).await?;
    shop.receive_stock("TEA", 10).await?;
    shop.receive_stock("MUG", 10).await?;

    let invoice = shop
        .create_invoice("inv-1", &customer, &[("TEA", 2), ("MUG", 1)])
        .await?;
    expect(&invoice, StatusCode::CREATED)?;
    assert_eq!(invoice.json["total"]["amount"], 2100);
    assert_eq!(invoice.json["status"], "open");
    let replay = shop
        .create_invoice("inv-1", &customer, &[("TEA", 2), ("MUG", 1)])
        .await?;
    assert_eq!(
        (replay.status, &replay.bytes),
        (invoice.status, &invoice.bytes),
        "{mode:?}: replay differs"
    );

    let id = invoice.json["id"].as_str().unwrap();
    let paid = shop.pay("pay-1", id, &invoice.json["total"]).await?;
    expect(&paid, StatusCode::CREATED)?;
    let again = shop.pay("pay-2", id, &invoice.json["total"]).await?;
    assert_eq!(again.status, StatusCode::CONFLICT);
    assert_eq!(
        shop.get(&format!("/billing/invoices/{id}")).await?.json["status"],
        "paid"
    );

    let deliveries = shop
        .wait_delivered(&customer, 3, Duration::from_secs(30))
        .await?;
    let mut types: Vec<&str> = deliveries
        .iter()
        .map(|d| d["event_type"].as_str().unwrap())
        .collect();
    types.sort();
    assert_eq!(
        types,
        [
            "billing.invoice-created",
            "billing.invoice-paid",
            "fulfillment.shipment-dispatched"
        ],
        "{mode:?}"
    );
    for d in &deliveries {
        assert_eq!(d["recipient"], "ada@example.com");
        assert_eq!(d["channel"], "maildir");
    }
    // Give a duplicate (chaos) a moment to show up if the inbox failed to stop it.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        shop.deliveries(&customer).await?.len(),
        3,
        "{mode:?}: duplicate delivery"
    );
    let mails = shop.mails();
    assert_eq!(mails.len(), 3, "{mode:?}: one mail per delivery");
    assert!(mails.iter().all(|m| m.contains("ada@example.com")));
    Ok(())
}

#[tokio::test]
async fn journey_in_every_mode() {
    for mode in e2e::modes() {
        journey(mode)
            .await
            .unwrap_or_else(|e| panic!("{mode:?}: {e:#}"));
    }
}

#[tokio::test]
async fn a_clean_stop_drains_and_exits_zero() {
    let mut shop = Shop::start(Mode::Monolith).unwrap();
    let customer = shop.register("grace@example.com").await.unwrap();
    shop.add_product("TEA", 450).await.unwrap();
    shop.receive_stock("TEA", 1).await.unwrap();
    expect(
        &shop
            .create_invoice("k", &customer, &[("TEA", 1)])
            .await
            .unwrap(),
        StatusCode::CREATED,
    )
    .unwrap();
    let log = shop.stop().unwrap();
    assert!(log.contains("HTTP drained"), "{log}");
    assert!(log.contains("stopped cleanly"), "{log}");
    // Nothing committed is lost: after a restart the notification still goes out, once.
    shop.restart().unwrap();
    shop.wait_delivered(&customer, 1, Duration::from_secs(30))
        .await
        .unwrap();
}
