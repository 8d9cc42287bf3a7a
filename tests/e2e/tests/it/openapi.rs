//! `/openapi.json` is a valid OpenAPI document by `openapi-spec-validator`
//! (the Python package most OpenAPI tooling validates with), whatever the
//! framework added to it (declared answers, access, extensions). Without
//! the package the test says so and skips, except under `CI=true`, where
//! it fails (`.ci/run` installs it).

use e2e::{Mode, Shop};
use reqwest::StatusCode;

/// Validates the file named by the first argument; prints what it found.
const VALIDATE: &str = "import json, sys
from openapi_spec_validator import validate
doc = json.load(open(sys.argv[1]))
validate(doc)
print('valid OpenAPI', doc['openapi'] + ':', len(doc['paths']), 'paths')";

/// Whether python3 can import the validator.
fn validator() -> bool {
    let present = std::process::Command::new("python3")
        .args(["-c", "import openapi_spec_validator"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !present {
        let why = "python3 and openapi-spec-validator are needed \
                   (python3 -m pip install openapi-spec-validator)";
        assert!(
            !seams_testkit::in_ci(),
            "{why}; CI=true, so failing instead of skipping"
        );
        eprintln!("SKIPPED: {why}; the OpenAPI document was not validated");
    }
    present
}

/// What the validator says of `doc`, and whether it passed.
fn validate(doc: &serde_json::Value) -> (bool, String) {
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), doc.to_string()).unwrap();
    let out = std::process::Command::new("python3")
        .args(["-c", VALIDATE])
        .arg(file.path())
        .output()
        .unwrap();
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), said)
}

#[tokio::test]
async fn openapi_json_is_valid_by_openapi_spec_validator() {
    if !validator() {
        return;
    }
    let shop = Shop::start(Mode::Monolith).unwrap();
    let r = shop
        .send(shop.http().get(format!("{}/openapi.json", shop.url())))
        .await
        .unwrap();
    assert_eq!(r.status, StatusCode::OK);
    let doc = r.json;

    let (ok, said) = validate(&doc);
    assert!(ok, "{said}");
    let paths = doc["paths"].as_object().unwrap().len();
    assert!(
        said.contains(&format!(
            "valid OpenAPI {}: {paths} paths",
            doc["openapi"].as_str().unwrap()
        )),
        "{said}"
    );

    // The validator can fail: an answer without its description is invalid.
    let mut broken = doc.clone();
    let (path, item) = doc["paths"].as_object().unwrap().iter().next().unwrap();
    let method = item.as_object().unwrap().keys().next().unwrap().clone();
    broken["paths"][path][&method]["responses"] = serde_json::json!({ "200": { "content": {} } });
    let (ok, said) = validate(&broken);
    assert!(!ok, "a response without a description passed: {said}");
}
