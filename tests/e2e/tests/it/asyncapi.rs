//! `/asyncapi.json`, open to anyone like `/openapi.json`, describes every
//! event channel, and the AsyncAPI initiative's own parser
//! (`@asyncapi/parser`, run by node from `tests/asyncapi`) finds it valid.
//! Without node or that package the test says so and skips, except under
//! `CI=true`, where it fails (`.ci/run` installs the package).

use std::path::PathBuf;

use e2e::{Mode, Shop};
use reqwest::StatusCode;

/// `tests/asyncapi`, if node and its installed parser are there.
fn validator() -> Option<PathBuf> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../asyncapi");
    let node = std::process::Command::new("node")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    let parser = dir
        .join("node_modules/@asyncapi/parser/package.json")
        .exists();
    if node && parser {
        return Some(dir);
    }
    let why = "node and @asyncapi/parser are needed (cd tests/asyncapi && npm ci)";
    assert!(
        !seams_testkit::in_ci(),
        "{why}; CI=true, so failing instead of skipping"
    );
    eprintln!("SKIPPED: {why}; the AsyncAPI document was not validated");
    None
}

#[tokio::test]
async fn asyncapi_json_is_open_and_valid_asyncapi_3() {
    let Some(dir) = validator() else {
        return;
    };
    // In one process, and from the gateway of a split system, which merges
    // what each service says about the events it publishes.
    let mut last = serde_json::Value::Null;
    for mode in [Mode::Monolith, Mode::SplitHttp] {
        let shop = Shop::start(mode).unwrap();
        // No token, like /openapi.json.
        let r = shop
            .send(shop.http().get(format!("{}/asyncapi.json", shop.url())))
            .await
            .unwrap();
        assert_eq!(r.status, StatusCode::OK, "{mode:?}");
        let doc = r.json;
        assert_eq!(doc["asyncapi"], "3.0.0");
        let channels = doc["channels"].as_object().unwrap();
        assert_eq!(channels.len(), 10, "{mode:?}: {:?}", channels.keys());
        let created = &doc["channels"]["billing.invoice-created"]["messages"];
        assert_eq!(
            created["v2"]["payload"]["required"],
            serde_json::json!(["invoice_id", "customer_id", "lines", "total"]),
            "{mode:?}"
        );
        assert!(
            created["v1"]["payload"].is_null(),
            "v1's schema is in the snapshot"
        );
        // Every consumer, wherever it runs.
        for op in [
            "fulfillment.receive.billing.invoice-paid",
            "notification.receive.billing.invoice-paid",
            "billing.send.billing.invoice-paid",
        ] {
            assert!(doc["operations"].get(op).is_some(), "{mode:?}: {op}");
        }
        if mode == Mode::SplitHttp {
            assert_eq!(doc["channels"], last["channels"], "both modes say the same");
            assert_eq!(doc["operations"], last["operations"]);
        }
        validate(&dir, &doc).unwrap_or_else(|said| panic!("{mode:?}: {said}"));
        last = doc;
    }
    // The validator can fail: a dangling reference is an error.
    let mut broken = last;
    broken["channels"]["billing.invoice-created"]["messages"]["v2"]["payload"] =
        serde_json::json!({ "$ref": "#/components/schemas/Missing" });
    assert!(validate(&dir, &broken).is_err());
}

/// Runs the parser over `doc`: what it said, as an error when it refused it.
fn validate(dir: &std::path::Path, doc: &serde_json::Value) -> Result<String, String> {
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), doc.to_string()).unwrap();
    let out = std::process::Command::new("node")
        .arg(dir.join("validate.mjs"))
        .arg(file.path())
        .output()
        .unwrap();
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    match out.status.success() && said.contains("valid AsyncAPI 3.0.0: 10 channels") {
        true => Ok(said),
        false => Err(said),
    }
}
