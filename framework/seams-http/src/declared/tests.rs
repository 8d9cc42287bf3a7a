//! A route's declaration applied: its timeout answered with the declared
//! problem and `Retry-After`, its deadline handed to the handler, and an
//! "unavailable" answer replaced by the declared one.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use http_body_util::BodyExt;
use seams_core::auth::Access;
use seams_core::decl::*;
use serde_json::Value;
use tower::ServiceExt;

use super::*;
use crate::Ctx;
use crate::problem::{IntoProblem, UNAVAILABLE, error_response};
use crate::routes::Routes;

/// A query of capability `cap` declared with `timeout` and `when_down`,
/// leaked: routes take `'static` declarations, as contract crates give them.
pub(crate) fn declared_as(
    name: &'static str,
    timeout: Duration,
    when_down: WhenDown,
) -> &'static Operation {
    Box::leak(Box::new(Operation {
        capability: "cap",
        name,
        summary: "A test route.",
        kind: Kind::Query,
        timeout,
        retries: Retries::Caller(RetryPolicy::STANDARD),
        idempotency: Idempotency::ReadOnly,
        ordering: Ordering::Unordered,
        when_down,
        versioning: Versioning {
            current: 1,
            accepts: &[1],
        },
        request: seams_core::decl::no_body,
        response: seams_core::decl::no_body,
    }))
}

/// [`declared_as`], failing fast with `cap-unavailable` and `Retry-After: 7`.
pub(crate) fn declared(name: &'static str, timeout: Duration) -> &'static Operation {
    declared_as(
        name,
        timeout,
        WhenDown::FailFast {
            problem: "cap-unavailable",
            retry_after: Duration::from_secs(7),
        },
    )
}

/// A handler's error: its problem, as a capability's error enum maps it.
#[derive(Debug, thiserror::Error)]
#[error("test failure")]
struct Failure(Problem);

impl IntoProblem for Failure {
    fn problem(&self) -> Problem {
        self.0.clone()
    }
}

fn failing(problem: Problem) -> axum::response::Response {
    error_response(&Failure(problem))
}

/// A handler that never answers.
async fn never() -> &'static str {
    std::future::pending().await
}

async fn send(routes: Routes, path: &str) -> (StatusCode, HeaderMap, Value) {
    let (router, _) = routes.into_parts();
    let verifier = Arc::new(seams_auth::Verifier::new(Vec::new()));
    let app = crate::app::public(vec![("cap", router)], axum::Router::new(), verifier);
    let res = app
        .oneshot(
            axum::http::Request::get(format!("/cap{path}"))
                .body(Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    let (parts, body) = res.into_parts();
    let body = body.collect().await.unwrap().to_bytes();
    let json = serde_json::from_slice(&body).unwrap_or(Value::Null);
    (parts.status, parts.headers, json)
}

#[tokio::test]
async fn a_handler_slower_than_its_declared_timeout_gets_the_declared_problem() {
    let routes = Routes::new()
        .get(
            "/slow",
            declared("slow", Duration::from_millis(50)),
            Access::Open,
            never,
        )
        .get(
            "/quick",
            declared("quick", Duration::from_millis(50)),
            Access::Open,
            || async { "done" },
        )
        .with_state(());
    let started = std::time::Instant::now();
    let (status, headers, body) = send(routes.clone(), "/slow").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(body["type"], "urn:seams:problem:cap-unavailable");
    assert_eq!(body["retry_after"], 7);
    assert_eq!(headers["retry-after"], "7");
    assert_eq!(headers["content-type"], "application/problem+json");
    assert!(
        body["detail"].as_str().unwrap().contains("cap.slow"),
        "{body}"
    );
    // Answered by the declared timeout, not the edge's 30 s.
    assert!(started.elapsed() < Duration::from_secs(10));

    let (status, _, _) = send(routes, "/quick").await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn without_a_fail_fast_declaration_a_timeout_is_the_edge_s_answer() {
    let routes = Routes::new()
        .get(
            "/slow",
            declared_as(
                "slow",
                Duration::from_millis(50),
                WhenDown::Fallback {
                    description: "nothing",
                },
            ),
            Access::Open,
            never,
        )
        .with_state(());
    let (status, headers, body) = send(routes, "/slow").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(body["type"], "urn:seams:problem:request-timeout");
    assert_eq!(headers["retry-after"], "1");
}

#[tokio::test]
async fn the_handler_s_deadline_falls_within_its_declared_timeout() {
    let routes = Routes::new()
        .get(
            "/left",
            declared("left", Duration::from_secs(3)),
            Access::Open,
            |Ctx(ctx): Ctx| async move {
                ctx.remaining()
                    .map_or(u128::MAX, |d| d.as_millis())
                    .to_string()
            },
        )
        .with_state(());
    let (router, _) = routes.into_parts();
    let verifier = Arc::new(seams_auth::Verifier::new(Vec::new()));
    let app = crate::app::public(vec![("cap", router)], axum::Router::new(), verifier);
    let res = app
        .oneshot(
            axum::http::Request::get("/cap/left")
                .body(Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    let body = res.into_body().collect().await.unwrap().to_bytes();
    let left: u128 = std::str::from_utf8(&body).unwrap().parse().unwrap();
    // Nine tenths of the declared 3 s: the rest is the handler's to answer.
    assert!((1..=2700).contains(&left), "{left} ms left");
}

#[tokio::test]
async fn an_unavailable_dependency_or_database_is_answered_as_declared() {
    let op = declared("needs", Duration::from_secs(5));
    let routes = Routes::new()
        .get("/callee-down", op, Access::Open, || async {
            failing(
                Problem::new(503, "other-unavailable", "other is unavailable")
                    .detail("calling other.thing: no answer")
                    .with("retry_after", 2)
                    .with(UNAVAILABLE, "other"),
            )
        })
        .get("/database-down", op, Access::Open, || async {
            failing(
                Problem::new(503, "database-unavailable", "Database unavailable")
                    .with("retry_after", 1)
                    .with(UNAVAILABLE, "database"),
            )
        })
        .get("/stale", op, Access::Open, || async {
            failing(Problem::new(503, "stale-read", "Stale").with("retry_after", 1))
        })
        .get("/missing", op, Access::Open, || async {
            failing(Problem::new(404, "thing-not-found", "No such thing")).into_response()
        })
        .with_state(());

    let (status, headers, body) = send(routes.clone(), "/callee-down").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(body["type"], "urn:seams:problem:cap-unavailable");
    assert_eq!(body["unavailable"], "other");
    assert_eq!(body["detail"], "calling other.thing: no answer");
    assert_eq!(headers["retry-after"], "7");

    let (status, headers, body) = send(routes.clone(), "/database-down").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(body["type"], "urn:seams:problem:cap-unavailable");
    assert_eq!(body["unavailable"], "database");
    assert_eq!(headers["retry-after"], "7");

    // A 503 that names nothing unavailable is the handler's own answer.
    let (_, headers, body) = send(routes.clone(), "/stale").await;
    assert_eq!(body["type"], "urn:seams:problem:stale-read");
    assert_eq!(headers["retry-after"], "1");
    let (status, _, body) = send(routes, "/missing").await;
    assert_eq!(
        (status, body["type"].as_str()),
        (
            StatusCode::NOT_FOUND,
            Some("urn:seams:problem:thing-not-found")
        )
    );
}
