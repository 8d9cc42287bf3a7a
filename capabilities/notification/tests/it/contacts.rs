//! The contact read model's route: answers with their freshness, reads that
//! present identity's consistency token and wait (bounded) for the
//! projection, stale reads, bad tokens and unknown contacts.

use std::time::{Duration, Instant};

use axum::http::{Method, StatusCode};
use notification::http::Contact;
use seams_testkit::oneshot::Reply;

use super::*;

/// `GET /notification/contacts/{customer_id}` with extra headers, as
/// that customer.
async fn get_contact(w: &World, customer_id: &str, headers: &[(&str, &str)]) -> Reply {
    w.app
        .as_customer(customer_id)
        .send(
            Method::GET,
            &format!("/notification/contacts/{customer_id}"),
            "",
            headers,
        )
        .await
}

/// The `Seams-Freshness` header of a reply, if any.
fn freshness(r: &Reply) -> Option<&str> {
    r.headers
        .get("seams-freshness")
        .map(|v| v.to_str().unwrap())
}

/// The `position=` a freshness header reports.
fn position(header: &str) -> u64 {
    header
        .split("; ")
        .find_map(|part| part.strip_prefix("position="))
        .unwrap_or_else(|| panic!("no position in {header:?}"))
        .parse()
        .unwrap()
}

#[tokio::test]
async fn a_contact_is_answered_with_how_fresh_it_is() {
    let w = world().await;
    w.register("c-1", "alice@example.com", "Alice Liddell")
        .await;

    // Before the projection ever read identity's feed it knows nothing and
    // cannot say how fresh it is.
    let r = get_contact(&w, "c-1", &[]).await;
    assert_eq!(
        (r.status, r.problem_type()),
        (StatusCode::NOT_FOUND, "urn:seams:problem:contact-not-found")
    );
    assert_eq!(freshness(&r), None);

    w.deliver().await;
    let r = get_contact(&w, "c-1", &[]).await;

    assert_eq!(r.status, StatusCode::OK, "{}", r.json);
    // `deny_unknown_fields`: exactly the wire type.
    let contact: Contact = serde_json::from_value(r.json.clone()).unwrap();
    assert_eq!(
        (
            contact.customer_id.as_str(),
            contact.email.as_str(),
            contact.name.as_str()
        ),
        ("c-1", "alice@example.com", "Alice Liddell")
    );
    assert_eq!(contact.updated_at, w.clock.now_rfc3339());
    let header = freshness(&r).expect("a freshness header");
    assert!(
        header.starts_with("subscription=notification<-identity; position=1; age-ms="),
        "{header}"
    );
    assert!(
        r.headers.get("seams-consistency-token").is_none(),
        "a read is not a write"
    );
}

#[tokio::test]
async fn an_unknown_contact_is_a_404_that_still_says_how_fresh_it_is() {
    let w = world().await;
    w.register("c-1", "alice@example.com", "Alice").await;
    w.deliver().await;

    for id in ["c-2", "C-1", "%20"] {
        let r = get_contact(&w, id, &[]).await;
        assert_eq!(
            (r.status, r.problem_type()),
            (StatusCode::NOT_FOUND, "urn:seams:problem:contact-not-found"),
            "{id}"
        );
        assert_eq!(r.content_type(), "application/problem+json");
        assert_eq!(position(freshness(&r).unwrap()), 1, "{id}");
    }
    let r = get_contact(&w, "c-2", &[]).await;
    assert_eq!(r.json["customer_id"], "c-2");
}

#[tokio::test]
async fn a_token_already_reached_is_answered_at_once() {
    let w = world().await;
    w.register("c-1", "alice@example.com", "Alice").await;
    let (_, position_2) = w.change_email("c-1", "alice@example.org").await;
    w.deliver().await;

    for token in [
        "identity:1".to_owned(),
        format!("identity:{position_2}"),
        "identity:0".into(),
    ] {
        let r = get_contact(&w, "c-1", &[("seams-consistency-token", &token)]).await;
        assert_eq!(r.status, StatusCode::OK, "{token}: {}", r.json);
        assert_eq!(r.json["email"], "alice@example.org", "{token}");
        assert_eq!(position(freshness(&r).unwrap()), position_2, "{token}");
    }
}

#[tokio::test]
async fn a_token_ahead_of_the_projection_is_a_stale_read_after_the_bounded_wait() {
    let wait = Duration::from_millis(100);
    let w = world_with(|opts| Options {
        consistency_wait: wait,
        ..opts
    })
    .await;
    w.register("c-1", "alice@example.com", "Alice").await;
    w.deliver().await;
    let (_, changed_at) = w.change_email("c-1", "alice@example.org").await;
    let token = format!("identity:{changed_at}");

    let started = Instant::now();
    let r = get_contact(&w, "c-1", &[("seams-consistency-token", &token)]).await;
    let waited = started.elapsed();

    assert_eq!(
        (r.status, r.problem_type()),
        (
            StatusCode::SERVICE_UNAVAILABLE,
            "urn:seams:problem:stale-read"
        ),
        "never the old address: {}",
        r.json
    );
    assert!(waited >= wait, "gave up after {waited:?}, before the wait");
    assert!(waited < Duration::from_secs(2), "bounded: {waited:?}");
    assert_eq!(r.content_type(), "application/problem+json");
    assert_eq!(
        r.headers.get("retry-after").map(|v| v.to_str().unwrap()),
        Some("1")
    );
    let header = freshness(&r).expect("a stale read says how fresh it is");
    assert_eq!(position(header), 1, "{header}");
    assert_eq!(r.json["subscription"], "notification<-identity");
    assert_eq!(r.json["position"], 1);
    assert_eq!(r.json["wanted"], changed_at);
    assert!(r.json.get("email").is_none(), "{}", r.json);

    // Without a token the old address is answered, with its freshness: the
    // client did not ask to read its own write.
    let r = get_contact(&w, "c-1", &[]).await;
    assert_eq!(r.json["email"], "alice@example.com");
    assert_eq!(position(freshness(&r).unwrap()), 1);
}

#[tokio::test]
async fn a_read_with_a_token_waits_for_the_relay_and_answers_the_write() {
    let w = world().await;
    w.register("c-1", "alice@example.com", "Alice").await;
    w.deliver().await;
    let (_, changed_at) = w.change_email("c-1", "alice@example.org").await;
    let token = format!("identity:{changed_at}");

    let app = w.app.as_customer("c-1");
    let reading = tokio::spawn(async move {
        app.send(
            Method::GET,
            "/notification/contacts/c-1",
            "",
            &[("seams-consistency-token", &token)],
        )
        .await
    });
    // Let the read get to its wait; the relay has not run, so it cannot finish.
    for _ in 0..100 {
        tokio::task::yield_now().await;
    }
    assert!(!reading.is_finished(), "the read waits for the projection");

    w.deliver().await;
    let r = tokio::time::timeout(Duration::from_secs(5), reading)
        .await
        .expect("the read finishes once the projection caught up")
        .unwrap();

    assert_eq!(r.status, StatusCode::OK, "{}", r.json);
    assert_eq!(
        r.json["email"], "alice@example.org",
        "the client's own write"
    );
    assert!(position(freshness(&r).unwrap()) >= changed_at);
}

#[tokio::test]
async fn a_token_that_is_not_identity_s_is_a_400() {
    let w = world().await;
    w.register("c-1", "alice@example.com", "Alice").await;
    w.deliver().await;
    let cases: &[&[&str]] = &[
        &["billing:1"],
        &["fulfillment:1"],
        &["identity"],
        &["identity:"],
        &["identity:x"],
        &["identity:-1"],
        &["identity:1:2"],
        &["IDENTITY:1"],
        &[":1"],
        &[""],
        &["identity:1", "identity:1"],
    ];
    for tokens in cases {
        let headers: Vec<(&str, &str)> = tokens
            .iter()
            .map(|t| ("seams-consistency-token", *t))
            .collect();
        let r = get_contact(&w, "c-1", &headers).await;
        assert_eq!(
            (r.status, r.problem_type()),
            (
                StatusCode::BAD_REQUEST,
                "urn:seams:problem:invalid-consistency-token"
            ),
            "{tokens:?}: {}",
            r.json
        );
        assert_eq!(r.content_type(), "application/problem+json");
        assert!(freshness(&r).is_some(), "{tokens:?}");
    }
    // Also for a contact it does not know: the token is checked first.
    let r = get_contact(&w, "c-2", &[("seams-consistency-token", "billing:1")]).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn other_methods_on_a_contact_are_405() {
    let w = world().await;
    let r = w
        .app
        .as_customer("c-1")
        .send(Method::DELETE, "/notification/contacts/c-1", "", &[])
        .await;
    assert_eq!(
        (r.status, r.problem_type()),
        (
            StatusCode::METHOD_NOT_ALLOWED,
            "urn:seams:problem:method-not-allowed"
        )
    );
}

#[tokio::test]
async fn a_contact_is_its_customer_s_alone() {
    let w = world().await;
    w.register("c-1", "alice@example.com", "Alice").await;
    w.deliver().await;
    assert_eq!(get_contact(&w, "c-1", &[]).await.status, StatusCode::OK);
    // To anyone else, Alice's contact is "not found", like a contact that is not there.
    let r = w
        .app
        .as_customer("c-2")
        .get("/notification/contacts/c-1")
        .await;
    assert_eq!(
        (r.status, r.problem_type()),
        (StatusCode::NOT_FOUND, "urn:seams:problem:contact-not-found")
    );
    assert!(
        !r.bytes.windows(5).any(|w| w == b"alice"),
        "nothing of hers leaks"
    );
    // A consistency token does not make anyone wait on somebody else's contact.
    let started = Instant::now();
    let r = w
        .app
        .as_customer("c-2")
        .send(
            Method::GET,
            "/notification/contacts/c-1",
            "",
            &[("seams-consistency-token", "identity:999")],
        )
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert!(
        started.elapsed() < Duration::from_millis(500),
        "{:?}",
        started.elapsed()
    );
    for (app, status) in [
        (w.app.as_staff(), StatusCode::FORBIDDEN),
        (w.app.anonymous(), StatusCode::UNAUTHORIZED),
    ] {
        assert_eq!(app.get("/notification/contacts/c-1").await.status, status);
    }
}
