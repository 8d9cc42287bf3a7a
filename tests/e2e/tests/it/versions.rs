//! Two versions of `billing.invoice-created` live at once: billing writes
//! the version it is told to (its current v2, v1 while some consumer reads
//! only v1, or both in one event), and its consumers read each, fulfillment
//! reserving the stock and notification naming the products only when the
//! event carries their names. A version billing cannot write is refused
//! before anything starts.

use std::time::Duration;

use e2e::{Mode, Shop, expect};
use reqwest::StatusCode;

/// The invoice mail's line for 2 TEA, with billing told `emit`.
async fn invoice_line(mode: Mode, emit: &[&str]) -> anyhow::Result<String> {
    let args: Vec<&str> = emit.iter().flat_map(|e| ["--emit", e]).collect();
    let shop = Shop::start_with(mode, &args)?;
    let customer = shop.register("ada@example.com").await?;
    shop.add_product("TEA", 450).await?;
    shop.receive_stock("TEA", 5).await?;
    let invoice = shop
        .create_invoice("inv-1", &customer, &[("TEA", 2)])
        .await?;
    expect(&invoice, StatusCode::CREATED)?;
    shop.until("the reservation", Duration::from_secs(30), async || {
        Ok((shop.stock("TEA").await? == (5, 2)).then_some(()))
    })
    .await?;
    shop.wait_delivered(&customer, 1, Duration::from_secs(30))
        .await?;
    let mails = shop.mails();
    anyhow::ensure!(mails.len() == 1, "{mode:?} {emit:?}: {} mails", mails.len());
    let line = mails[0]
        .lines()
        .find(|l| l.starts_with("  2 x "))
        .map(str::to_owned);
    line.ok_or_else(|| anyhow::anyhow!("{mode:?} {emit:?}: no line in\n{}", mails[0]))
}

#[tokio::test]
async fn billing_writes_the_version_it_is_told_and_every_consumer_reads_it() {
    let named = "  2 x Product TEA (TEA) at 4.50 EUR = 9.00 EUR";
    let unnamed = "  2 x TEA at 4.50 EUR = 9.00 EUR";
    // One process, and the distributed mode, where the event crosses
    // JetStream with its alternates.
    let modes = e2e::modes()
        .into_iter()
        .filter(|m| matches!(m, Mode::Monolith | Mode::SplitPostgresNats));
    for mode in modes {
        for (emit, line) in [
            (&[][..], named),
            (&["billing.invoice-created=1"][..], unnamed),
            (
                &["billing.invoice-created=1", "billing.invoice-created=2"][..],
                named,
            ),
        ] {
            let got = invoice_line(mode, emit)
                .await
                .unwrap_or_else(|e| panic!("{mode:?} {emit:?}: {e:#}"));
            assert_eq!(got, line, "{mode:?} {emit:?}");
        }
    }
}

#[tokio::test]
async fn a_version_the_producer_cannot_write_is_refused_at_start() {
    for (emit, why) in [
        (
            "billing.invoice-paid=2",
            "billing.invoice-paid has no version 2 to write",
        ),
        (
            "billing.invoice-created=3",
            "billing.invoice-created has no version 3 to write",
        ),
        (
            "billing.invoice-creatd=1",
            "no capability consumes an event",
        ),
    ] {
        let err = match Shop::start_with(Mode::Monolith, &["--emit", emit]) {
            Ok(_) => panic!("{emit}: started"),
            Err(e) => format!("{e:#}"),
        };
        assert!(err.contains(why), "{emit}: {err}");
    }
}
