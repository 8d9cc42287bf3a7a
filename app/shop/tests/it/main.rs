//! The `shop` command itself: argument handling and the contract table.
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
    assert!(table.contains("consumed by   notification"));
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
    let out = shop()
        .args(["up", "--bench-off", "everything"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("possible values"));
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
