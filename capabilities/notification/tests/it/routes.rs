//! The public route's answers to good and bad queries, and the options'
//! defaults and validation.

use axum::http::{Method, StatusCode};
use notification::ChannelOptions;

use super::*;

#[tokio::test]
async fn an_unknown_customer_has_no_deliveries() {
    let w = world().await;
    w.register("c-1", "alice@example.com", "Alice").await;
    w.invoice_created("c-1", &new_id()).await;
    w.deliver().await;

    let r = w
        .app
        .as_customer("c-2")
        .get("/notification/deliveries?customer_id=c-2")
        .await;

    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.json, serde_json::json!({ "deliveries": [] }));
    assert_eq!(w.deliveries("c-1").await.len(), 1);
}

#[tokio::test]
async fn a_customer_lists_only_their_own_deliveries() {
    let w = world().await;
    w.register("c-1", "alice@example.com", "Alice").await;
    w.invoice_created("c-1", &new_id()).await;
    w.deliver().await;
    let path = "/notification/deliveries?customer_id=c-1";
    let r = w.app.as_customer("c-2").get(path).await;
    assert_eq!(
        (r.status, r.problem_type()),
        (
            StatusCode::NOT_FOUND,
            "urn:seams:problem:customer-not-found"
        ),
        "{}",
        r.json
    );
    assert!(
        !r.json.to_string().contains("alice"),
        "nothing of hers leaks"
    );
    for (app, status) in [
        (w.app.as_staff(), StatusCode::FORBIDDEN),
        (w.app.as_operator(), StatusCode::FORBIDDEN),
        (w.app.anonymous(), StatusCode::UNAUTHORIZED),
    ] {
        assert_eq!(app.get(path).await.status, status);
    }
}

#[tokio::test]
async fn deliveries_are_listed_a_page_at_a_time() {
    let w = world().await;
    w.register("c-1", "alice@example.com", "Alice").await;
    let mut invoices = Vec::new();
    for _ in 0..5 {
        let id = new_id();
        w.invoice_created("c-1", &id).await;
        invoices.push(id);
    }
    w.deliver().await;
    let alice = w.app.as_customer("c-1");
    let mut seen = Vec::new();
    let mut after: Option<String> = None;
    let mut pages = 0;
    loop {
        let uri = match &after {
            None => "/notification/deliveries?customer_id=c-1&limit=2".to_owned(),
            Some(a) => format!("/notification/deliveries?customer_id=c-1&limit=2&after={a}"),
        };
        let r = alice.get(&uri).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.json);
        let page = r.json["deliveries"].as_array().unwrap();
        assert!(page.len() <= 2);
        seen.extend(page.iter().map(|d| d["event_id"].clone()));
        pages += 1;
        match r.json["next"].as_str() {
            Some(next) => after = Some(next.to_owned()),
            None => break,
        }
        assert!(pages < 10, "paging never ends");
    }
    assert_eq!(seen.len(), 5, "every delivery once, in order");
    assert_eq!(pages, 3);
    // Without a limit, all of them in one page of at most 100.
    assert_eq!(w.deliveries("c-1").await.len(), 5);
    for bad in [
        "limit=0",
        "limit=101",
        "limit=x",
        "after=-1",
        "after=x",
        "after=",
        "after=%2B1",
        "after=1234567890123456789",
    ] {
        let r = alice
            .get(&format!("/notification/deliveries?customer_id=c-1&{bad}"))
            .await;
        assert_eq!(
            (r.status, r.problem_type()),
            (StatusCode::BAD_REQUEST, "urn:seams:problem:invalid-query"),
            "{bad}: {}",
            r.json
        );
    }
}

#[tokio::test]
async fn a_listed_delivery_is_exactly_the_wire_type() {
    let w = world().await;
    w.register("c-1", "alice@example.com", "Alice").await;
    w.invoice_created("c-1", &new_id()).await;
    w.deliver().await;

    let r = w
        .app
        .as_customer("c-1")
        .get("/notification/deliveries?customer_id=c-1")
        .await;

    // `deny_unknown_fields` on the contract type: no extra or missing field.
    let parsed: notification_contract::Deliveries = serde_json::from_value(r.json).unwrap();
    assert_eq!(parsed.deliveries.len(), 1);
    assert_eq!(parsed.deliveries[0].status, "pending");
}

#[tokio::test]
async fn bad_queries_are_400_problems() {
    let w = world().await;
    let cases = [
        ("/notification/deliveries", "customer_id"),
        ("/notification/deliveries?customer_id=", "customer_id"),
        // Unknown parameters are rejected, not ignored: a misspelt name
        // would otherwise look like a customer with no messages.
        ("/notification/deliveries?customer-id=c-1", "customer-id"),
        (
            "/notification/deliveries?customer_id=c-1&status=failed",
            "status",
        ),
    ];
    for (uri, mentioned) in cases {
        let r = w.app.as_customer("c-1").get(uri).await;
        assert_eq!(
            (r.status, r.problem_type()),
            (StatusCode::BAD_REQUEST, "urn:seams:problem:invalid-query"),
            "{uri}: {}",
            r.json
        );
        assert_eq!(r.content_type(), "application/problem+json", "{uri}");
        assert!(
            r.json["detail"].as_str().unwrap_or("").contains(mentioned),
            "{uri}: {}",
            r.json
        );
    }
}

#[tokio::test]
async fn other_methods_and_paths_are_problems() {
    let w = world().await;
    let r = w
        .app
        .as_customer("c-1")
        .send(
            Method::POST,
            "/notification/deliveries?customer_id=c-1",
            "",
            &[],
        )
        .await;
    assert_eq!(
        (r.status, r.problem_type()),
        (
            StatusCode::METHOD_NOT_ALLOWED,
            "urn:seams:problem:method-not-allowed"
        )
    );
    let r = w.app.get("/notification/deliveries/d-1").await;
    assert_eq!(
        (r.status, r.problem_type()),
        (StatusCode::NOT_FOUND, "urn:seams:problem:not-found")
    );
}

#[tokio::test]
async fn options_default_to_a_maildir_under_the_data_directory_and_are_validated() {
    let env = Runtime::new(SystemOptions::default()).env("/srv/shop");
    let opts = Options::default_for(&env);
    assert_eq!(
        opts.channel,
        ChannelOptions::Maildir {
            dir: "/srv/shop/mail".into()
        }
    );
    assert_eq!(opts.retry, Options::DEFAULT_RETRY);
    assert_eq!(
        (
            opts.retry.max_attempts,
            opts.retry.initial_backoff,
            opts.retry.max_backoff
        ),
        (10, Duration::from_millis(200), Duration::from_secs(30))
    );
    assert_eq!(opts.consistency_wait, Duration::from_secs(2));
    assert_eq!(opts.consistency_wait, Options::DEFAULT_CONSISTENCY_WAIT);
    assert!(opts.validate().is_ok());

    let mut zero_attempts = opts.clone();
    zero_attempts.retry.max_attempts = 0;
    let zero_poll = Options {
        poll: Duration::ZERO,
        ..opts.clone()
    };
    let zero_batch = Options { batch: 0, ..opts };
    for (bad, key) in [
        (zero_attempts, "notification.retry.max_attempts"),
        (zero_poll, "notification.poll"),
        (zero_batch, "notification.batch"),
    ] {
        let err = bad.validate().unwrap_err().to_string();
        assert!(err.contains(key), "{err}");
    }
}
