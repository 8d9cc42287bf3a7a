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
    // Every capability runs as a service, and each one is looked at.
    let names: Vec<&str> = services
        .iter()
        .flat_map(|s| s["capabilities"].as_array().unwrap())
        .map(|c| c.as_str().unwrap())
        .collect();
    for capability in [
        "identity",
        "catalog",
        "billing",
        "fulfillment",
        "notification",
    ] {
        assert!(names.contains(&capability), "{capability} in {names:?}");
    }
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

/// Fails unless `r` is a problem+json of `status` and `kind`.
fn refused(r: &e2e::Reply, status: u16, kind: &str, what: &str) {
    assert_eq!(r.status.as_u16(), status, "{what}: {}", r.json);
    assert_eq!(
        r.problem_type(),
        format!("urn:seams:problem:{kind}"),
        "{what}: {}",
        r.json
    );
    assert_eq!(
        r.headers.get("content-type").and_then(|v| v.to_str().ok()),
        Some("application/problem+json"),
        "{what}"
    );
}

/// People at the edge: who has no token, a forged or an expired one, and
/// who asks for another customer's things or beyond their role.
async fn people_are_who_they_say_and_see_their_own(mode: Mode) -> anyhow::Result<()> {
    let shop = Shop::start(mode)?;
    let ann = shop.register("ann@example.com").await?;
    let bob = shop.register("bob@example.com").await?;
    shop.add_product("TEA", 450).await?;
    shop.receive_stock("TEA", 10).await?;
    let created = shop.create_invoice("bob-1", &bob, &[("TEA", 1)]).await?;
    e2e::expect(&created, reqwest::StatusCode::CREATED)?;
    let bobs_invoice = created.json["id"].as_str().unwrap_or_default().to_owned();
    let ann_t = shop.customer_token(&ann)?;
    let invoice_path = format!("/billing/invoices/{bobs_invoice}");

    // No token, a forged one, an expired one: 401 with a Bearer challenge.
    let forged = {
        let mut t = shop.customer_token(&bob)?;
        // The last character of the signature, changed.
        let last = if t.ends_with('A') { 'B' } else { 'A' };
        t.pop();
        t.push(last);
        t
    };
    let expired = shop.expired_token("customer", &bob, Duration::from_secs(600))?;
    let foreign = shop.foreign_token("staff", "mallory")?;
    for (what, token, kind) in [
        ("no token", None, "unauthenticated"),
        (
            "a changed signature",
            Some(forged.as_str()),
            "invalid-token",
        ),
        ("an expired token", Some(expired.as_str()), "invalid-token"),
        (
            "another issuer's key",
            Some(foreign.as_str()),
            "invalid-token",
        ),
        ("not a token", Some("hello"), "invalid-token"),
    ] {
        let r = shop.get_as(&invoice_path, token).await?;
        refused(&r, 401, kind, what);
        let challenge = r
            .headers
            .get("www-authenticate")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        assert!(challenge.starts_with("Bearer"), "{what}: {challenge:?}");
    }

    // Another customer's things are not there (404, so ids cannot be
    // probed); an invoice in their name is forbidden (403).
    let r = shop.get_as(&invoice_path, Some(&ann_t)).await?;
    assert_eq!(r.status, 404, "ann reading bob's invoice: {}", r.json);
    let r = shop
        .get_as(&format!("/identity/customers/{bob}"), Some(&ann_t))
        .await?;
    assert_eq!(r.status, 404, "ann reading bob: {}", r.json);
    let r = shop
        .get_as(
            &format!("/notification/deliveries?customer_id={bob}"),
            Some(&ann_t),
        )
        .await?;
    assert_eq!(r.status, 404, "ann reading bob's mail: {}", r.json);
    let r = shop
        .send(
            reqwest::Client::new()
                .patch(format!("{}/identity/customers/{bob}", shop.url()))
                .bearer_auth(&ann_t)
                .json(&serde_json::json!({ "email": "ann-catches-bob@example.com" })),
        )
        .await?;
    assert_eq!(r.status, 404, "ann changing bob's email: {}", r.json);
    let r = shop
        .post_as(
            "/billing/invoices",
            Some(&ann_t),
            &serde_json::json!({ "customer_id": bob, "lines": [{ "sku": "TEA", "quantity": 1 }] }),
            Some("ann-for-bob"),
        )
        .await?;
    refused(&r, 403, "forbidden", "ann invoicing bob");
    let r = shop
        .post_as(
            &format!("{invoice_path}/payments"),
            Some(&ann_t),
            &serde_json::json!({ "amount": { "amount": 450, "currency": "EUR" } }),
            Some("ann-pays-bob"),
        )
        .await?;
    assert_eq!(r.status, 404, "ann paying bob's invoice: {}", r.json);
    assert_eq!(shop.invoice_status(&bobs_invoice).await?, "open");

    // Roles: customers write no catalog; staff and customers see no
    // operator's door; the operator does.
    let r = shop
        .post_as(
            "/catalog/products",
            Some(&ann_t),
            &serde_json::json!({ "sku": "FREE", "name": "Free", "price": { "amount": 0, "currency": "EUR" } }),
            None,
        )
        .await?;
    refused(&r, 403, "forbidden", "a customer adding a product");
    // The operator's doors: on the public address (the gateway's /metrics
    // merges the services'), and in a split system each service's own /metrics.
    let mut doors: Vec<String> = [
        "/_seams/dead-letters",
        "/_seams/contracts",
        "/_seams/consistency",
        "/metrics",
    ]
    .iter()
    .map(|p| format!("{}{p}", shop.url()))
    .collect();
    if matches!(mode, Mode::SplitHttp | Mode::SplitPostgresNats) {
        doors.push(format!("{}/metrics", shop.service_url("billing")?));
    }
    let http = reqwest::Client::new();
    for url in &doors {
        for (who, token) in [
            ("a customer", ann_t.as_str()),
            ("staff", shop.staff_token()),
        ] {
            let r = shop.send(http.get(url).bearer_auth(token)).await?;
            refused(&r, 403, "forbidden", &format!("{who} on {url}"));
        }
        let r = shop.send(http.get(url)).await?;
        refused(&r, 401, "unauthenticated", &format!("nobody on {url}"));
        let r = shop
            .send(http.get(url).bearer_auth(shop.operator_token()))
            .await?;
        assert_eq!(r.status, 200, "the operator on {url}: {}", r.json);
    }
    // Replaying a dead letter is the operator's too: others are refused
    // before anything is looked up.
    let replay = format!("{}/_seams/dead-letters/billing.1/replay", shop.url());
    for (who, token) in [
        ("a customer", ann_t.as_str()),
        ("staff", shop.staff_token()),
    ] {
        let r = shop.send(http.post(&replay).bearer_auth(token)).await?;
        refused(&r, 403, "forbidden", &format!("{who} replaying"));
    }
    let r = shop.send(http.post(&replay)).await?;
    refused(&r, 401, "unauthenticated", "nobody replaying");
    let r = shop
        .send(http.post(&replay).bearer_auth(shop.operator_token()))
        .await?;
    assert_eq!(
        r.status, 404,
        "the operator, no such dead letter: {}",
        r.json
    );
    // Rolling a split system's services out is the operator's alone; the
    // monolith has no such door.
    let rollout = format!("{}/_seams/rollout", shop.url());
    let body = serde_json::json!({ "capability": "shipping" });
    if matches!(mode, Mode::SplitHttp | Mode::SplitPostgresNats) {
        for (who, token) in [
            ("a customer", ann_t.as_str()),
            ("staff", shop.staff_token()),
        ] {
            let r = shop
                .send(http.post(&rollout).bearer_auth(token).json(&body))
                .await?;
            refused(&r, 403, "forbidden", &format!("{who} rolling out"));
        }
        let r = shop.send(http.post(&rollout).json(&body)).await?;
        refused(&r, 401, "unauthenticated", "nobody rolling out");
        let r = shop
            .send(
                http.post(&rollout)
                    .bearer_auth(shop.operator_token())
                    .json(&body),
            )
            .await?;
        assert_eq!(
            r.status, 404,
            "the operator, no such capability: {}",
            r.json
        );
    } else {
        let r = shop
            .send(
                http.post(&rollout)
                    .bearer_auth(shop.operator_token())
                    .json(&body),
            )
            .await?;
        assert_eq!(r.status, 404, "no rollout in one process: {}", r.json);
    }
    Ok(())
}

#[tokio::test]
async fn people_are_who_they_say_and_see_their_own_in_every_mode() {
    for mode in e2e::modes() {
        people_are_who_they_say_and_see_their_own(mode)
            .await
            .unwrap_or_else(|e| panic!("{mode:?}: {e:#}"));
    }
}

/// What the public address answers for a path that climbs out of its
/// capability: never the door it climbs to.
async fn dot_segments_reach_no_internal_door(mode: Mode) -> anyhow::Result<()> {
    let shop = Shop::start(mode)?;
    shop.register("ann@example.com").await?;
    let operator = shop.operator_token().to_owned();
    for path in [
        "/identity/../_seams/feed/identity?subscriber=notification%3C-identity&after=0",
        "/identity/%2e%2e/_seams/feed/identity?subscriber=notification%3C-identity&after=0",
        "/identity/%2E%2E/_seams/ops/identity.get-customer",
        "/billing/../metrics",
        "/billing/%2e%2e/metrics",
        "/billing/.%2e/metrics",
        "/billing/./../metrics",
        "/billing/%2fmetrics",
        "/billing/..%2fmetrics",
    ] {
        // Even as an operator: what is refused is the path, not the person.
        for token in [None, Some(operator.as_str())] {
            let (status, body) = shop.raw("GET", path, token)?;
            assert!(
                !body.contains("customer-registered") && !body.contains("# TYPE"),
                "{mode:?} {path}: an internal door answered: {body}"
            );
            match mode {
                // The gateway refuses the path before routing it.
                Mode::SplitHttp | Mode::SplitPostgresNats => {
                    assert_eq!(status, 400, "{path}: {body}");
                    assert!(body.contains("invalid-path"), "{path}: {body}");
                }
                // One router: the path matches no route.
                Mode::Monolith | Mode::MonolithChaos => {
                    assert!(matches!(status, 400 | 404), "{path}: {status} {body}");
                }
            }
        }
    }
    Ok(())
}

#[tokio::test]
async fn dot_segments_raw_and_encoded_reach_no_internal_door_in_every_mode() {
    for mode in e2e::modes() {
        dot_segments_reach_no_internal_door(mode)
            .await
            .unwrap_or_else(|e| panic!("{mode:?}: {e:#}"));
    }
}

/// Sends `sig` (`-STOP`, `-CONT`) to `pid`, a service this test's shop started.
fn signal(pid: u32, sig: &str) {
    let status = std::process::Command::new("kill")
        .args([sig, &pid.to_string()])
        .status()
        .unwrap();
    assert!(status.success(), "kill {sig} {pid}");
}

/// Who knocks on a service's door.
#[derive(Clone)]
enum Knock {
    Nobody,
    /// A person's token, as `Authorization: Bearer`.
    Person(String),
    /// A service's token, as `X-Seams-Peer`.
    Service(String),
}

impl Knock {
    fn on(&self, req: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        match self {
            Knock::Nobody => req,
            Knock::Person(t) => req.bearer_auth(t),
            Knock::Service(t) => req.header("x-seams-peer", t),
        }
    }
}

/// The doors between services: absent from the monolith; in a split
/// system open only to the services whose contracts declare them, and a
/// feed's position acknowledged only by its own subscriber, never past
/// its head, so a forged acknowledgement loses no event.
async fn services_use_only_declared_doors(mode: Mode) -> anyhow::Result<()> {
    let shop = Shop::start_with(
        mode,
        &["--retain-outbox-secs", "0", "--prune-every-secs", "1"],
    )?;
    let ann = shop.register("ann@example.com").await?;
    let ann_t = shop.customer_token(&ann)?;
    let get_customer = "/_seams/ops/identity.get-customer";
    let feed = |subscriber: &str, after: i64| {
        format!("/_seams/feed/identity?subscriber={subscriber}&after={after}&limit=10&wait_ms=0")
    };
    let http = reqwest::Client::new();

    // The public address serves neither door, to anyone.
    for token in [shop.operator_token(), shop.staff_token(), ann_t.as_str()] {
        let r = shop
            .post_as(
                get_customer,
                Some(token),
                &serde_json::json!({ "id": ann }),
                None,
            )
            .await?;
        assert_eq!(r.status, 404, "ops on the public address: {}", r.json);
        let r = shop
            .get_as(&feed("notification%3C-identity", 0), Some(token))
            .await?;
        assert_eq!(r.status, 404, "a feed on the public address: {}", r.json);
    }
    if matches!(mode, Mode::Monolith | Mode::MonolithChaos) {
        return Ok(());
    }
    let billing = Knock::Service(shop.service_token("billing")?);
    let notification = Knock::Service(shop.service_token("notification")?);
    let customer = Knock::Person(ann_t.clone());
    let operator = Knock::Person(shop.operator_token().to_owned());

    // Identity's own address: an operation for the services that declare
    // they call it (billing), not for fulfillment, people or nobody.
    let identity = shop.service_url("identity")?;
    let call = |knock: &Knock| {
        shop.send(
            knock.on(http
                .post(format!("{identity}{get_customer}"))
                .json(&serde_json::json!({ "id": ann }))),
        )
    };
    refused(
        &call(&Knock::Nobody).await?,
        401,
        "unauthenticated",
        "nobody calling identity",
    );
    for (who, knock) in [
        (
            "fulfillment, which declares no such call",
            Knock::Service(shop.service_token("fulfillment")?),
        ),
        (
            "notification, which declares no such call",
            notification.clone(),
        ),
        ("a customer", customer.clone()),
        ("the operator", operator.clone()),
        (
            "billing's token presented as a person's",
            Knock::Person(shop.service_token("billing")?),
        ),
    ] {
        let r = call(&knock).await?;
        assert!(
            matches!(r.status.as_u16(), 401 | 403),
            "{who}: {} {}",
            r.status,
            r.json
        );
    }
    let r = call(&billing).await?;
    assert_eq!(r.status, 200, "billing, which declares it: {}", r.json);
    assert_eq!(r.json["id"], ann.as_str());

    // The feed: only notification reads (and so acknowledges) identity's
    // events, as itself, and never past the head. Notification pauses
    // first, so what identity publishes now waits for it.
    let notification_pid = shop.service_pid("notification")?;
    signal(notification_pid, "-STOP");
    let bob = shop.register("bob@example.com").await;
    let attempts = [
        (
            Knock::Nobody,
            "notification%3C-identity",
            i64::MAX,
            401,
            "unauthenticated",
        ),
        (
            customer.clone(),
            "notification%3C-identity",
            i64::MAX,
            403,
            "forbidden",
        ),
        (
            operator.clone(),
            "notification%3C-identity",
            i64::MAX,
            403,
            "forbidden",
        ),
        (
            billing.clone(),
            "notification%3C-identity",
            i64::MAX,
            403,
            "forbidden",
        ),
        (
            billing.clone(),
            "billing%3C-identity",
            i64::MAX,
            403,
            "forbidden",
        ),
        (
            notification.clone(),
            "ghost%3C-identity",
            0,
            403,
            "forbidden",
        ),
        (
            notification.clone(),
            "notification%3C-identity",
            i64::MAX,
            400,
            "cursor-ahead",
        ),
    ];
    for (knock, subscriber, after, status, kind) in attempts {
        let r = shop
            .send(knock.on(http.get(format!("{identity}{}", feed(subscriber, after)))))
            .await?;
        refused(&r, status, kind, &format!("{subscriber} after {after}"));
    }
    // Pruning runs every second with no retention: had any of those been
    // taken as notification's acknowledgement, bob's registration would be gone
    // within a cycle. There is no event for "a cycle passed" to await, so
    // this waits out two.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    signal(notification_pid, "-CONT");
    // Notification learns each customer's contact from identity's events.
    let bob = bob?;
    for customer in [&ann, &bob] {
        let path = format!("/notification/contacts/{customer}");
        shop.until(
            &format!("{customer}'s contact"),
            Duration::from_secs(30),
            async || {
                let r = shop.get(&path).await?;
                Ok((r.status == 200).then_some(()))
            },
        )
        .await
        .map_err(|e| anyhow::anyhow!("an event was lost: {e:#}\n{}", shop.log()))?;
    }
    Ok(())
}

#[tokio::test]
async fn services_use_only_the_doors_their_contracts_declare_in_every_mode() {
    for mode in e2e::modes() {
        services_use_only_declared_doors(mode)
            .await
            .unwrap_or_else(|e| panic!("{mode:?}: {e:#}"));
    }
}
