//! Fulfillment and compensation end to end, in every mode: the whole journey
//! to a dispatched shipment; the out-of-stock journey (void); payment racing
//! the failure (refund); many concurrent invoices for a few units.

use std::time::Duration;

use e2e::{Mode, Shop, expect};
use reqwest::StatusCode;
use serde_json::Value;

const WAIT: Duration = Duration::from_secs(30);

async fn delivered_types(shop: &Shop, customer: &str, n: usize) -> anyhow::Result<Vec<String>> {
    let list = shop.wait_delivered(customer, n, WAIT).await?;
    let mut types: Vec<String> = list
        .iter()
        .map(|d| d["event_type"].as_str().unwrap_or("").to_owned())
        .collect();
    types.sort();
    Ok(types)
}

async fn journey_to_dispatch(mode: Mode) -> anyhow::Result<()> {
    let shop = Shop::start(mode)?;
    let customer = shop.register("ship@example.com").await?;
    shop.add_product("TEA", 450).await?;
    shop.receive_stock("TEA", 10).await?;
    let invoice = shop.create_invoice("i1", &customer, &[("TEA", 3)]).await?;
    expect(&invoice, StatusCode::CREATED)?;
    let id = invoice.json["id"].as_str().unwrap().to_owned();
    shop.until("the reservation", WAIT, async || {
        Ok((shop.stock("TEA").await? == (10, 3)).then_some(()))
    })
    .await?;
    expect(
        &shop.pay("p1", &id, &invoice.json["total"]).await?,
        StatusCode::CREATED,
    )?;
    let shipment: Value = shop
        .until("a dispatched shipment", WAIT, async || {
            Ok(shop
                .shipments(&id)
                .await?
                .into_iter()
                .find(|s| s["status"] == "dispatched"))
        })
        .await?;
    assert_eq!(shipment["lines"][0]["quantity"], 3);
    assert_eq!(
        shop.stock("TEA").await?,
        (7, 0),
        "{mode:?}: shipped units left the stock"
    );
    let types = delivered_types(&shop, &customer, 3).await?;
    assert_eq!(
        types,
        [
            "billing.invoice-created",
            "billing.invoice-paid",
            "fulfillment.shipment-dispatched"
        ]
    );
    assert_eq!(shop.shipments(&id).await?.len(), 1);
    Ok(())
}

async fn out_of_stock_voids(mode: Mode) -> anyhow::Result<()> {
    let shop = Shop::start(mode)?;
    let customer = shop.register("short@example.com").await?;
    shop.add_product("TEA", 450).await?;
    shop.add_product("MUG", 1200).await?;
    shop.receive_stock("TEA", 5).await?;
    shop.receive_stock("MUG", 1).await?;
    let invoice = shop
        .create_invoice("i1", &customer, &[("TEA", 2), ("MUG", 2)])
        .await?;
    expect(&invoice, StatusCode::CREATED)?;
    let id = invoice.json["id"].as_str().unwrap().to_owned();
    shop.until("the void", WAIT, async || {
        Ok((shop.invoice_status(&id).await? == "voided").then_some(()))
    })
    .await?;
    let r = shop.pay("p1", &id, &invoice.json["total"]).await?;
    assert_eq!(
        (r.status, r.problem_type()),
        (StatusCode::CONFLICT, "urn:seams:problem:invoice-voided")
    );
    assert_eq!(
        shop.stock("TEA").await?,
        (5, 0),
        "{mode:?}: all or nothing: TEA was not reserved either"
    );
    assert_eq!(shop.stock("MUG").await?, (1, 0));
    let types = delivered_types(&shop, &customer, 2).await?;
    assert_eq!(types, ["billing.invoice-created", "billing.invoice-voided"]);
    assert!(shop.shipments(&id).await?.is_empty());
    Ok(())
}

async fn payment_racing_the_failure_is_refunded_or_refused(mode: Mode) -> anyhow::Result<()> {
    let shop = Shop::start(mode)?;
    let customer = shop.register("race@example.com").await?;
    shop.add_product("TEA", 450).await?;
    let invoice = shop.create_invoice("i1", &customer, &[("TEA", 1)]).await?;
    let id = invoice.json["id"].as_str().unwrap().to_owned();
    let paid = shop.pay("p1", &id, &invoice.json["total"]).await?;
    let (status, notice) = if paid.status == StatusCode::CREATED {
        ("refunded", "billing.invoice-refunded")
    } else {
        assert_eq!(
            paid.problem_type(),
            "urn:seams:problem:invoice-voided",
            "{}",
            paid.json
        );
        ("voided", "billing.invoice-voided")
    };
    shop.until("the compensation", WAIT, async || {
        Ok((shop.invoice_status(&id).await? == status).then_some(()))
    })
    .await?;
    let expected = if status == "refunded" { 3 } else { 2 };
    let types = delivered_types(&shop, &customer, expected).await?;
    assert!(types.iter().any(|t| t == notice), "{mode:?}: {types:?}");
    assert!(
        shop.shipments(&id).await?.is_empty(),
        "nothing ships for a failed invoice"
    );
    eprintln!("{mode:?}: payment racing the failure ended {status}");
    Ok(())
}

async fn concurrent_invoices_for_few_units(mode: Mode) -> anyhow::Result<()> {
    const N: usize = 12;
    const M: u32 = 5;
    let shop = Shop::start(mode)?;
    let customer = shop.register("crowd@example.com").await?;
    shop.add_product("LAST", 100).await?;
    shop.receive_stock("LAST", M).await?;
    let creates = (0..N).map(|i| {
        let (shop, customer) = (&shop, customer.clone());
        async move {
            shop.create_invoice(&format!("c{i}"), &customer, &[("LAST", 1)])
                .await
        }
    });
    let mut ids = Vec::new();
    for r in futures::future::join_all(creates).await {
        let r = r?;
        expect(&r, StatusCode::CREATED)?;
        ids.push(r.json["id"].as_str().unwrap().to_owned());
    }
    shop.until("every invoice decided", WAIT, async || {
        let (_, reserved) = shop.stock("LAST").await?;
        let mut voided = 0;
        for id in &ids {
            if shop.invoice_status(id).await? == "voided" {
                voided += 1;
            }
        }
        Ok((reserved == u64::from(M) && voided == N - M as usize).then_some(()))
    })
    .await?;
    assert_eq!(
        shop.stock("LAST").await?,
        (u64::from(M), u64::from(M)),
        "{mode:?}: never more than on hand"
    );
    let types = delivered_types(&shop, &customer, N + (N - M as usize)).await?;
    assert_eq!(
        types
            .iter()
            .filter(|t| *t == "billing.invoice-voided")
            .count(),
        N - M as usize
    );
    Ok(())
}

#[tokio::test]
async fn the_journey_ends_in_a_dispatched_shipment_in_every_mode() {
    for mode in e2e::modes() {
        journey_to_dispatch(mode)
            .await
            .unwrap_or_else(|e| panic!("{mode:?}: {e:#}"));
    }
}

#[tokio::test]
async fn out_of_stock_voids_the_invoice_in_every_mode() {
    for mode in e2e::modes() {
        out_of_stock_voids(mode)
            .await
            .unwrap_or_else(|e| panic!("{mode:?}: {e:#}"));
    }
}

#[tokio::test]
async fn a_payment_racing_the_failure_is_refunded_or_refused_in_every_mode() {
    for mode in e2e::modes() {
        payment_racing_the_failure_is_refunded_or_refused(mode)
            .await
            .unwrap_or_else(|e| panic!("{mode:?}: {e:#}"));
    }
}

#[tokio::test]
async fn concurrent_invoices_reserve_exactly_the_stock_in_every_mode() {
    for mode in e2e::modes() {
        concurrent_invoices_for_few_units(mode)
            .await
            .unwrap_or_else(|e| panic!("{mode:?}: {e:#}"));
    }
}
