//! The `shop` command itself: argument handling, the contract table, and
//! the contract check against (mutated copies of) the committed snapshots.
//! (The system's behaviour is the end-to-end suite's job, in `tests/e2e`.)

mod logs;

use std::process::Command;

fn shop() -> Command {
    Command::new(env!("CARGO_BIN_EXE_shop"))
}

#[test]
fn contracts_answers_the_five_questions_for_every_interaction() {
    let out = shop().arg("contracts").output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let table = String::from_utf8(out.stdout).unwrap();
    for name in [
        "QUERY catalog.quote-prices",
        "QUERY identity.get-customer",
        "COMMAND billing.create-invoice",
        "COMMAND billing.pay-invoice",
        "EVENT billing.invoice-created",
        "EVENT identity.customer-registered",
    ] {
        assert!(table.contains(name), "missing {name} in:\n{table}");
    }
    assert!(table.contains("Idempotency-Key (fingerprinted)"));
    assert!(table.contains("consumed by   notification (reads v1)"));
    // Each consumer of an event with the versions it reads.
    assert!(
        table.contains(
            "consumed by   fulfillment (reads v1, v2), notification (reads v1, v2)\n  1 retries     bus"
        ),
        "{table}"
    );
    // Who may call an operation served between services, as declared.
    let quote = table
        .split("QUERY catalog.quote-prices")
        .nth(1)
        .and_then(|rest| rest.lines().find(|l| l.contains("called by")))
        .unwrap_or_default();
    assert_eq!(quote.trim(), "called by     billing", "{table}");
    assert_eq!(
        table.matches("  5 versions").count(),
        table.matches("  1 retries").count()
    );
}

#[test]
fn bad_arguments_are_refused_with_a_message() {
    let out = shop()
        .args(["up", "--addr", "not-an-address"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--addr"));
    let out = shop()
        .args(["up", "--durability", "sometimes"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let out = shop().arg("nonsense").output().unwrap();
    assert!(!out.status.success());
}

#[test]
fn a_retention_that_would_let_a_duplicate_through_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let out = shop()
        .args([
            "up",
            "--addr",
            "127.0.0.1:0",
            "--retain-inbox-secs",
            "60",
            "--data",
        ])
        .arg(dir.path())
        .env("RUST_BACKTRACE", "0")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("inbox retention 60s is shorter than outbox retention"),
        "{err}"
    );
}

#[test]
fn demo_against_nothing_fails_clearly() {
    let out = shop()
        .args(["demo", "--url", "http://127.0.0.1:9"])
        .env("SHOP_STAFF_TOKEN", "given")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("is the system running"));
    // Without a staff token and without keys to mint one, it says so.
    let dir = tempfile::tempdir().unwrap();
    let out = shop()
        .args(["demo", "--url", "http://127.0.0.1:9", "--data"])
        .arg(dir.path())
        .env_remove("SHOP_STAFF_TOKEN")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("SHOP_STAFF_TOKEN"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test]
async fn token_mints_with_the_deployment_s_keys_and_keys_rotate() {
    let dir = tempfile::tempdir().unwrap();
    let mint = |args: &[&str]| {
        shop()
            .arg("token")
            .args(args)
            .arg("--data")
            .arg(dir.path())
            .env_remove("SHOP_SIGNING_KEYS")
            .output()
            .unwrap()
    };
    let out = mint(&["--role", "staff", "--subject", "sam", "--ttl", "15m"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let token = String::from_utf8(out.stdout).unwrap().trim().to_owned();
    let path = dir.path().join("keys/signing-keys.json");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
        0o600,
        "the key file was created private"
    );
    let keys = seams_auth::KeyStore::open(&path).unwrap();
    let verifier = seams_auth::Verifier::new(vec![seams_auth::Issuer::deployment("seams", keys)]);
    let who = verifier.verify(&token).await.unwrap();
    assert!(who.has_role(seams_core::auth::Role::Staff), "{who:?}");

    let out = mint(&["--role", "service", "--subject", "billing"]);
    assert!(out.status.success());
    let svc = String::from_utf8(out.stdout).unwrap();
    assert!(verifier.verify(svc.trim()).await.unwrap().runs("billing"));

    for (args, says) in [
        (vec!["--role", "admin", "--subject", "x"], "admin"),
        (
            vec!["--role", "staff", "--subject", "x", "--ttl", "90d"],
            "30 days",
        ),
        (
            vec!["--role", "staff", "--subject", "x", "--ttl", "soon"],
            "--ttl",
        ),
        (
            vec!["--role", "service", "--subject", "payroll"],
            "unknown capability",
        ),
        (
            vec![
                "--role",
                "staff",
                "--subject",
                "x",
                "--capability",
                "billing",
            ],
            "service tokens only",
        ),
    ] {
        let out = mint(&args);
        assert!(!out.status.success(), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(says), "{args:?}: {err}");
    }

    let out = shop()
        .args(["keys", "rotate", "--data"])
        .arg(dir.path())
        .env_remove("SHOP_SIGNING_KEYS")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let keys = seams_auth::SigningKeys::load(&path).unwrap();
    assert_eq!(keys.kids().len(), 2);
    // The token minted before the rotation still verifies with the new set.
    let verifier = seams_auth::Verifier::new(vec![seams_auth::Issuer::deployment(
        "seams",
        seams_auth::KeyStore::open(&path).unwrap(),
    )]);
    assert!(verifier.verify(&token).await.is_ok());
}

#[test]
fn a_bad_configuration_file_is_refused_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("shop.toml");
    std::fs::write(&path, "adress = \"127.0.0.1:1\"\n").unwrap();
    let out = shop()
        .args(["--config", path.to_str().unwrap(), "up"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("unknown field `adress`"), "{err}");
    let out = shop()
        .args(["--config", "/nonexistent/shop.toml", "up"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent/shop.toml"));
}

#[test]
fn serve_refuses_a_placement_that_leaves_a_capability_nowhere() {
    let out = shop()
        .args(["serve", "billing", "--addr", "127.0.0.1:0"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("neither served here nor given with --peer"),
        "{err}"
    );
    // The parser refuses a name not in the capability table, listing the table.
    let out = shop().args(["serve", "payroll"]).output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("invalid value 'payroll'"), "{err}");
    assert!(
        err.contains(&format!(
            "possible values: {}",
            shop::capabilities::NAMES.join(", ")
        )),
        "{err}"
    );
}

/// A copy of the committed snapshots under a fresh root, billing's `mutate`d.
fn snapshots(mutate: impl FnOnce(&mut serde_json::Value)) -> tempfile::TempDir {
    snapshots_of("billing", mutate)
}

/// A copy of the committed snapshots under a fresh root, `cap`'s `mutate`d.
fn snapshots_of(cap: &str, mutate: impl FnOnce(&mut serde_json::Value)) -> tempfile::TempDir {
    let root = tempfile::tempdir().unwrap();
    let repo = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    for cap in [
        "identity",
        "catalog",
        "billing",
        "fulfillment",
        "notification",
    ] {
        let rel = format!("capabilities/{cap}-contract/contract-snapshot.json");
        std::fs::create_dir_all(root.path().join(format!("capabilities/{cap}-contract"))).unwrap();
        std::fs::copy(repo.join(&rel), root.path().join(&rel)).unwrap();
    }
    let file = root.path().join(format!(
        "capabilities/{cap}-contract/contract-snapshot.json"
    ));
    let mut doc: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
    mutate(&mut doc);
    std::fs::write(&file, doc.to_string()).unwrap();
    root
}

fn check(root: &std::path::Path) -> (bool, String) {
    let out = shop()
        .args(["contracts", "check", "--root"])
        .arg(root)
        .env("RUST_BACKTRACE", "0")
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

#[test]
fn the_committed_snapshots_match_the_declarations_and_snapshot_rewrites_them_unchanged() {
    let root = snapshots(|_| {});
    let (ok, text) = check(root.path());
    assert!(ok && text.contains("no change."), "{text}");
    let committed = |root: &std::path::Path| {
        std::fs::read_to_string(root.join("capabilities/catalog-contract/contract-snapshot.json"))
            .unwrap()
    };
    let out = shop()
        .args(["contracts", "snapshot", "--root"])
        .arg(root.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let repo = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    assert_eq!(committed(root.path()), committed(&repo));
}

#[test]
fn contracts_check_fails_on_each_break_of_a_mutated_snapshot_and_passes_compatible_ones() {
    let event = "/events/billing.invoice-created/versions/2";
    let request = "/operations/billing.create-invoice/versions/1/request";
    type Mutation = Box<dyn FnOnce(&mut serde_json::Value)>;
    let breaks: Vec<(&str, Mutation)> = vec![
        // The code no longer sends a field consumers read.
        (
            "BREAKING   billing.invoice-created v2 payload /tax: removed: no longer sent, and readers require it\n           affects billing (producer), fulfillment, notification",
            Box::new(move |d| {
                let e = d.pointer_mut(event).unwrap();
                e["properties"]["tax"] = serde_json::json!({ "type": "integer" });
                e["required"].as_array_mut().unwrap().push("tax".into());
            }),
        ),
        // The code requires a field clients do not send.
        (
            "BREAKING   billing.create-invoice v1 request /customer_id: new required field",
            Box::new(move |d| {
                let r = d.pointer_mut(request).unwrap();
                r["properties"]
                    .as_object_mut()
                    .unwrap()
                    .remove("customer_id");
                r["required"] = serde_json::json!(["lines"]);
            }),
        ),
        // Fewer lines allowed in the code than clients were promised.
        (
            "BREAKING   billing.create-invoice v1 request /lines: maxItems changed from 1000 to 100",
            Box::new(move |d| {
                d.pointer_mut(request).unwrap()["properties"]["lines"]["maxItems"] = 1000.into()
            }),
        ),
        // An operation the code no longer has.
        (
            "BREAKING   billing.refund-invoice v1: operation removed or renamed",
            Box::new(|d| {
                let op = d["operations"]["billing.pay-invoice"].clone();
                d["operations"]["billing.refund-invoice"] = op;
            }),
        ),
        // A version the code no longer accepts.
        (
            "BREAKING   billing.invoice-paid v2: version v2 no longer accepted",
            Box::new(|d| {
                d["events"]["billing.invoice-paid"]["accepts"] = serde_json::json!([1, 2])
            }),
        ),
    ];
    for (expected, mutate) in breaks {
        let root = snapshots(mutate);
        let (ok, text) = check(root.path());
        assert!(!ok, "{text}");
        assert!(text.contains(expected), "expected {expected:?} in:\n{text}");
        assert!(text.contains("FAILED: 1 breaking change(s)"), "{text}");
    }

    // A GET's query is its request: a parameter the code now requires
    // breaks clients that did not send it; one it now merely accepts does not.
    let query = "/operations/notification.list-deliveries/versions/1/request";
    let root = snapshots_of("notification", move |d| {
        let q = d.pointer_mut(query).unwrap();
        q["properties"]
            .as_object_mut()
            .unwrap()
            .remove("customer_id");
        q["required"] = serde_json::json!([]);
    });
    let (ok, text) = check(root.path());
    assert!(!ok, "{text}");
    assert!(
        text.contains(
            "BREAKING   notification.list-deliveries v1 request /customer_id: new required field"
        ),
        "{text}"
    );
    let root = snapshots_of("notification", move |d| {
        let q = d.pointer_mut(query).unwrap();
        q["properties"].as_object_mut().unwrap().remove("after");
    });
    let (ok, text) = check(root.path());
    assert!(ok, "{text}");
    assert!(
        text.contains("compatible notification.list-deliveries v1 request /after"),
        "{text}"
    );

    // The code widened a request's range: compatible, reported, passing.
    let root = snapshots(move |d| {
        d.pointer_mut(request).unwrap()["properties"]["lines"]["maxItems"] = 10.into()
    });
    let (ok, text) = check(root.path());
    assert!(ok, "{text}");
    assert!(
        text.contains(
            "compatible billing.create-invoice v1 request /lines: maxItems changed from 10 to 100"
        ),
        "{text}"
    );
}
