//! Calls reach the operation they name, on every call of a transport.

use std::time::Duration;

use axum::routing::post;
use seams_core::decl::*;
use seams_core::{CallContext, CallError, CallReply, CallRequest, Payload, Transport};

use super::HttpTransport;

const fn query(name: &'static str) -> Operation {
    Operation {
        capability: "test",
        name,
        summary: "",
        kind: Kind::Query,
        timeout: Duration::from_secs(5),
        retries: Retries::Nobody,
        idempotency: Idempotency::ReadOnly,
        ordering: Ordering::Unordered,
        when_down: WhenDown::FailFast {
            problem: "down",
            retry_after: Duration::from_secs(1),
        },
        versioning: Versioning {
            current: 1,
            accepts: &[1],
        },
        request: seams_core::decl::no_body,
        response: seams_core::decl::no_body,
    }
}

static FIRST: Operation = query("first");
static SECOND: Operation = query("second");

fn req(op: &'static Operation) -> CallRequest {
    CallRequest {
        op,
        body: Payload::Json(b"{}".to_vec()),
        ctx: CallContext::new_root(),
    }
}

fn answered(reply: Result<CallReply, CallError>) -> String {
    match reply {
        Ok(CallReply::Ok(Payload::Json(body))) => String::from_utf8(body).expect("UTF-8"),
        other => panic!("not an answer: {other:?}"),
    }
}

#[tokio::test]
async fn each_call_reaches_the_operation_it_names_however_often_it_is_called() {
    let app = axum::Router::new()
        .route("/_seams/ops/test.first", post(|| async { "\"first\"" }))
        .route("/_seams/ops/test.second", post(|| async { "\"second\"" }));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("a loopback port");
    let addr = listener.local_addr().expect("bound");
    let server = tokio::spawn(async move { axum::serve(listener, app).await });
    // A trailing slash on the base is not doubled.
    let transport = HttpTransport::new(format!("http://{addr}/"), HttpTransport::default_client());
    for op in [&FIRST, &SECOND, &SECOND, &FIRST] {
        assert_eq!(
            answered(transport.call(req(op)).await),
            format!("\"{}\"", op.name)
        );
    }
    // A clone shares what was parsed and still calls each one.
    let clone = transport.clone();
    assert_eq!(answered(clone.call(req(&SECOND)).await), "\"second\"");
    server.abort();
}

#[tokio::test]
async fn a_base_that_is_no_url_makes_every_call_unavailable() {
    let transport = HttpTransport::new("not a url", HttpTransport::default_client());
    for _ in 0..2 {
        match transport.call(req(&FIRST)).await {
            Err(CallError::Unavailable { op, reason }) => {
                assert_eq!(op, "test.first");
                assert!(reason.contains("not a url"), "{reason}");
            }
            other => panic!("expected unavailable: {other:?}"),
        }
    }
}
