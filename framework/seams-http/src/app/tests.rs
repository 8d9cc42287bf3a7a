//! What the edge does to every request: the handler sees the caller's trace,
//! and the response, matched or not, carries the correlation headers; only
//! a verified service may set a deadline or speak for a client's address.

use axum::body::Body;
use axum::routing::get;
use http_body_util::BodyExt;
use seams_auth::Verifier;
use tower::ServiceExt;

use super::*;
use crate::Ctx;
use crate::correlation::{CORRELATION_ID, TRACEPARENT};

const PARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

fn app() -> Router {
    let routes = Router::new().route(
        "/who/{id}",
        get(|Ctx(ctx): Ctx| async move { ctx.trace.to_traceparent() }),
    );
    public(
        vec![("cap", routes)],
        Router::new(),
        Arc::new(Verifier::new(Vec::new())),
    )
}

async fn send(uri: &str) -> (Response, String) {
    let req = Request::builder()
        .uri(uri)
        .header(&TRACEPARENT, PARENT)
        .body(Body::empty())
        .unwrap();
    let res = app().oneshot(req).await.unwrap();
    let (parts, body) = res.into_parts();
    let body = body.collect().await.unwrap().to_bytes();
    (
        Response::from_parts(parts, Body::empty()),
        String::from_utf8(body.to_vec()).unwrap(),
    )
}

#[tokio::test]
async fn the_handler_runs_in_a_child_of_the_callers_trace_and_the_response_says_so() {
    let (res, seen) = send("/cap/who/7").await;
    assert_eq!(res.status(), 200);
    assert_eq!(
        res.headers()[&CORRELATION_ID],
        "4bf92f3577b34da6a3ce929d0e0e4736"
    );
    assert_eq!(res.headers()[&TRACEPARENT], seen.as_str());
    assert!(
        seen.starts_with("00-4bf92f3577b34da6a3ce929d0e0e4736-"),
        "{seen}"
    );
    assert!(
        !seen.contains("00f067aa0ba902b7"),
        "a child span, not the caller's: {seen}"
    );
}

#[tokio::test]
async fn unmatched_requests_are_problems_with_the_same_headers() {
    let (res, body) = send("/nowhere").await;
    assert_eq!(res.status(), 404);
    assert_eq!(
        res.headers()[&CORRELATION_ID],
        "4bf92f3577b34da6a3ce929d0e0e4736"
    );
    assert!(body.contains("not-found"), "{body}");
}

/// A deployment's keys, the verifier trusting them, and a router whose one
/// route reports what the edge let through.
fn trusting() -> (seams_auth::Minter, Router) {
    let keys = seams_auth::KeyStore::in_memory(seams_auth::SigningKeys::generate().unwrap());
    let minter = seams_auth::Minter::new(keys.clone(), "t");
    let verifier = Arc::new(Verifier::new(vec![seams_auth::Issuer::deployment(
        "t", keys,
    )]));
    let routes = Router::new().route(
        "/seen",
        get(
            |Ctx(ctx): Ctx,
             crate::ClientAddr(addr): crate::ClientAddr,
             crate::Caller(caller): crate::Caller| async move {
                format!(
                    "deadline={} addr={addr:?} caller={caller:?}",
                    ctx.deadline.is_some()
                )
            },
        ),
    );
    (
        minter,
        public(vec![("cap", routes)], Router::new(), verifier),
    )
}

async fn seen(app: &Router, headers: &[(&str, &str)]) -> (u16, String) {
    let mut req = Request::builder().uri("/cap/seen");
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let mut req = req.body(Body::empty()).unwrap();
    req.extensions_mut()
        .insert(ConnectInfo(SocketAddr::from(([192, 0, 2, 7], 4000))));
    let res = app.clone().oneshot(req).await.unwrap();
    let status = res.status().as_u16();
    let body = res.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8(body.to_vec()).unwrap())
}

#[tokio::test]
async fn a_client_s_deadline_and_forwarded_address_are_ignored_a_services_believed() {
    let (minter, app) = trusting();
    let claims = [
        ("x-seams-deadline-ms", "1"),
        ("x-forwarded-for", "203.0.113.9"),
    ];
    let (status, body) = seen(&app, &claims).await;
    assert_eq!(status, 200);
    assert!(body.contains("deadline=false"), "{body}");
    assert!(
        body.contains("addr=Some(192.0.2.7)"),
        "the connection's: {body}"
    );

    let gateway = minter
        .service("gateway", &[], std::time::Duration::from_secs(60))
        .unwrap()
        .token;
    let mut with_peer = claims.to_vec();
    with_peer.push(("x-seams-peer", &gateway));
    let (status, body) = seen(&app, &with_peer).await;
    assert_eq!(status, 200);
    assert!(body.contains("deadline=true"), "{body}");
    assert!(body.contains("addr=Some(203.0.113.9)"), "forwarded: {body}");
}

#[tokio::test]
async fn a_bad_or_personal_token_as_a_peer_is_refused() {
    let (minter, app) = trusting();
    let person = minter
        .person(
            "sam",
            seams_core::auth::Role::Staff,
            std::time::Duration::from_secs(60),
        )
        .unwrap()
        .token;
    for token in ["garbage", person.as_str()] {
        let (status, body) = seen(&app, &[("x-seams-peer", token)]).await;
        assert_eq!(status, 401, "{token}: {body}");
        assert!(body.contains("invalid-token"), "{body}");
    }
}
