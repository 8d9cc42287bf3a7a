//! A version rollout in split mode under continuous load, done as an
//! operator does it, with `shop rollout`: each step restarts one service
//! (its successor listening on the same socket before it drains) and may
//! change what it writes (`--emit`) or reads (`--accept`, standing in for
//! the older build that knew only v1 of `billing.invoice-created`).
//!
//! Throughout, a steady stream of invoices is created and paid; at the end
//! no request has failed, every invoice was reserved, shipped and mailed
//! three times (nothing lost, nothing twice), mails name their products
//! exactly when their consumer read v2, and nothing is left dead.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use e2e::{Mode, Shop, expect};
use reqwest::StatusCode;
use serde_json::Value;

const CREATED: &str = "billing.invoice-created";

/// Invoices made by the load, and what went wrong.
#[derive(Default)]
struct Load {
    /// (invoice id, customer id) of every invoice created and paid.
    invoices: Mutex<Vec<(String, String)>>,
    /// Every request that did not get its expected answer.
    failures: Mutex<Vec<String>>,
    stop: AtomicBool,
    made: AtomicUsize,
}

impl Load {
    fn made(&self) -> usize {
        self.made.load(Ordering::SeqCst)
    }

    /// Waits until the load has made `more` invoices beyond now.
    async fn at_least(&self, more: usize) {
        let want = self.made() + more;
        let deadline = Instant::now() + Duration::from_secs(60);
        while self.made() < want {
            assert!(
                Instant::now() < deadline,
                "the load stalled at {}",
                self.made()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// How often each worker starts a journey: a steady load this deployment
/// sustains (the consistency bounds hold under it without a rollout), so
/// that what a rollout costs is what the checks see.
const PACE: Duration = Duration::from_millis(100);

/// One worker: create and pay an invoice for `customer`, one every
/// [`PACE`] (at most 400), until told to stop.
async fn worker(shop: &Shop, load: &Load, customer: &str, w: usize) {
    let mut pace = tokio::time::interval(PACE);
    for i in 0..400 {
        pace.tick().await;
        if load.stop.load(Ordering::SeqCst) {
            return;
        }
        let key = format!("w{w}-{i}");
        let r = match shop.create_invoice(&key, customer, &[("TEA", 1)]).await {
            Ok(r) if r.status == StatusCode::CREATED => r,
            Ok(r) => {
                let why = format!("create {key}: {} {}", r.status, r.json);
                load.failures.lock().unwrap().push(why);
                continue;
            }
            Err(e) => {
                load.failures
                    .lock()
                    .unwrap()
                    .push(format!("create {key}: {e:#}"));
                continue;
            }
        };
        let id = r.json["id"].as_str().unwrap_or_default().to_owned();
        match shop.pay(&format!("{key}-pay"), &id, &r.json["total"]).await {
            Ok(p) if p.status == StatusCode::CREATED => {
                load.invoices
                    .lock()
                    .unwrap()
                    .push((id, customer.to_owned()));
                load.made.fetch_add(1, Ordering::SeqCst);
            }
            Ok(p) => {
                let why = format!("pay {key}: {} {}", p.status, p.json);
                load.failures.lock().unwrap().push(why);
            }
            Err(e) => load
                .failures
                .lock()
                .unwrap()
                .push(format!("pay {key}: {e:#}")),
        }
    }
}

/// Runs `steps` while a worker per customer creates and pays invoices,
/// stops the load once they are done, and fails on a step's error or on any
/// request that did not get its expected answer.
async fn under_load(
    shop: &Shop,
    load: &Load,
    customers: &[String],
    steps: impl std::future::Future<Output = anyhow::Result<()>>,
) {
    let steps = async {
        let done = steps.await;
        load.stop.store(true, Ordering::SeqCst);
        done
    };
    let workers = customers
        .iter()
        .enumerate()
        .map(|(w, c)| worker(shop, load, c, w));
    let (steps, _) = tokio::join!(steps, futures::future::join_all(workers));
    steps.unwrap_or_else(|e| panic!("{e:#}\n{}", shop.log()));
    let failures = load.failures.lock().unwrap().clone();
    assert!(failures.is_empty(), "failed requests: {failures:#?}");
}

/// `shop rollout ARGS…` against `shop`, as an operator; its output.
async fn rollout(shop: &Shop, args: &[&str]) -> anyhow::Result<String> {
    let out = tokio::process::Command::new(seams_testkit::process::cargo_bin("shop")?)
        .arg("rollout")
        .args(args)
        .arg("--url")
        .arg(shop.url())
        .env("SHOP_OPERATOR_TOKEN", shop.operator_token())
        .output()
        .await?;
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    anyhow::ensure!(
        out.status.success(),
        "shop rollout {args:?}: {}\n{stdout}{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(stdout)
}

/// A system whose billing writes v1 only and whose `old` consumers read
/// v1 only, with TEA in stock and one customer per load worker.
async fn old_system(mode: Mode, old: &[&str], workers: usize) -> (Shop, Vec<String>) {
    let mut args = vec!["--emit".to_owned(), format!("{CREATED}=1")];
    for consumer in old {
        args.extend(["--accept".to_owned(), format!("{consumer}:{CREATED}=1")]);
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let shop = Shop::start_with(mode, &args).unwrap();
    shop.add_product("TEA", 450).await.unwrap();
    shop.receive_stock("TEA", 1_000_000).await.unwrap();
    let mut customers = Vec::new();
    for w in 0..workers {
        customers.push(
            shop.register(&format!("load-{w}@example.com"))
                .await
                .unwrap(),
        );
    }
    (shop, customers)
}

/// Every invoice the load made was shipped and mailed three times (created,
/// paid, shipped), once each; returns the mails' invoice lines.
async fn nothing_lost(shop: &Shop, load: &Load) -> Vec<String> {
    let invoices = load.invoices.lock().unwrap().clone();
    let want = 3 * invoices.len();
    let mailed = shop
        .until("every mail", Duration::from_secs(120), async || {
            let n = shop.mails().len();
            anyhow::ensure!(n <= want, "{n} mails for {want} events");
            Ok((n == want).then_some(()))
        })
        .await;
    if let Err(e) = mailed {
        let dead = shop.get("/_seams/dead-letters").await.map(|r| r.json);
        panic!("{e:#}\ndead letters: {dead:?}\nlog:\n{}", shop.log());
    }
    for (id, _) in &invoices {
        shop.until(
            "the shipment dispatched",
            Duration::from_secs(60),
            async || {
                let s = shop.shipments(id).await?;
                Ok(s.iter().any(|s| s["status"] == "dispatched").then_some(()))
            },
        )
        .await
        .unwrap();
    }
    let mails = shop.mails();
    assert_eq!(mails.len(), want, "one mail per event");
    let (on_hand, reserved) = shop.stock("TEA").await.unwrap();
    assert_eq!(
        1_000_000 - on_hand,
        invoices.len() as u64,
        "one unit shipped per invoice (reserved now: {reserved})"
    );
    mails
        .iter()
        .filter(|m| m.contains("invoice") && m.contains("  1 x "))
        .filter_map(|m| {
            m.lines()
                .find(|l| l.starts_with("  1 x "))
                .map(str::to_owned)
        })
        .collect()
}

/// The invoice lines of mails read from v1 (the product unnamed) and from
/// v2 (named).
fn by_version(lines: &[String]) -> (usize, usize) {
    let v1 = "  1 x TEA at 4.50 EUR = 4.50 EUR";
    let v2 = "  1 x Product TEA (TEA) at 4.50 EUR = 4.50 EUR";
    for l in lines {
        assert!(l == v1 || l == v2, "a misread line: {l:?}");
    }
    let old = lines.iter().filter(|l| *l == v1).count();
    (old, lines.len() - old)
}

async fn dead_letters(shop: &Shop) -> Vec<Value> {
    let r = shop.get("/_seams/dead-letters?limit=500").await.unwrap();
    expect(&r, StatusCode::OK).unwrap();
    r.json["dead_letters"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

#[tokio::test]
async fn consumers_first_then_the_producer_under_load_loses_and_fails_nothing() {
    // Across JetStream, each service on its own PostgreSQL database.
    if !e2e::modes().contains(&Mode::SplitPostgresNats) {
        return; // said loudly by modes()
    }
    let (shop, customers) =
        old_system(Mode::SplitPostgresNats, &["fulfillment", "notification"], 3).await;
    let load = Load::default();
    let steps = async {
        load.at_least(5).await;
        // Fulfillment first: it reads v1 and v2 while billing still writes v1.
        let out = rollout(&shop, &["fulfillment", "--clear-accept"]).await?;
        assert!(out.starts_with("rolled fulfillment: pid "), "{out}");
        load.at_least(5).await;
        rollout(&shop, &["notification", "--clear-accept"]).await?;
        load.at_least(5).await;
        // Then billing writes its current version, v2.
        rollout(&shop, &["billing", "--clear-emit"]).await?;
        load.at_least(10).await;
        anyhow::Ok(())
    };
    under_load(&shop, &load, &customers, steps).await;
    let lines = nothing_lost(&shop, &load).await;
    let (v1, v2) = by_version(&lines);
    assert!(
        v1 > 0 && v2 > 0,
        "both versions were read: {v1} v1, {v2} v2"
    );
    assert!(dead_letters(&shop).await.is_empty(), "nothing dead");
    let report = shop.get("/_seams/consistency").await.unwrap().json;
    let lags: Vec<String> = report["invariants"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|r| r["samples"].as_u64().unwrap_or(0) > 0)
        .map(|r| {
            format!(
                "{} max {} ms (bound {} ms)",
                r["invariant"], r["max_ms"], r["bound_ms"]
            )
        })
        .collect();
    eprintln!(
        "rolled fulfillment, notification, billing under load: {} invoices, 0 failed; {}",
        load.made(),
        lags.join("; ")
    );
    let broken: Vec<&Value> = report["invariants"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|r| r["status"] == "broken")
        .collect();
    assert!(
        broken.is_empty(),
        "bounds broken: {broken:#?}\nlog:\n{}",
        shop.log()
    );
}

#[tokio::test]
async fn the_producer_first_dual_publishing_and_a_version_nobody_reads_waits_dead_until_upgrade() {
    let (shop, customers) = old_system(Mode::SplitHttp, &["notification"], 2).await;
    let load = Load::default();
    let steps = async {
        load.at_least(5).await;
        // Billing first: it writes v1 and v2 in each event; notification,
        // still the v1 build, reads the v1 form, fulfillment v2.
        rollout(
            &shop,
            &["billing", "--emit", &format!("{CREATED}=1,{CREATED}=2")],
        )
        .await?;
        load.at_least(5).await;
        // A mistake: billing drops v1 while notification still needs it.
        // The invoices of this window wait in notification's dead letters.
        rollout(&shop, &["billing", "--emit", &format!("{CREATED}=2")]).await?;
        load.at_least(3).await;
        let reason = format!("{CREATED} v2 is not accepted (accepts [1])");
        let parked = shop
            .until("a dead letter", Duration::from_secs(30), async || {
                let dead = dead_letters(&shop).await;
                Ok(dead.iter().any(|d| d["status"] == "parked").then_some(dead))
            })
            .await?;
        for d in &parked {
            assert_eq!(d["capability"], "notification", "{d}");
        }
        let first = parked.iter().find(|d| d["status"] == "parked").unwrap();
        assert!(
            first["error"].as_str().unwrap().contains(&reason),
            "{first}"
        );
        // Notification upgraded: it reads v2, and the dead letters replay.
        rollout(&shop, &["notification", "--clear-accept"]).await?;
        load.at_least(5).await;
        anyhow::Ok(())
    };
    under_load(&shop, &load, &customers, steps).await;

    let http = reqwest::Client::new();
    for d in dead_letters(&shop).await {
        if d["status"] != "parked" {
            continue;
        }
        let id = d["id"].as_str().unwrap();
        let r = shop
            .send(
                http.post(format!("{}/_seams/dead-letters/{id}/replay", shop.url()))
                    .bearer_auth(shop.operator_token()),
            )
            .await
            .unwrap();
        // A letter parked behind an earlier one of its key is queued by
        // that one's replay (per-key order), and may be by now.
        let queued_by_its_key = r.status == StatusCode::CONFLICT
            && r.json["type"] == "urn:seams:problem:dead-letter-not-parked";
        assert!(
            r.status == StatusCode::ACCEPTED || queued_by_its_key,
            "replaying {id}: {} {}",
            r.status,
            r.json
        );
    }
    let lines = nothing_lost(&shop, &load).await;
    let (v1, v2) = by_version(&lines);
    assert!(
        v1 > 0 && v2 > 0,
        "both versions were read: {v1} v1, {v2} v2"
    );
    let left: Vec<Value> = dead_letters(&shop)
        .await
        .into_iter()
        .filter(|d| d["status"] != "replayed")
        .collect();
    assert!(left.is_empty(), "every dead letter replayed: {left:#?}");
}
