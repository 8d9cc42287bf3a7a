//! The guarded boundaries, end to end against the real binary: each way in
//! that was once open, shown shut. Every finding of the review that asked
//! for guarded boundaries has a test here or names the suite that has it.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use e2e::{Mode, Shop};

/// The `host:port` of a base URL.
fn authority(url: &str) -> &str {
    url.trim_start_matches("http://")
}

/// Opens `n` connections that send nothing.
fn idle_connections(url: &str, n: usize) -> Vec<TcpStream> {
    (0..n)
        .map(|i| {
            TcpStream::connect(authority(url)).unwrap_or_else(|e| panic!("connection {i}: {e}"))
        })
        .collect()
}

/// `GET /healthz` on a new connection, with a deadline; the status line.
fn healthz_within(url: &str, within: Duration) -> Option<String> {
    let mut s = TcpStream::connect(authority(url)).ok()?;
    s.set_read_timeout(Some(within)).ok()?;
    s.write_all(b"GET /healthz HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
        .ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).ok()?;
    out.lines().next().map(str::to_owned)
}

#[tokio::test]
async fn a_thousand_idle_connections_under_a_1024_file_limit_leave_healthz_answering() {
    // The soft limit most services start with (systemd's default): the
    // process raises it to its hard limit at start.
    let shop = Shop::start_under_ulimit(Mode::Monolith, &[], "-Sn 1024").unwrap();
    let idle = idle_connections(shop.url(), 1000);
    let started = Instant::now();
    let status = healthz_within(shop.url(), Duration::from_secs(5));
    assert_eq!(status.as_deref(), Some("HTTP/1.1 200 OK"), "{}", shop.log());
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    drop(idle);

    // With a hard limit of 1,024 too, the connection cap keeps descriptors
    // for the databases: the connections over it wait in the backlog until
    // the header timeout closes idle ones, and nothing fails for lack of
    // descriptors.
    let shop = Shop::start_under_ulimit(
        Mode::Monolith,
        &["--header-read-timeout-secs", "2"],
        "-n 1024",
    )
    .unwrap();
    let idle = idle_connections(shop.url(), 1000);
    let started = Instant::now();
    let status = healthz_within(shop.url(), Duration::from_secs(15));
    assert_eq!(status.as_deref(), Some("HTTP/1.1 200 OK"), "{}", shop.log());
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
    drop(idle);
    assert!(
        !shop.log().contains("Too many open files"),
        "ran out of descriptors: {}",
        shop.log()
    );
}

#[tokio::test]
async fn a_slow_client_holds_shutdown_only_until_the_drain_deadline() {
    let mut shop = Shop::start_with(Mode::Monolith, &["--drain-timeout-secs", "2"]).unwrap();
    // A request whose body never finishes: in flight as far as the server knows.
    let mut slow = TcpStream::connect(authority(shop.url())).unwrap();
    slow.write_all(
        b"POST /identity/customers HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: 1000\r\n\r\n{\"email\":",
    )
    .unwrap();
    std::thread::sleep(Duration::from_millis(200));
    let started = Instant::now();
    let log = shop.stop().unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "stopping took {:?}",
        started.elapsed()
    );
    assert!(log.contains("drain deadline passed"), "{log}");
    assert!(
        log.contains("stopped cleanly"),
        "the ordered stop ran: {log}"
    );
}

#[tokio::test]
async fn a_client_s_tiny_deadline_is_ignored_and_trips_no_breaker_for_others() {
    let shop = Shop::start(Mode::SplitHttp).unwrap();
    let ann = shop.register("ann@example.com").await.unwrap();
    let bob = shop.register("bob@example.com").await.unwrap();
    shop.add_product("TEA", 450).await.unwrap();
    shop.receive_stock("TEA", 200).await.unwrap();
    let http = reqwest::Client::new();
    let create = |customer: String, key: String, deadline: bool| {
        let token = shop.customer_token(&customer).unwrap();
        let mut req = http
            .post(format!("{}/billing/invoices", shop.url()))
            .bearer_auth(token)
            .header("Idempotency-Key", key)
            .json(&serde_json::json!({ "customer_id": customer, "lines": [{ "sku": "TEA", "quantity": 1 }] }));
        if deadline {
            // A client claiming it will wait 1 ms: billing's calls to
            // catalog and identity would all time out if it were believed.
            req = req.header("X-Seams-Deadline-Ms", "1");
        }
        async move { req.send().await.unwrap().status() }
    };
    let mut burst = Vec::new();
    for i in 0..40 {
        burst.push(create(ann.clone(), format!("ann-{i}"), true));
        burst.push(create(bob.clone(), format!("bob-{i}"), false));
    }
    let statuses = futures::future::join_all(burst).await;
    let failed: Vec<_> = statuses.iter().filter(|s| s.as_u16() != 201).collect();
    assert!(failed.is_empty(), "{failed:?}\n{}", shop.log());
}

/// Every entry under `dir` whose mode lets anyone but its owner in.
fn open_to_others(dir: &std::path::Path) -> Vec<String> {
    use std::os::unix::fs::PermissionsExt;
    let mut out = Vec::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(path) = stack.pop() {
        let meta = std::fs::symlink_metadata(&path).unwrap();
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            out.push(format!("{} {mode:o}", path.display()));
        }
        if meta.is_dir() {
            for e in std::fs::read_dir(&path).unwrap() {
                stack.push(e.unwrap().path());
            }
        }
    }
    out
}

#[tokio::test]
async fn data_keys_tokens_and_mail_are_their_owner_s_alone() {
    for mode in [Mode::Monolith, Mode::SplitHttp] {
        let mut shop = Shop::start(mode).unwrap();
        let customer = shop.register("ann@example.com").await.unwrap();
        shop.add_product("TEA", 450).await.unwrap();
        shop.receive_stock("TEA", 1).await.unwrap();
        let r = shop
            .create_invoice("k", &customer, &[("TEA", 1)])
            .await
            .unwrap();
        assert_eq!(r.status, 201, "{mode:?}: {}", r.json);
        shop.wait_delivered(&customer, 1, Duration::from_secs(30))
            .await
            .unwrap();
        let data = shop.data_dir();
        assert!(data.join("keys/signing-keys.json").exists());
        if mode == Mode::SplitHttp {
            assert!(
                data.join("secrets/identity.jwt").exists(),
                "service tokens are kept"
            );
        }
        assert_eq!(open_to_others(&data), Vec::<String>::new(), "{mode:?}");
        shop.stop().unwrap();
    }
}

#[tokio::test]
async fn no_secret_or_bus_url_is_on_a_service_s_command_line() {
    if !e2e::modes().contains(&Mode::SplitPostgresNats) {
        eprintln!("SKIPPED: the distributed mode needs PostgreSQL and nats-server");
        return;
    }
    let shop = Shop::start(Mode::SplitPostgresNats).unwrap();
    let doc: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(shop.data_dir().join("services.json")).unwrap(),
    )
    .unwrap();
    let services = doc["services"].as_array().unwrap();
    assert_eq!(services.len(), 5);
    for s in services {
        let pid = s["pid"].as_u64().unwrap();
        let argv = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap();
        let argv = String::from_utf8_lossy(&argv).replace('\0', " ");
        for secret in [
            "postgres://",
            "postgresql://",
            "nats://",
            "--database",
            "--postgres-admin",
        ] {
            assert!(!argv.contains(secret), "{secret} in `{argv}`");
        }
        assert!(argv.contains(" serve "), "{argv}");
    }
}
