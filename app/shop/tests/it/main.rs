//! The `shop` command itself: argument handling and the contract table.
//! (The system's behaviour is the end-to-end suite's job, in `tests/e2e`.)

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
fn demo_against_nothing_fails_clearly() {
    let out = shop()
        .args(["demo", "--url", "http://127.0.0.1:9"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("is the system running"));
}
