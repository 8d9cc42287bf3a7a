//! The rollout route: who may use it (operators only, checked before
//! anything else), what it refuses (unknown capability, settings that do not
//! parse, a second rollout while one runs), and what it hands the service's
//! supervisor.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use seams_auth::{Issuer, KeyStore, Minter, SigningKeys, Verifier};
use seams_core::auth::Role;
use serde_json::{Value, json};
use tower::ServiceExt;

use super::*;

struct World {
    app: Router,
    minter: Minter,
    /// What the service's supervisor received.
    asked: Arc<Mutex<Vec<Versions>>>,
    /// Lets the stand-in supervisor answer.
    go: Arc<tokio::sync::Notify>,
}

/// The route over one service running billing, whose stand-in supervisor
/// records each roll and answers once `go` is notified.
fn world() -> World {
    let keys = KeyStore::in_memory(SigningKeys::generate().unwrap());
    let minter = Minter::new(keys.clone(), "test");
    let (tx, mut rx) = mpsc::channel::<Roll>(1);
    let asked = Arc::new(Mutex::new(Vec::new()));
    let go = Arc::new(tokio::sync::Notify::new());
    tokio::spawn({
        let (asked, go) = (asked.clone(), go.clone());
        async move {
            while let Some(roll) = rx.recv().await {
                asked.lock().unwrap().push(roll.versions.clone());
                go.notified().await;
                let _ = roll.reply.send(Ok(Rolled {
                    service: "billing".into(),
                    old_pid: Some(1),
                    new_pid: Some(2),
                    ready_ms: 3,
                    stopped_ms: 4,
                    emit: roll.versions.emit,
                    accept: roll.versions.accept,
                }));
            }
        }
    });
    let control = Control {
        services: vec![Rollable {
            capabilities: vec!["billing".into()],
            versions: Arc::new(std::sync::Mutex::new(Versions {
                emit: vec!["billing.invoice-created=1".into()],
                accept: Vec::new(),
            })),
            rolls: tx,
        }],
        verifier: Arc::new(Verifier::new(vec![Issuer::deployment("test", keys)])),
        busy: Arc::new(tokio::sync::Mutex::new(())),
    };
    World {
        app: router(control),
        minter,
        asked,
        go,
    }
}

fn token(w: &World, role: Role) -> String {
    w.minter
        .person("someone", role, Duration::from_secs(60))
        .unwrap()
        .token
}

async fn post(app: &Router, token: Option<&str>, body: &str) -> (StatusCode, Value) {
    let mut req = Request::post("/_seams/rollout").header("content-type", "application/json");
    if let Some(t) = token {
        req = req.header("authorization", format!("Bearer {t}"));
    }
    let res = app
        .clone()
        .oneshot(req.body(Body::from(body.to_owned())).unwrap())
        .await
        .unwrap();
    let status = res.status();
    let bytes = axum::body::to_bytes(res.into_body(), 1 << 20)
        .await
        .unwrap();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

#[tokio::test]
async fn only_an_operator_may_roll_and_learns_nothing_before_showing_a_token() {
    let w = world();
    let body = r#"{"capability":"billing"}"#;
    let (status, problem) = post(&w.app, None, body).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(problem["type"], "urn:seams:problem:unauthenticated");
    let (status, _) = post(&w.app, Some("not-a-token"), "{").await;
    assert_eq!(
        status,
        StatusCode::UNAUTHORIZED,
        "the token first, then the body"
    );
    for role in [Role::Staff, Role::Customer] {
        let (status, problem) = post(&w.app, Some(&token(&w, role)), body).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{role}");
        assert_eq!(problem["type"], "urn:seams:problem:forbidden");
    }
    let service = w
        .minter
        .service("billing", &["billing".to_owned()], Duration::from_secs(60))
        .unwrap()
        .token;
    let (status, _) = post(&w.app, Some(&service), body).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "a service is no operator");
    assert!(w.asked.lock().unwrap().is_empty(), "nothing was rolled");
}

#[tokio::test]
async fn bad_requests_are_refused_by_name_and_roll_nothing() {
    let w = world();
    let op = token(&w, Role::Operator);
    for (body, status, kind) in [
        ("{", 400, "bad-request"),
        (r#"{"capability":"billing","extra":1}"#, 400, "bad-request"),
        (r#"{"capability":"shipping"}"#, 404, "not-found"),
        (
            r#"{"capability":"billing","emit":["billing.invoice-created"]}"#,
            400,
            "invalid-settings",
        ),
        (
            r#"{"capability":"billing","accept":["nobody:billing.invoice-created=1"]}"#,
            400,
            "invalid-settings",
        ),
    ] {
        let (got, problem) = post(&w.app, Some(&op), body).await;
        assert_eq!(got.as_u16(), status, "{body}: {problem}");
        assert_eq!(
            problem["type"],
            format!("urn:seams:problem:{kind}"),
            "{body}"
        );
    }
    let long = format!(r#"{{"capability":"{}"}}"#, "b".repeat(60_000));
    let (got, _) = post(&w.app, Some(&op), &long).await;
    assert_eq!(got, StatusCode::NOT_FOUND);
    let oversized = format!(r#"{{"capability":"{}"}}"#, "b".repeat(70_000));
    let (got, problem) = post(&w.app, Some(&op), &oversized).await;
    assert_eq!(got, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(problem["type"], "urn:seams:problem:body-too-large");
    assert!(w.asked.lock().unwrap().is_empty(), "nothing was rolled");
}

#[tokio::test]
async fn an_operator_rolls_one_service_at_a_time_keeping_or_replacing_its_settings() {
    let w = world();
    let op = token(&w, Role::Operator);
    // Settings not named are kept; named ones replace (empty clears).
    let first = tokio::spawn({
        let (app, op) = (w.app.clone(), op.clone());
        async move {
            post(
                &app,
                Some(&op),
                r#"{"capability":"billing","accept":["fulfillment:billing.invoice-created=1"]}"#,
            )
            .await
        }
    });
    while w.asked.lock().unwrap().is_empty() {
        tokio::task::yield_now().await;
    }
    let (status, problem) = post(&w.app, Some(&op), r#"{"capability":"billing"}"#).await;
    assert_eq!(status, StatusCode::CONFLICT, "{problem}");
    assert_eq!(problem["type"], "urn:seams:problem:rollout-in-progress");
    w.go.notify_one();
    let (status, rolled) = first.await.unwrap();
    assert_eq!(status, StatusCode::OK, "{rolled}");
    assert_eq!(
        rolled,
        json!({
            "service": "billing", "old_pid": 1, "new_pid": 2, "ready_ms": 3, "stopped_ms": 4,
            "emit": ["billing.invoice-created=1"],
            "accept": ["fulfillment:billing.invoice-created=1"],
        })
    );
    w.go.notify_one();
    let (status, rolled) = post(&w.app, Some(&op), r#"{"capability":"billing","emit":[]}"#).await;
    assert_eq!(status, StatusCode::OK, "{rolled}");
    assert_eq!(rolled["emit"], json!([]));
    assert_eq!(w.asked.lock().unwrap().len(), 2);
}

#[test]
fn settings_become_serve_arguments_and_a_rollout_may_take_a_start_and_a_stop() {
    let v = Versions {
        emit: vec![
            "billing.invoice-created=1".into(),
            "billing.invoice-created=2".into(),
        ],
        accept: vec!["fulfillment:billing.invoice-created=1".into()],
    };
    let args: Vec<String> = v
        .args()
        .into_iter()
        .map(|a| a.into_string().unwrap())
        .collect();
    assert_eq!(
        args,
        [
            "--emit",
            "billing.invoice-created=1",
            "--emit",
            "billing.invoice-created=2",
            "--accept",
            "fulfillment:billing.invoice-created=1"
        ]
    );
    assert!(Versions::default().args().is_empty());
    assert_eq!(
        ROLLOUT_TIMEOUT,
        crate::supervisor::START_TIMEOUT + crate::supervisor::STOP_TIMEOUT
    );
}
