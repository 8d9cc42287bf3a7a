//! Crash safety: SIGKILL right after invoices are created, before their
//! notifications have all gone out; after a restart every notification is
//! delivered exactly once (one delivery record and one mail per event).

use std::time::Duration;

use e2e::{Mode, Shop, expect};
use reqwest::StatusCode;

const INVOICES: usize = 25;

async fn crash_and_recover(mode: Mode) -> anyhow::Result<()> {
    let mut shop = Shop::start(mode)?;
    let customer = shop.register("crash@example.com").await?;
    shop.add_product("TEA", 450).await?;
    for i in 0..INVOICES {
        let r = shop
            .create_invoice(&format!("crash-{i}"), &customer, &[("TEA", 1)])
            .await?;
        expect(&r, StatusCode::CREATED)?;
    }
    let before = shop.mails().len();
    shop.kill()?;
    eprintln!("{mode:?}: {before} of {INVOICES} mails were out at the kill");
    if mode == Mode::MonolithChaos {
        // Delayed delivery makes sure the kill lands before the notifications went out.
        assert!(before < INVOICES, "the kill came too late to test anything");
    }

    shop.restart()?;
    let deliveries = shop
        .wait_delivered(&customer, INVOICES, Duration::from_secs(60))
        .await?;
    let mut events: Vec<&str> = deliveries
        .iter()
        .map(|d| d["event_id"].as_str().unwrap())
        .collect();
    events.sort();
    events.dedup();
    assert_eq!(events.len(), INVOICES, "{mode:?}: one delivery per event");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(shop.deliveries(&customer).await?.len(), INVOICES);
    assert_eq!(
        shop.mails().len(),
        INVOICES,
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
async fn sigkill_before_notifications_then_restart_delivers_each_once() {
    for mode in Mode::ALL {
        crash_and_recover(mode)
            .await
            .unwrap_or_else(|e| panic!("{mode:?}: {e:#}"));
    }
}
