//! What the edge does to every request: the handler sees the caller's trace,
//! and the response, matched or not, carries the correlation headers.

use axum::body::Body;
use axum::routing::get;
use http_body_util::BodyExt;
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
    public(vec![("cap", routes)], Router::new())
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
