//! Crash safety: SIGKILL in the middle of the journey (invoices created,
//! some paid, notifications and shipments still on their way); after a
//! restart every invariant holds and no effect happened twice: one
//! notification per event, one shipment per paid invoice, stock consistent.

use std::time::Duration;

use e2e::{Mode, Shop, expect};
use reqwest::StatusCode;

const INVOICES: usize = 20;
const PAID: usize = 10;
const STOCK: u32 = 100;

async fn crash_and_recover(mode: Mode) -> anyhow::Result<()> {
    let mut shop = Shop::start(mode)?;
    let customer = shop.register("crash@example.com").await?;
    shop.add_product("TEA", 450).await?;
    shop.receive_stock("TEA", STOCK).await?;
    let mut invoices = Vec::new();
    for i in 0..INVOICES {
        let r = shop
            .create_invoice(&format!("crash-{i}"), &customer, &[("TEA", 1)])
            .await?;
        expect(&r, StatusCode::CREATED)?;
        invoices.push((
            r.json["id"].as_str().unwrap().to_owned(),
            r.json["total"].clone(),
        ));
    }
    for (i, (id, total)) in invoices.iter().take(PAID).enumerate() {
        let r = shop.pay(&format!("pay-{i}"), id, total).await?;
        // The reservation may not have happened yet: payment does not wait for it.
        expect(&r, StatusCode::CREATED)?;
    }
    let before = shop.mails().len();
    shop.kill()?;
    let expected = INVOICES + 2 * PAID;
    eprintln!("{mode:?}: {before} of {expected} mails were out at the kill");
    if mode == Mode::MonolithChaos {
        // Delayed delivery makes sure the kill lands before the notifications went out.
        assert!(before < expected, "the kill came too late to test anything");
    }

    shop.restart()?;
    let deliveries = shop
        .wait_delivered(&customer, expected, Duration::from_secs(60))
        .await?;
    let mut events: Vec<&str> = deliveries
        .iter()
        .map(|d| d["event_id"].as_str().unwrap())
        .collect();
    events.sort();
    events.dedup();
    assert_eq!(events.len(), expected, "{mode:?}: one delivery per event");
    for (i, (id, _)) in invoices.iter().enumerate() {
        let shipments = shop.shipments(id).await?;
        if i < PAID {
            assert_eq!(
                shipments.len(),
                1,
                "{mode:?}: one shipment per paid invoice"
            );
            assert_eq!(shipments[0]["status"], "dispatched");
            assert_eq!(shop.invoice_status(id).await?, "paid");
        } else {
            assert!(shipments.is_empty());
            assert_eq!(shop.invoice_status(id).await?, "open");
        }
    }
    let (on_hand, reserved) = shop.stock("TEA").await?;
    assert_eq!(
        (on_hand, reserved),
        ((STOCK as usize - PAID) as u64, (INVOICES - PAID) as u64),
        "{mode:?}"
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(shop.deliveries(&customer).await?.len(), expected);
    assert_eq!(
        shop.mails().len(),
        expected,
        "{mode:?}: exactly one mail per delivery"
    );
    // Replays after the crash still return the recorded responses.
    let r = shop
        .create_invoice("crash-0", &customer, &[("TEA", 1)])
        .await?;
    assert_eq!(
        r.headers
            .get("idempotent-replayed")
            .map(|v| v.to_str().unwrap()),
        Some("true")
    );
    Ok(())
}

#[tokio::test]
async fn sigkill_mid_journey_then_restart_keeps_every_invariant() {
    // Split mode's crash test kills one service, not the supervisor (see split.rs).
    for mode in Mode::ONE_PROCESS {
        crash_and_recover(mode)
            .await
            .unwrap_or_else(|e| panic!("{mode:?}: {e:#}"));
    }
}
