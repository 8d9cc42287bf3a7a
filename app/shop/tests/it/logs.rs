//! `--log-format json`: the real binary's stderr is one JSON object per
//! line, every line names its service, and the lines of a request, of the
//! handling of the event it caused and of the mail that event sent carry
//! the request's trace id and correlation id.

use std::path::Path;
use std::time::{Duration, Instant};

use seams_testkit::process::Server;
use serde_json::{Map, Value, json};

const TRACE_ID: &str = "0af7651916cd43dd8448eb211c80319c";

/// Every line of `log`, parsed; panics naming the first that is not a JSON object.
fn parse(log: &str) -> Vec<Map<String, Value>> {
    log.lines()
        .map(|line| match serde_json::from_str::<Value>(line) {
            Ok(Value::Object(o)) => o,
            _ => panic!("not a JSON object: {line:?}\nlog:\n{log}"),
        })
        .collect()
}

/// Whether `line` was written inside a span named `name` (with `field = value`).
fn within(line: &Map<String, Value>, name: &str, field: &str, value: &str) -> bool {
    line.get("spans")
        .and_then(Value::as_array)
        .is_some_and(|spans| {
            spans
                .iter()
                .any(|s| s["name"] == name && s[field].as_str() == Some(value))
        })
}

/// Reads `server`'s stderr until `found` holds of its lines, at most 30 s.
async fn wait_for(server: &Server, what: &str, found: impl Fn(&[Map<String, Value>]) -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let log = server.log();
        // A line being written may be cut short; only whole lines count.
        let whole = log.rsplit_once('\n').map_or("", |(done, _)| done);
        if found(&parse(whole)) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}; log:\n{log}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Starts `shop up` on a free port with its data in `data` and its stderr
/// in `data.log`.
fn start(data: &Path, envs: &[(&str, &str)], extra: &[&str]) -> Server {
    let data = data.to_str().unwrap();
    let mut args = vec![
        "up",
        "--addr",
        "127.0.0.1:0",
        "--data",
        data,
        "--durability",
        "normal",
    ];
    args.extend(extra);
    let log = Path::new(data).with_extension("log");
    Server::start(Path::new(env!("CARGO_BIN_EXE_shop")), &args, envs, &log).unwrap()
}

fn post(
    http: &reqwest::Client,
    url: String,
    token: Option<&str>,
    body: Value,
) -> reqwest::RequestBuilder {
    let req = http.post(url).json(&body);
    match token {
        Some(t) => req.bearer_auth(t),
        None => req,
    }
}

async fn created(req: reqwest::RequestBuilder) -> Value {
    let res = req.send().await.unwrap();
    let status = res.status();
    let body: Value = res.json().await.unwrap_or(Value::Null);
    assert_eq!(status, reqwest::StatusCode::CREATED, "{body}");
    body
}

#[tokio::test]
async fn json_logs_carry_the_request_s_trace_through_its_event_and_its_mail() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let server = start(
        &data,
        // The access log and the consumer's bookkeeping are debug lines.
        &[(
            "RUST_LOG",
            "info,sqlx=warn,seams_http=debug,notification=debug",
        )],
        &["--log-format", "json"],
    );
    let base = server.url().to_owned();
    let http = reqwest::Client::builder().no_proxy().build().unwrap();

    let email = "log-reader@example.com";
    let password = "a long enough password for the test";
    let customer = created(post(
        &http,
        format!("{base}/identity/customers"),
        None,
        json!({ "email": email, "name": "Log Reader", "password": password }),
    ))
    .await;
    let customer_id = customer["id"].as_str().unwrap().to_owned();
    let session = created(post(
        &http,
        format!("{base}/identity/sessions"),
        None,
        json!({ "email": email, "password": password }),
    ))
    .await;
    let token = session["access_token"].as_str().unwrap().to_owned();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_shop"))
        .args(["token", "--role", "staff", "--subject", "it", "--data"])
        .arg(&data)
        .env_remove("SHOP_SIGNING_KEYS")
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let staff = String::from_utf8(out.stdout).unwrap().trim().to_owned();
    created(post(
        &http,
        format!("{base}/catalog/products"),
        Some(&staff),
        json!({ "sku": "TEA", "name": "Tea", "price": { "amount": 450, "currency": "EUR" } }),
    ))
    .await;

    // The request under test: a customer's invoice, which calls catalog,
    // and whose `invoice-created` notification handles and mails.
    let invoice = created(
        post(
            &http,
            format!("{base}/billing/invoices"),
            Some(&token),
            json!({ "customer_id": customer_id, "lines": [{ "sku": "TEA", "quantity": 1 }] }),
        )
        .header("Idempotency-Key", "it-logs-1")
        .header("X-Correlation-Id", "it-logs-corr-1")
        .header("traceparent", format!("00-{TRACE_ID}-b7ad6b7169203331-01")),
    )
    .await;
    assert!(invoice["id"].is_string(), "{invoice}");

    let ours = |l: &Map<String, Value>| {
        l.get("trace_id").and_then(Value::as_str) == Some(TRACE_ID)
            && l.get("correlation_id").and_then(Value::as_str) == Some("it-logs-corr-1")
    };
    wait_for(&server, "the request's line", |lines| {
        lines
            .iter()
            .any(|l| ours(l) && within(l, "request", "path", "/billing/invoices"))
    })
    .await;
    wait_for(&server, "a line of invoice-created's handling", |lines| {
        lines
            .iter()
            .any(|l| ours(l) && within(l, "deliver", "event_type", "billing.invoice-created"))
    })
    .await;
    wait_for(&server, "the mail's line", |lines| {
        lines.iter().any(|l| {
            ours(l) && l["target"] == "notification::sender" && l["message"] == "delivered"
        })
    })
    .await;

    let status = server.stop(Duration::from_secs(60)).unwrap();
    assert!(status.success(), "{status}");
    let log = std::fs::read_to_string(data.with_extension("log")).unwrap();
    let lines = parse(&log);
    assert!(lines.len() > 3, "{log}");
    for line in &lines {
        assert_eq!(line.get("service"), Some(&json!("shop")), "{line:?}");
        assert!(
            line.contains_key("level") && line.contains_key("timestamp"),
            "{line:?}"
        );
    }
    // A line outside any request or delivery names no trace.
    assert!(
        lines
            .iter()
            .any(|l| l["message"] == "serving" && !l.contains_key("trace_id")),
        "{log}"
    );
}

#[tokio::test]
async fn the_format_comes_from_the_environment_and_text_stays_the_default() {
    let dir = tempfile::tempdir().unwrap();
    let stop = |server: Server, data: &Path| {
        let status = server.stop(Duration::from_secs(60)).unwrap();
        assert!(status.success(), "{status}");
        std::fs::read_to_string(data.with_extension("log")).unwrap()
    };
    let data = dir.path().join("json");
    let server = start(
        &data,
        &[("SHOP_LOG_FORMAT", "json"), ("RUST_LOG", "info")],
        &[],
    );
    let log = stop(server, &data);
    let lines = parse(&log);
    assert!(lines.iter().any(|l| l["message"] == "serving"), "{log}");

    let data = dir.path().join("text");
    let server = start(&data, &[("RUST_LOG", "info")], &[]);
    let log = stop(server, &data);
    assert!(log.contains(" INFO ") && log.contains("serving"), "{log}");
    assert!(!log.trim_start().starts_with('{'), "{log}");

    let out = std::process::Command::new(env!("CARGO_BIN_EXE_shop"))
        .args(["up", "--addr", "127.0.0.1:0"])
        .env("SHOP_LOG_FORMAT", "yaml")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("yaml") && err.contains("text") && err.contains("json"),
        "{err}"
    );
}
