//! A whole system of two small components, started on a real socket: a
//! poison event goes through the whole path (outbox, relay, bounded
//! retries, dead letter visible over HTTP to an operator), is replayed over
//! HTTP after the fix, and is applied once; consistency is reported over
//! HTTP. Split into two services, calls and feeds cross between them with
//! the services' own tokens.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering as AtomicOrdering};
use std::time::{Duration, Instant};

use axum::extract::State;
use seams_auth::{Issuer, KeyStore, Minter, SigningKeys, Verifier};
use seams_core::auth::{Access, Role};
use seams_core::decl::*;
use seams_core::{CallContext, Envelope, Event};
use seams_http::Routes;
use seams_runtime::relay::RelayOptions;
use seams_runtime::{Component, HandlerError, Handles, Runtime, Subscription, SystemOptions};
use seams_store::Db;
use serde::{Deserialize, Serialize};
use serde_json::Value;

static MIGRATIONS: seams_store::Migrations = seams_store::Migrations {
    sqlite: sqlx::migrate!("./test-migrations/sqlite"),
    postgres: sqlx::migrate!("./test-migrations/postgres"),
};

static NOTED: EventContract = EventContract {
    producer: "notes",
    event_type: "notes.noted",
    summary: "A note was taken.",
    retries: Retries::Bus(RetryPolicy {
        max_attempts: 2,
        initial_backoff: Duration::from_millis(5),
        max_backoff: Duration::from_millis(5),
    }),
    idempotency: Idempotency::InboxByEventId,
    ordering: Ordering::PerKey { field: "key" },
    when_down: WhenDown::QueueAndDeliverLater,
    versioning: Versioning {
        current: 1,
        accepts: &[1],
    },
    schema: || serde_json::json!({"type": "object", "required": ["key"], "properties": {"key": {"type": "string"}}}),
    downcast: None,
};

static AUDIT_FOLLOWS: Invariant = Invariant {
    capability: "audit",
    name: "audit-follows-notes",
    description: "A note is audited within 2 s (p99).",
    kind: InvariantKind::Eventual {
        bound: Duration::from_secs(2),
        percentile: 99.0,
        measure: Measure::Hop {
            event: &NOTED,
            consumer: "audit",
        },
    },
};

#[derive(Debug, Serialize, Deserialize)]
struct Noted {
    key: String,
}

impl Event for Noted {
    const CONTRACT: &'static EventContract = &NOTED;
}

async fn note(
    State(db): State<Db>,
    axum::extract::Path(key): axum::extract::Path<String>,
) -> &'static str {
    let now = seams_core::clock::rfc3339(time::OffsetDateTime::now_utc());
    let env = Envelope::wrap(
        &Noted { key },
        uuid::Uuid::now_v7().to_string(),
        now,
        &CallContext::new_root(),
    )
    .unwrap();
    let mut tx = db.begin().await.unwrap();
    tx.publish(&env).await.unwrap();
    tx.commit().await.unwrap();
    "ok"
}

async fn applied(State(db): State<Db>) -> String {
    let n: i64 = seams_store::query("SELECT COUNT(*) FROM applied")
        .fetch_one(&mut db.read().await.unwrap())
        .await
        .unwrap()
        .get(0)
        .unwrap();
    n.to_string()
}

static ECHO: Operation = Operation {
    capability: "notes",
    name: "echo",
    summary: "Upper-cases a key.",
    kind: Kind::Query,
    timeout: Duration::from_millis(500),
    retries: Retries::Caller(RetryPolicy::STANDARD),
    idempotency: Idempotency::ReadOnly,
    ordering: Ordering::Unordered,
    when_down: WhenDown::FailFast {
        problem: "notes-unavailable",
        retry_after: Duration::from_secs(1),
    },
    versioning: Versioning {
        current: 1,
        accepts: &[1],
    },
    request: seams_core::decl::no_body,
    response: seams_core::decl::no_body,
};

/// The declaration of `POST /notes/{key}`.
static NOTE: Operation = Operation {
    capability: "notes",
    name: "note",
    summary: "Notes a key (POST /notes/{key}).",
    kind: Kind::Command,
    timeout: Duration::from_secs(5),
    retries: Retries::Nobody,
    idempotency: Idempotency::NotIdempotent {
        reason: "a test door: every note is another event",
    },
    ordering: Ordering::Unordered,
    when_down: WhenDown::FailFast {
        problem: "notes-unavailable",
        retry_after: Duration::from_secs(1),
    },
    versioning: Versioning {
        current: 1,
        accepts: &[1],
    },
    request: seams_core::decl::no_body,
    response: seams_core::decl::no_body,
};

/// The declaration of `GET /audit/applied`.
static COUNT_APPLIED: Operation = Operation {
    capability: "audit",
    name: "count-applied",
    summary: "How many notes were applied (GET /audit/applied).",
    kind: Kind::Query,
    timeout: Duration::from_secs(5),
    retries: Retries::Caller(RetryPolicy::STANDARD),
    idempotency: Idempotency::ReadOnly,
    ordering: Ordering::Unordered,
    when_down: WhenDown::FailFast {
        problem: "audit-unavailable",
        retry_after: Duration::from_secs(1),
    },
    versioning: Versioning {
        current: 1,
        accepts: &[1],
    },
    request: seams_core::decl::no_body,
    response: seams_core::decl::no_body,
};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, thiserror::Error)]
#[serde(tag = "error")]
enum EchoError {
    #[error("empty")]
    Empty,
    #[error(transparent)]
    #[serde(skip)]
    Call(#[from] seams_core::CallError),
}

impl seams_core::ContractError for EchoError {
    fn call_error(&self) -> Option<&seams_core::CallError> {
        match self {
            EchoError::Call(e) => Some(e),
            EchoError::Empty => None,
        }
    }
}

/// A throwaway deployment key: what mints the tokens and what verifies them.
struct Keys {
    minter: Minter,
    verifier: Arc<Verifier>,
}

impl Keys {
    fn new() -> Keys {
        let keys = KeyStore::in_memory(SigningKeys::generate().unwrap());
        Keys {
            minter: Minter::new(keys.clone(), "test"),
            verifier: Arc::new(Verifier::new(vec![Issuer::deployment("test", keys)])),
        }
    }

    fn operator(&self) -> String {
        self.minter
            .person("olga", Role::Operator, Duration::from_secs(600))
            .unwrap()
            .token
    }

    fn service(&self, caps: &[&str]) -> Arc<dyn seams_auth::Credential> {
        Arc::new(seams_auth::SelfMinted::new(
            self.minter.clone(),
            caps.join(","),
            caps.iter().map(|c| c.to_string()).collect(),
            Duration::from_secs(600),
        ))
    }
}

/// An OpenAPI document describing `paths` (each an open `(method, path)`).
fn documented(paths: &[(utoipa::openapi::HttpMethod, &str)]) -> utoipa::openapi::OpenApi {
    use utoipa::openapi::path::{OperationBuilder, PathItem};
    let mut doc = utoipa::openapi::OpenApiBuilder::new().build();
    for (method, path) in paths {
        doc.paths.paths.insert(
            (*path).to_owned(),
            PathItem::new(method.clone(), OperationBuilder::new().build()),
        );
    }
    doc
}

/// Notes calls nobody and consumes nothing.
static NOTES: Dependencies = Dependencies {
    capability: "notes",
    calls: &[],
    consumes: &[],
};

/// Audit calls `notes.echo` and consumes `notes.noted`.
static AUDIT: Dependencies = Dependencies {
    capability: "audit",
    calls: &[&ECHO],
    consumes: &[&NOTED],
};

async fn components(dir: &std::path::Path, poisoned: Arc<AtomicBool>) -> (Component, Component) {
    let notes = Db::open(&dir.join("notes.db"), "notes", &MIGRATIONS)
        .await
        .unwrap();
    let audit = Db::open(&dir.join("audit.db"), "audit", &MIGRATIONS)
        .await
        .unwrap();
    let handles = Handles::new::<Noted, _>(&[1], move |ev, tx| {
        let poisoned = poisoned.load(AtomicOrdering::SeqCst);
        Box::pin(async move {
            if poisoned {
                return Err(HandlerError::Transient("cannot audit yet".into()));
            }
            let id = tx.envelope().id.clone();
            seams_store::query("INSERT INTO applied (event_id, subject, n) VALUES ($1, $2, 1)")
                .bind(id)
                .bind(&ev.key)
                .execute(tx.tx())
                .await?;
            Ok(())
        })
    });
    use utoipa::openapi::HttpMethod;
    let producer = Component {
        name: "notes",
        depends: &NOTES,
        db: notes.clone(),
        routes: Routes::new()
            .post("/{key}", &NOTE, Access::Open, note)
            .with_state(notes),
        serves: vec![seams_runtime::Served::new(
            &ECHO,
            |key: String, _ctx| async move {
                if key.is_empty() {
                    Err(EchoError::Empty)
                } else {
                    Ok(key.to_uppercase())
                }
            },
        )],
        publishes: vec![&NOTED],
        subscriptions: vec![],
        workers: vec![],
        openapi: documented(&[(HttpMethod::Post, "/{key}")]),
        invariants: vec![],
    };
    let consumer = Component {
        name: "audit",
        depends: &AUDIT,
        db: audit.clone(),
        routes: Routes::new()
            .get("/applied", &COUNT_APPLIED, Access::Open, applied)
            .with_state(audit),
        serves: vec![],
        publishes: vec![],
        subscriptions: vec![Subscription {
            consumer: "audit",
            producer: "notes",
            handles: vec![handles],
        }],
        workers: vec![],
        openapi: documented(&[(HttpMethod::Get, "/applied")]),
        invariants: vec![&AUDIT_FOLLOWS],
    };
    (producer, consumer)
}

async fn eventually(what: &str, mut check: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !check().await {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn a_poison_event_is_dead_lettered_then_replayed_over_http() {
    let dir = tempfile::tempdir().unwrap();
    let poisoned = Arc::new(AtomicBool::new(true));
    let (producer, consumer) = components(dir.path(), poisoned.clone()).await;
    let keys = Keys::new();
    let options = SystemOptions {
        relay: RelayOptions {
            idle_poll: Duration::from_millis(20),
            ..RelayOptions::default()
        },
        verifier: keys.verifier.clone(),
        ..SystemOptions::default()
    };
    let mut builder = Runtime::new(options).builder();
    builder.add(producer).add(consumer);
    let running = builder
        .start(tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap())
        .await
        .unwrap();
    let base = format!("http://{}", running.addr());
    let operator = keys.operator();
    let http = reqwest::Client::builder()
        .default_headers(
            [(
                reqwest::header::AUTHORIZATION,
                format!("Bearer {operator}").parse().unwrap(),
            )]
            .into_iter()
            .collect(),
        )
        .build()
        .unwrap();
    // The framework's views are the operators': nobody else sees a dead letter.
    for path in [
        "/_seams/dead-letters",
        "/_seams/consistency",
        "/_seams/contracts",
        "/metrics",
    ] {
        let r = reqwest::get(format!("{base}{path}")).await.unwrap();
        assert_eq!(r.status(), 401, "{path}");
    }
    // In one process there are no doors for other services at all.
    let peer = keys.service(&["audit"]).token().unwrap();
    for (method, path) in [
        ("POST", "/_seams/ops/notes.echo"),
        ("GET", "/_seams/feed/notes"),
    ] {
        let r = reqwest::Client::new()
            .request(
                method.parse().unwrap(),
                format!("{base}{path}?subscriber=audit%3C-notes&after=0&limit=1"),
            )
            .header(seams_auth::PEER_HEADER, &*peer)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 404, "{method} {path}");
    }
    let get = |path: &str| {
        let (http, url) = (http.clone(), format!("{base}{path}"));
        async move {
            http.get(url)
                .send()
                .await
                .unwrap()
                .json::<Value>()
                .await
                .unwrap()
        }
    };

    http.post(format!("{base}/notes/k1")).send().await.unwrap();
    let mut dead = Value::Null;
    eventually("the dead letter", async || {
        dead = get("/_seams/dead-letters").await["dead_letters"][0].clone();
        !dead.is_null()
    })
    .await;
    assert_eq!(dead["id"], "audit.1");
    assert_eq!(dead["error"], "cannot audit yet");
    assert_eq!(dead["attempts"], 2);
    assert_eq!(dead["status"], "parked");
    // A later note with the same key waits behind it.
    http.post(format!("{base}/notes/k1")).send().await.unwrap();
    eventually("the second to park", async || {
        get("/_seams/dead-letters").await["dead_letters"][1]["status"] == "parked"
    })
    .await;
    // The list comes a page at a time.
    let first = get("/_seams/dead-letters?limit=1").await;
    assert_eq!(first["dead_letters"].as_array().unwrap().len(), 1);
    assert_eq!(first["next"], "audit.1");
    let second = get("/_seams/dead-letters?limit=1&after=audit.1").await;
    assert_eq!(second["dead_letters"][0]["id"], "audit.2");
    let rest = get("/_seams/dead-letters?after=audit.2").await;
    assert_eq!(
        (
            rest["dead_letters"].as_array().unwrap().len(),
            &rest["next"]
        ),
        (0, &Value::Null)
    );
    for bad in [
        "limit=0",
        "limit=501",
        "after=audit",
        "after=audit.x",
        "page=2",
    ] {
        let r = http
            .get(format!("{base}/_seams/dead-letters?{bad}"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 400, "{bad}");
    }

    let r = http
        .post(format!("{base}/_seams/dead-letters/audit.99/replay"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    let r = http
        .post(format!("{base}/_seams/dead-letters/nonsense/replay"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);

    poisoned.store(false, AtomicOrdering::SeqCst);
    let r = http
        .post(format!("{base}/_seams/dead-letters/audit.1/replay"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    let r = http
        .post(format!("{base}/_seams/dead-letters/audit.1/replay"))
        .send()
        .await
        .unwrap();
    assert!(r.status() == 409 || r.status() == 202, "{}", r.status());
    eventually("both applied", async || {
        let n = http
            .get(format!("{base}/audit/applied"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        n == "2"
    })
    .await;
    // Each is marked replayed right after it is applied.
    eventually("both dead letters marked replayed", async || {
        let statuses: Vec<Value> = get("/_seams/dead-letters").await["dead_letters"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d["status"].clone())
            .collect();
        statuses == ["replayed", "replayed"]
    })
    .await;

    // Live events flow again, and their lag is measured against the declared bound.
    http.post(format!("{base}/notes/k2")).send().await.unwrap();
    eventually("the live event", async || {
        http.get(format!("{base}/audit/applied"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
            == "3"
    })
    .await;
    eventually("the position to advance", async || {
        get("/_seams/consistency").await["subscriptions"]["audit<-notes"]["position"] == 3
    })
    .await;
    let report = get("/_seams/consistency").await;
    assert_eq!(
        report["invariants"][0]["invariant"],
        "audit.audit-follows-notes"
    );
    assert_eq!(report["invariants"][0]["status"], "holds");
    running.stop().await.unwrap();
}

async fn serve(builder: seams_runtime::SystemBuilder, addr: &str) -> seams_runtime::Running {
    builder
        .start(tokio::net::TcpListener::bind(addr).await.unwrap())
        .await
        .unwrap()
}

#[tokio::test]
async fn split_services_call_and_feed_each_other_over_http() {
    let dir = tempfile::tempdir().unwrap();
    let poisoned = Arc::new(AtomicBool::new(false));
    let keys = Keys::new();
    let fast = |caps: &[&str]| SystemOptions {
        relay: RelayOptions {
            idle_poll: Duration::from_millis(200),
            ..RelayOptions::default()
        },
        verifier: keys.verifier.clone(),
        credential: Some(keys.service(caps)),
        split: true,
        // Every service knows what every capability declared.
        clients: vec![&NOTES, &AUDIT],
        ..SystemOptions::default()
    };

    // Service A: notes (publishes, serves `notes.echo`).
    let (notes, _) = components(dir.path(), poisoned.clone()).await;
    let mut a = Runtime::new(fast(&["notes"])).builder();
    a.add(notes);
    let a_running = serve(a, "127.0.0.1:0").await;
    let a_addr = a_running.addr();
    let a_url = format!("http://{a_addr}");

    // Service B: audit, with notes as a peer: its feed and its operation are remote.
    let b_dir = dir.path().join("b");
    let (_, audit) = components(&b_dir, poisoned).await;
    let mut peers = std::collections::BTreeMap::new();
    peers.insert("notes".to_owned(), a_url.clone());
    let b_runtime = Runtime::new(SystemOptions {
        peers,
        ..fast(&["audit"])
    });
    let b_env = b_runtime.env(&b_dir);
    let mut b = b_runtime.builder();
    b.add(audit);
    let b_running = serve(b, "127.0.0.1:0").await;
    let b_url = format!("http://{}", b_running.addr());
    let http = reqwest::Client::new();
    let applied = || {
        let (http, url) = (http.clone(), format!("{b_url}/audit/applied"));
        async move { http.get(url).send().await.unwrap().text().await.unwrap() }
    };

    http.post(format!("{a_url}/notes/k1")).send().await.unwrap();
    eventually("the event across services", async || applied().await == "1").await;

    let ctx = CallContext::new_root();
    let calls = b_env.calls(&AUDIT);
    let echoed: Result<String, EchoError> =
        seams_core::call(calls.as_ref(), &ECHO, "k1".to_owned(), &ctx).await;
    assert_eq!(echoed.unwrap(), "K1");
    let rejected: Result<String, EchoError> =
        seams_core::call(calls.as_ref(), &ECHO, String::new(), &ctx).await;
    assert_eq!(
        rejected.unwrap_err(),
        EchoError::Empty,
        "declared errors cross the wire as themselves"
    );

    // A capability's calls go only where it declared; notes declares none.
    let undeclared: Result<String, EchoError> =
        seams_core::call(b_env.calls(&NOTES).as_ref(), &ECHO, "k".to_owned(), &ctx).await;
    assert!(
        matches!(
            undeclared,
            Err(EchoError::Call(seams_core::CallError::Refused { .. }))
        ),
        "{undeclared:?}"
    );

    // The doors between services: only declared clients, as themselves.
    let peer = |caps: &[&str]| keys.service(caps).token().unwrap().to_string();
    let door = |method: &str, path: String, token: Option<String>| {
        let mut req =
            reqwest::Client::new().request(method.parse().unwrap(), format!("{a_url}{path}"));
        if let Some(t) = token {
            req = req.header(seams_auth::PEER_HEADER, t);
        }
        async move { req.body("\"k\"").send().await.unwrap().status().as_u16() }
    };
    let feed = |subscriber: &str, after: u64| {
        format!(
            "/_seams/feed/notes?subscriber={}&after={after}&limit=1",
            subscriber.replace('<', "%3C")
        )
    };
    assert_eq!(
        door("POST", "/_seams/ops/notes.echo".into(), None).await,
        401
    );
    assert_eq!(
        door(
            "POST",
            "/_seams/ops/notes.echo".into(),
            Some(peer(&["intruder"]))
        )
        .await,
        403
    );
    assert_eq!(
        door(
            "POST",
            "/_seams/ops/notes.echo".into(),
            Some(peer(&["notes"]))
        )
        .await,
        403
    );
    assert_eq!(
        door(
            "POST",
            "/_seams/ops/notes.echo".into(),
            Some(peer(&["audit"]))
        )
        .await,
        200
    );
    assert_eq!(door("GET", feed("audit<-notes", 0), None).await, 401);
    assert_eq!(
        door("GET", feed("audit<-notes", 0), Some(peer(&["intruder"]))).await,
        403
    );
    // Reading as another subscription, or as an undeclared one, is refused.
    assert_eq!(
        door("GET", feed("intruder<-notes", 0), Some(peer(&["audit"]))).await,
        403
    );
    assert_eq!(
        door("GET", feed("audit<-other", 0), Some(peer(&["audit"]))).await,
        403
    );
    // An acknowledgement past anything ever published is refused.
    assert_eq!(
        door(
            "GET",
            feed("audit<-notes", u64::MAX >> 1),
            Some(peer(&["audit"]))
        )
        .await,
        400
    );
    assert_eq!(
        door("GET", feed("audit<-notes", 1), Some(peer(&["audit"]))).await,
        200
    );
    // A person's token is not a service's.
    let operator = keys.operator();
    assert_eq!(
        door(
            "POST",
            "/_seams/ops/notes.echo".into(),
            Some(operator.clone())
        )
        .await,
        401
    );

    // A goes down: calls fail fast as declared, the feed waits.
    a_running.stop().await.unwrap();
    let started = Instant::now();
    let down: Result<String, EchoError> =
        seams_core::call(calls.as_ref(), &ECHO, "k".to_owned(), &ctx).await;
    assert!(
        matches!(
            down,
            Err(EchoError::Call(seams_core::CallError::Unavailable { .. }))
        ),
        "{down:?}"
    );
    assert!(started.elapsed() < Duration::from_secs(5));

    // A comes back on the same address with the same data: B catches up from its cursor.
    let (notes, _) = components(dir.path(), Arc::new(AtomicBool::new(false))).await;
    let mut a = Runtime::new(fast(&["notes"])).builder();
    a.add(notes);
    let a_running = serve(a, &a_addr.to_string()).await;
    http.post(format!("{a_url}/notes/k2")).send().await.unwrap();
    eventually("catching up after the producer's restart", async || {
        applied().await == "2"
    })
    .await;
    // The position advances after the batch that applied it.
    eventually("the position to advance", async || {
        let report: Value = http
            .get(format!("{b_url}/_seams/consistency"))
            .bearer_auth(&operator)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        report["subscriptions"]["audit<-notes"]["position"] == 2
    })
    .await;
    b_running.stop().await.unwrap();
    a_running.stop().await.unwrap();
}

/// A started system of the two components, with its gauges sampled every
/// 20 ms, and a client that presents an operator's token.
async fn gauged(
    dir: &std::path::Path,
    poisoned: Arc<AtomicBool>,
    relays: bool,
) -> (seams_runtime::Running, String, reqwest::Client) {
    let (producer, consumer) = components(dir, poisoned).await;
    let keys = Keys::new();
    let options = SystemOptions {
        relay: RelayOptions {
            idle_poll: Duration::from_millis(20),
            ..RelayOptions::default()
        },
        gauges_every: Duration::from_millis(20),
        relays,
        verifier: keys.verifier.clone(),
        ..SystemOptions::default()
    };
    let mut builder = Runtime::new(options).builder();
    builder.add(producer).add(consumer);
    let running = builder
        .start(tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap())
        .await
        .unwrap();
    let base = format!("http://{}", running.addr());
    let http = reqwest::Client::builder()
        .default_headers(
            [(
                reqwest::header::AUTHORIZATION,
                format!("Bearer {}", keys.operator()).parse().unwrap(),
            )]
            .into_iter()
            .collect(),
        )
        .build()
        .unwrap();
    (running, base, http)
}

/// The value of the series `name{labels}` in the exposition at `base`.
async fn gauge(http: &reqwest::Client, base: &str, series: &str) -> Option<f64> {
    let text = http
        .get(format!("{base}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .and_then(|v| v.trim().parse().ok())
}

#[tokio::test]
async fn a_stopped_consumer_shows_as_backlog_and_lag_that_age() {
    let dir = tempfile::tempdir().unwrap();
    // No relay runs: the subscription reads nothing, as if its consumer were down.
    let (running, base, http) = gauged(dir.path(), Arc::new(AtomicBool::new(false)), false).await;
    let backlog = "seams_outbox_backlog_events{database=\"notes\"}";
    let lag = "seams_subscription_lag_events{subscription=\"audit<-notes\"}";
    let lag_age = "seams_subscription_lag_age_seconds{subscription=\"audit<-notes\"}";
    let oldest = "seams_outbox_oldest_unpublished_age_seconds{database=\"notes\"}";
    eventually("the gauges at zero", async || {
        gauge(&http, &base, backlog).await == Some(0.0)
            && gauge(&http, &base, lag).await == Some(0.0)
            && gauge(&http, &base, lag_age).await == Some(0.0)
    })
    .await;
    for key in ["k1", "k2"] {
        http.post(format!("{base}/notes/{key}"))
            .send()
            .await
            .unwrap();
    }
    eventually("two events behind", async || {
        gauge(&http, &base, backlog).await == Some(2.0)
            && gauge(&http, &base, lag).await == Some(2.0)
    })
    .await;
    // The oldest waits longer with every sample.
    eventually("the lag to age", async || {
        gauge(&http, &base, lag_age).await.is_some_and(|s| s >= 0.2)
            && gauge(&http, &base, oldest).await.is_some_and(|s| s >= 0.2)
    })
    .await;
    // Nobody consumes from audit: it has no backlog.
    assert_eq!(
        gauge(
            &http,
            &base,
            "seams_outbox_backlog_events{database=\"audit\"}"
        )
        .await,
        Some(0.0)
    );
    running.stop().await.unwrap();
}

#[tokio::test]
async fn dead_letters_are_counted_until_replayed_and_a_caught_up_subscription_has_no_lag() {
    let dir = tempfile::tempdir().unwrap();
    let poisoned = Arc::new(AtomicBool::new(true));
    let (running, base, http) = gauged(dir.path(), poisoned.clone(), true).await;
    let dead = "seams_dead_letters{subscription=\"audit<-notes\"}";
    let retrying = "seams_events_retrying{subscription=\"audit<-notes\"}";
    eventually("no dead letters", async || {
        gauge(&http, &base, dead).await == Some(0.0)
            && gauge(&http, &base, retrying).await == Some(0.0)
    })
    .await;
    http.post(format!("{base}/notes/k1")).send().await.unwrap();
    // Its second (last) attempt waits aside, then it is a dead letter.
    eventually("one dead letter", async || {
        gauge(&http, &base, dead).await == Some(1.0)
            && gauge(&http, &base, retrying).await == Some(0.0)
    })
    .await;
    // Parked is past: the subscription has read it, nothing waits.
    eventually("no lag", async || {
        gauge(
            &http,
            &base,
            "seams_outbox_backlog_events{database=\"notes\"}",
        )
        .await
            == Some(0.0)
            && gauge(
                &http,
                &base,
                "seams_subscription_lag_events{subscription=\"audit<-notes\"}",
            )
            .await
                == Some(0.0)
    })
    .await;
    assert!(
        gauge(
            &http,
            &base,
            "seams_events_dead_lettered_total{subscription=\"audit<-notes\"}"
        )
        .await
        .is_some_and(|n| n >= 1.0)
    );
    poisoned.store(false, AtomicOrdering::SeqCst);
    let r = http
        .post(format!("{base}/_seams/dead-letters/audit.1/replay"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    eventually("the replay to lower the gauge", async || {
        gauge(&http, &base, dead).await == Some(0.0)
    })
    .await;
    // The counter keeps what happened.
    assert!(
        gauge(
            &http,
            &base,
            "seams_events_dead_lettered_total{subscription=\"audit<-notes\"}"
        )
        .await
        .is_some_and(|n| n >= 1.0)
    );
    running.stop().await.unwrap();
}

#[tokio::test]
async fn a_component_offers_what_its_routes_are_declared_as_and_only_its_own() {
    let dir = tempfile::tempdir().unwrap();
    let (producer, consumer) = components(dir.path(), Arc::default()).await;
    let ids = |c: &Component| c.public().iter().map(|o| o.id()).collect::<Vec<_>>();
    assert_eq!(ids(&producer), ["notes.note"]);
    assert_eq!(ids(&consumer), ["audit.count-applied"]);
    let mut builder = Runtime::new(SystemOptions::default()).builder();
    builder.add(producer).add(consumer);
    builder.check().unwrap();

    // A route declared as another capability's operation is refused before
    // anything starts.
    let (producer, consumer) = components(&dir.path().join("again"), Arc::default()).await;
    let producer = Component {
        routes: Routes::new()
            .post("/{key}", &COUNT_APPLIED, Access::Open, || async { "" })
            .with_state(()),
        ..producer
    };
    let mut builder = Runtime::new(SystemOptions::default()).builder();
    builder.add(producer).add(consumer);
    let err = format!("{:#}", builder.check().unwrap_err());
    assert!(
        err.contains("notes serves audit.count-applied, which belongs to audit"),
        "{err}"
    );
}

#[tokio::test]
async fn versions_to_write_are_checked_against_the_contracts_published_here() {
    let dir = tempfile::tempdir().unwrap();
    let builder = async |sub: &str, emit: &[(&str, &[u32])]| {
        let (producer, consumer) = components(&dir.path().join(sub), Arc::default()).await;
        let options = SystemOptions {
            emit: emit
                .iter()
                .map(|(t, v)| (t.to_string(), v.to_vec()))
                .collect(),
            ..SystemOptions::default()
        };
        let mut builder = Runtime::new(options).builder();
        builder.add(producer).add(consumer);
        builder
    };
    // The current version, and a type another process publishes, are fine.
    let ok = builder(
        "ok",
        &[("notes.noted", &[1]), ("billing.invoice-created", &[1])],
    )
    .await;
    ok.check().unwrap();
    let err = format!(
        "{:#}",
        builder("v2", &[("notes.noted", &[1, 2])])
            .await
            .check()
            .unwrap_err()
    );
    assert!(
        err.contains("notes.noted has no version 2 to write (current 1, accepts [1])"),
        "{err}"
    );
}

#[tokio::test]
async fn versions_to_read_are_checked_against_the_consumers_here() {
    let dir = tempfile::tempdir().unwrap();
    let builder = async |sub: &str, accept: &[(&str, &str, &[u32])]| {
        let (producer, consumer) = components(&dir.path().join(sub), Arc::default()).await;
        let options = SystemOptions {
            accept: accept
                .iter()
                .map(|(c, t, v)| ((c.to_string(), t.to_string()), v.to_vec()))
                .collect(),
            peers: [("billing".to_owned(), "http://127.0.0.1:9".to_owned())].into(),
            ..SystemOptions::default()
        };
        let mut builder = Runtime::new(options).builder();
        builder.add(producer).add(consumer);
        builder
    };
    // A version the code reads, and a consumer another process runs, are fine.
    builder(
        "ok",
        &[
            ("audit", "notes.noted", &[1]),
            ("billing", "fulfillment.shipment-created", &[1]),
        ],
    )
    .await
    .check()
    .unwrap();
    for (sub, accept, why) in [
        (
            "wider",
            ("audit", "notes.noted", &[2][..]),
            "--accept audit:notes.noted: notes.noted v2 is not among the versions the code accepts ([1])",
        ),
        (
            "none",
            ("audit", "notes.noted", &[][..]),
            "--accept audit:notes.noted: notes.noted: no version to accept",
        ),
        (
            "unconsumed",
            ("audit", "notes.erased", &[1][..]),
            "--accept audit:notes.erased: audit does not consume notes.erased",
        ),
        (
            "nobody",
            ("shipping", "notes.noted", &[1][..]),
            "--accept shipping:notes.noted: no capability \"shipping\"",
        ),
    ] {
        let err = format!("{:#}", builder(sub, &[accept]).await.check().unwrap_err());
        assert!(err.contains(why), "{sub}: {err}");
    }
}
