//! TLS wherever a byte leaves a process, against the real binary: the
//! public address and every service speak HTTPS, and in the distributed
//! mode PostgreSQL and NATS accept nothing but TLS. Every certificate comes
//! from a throwaway CA that only the system and the test's client trust;
//! a client that does not trust it, or speaks plain HTTP, gets nothing.

use std::time::Duration;

use e2e::{Mode, Shop, expect};
use reqwest::StatusCode;

async fn journey_over_tls(mode: Mode) -> anyhow::Result<()> {
    let shop = Shop::start_tls(mode)?;
    anyhow::ensure!(shop.url().starts_with("https://"), "{}", shop.url());
    let customer = shop.register("tls@example.com").await?;
    shop.add_product("TEA", 450).await?;
    shop.receive_stock("TEA", 10).await?;
    let invoice = shop
        .create_invoice("tls-1", &customer, &[("TEA", 1)])
        .await?;
    expect(&invoice, StatusCode::CREATED)?;
    let id = invoice.json["id"].as_str().unwrap_or_default();
    expect(
        &shop.pay("tls-pay-1", id, &invoice.json["total"]).await?,
        StatusCode::CREATED,
    )?;
    // Billing called catalog and identity, fulfillment and notification
    // read billing's events, and the mail went out: every hop worked.
    shop.wait_delivered(&customer, 3, Duration::from_secs(30))
        .await?;

    if matches!(mode, Mode::SplitHttp | Mode::SplitPostgresNats) {
        for capability in [
            "billing",
            "catalog",
            "fulfillment",
            "identity",
            "notification",
        ] {
            let url = shop.service_url(capability)?;
            anyhow::ensure!(url.starts_with("https://"), "{capability} at {url}");
        }
    }

    // Only a client that trusts the deployment's CA gets an answer.
    let untrusting = reqwest::Client::builder()
        .use_rustls_tls()
        .timeout(Duration::from_secs(5))
        .build()?;
    let err = untrusting
        .get(format!("{}/healthz", shop.url()))
        .send()
        .await
        .expect_err("a client without the CA was answered");
    anyhow::ensure!(err.is_connect(), "{err:?}");
    let plain = shop.url().replacen("https://", "http://", 1);
    let answered = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()?
        .get(format!("{plain}/healthz"))
        .send()
        .await
        .is_ok_and(|r| r.status().is_success());
    anyhow::ensure!(!answered, "plain HTTP was answered on the TLS port");
    Ok(())
}

#[tokio::test]
async fn the_journey_runs_over_tls_in_every_mode() {
    for mode in e2e::modes() {
        journey_over_tls(mode)
            .await
            .unwrap_or_else(|e| panic!("{mode:?}: {e:#}"));
    }
}

#[tokio::test]
async fn shop_demo_trusts_the_ca_it_is_given() {
    let shop = Shop::start_tls(Mode::Monolith).unwrap();
    let ca = shop.ca_file().unwrap();
    let demo = |ca: Option<&std::path::Path>| {
        let mut cmd =
            std::process::Command::new(seams_testkit::process::cargo_bin("shop").unwrap());
        cmd.args(["demo", "--url", shop.url(), "--timeout-secs", "30"])
            .env("SHOP_STAFF_TOKEN", shop.staff_token())
            .env_remove("SHOP_CA_FILE");
        if let Some(ca) = ca {
            cmd.arg("--ca-file").arg(ca);
        }
        cmd.output().unwrap()
    };
    let out = demo(Some(&ca));
    assert!(
        out.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    // Without the CA the certificate is not trusted, and the demo says so.
    let out = demo(None);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.to_lowercase().contains("certificate"), "{stderr}");
}
