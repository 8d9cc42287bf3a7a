//! `shop contracts check --against URL` checks this build's contracts
//! against what a running deployment serves at `/_seams/contracts`: with an
//! operator token (from a private file, never the command line) it finds
//! nothing breaking in a deployment of the same build; without one, or with
//! a customer's, it refuses.

use std::path::Path;
use std::process::Output;

use e2e::{Mode, Shop};
use seams_testkit::process::cargo_bin;

/// `shop contracts check --against url` with `token_file`, in a clean environment.
fn check_against(url: &str, token_file: Option<&Path>) -> Output {
    let mut cmd = std::process::Command::new(cargo_bin("shop").unwrap());
    cmd.args(["contracts", "check", "--against", url])
        .env_remove("SHOP_OPERATOR_TOKEN")
        .env_remove("SHOP_OPERATOR_TOKEN_FILE")
        .env_remove("SHOP_CONFIG");
    if let Some(f) = token_file {
        cmd.arg("--token-file").arg(f);
    }
    cmd.output().unwrap()
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn write_private(path: &Path, token: &str) {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .unwrap();
    f.write_all(token.as_bytes()).unwrap();
}

#[tokio::test]
async fn a_running_monolith_serves_contracts_this_build_does_not_break() {
    let shop = Shop::start(Mode::Monolith).unwrap();
    let dir = tempfile::tempdir().unwrap();

    let operator = dir.path().join("operator.jwt");
    write_private(&operator, shop.operator_token());
    let out = check_against(shop.url(), Some(&operator));
    assert!(out.status.success(), "{}", text(&out));
    let said = text(&out);
    assert!(
        said.contains(&format!("contracts checked against what {}", shop.url())),
        "{said}"
    );
    assert!(said.contains("no change."), "{said}");

    // The rows carry the schemas the check read.
    let rows = shop.get("/_seams/contracts").await.unwrap().json;
    let created = rows
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == "billing.invoice-created")
        .unwrap();
    assert_eq!(
        created["schemas"]["versions"]["2"]["required"],
        serde_json::json!(["invoice_id", "customer_id", "lines", "total"])
    );

    // No token: refused before asking.
    let out = check_against(shop.url(), None);
    assert!(!out.status.success());
    assert!(
        text(&out).contains("needs an operator token"),
        "{}",
        text(&out)
    );

    // A customer's token: the deployment refuses it.
    let customer = shop.register("contracts@example.com").await.unwrap();
    let customer_file = dir.path().join("customer.jwt");
    write_private(&customer_file, &shop.customer_token(&customer).unwrap());
    let out = check_against(shop.url(), Some(&customer_file));
    assert!(!out.status.success());
    assert!(text(&out).contains("403"), "{}", text(&out));

    // A token file others can read is refused, token or not.
    let open = dir.path().join("open.jwt");
    std::fs::write(&open, shop.operator_token()).unwrap();
    std::fs::set_permissions(&open, std::os::unix::fs::PermissionsExt::from_mode(0o644)).unwrap();
    let out = check_against(shop.url(), Some(&open));
    assert!(!out.status.success());
    assert!(text(&out).contains("chmod 600"), "{}", text(&out));
}
