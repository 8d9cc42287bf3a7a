//! Tests of the gateway against small HTTP servers started on free ports:
//! forwarding as it came, the gateway's own problems (404, 503, 504), the
//! 413 of a service passed through, and the merged framework routes.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::Request;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};

use super::*;

/// Serves `app` on a fresh loopback port; returns its base URL.
async fn spawn(app: Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        axum::serve(
            listener,
            app.into_make_service_with_connect_info::<std::net::SocketAddr>(),
        )
        .await
        .unwrap()
    });
    format!("http://{addr}")
}

/// The gateway in front of services that serve plain HTTP.
fn plain_router(routes: Routes, credential: Arc<dyn seams_auth::Credential>) -> Router {
    router(routes, &[], credential)
}

/// The gateway's own service token, from keys made for the test.
fn credential() -> Arc<dyn seams_auth::Credential> {
    trust().0
}

/// The gateway's service token and a verifier that trusts it (what a
/// service behind the gateway has).
fn trust() -> (Arc<dyn seams_auth::Credential>, Arc<seams_auth::Verifier>) {
    let keys = seams_auth::KeyStore::in_memory(seams_auth::SigningKeys::generate().unwrap());
    let verifier = Arc::new(seams_auth::Verifier::new(vec![
        seams_auth::Issuer::deployment("test", keys.clone()),
    ]));
    let credential = Arc::new(seams_auth::SelfMinted::new(
        seams_auth::Minter::new(keys, "test"),
        "gateway",
        Vec::new(),
        Duration::from_secs(3600),
    ));
    (credential, verifier)
}

/// A base URL nothing listens on.
fn closed_url() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    format!("http://127.0.0.1:{port}")
}

fn client() -> reqwest::Client {
    reqwest::Client::builder().no_proxy().build().unwrap()
}

/// Answers 201 with what it received, and a header of its own.
async fn echo(req: Request) -> Response {
    let method = req.method().to_string();
    let path = req.uri().path().to_owned();
    let query = req.uri().query().map(str::to_owned);
    let headers: serde_json::Map<String, Value> = req
        .headers()
        .iter()
        .map(|(k, v)| (k.as_str().to_owned(), json!(v.to_str().unwrap_or("?"))))
        .collect();
    let body = axum::body::to_bytes(req.into_body(), 1 << 20)
        .await
        .unwrap();
    (
        StatusCode::CREATED,
        [("x-backend", "echo")],
        axum::Json(json!({
            "method": method, "path": path, "query": query, "headers": headers,
            "body": String::from_utf8_lossy(&body),
        })),
    )
        .into_response()
}

async fn problem_of(res: reqwest::Response) -> Value {
    assert_eq!(
        res.headers()["content-type"],
        "application/problem+json",
        "a problem is problem+json"
    );
    res.json().await.unwrap()
}

#[tokio::test]
async fn forwards_method_path_query_headers_and_body_and_relays_the_answer() {
    let backend = spawn(Router::new().fallback(echo)).await;
    let gw = spawn(plain_router(
        Routes::new().with("billing", &backend),
        credential(),
    ))
    .await;
    let traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    let res = client()
        .post(format!("{gw}/billing/invoices/7/payments?x=1&y=a%20b"))
        .header("x-correlation-id", "corr-42")
        .header("traceparent", traceparent)
        .header("idempotency-key", "k-1")
        .header("content-type", "application/json")
        .header("x-secret", "per-connection")
        .header("connection", "keep-alive, x-secret")
        .body(r#"{"amount":5}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::CREATED);
    assert_eq!(res.headers()["x-backend"], "echo");
    let got: Value = res.json().await.unwrap();
    assert_eq!(got["method"], "POST");
    assert_eq!(got["path"], "/billing/invoices/7/payments");
    assert_eq!(got["query"], "x=1&y=a%20b");
    assert_eq!(got["body"], r#"{"amount":5}"#);
    let headers = &got["headers"];
    assert_eq!(headers["x-correlation-id"], "corr-42");
    // The same trace, continued by the gateway's own hop.
    let sent = seams_core::TraceContext::parse(headers["traceparent"].as_str().unwrap()).unwrap();
    let given = seams_core::TraceContext::parse(traceparent).unwrap();
    assert_eq!(sent.trace_id, given.trace_id);
    assert_ne!(sent.span_id, given.span_id);
    assert_eq!(headers["idempotency-key"], "k-1");
    assert_eq!(headers["content-type"], "application/json");
    assert_eq!(headers["content-length"], "12");
    assert_eq!(
        headers["host"],
        backend.trim_start_matches("http://"),
        "the service is addressed as itself"
    );
    assert!(
        headers.get("x-secret").is_none(),
        "headers named by Connection are hop-by-hop: {headers}"
    );

    let res = client().get(format!("{gw}/billing")).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::CREATED);
    let got: Value = res.json().await.unwrap();
    assert_eq!(got["method"], "GET");
    assert_eq!(got["path"], "/billing");
    assert_eq!(got["query"], Value::Null);
    assert!(
        got["headers"].get("content-length").is_none(),
        "a GET without a body stays without one: {}",
        got["headers"]
    );
}

#[tokio::test]
async fn relays_error_answers_as_they_are() {
    let backend = spawn(Router::new().route(
        "/catalog/products/{sku}",
        get(|| async {
            (
                StatusCode::NOT_FOUND,
                [("content-type", "application/problem+json")],
                r#"{"type":"urn:seams:problem:product-not-found","title":"No such product","status":404}"#,
            )
        }),
    ))
    .await;
    let gw = spawn(plain_router(
        Routes::new().with("catalog", backend),
        credential(),
    ))
    .await;
    let res = client()
        .get(format!("{gw}/catalog/products/NOPE"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
    assert_eq!(
        problem_of(res).await["type"],
        "urn:seams:problem:product-not-found"
    );
}

#[tokio::test]
async fn unknown_prefix_is_a_404_problem() {
    let backend = spawn(Router::new().fallback(echo)).await;
    let gw = spawn(plain_router(
        Routes::new().with("billing", backend),
        credential(),
    ))
    .await;
    for path in ["/nope/things", "/", "/billingx/invoices"] {
        let res = client().get(format!("{gw}{path}")).send().await.unwrap();
        assert_eq!(res.status(), StatusCode::NOT_FOUND, "{path}");
        assert_eq!(problem_of(res).await["type"], "urn:seams:problem:not-found");
    }
}

#[tokio::test]
async fn unreachable_service_is_a_503_problem_naming_the_capability() {
    let gw = spawn(plain_router(
        Routes::new().with("catalog", closed_url()),
        credential(),
    ))
    .await;
    let res = client()
        .post(format!("{gw}/catalog/products"))
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(res.headers()["retry-after"], "1");
    let problem = problem_of(res).await;
    assert_eq!(problem["type"], "urn:seams:problem:service-unavailable");
    assert_eq!(problem["capabilities"], json!(["catalog"]));
    assert!(problem["title"].as_str().unwrap().contains("catalog"));
}

#[tokio::test]
async fn slow_service_is_a_504_problem() {
    let backend = spawn(Router::new().fallback(|| async {
        tokio::time::sleep(Duration::from_secs(5)).await;
        "late"
    }))
    .await;
    let timeouts = Timeouts {
        forward: Duration::from_millis(200),
        admin: Duration::from_millis(200),
    };
    let gw = spawn(router_with(
        Routes::new().with("billing", backend),
        &[],
        credential(),
        timeouts,
    ))
    .await;
    let res = client()
        .get(format!("{gw}/billing/invoices"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::GATEWAY_TIMEOUT);
    assert_eq!(
        problem_of(res).await["type"],
        "urn:seams:problem:gateway-timeout"
    );
}

#[tokio::test]
async fn the_service_answers_413_for_a_body_over_the_limit() {
    let routes = Router::new()
        .route(
            "/things",
            post(|seams_http::Json(v): seams_http::Json<Value>| async move { axum::Json(v) }),
        )
        .route(
            "/bytes",
            post(|b: Bytes| async move { b.len().to_string() }),
        );
    let (credential, verifier) = trust();
    let backend = spawn(seams_http::app::public(
        vec![("billing", routes)],
        Router::new(),
        verifier,
    ))
    .await;
    let gw = spawn(plain_router(
        Routes::new().with("billing", backend),
        credential,
    ))
    .await;

    let big = format!(r#"{{"pad":"{}"}}"#, "x".repeat(100 * 1024));
    let res = client()
        .post(format!("{gw}/billing/things"))
        .header("content-type", "application/json")
        .body(big)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(
        problem_of(res).await["type"],
        "urn:seams:problem:body-too-large"
    );

    let res = client()
        .post(format!("{gw}/billing/bytes"))
        .body(vec![b'x'; seams_http::BODY_LIMIT])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK, "a body at the limit passes");
    assert_eq!(
        res.text().await.unwrap(),
        seams_http::BODY_LIMIT.to_string()
    );
}

/// A service's framework routes answering fixed documents, counting the
/// readiness checks it gets.
fn admin_service(
    name: &str,
    ready: StatusCode,
    openapi: Value,
    contracts: Value,
    consistency: Value,
    dead_letters: Value,
    readyz_calls: Arc<AtomicUsize>,
) -> Router {
    let name = name.to_owned();
    Router::new()
        .route(
            "/readyz",
            get(move || async move {
                readyz_calls.fetch_add(1, Ordering::SeqCst);
                (ready, axum::Json(json!({ "status": "whatever" })))
            }),
        )
        .route(
            "/openapi.json",
            get(move || async move { axum::Json(openapi) }),
        )
        .route(
            "/_seams/contracts",
            get(move || async move { axum::Json(contracts) }),
        )
        .route(
            "/_seams/consistency",
            get(move || async move { axum::Json(consistency) }),
        )
        .route(
            "/_seams/dead-letters",
            get(move || async move { axum::Json(dead_letters) }),
        )
        .route(
            "/_seams/dead-letters/{id}/replay",
            post(
                move |axum::extract::Path(id): axum::extract::Path<String>| async move {
                    (
                        StatusCode::ACCEPTED,
                        axum::Json(json!({ "id": id, "status": "replay", "served_by": name })),
                    )
                },
            ),
        )
}

struct TwoServices {
    gw: String,
    colocated_readyz_calls: Arc<AtomicUsize>,
}

/// `identity` alone, `catalog` and `billing` colocated in one service.
async fn two_services() -> TwoServices {
    let identity = admin_service(
        "identity-svc",
        StatusCode::OK,
        json!({
            "openapi": "3.1.0", "info": { "title": "Seams shop", "version": "1" },
            "paths": { "/identity/customers": { "post": {} } },
            "components": { "schemas": { "Customer": { "type": "object" } } },
            "tags": [{ "name": "identity" }],
        }),
        json!([
            { "kind": "query", "name": "identity.get-customer", "owner": "identity", "consumers": [] },
            { "kind": "event", "name": "identity.customer-registered", "owner": "identity", "consumers": ["notification"] },
        ]),
        json!({
            "invariants": [{ "invariant": "identity.unique-email", "kind": "immediate" }],
            "lags": { "billing.invoice-created -> identity": { "samples": 1 } },
            "subscriptions": { "identity<-billing": { "position": 3, "age_ms": 10 } },
        }),
        json!({ "dead_letters": [{ "id": "identity.1", "capability": "identity" }] }),
        Arc::new(AtomicUsize::new(0)),
    );
    let colocated_readyz_calls = Arc::new(AtomicUsize::new(0));
    let colocated = admin_service(
        "colocated-svc",
        StatusCode::OK,
        json!({
            "openapi": "3.1.0", "info": { "title": "other", "version": "2" },
            "paths": {
                "/catalog/products": { "post": {} },
                "/billing/invoices": { "post": {} },
            },
            "components": {
                "schemas": { "Product": { "type": "object" }, "Invoice": { "type": "object" } },
                "responses": { "Problem": {} },
            },
            "tags": [{ "name": "identity" }, { "name": "billing" }],
        }),
        json!([
            { "kind": "event", "name": "identity.customer-registered", "owner": "identity", "consumers": ["billing"] },
            { "kind": "command", "name": "billing.create-invoice", "owner": "billing", "consumers": [] },
        ]),
        json!({
            "invariants": [
                { "invariant": "billing.paid-at-most-once", "kind": "immediate" },
                { "invariant": "identity.unique-email", "kind": "immediate", "samples": 0 },
            ],
            "lags": { "catalog.price-changed -> billing": { "samples": 2 } },
            "subscriptions": { "billing<-catalog": { "position": 5, "age_ms": 20 } },
        }),
        json!({ "dead_letters": [
            { "id": "billing.3", "capability": "billing" },
            { "id": "catalog.1", "capability": "catalog" },
        ] }),
        colocated_readyz_calls.clone(),
    );
    let identity = spawn(identity).await;
    let colocated = spawn(colocated).await;
    let routes = Routes::new()
        .with("identity", identity)
        .with("catalog", colocated.clone())
        .with("billing", colocated);
    TwoServices {
        gw: spawn(plain_router(routes, credential())).await,
        colocated_readyz_calls,
    }
}

async fn get_json(url: String) -> (StatusCode, Value) {
    let res = client().get(url).send().await.unwrap();
    (res.status(), res.json().await.unwrap())
}

#[tokio::test]
async fn framework_routes_merge_every_services_answer() {
    let TwoServices {
        gw,
        colocated_readyz_calls,
    } = two_services().await;

    let (s, health) = get_json(format!("{gw}/healthz")).await;
    assert_eq!((s, health), (StatusCode::OK, json!({ "status": "ok" })));

    let (s, ready) = get_json(format!("{gw}/readyz")).await;
    assert_eq!((s, ready), (StatusCode::OK, json!({ "status": "ready" })));
    assert_eq!(
        colocated_readyz_calls.load(Ordering::SeqCst),
        1,
        "a service serving two capabilities is asked once"
    );

    let (s, doc) = get_json(format!("{gw}/openapi.json")).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(doc["info"]["title"], "Seams shop", "the first header wins");
    let paths: Vec<&String> = doc["paths"].as_object().unwrap().keys().collect();
    assert_eq!(
        paths,
        [
            "/billing/invoices",
            "/catalog/products",
            "/identity/customers"
        ]
    );
    let schemas: Vec<&String> = doc["components"]["schemas"]
        .as_object()
        .unwrap()
        .keys()
        .collect();
    assert_eq!(schemas, ["Customer", "Invoice", "Product"]);
    assert_eq!(doc["components"]["responses"], json!({ "Problem": {} }));
    assert_eq!(
        doc["tags"],
        json!([{ "name": "identity" }, { "name": "billing" }])
    );

    let (s, contracts) = get_json(format!("{gw}/_seams/contracts")).await;
    assert_eq!(s, StatusCode::OK);
    let names: Vec<&str> = contracts
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "identity.get-customer",
            "identity.customer-registered",
            "billing.create-invoice"
        ]
    );
    assert_eq!(
        contracts[1]["consumers"],
        json!(["notification", "billing"])
    );

    let (s, report) = get_json(format!("{gw}/_seams/consistency")).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(
        report["invariants"],
        json!([
            { "invariant": "identity.unique-email", "kind": "immediate" },
            { "invariant": "billing.paid-at-most-once", "kind": "immediate" },
        ])
    );
    assert_eq!(report["lags"].as_object().unwrap().len(), 2);
    assert_eq!(report["subscriptions"]["identity<-billing"]["position"], 3);
    assert_eq!(report["subscriptions"]["billing<-catalog"]["position"], 5);

    let (s, letters) = get_json(format!("{gw}/_seams/dead-letters")).await;
    assert_eq!(s, StatusCode::OK);
    let ids: Vec<&str> = letters["dead_letters"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["id"].as_str().unwrap())
        .collect();
    // One order in every page: by capability, then by number.
    assert_eq!(ids, ["billing.3", "catalog.1", "identity.1"]);
}

#[tokio::test]
async fn a_replay_goes_to_the_service_owning_the_dead_letter() {
    let TwoServices { gw, .. } = two_services().await;
    for (id, served_by) in [
        ("billing.3", "colocated-svc"),
        ("identity.1", "identity-svc"),
    ] {
        let res = client()
            .post(format!("{gw}/_seams/dead-letters/{id}/replay"))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::ACCEPTED);
        let body: Value = res.json().await.unwrap();
        assert_eq!(body["id"], id);
        assert_eq!(body["served_by"], served_by);
    }
    for id in ["nope.1", "billing"] {
        let res = client()
            .post(format!("{gw}/_seams/dead-letters/{id}/replay"))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::NOT_FOUND, "{id}");
        let problem = problem_of(res).await;
        assert_eq!(problem["type"], "urn:seams:problem:dead-letter-not-found");
        assert_eq!(problem["id"], id);
    }
}

#[tokio::test]
async fn readiness_and_merged_views_name_the_services_that_fail() {
    let not_ready = spawn(admin_service(
        "notification-svc",
        StatusCode::SERVICE_UNAVAILABLE,
        json!({}),
        json!([]),
        json!({}),
        json!({ "dead_letters": [] }),
        Arc::new(AtomicUsize::new(0)),
    ))
    .await;
    let ready = spawn(admin_service(
        "identity-svc",
        StatusCode::OK,
        json!({}),
        json!([]),
        json!({ "invariants": [], "lags": {}, "subscriptions": {} }),
        json!({ "dead_letters": [] }),
        Arc::new(AtomicUsize::new(0)),
    ))
    .await;
    let routes = Routes::new()
        .with("identity", ready)
        .with("fulfillment", closed_url())
        .with("notification", not_ready);
    let gw = spawn(plain_router(routes, credential())).await;

    let (s, body) = get_json(format!("{gw}/readyz")).await;
    assert_eq!(s, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(
        body,
        json!({ "status": "not ready", "failing": ["fulfillment", "notification"] })
    );

    let res = client()
        .get(format!("{gw}/_seams/consistency"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(res.headers()["retry-after"], "1");
    let problem = problem_of(res).await;
    assert_eq!(problem["type"], "urn:seams:problem:service-unavailable");
    assert_eq!(problem["capabilities"], json!(["fulfillment"]));
}

#[test]
fn routes_group_capabilities_by_service() {
    let mut routes: Routes = [
        ("identity", "http://a/"),
        ("catalog", "http://b"),
        ("billing", "http://b"),
    ]
    .into_iter()
    .collect();
    assert_eq!(
        routes.url("identity"),
        Some("http://a"),
        "trailing slash dropped"
    );
    assert_eq!(routes.url("fulfillment"), None);
    routes.insert("identity", "http://c");
    let services: Vec<(String, Vec<String>)> = routes
        .services()
        .into_iter()
        .map(|s| (s.url, s.capabilities))
        .collect();
    assert_eq!(
        services,
        [
            ("http://c".to_owned(), vec!["identity".to_owned()]),
            (
                "http://b".to_owned(),
                vec!["catalog".to_owned(), "billing".to_owned()]
            ),
        ]
    );
}

#[test]
fn capability_is_the_first_path_segment() {
    for (path, cap) in [
        ("/billing/invoices/1", "billing"),
        ("/billing", "billing"),
        ("/billing/", "billing"),
        ("/", ""),
        ("", ""),
    ] {
        assert_eq!(capability_of(path), cap, "{path}");
    }
}

#[tokio::test]
async fn a_request_without_a_valid_traceparent_starts_its_trace_at_the_gateway() {
    let backend = spawn(Router::new().fallback(echo)).await;
    let gw = spawn(plain_router(
        Routes::new().with("billing", &backend),
        credential(),
    ))
    .await;
    for given in [None, Some("00-x")] {
        let mut req = client().get(format!("{gw}/billing/invoices"));
        if let Some(tp) = given {
            req = req.header("traceparent", tp);
        }
        let got: Value = req.send().await.unwrap().json().await.unwrap();
        let sent = got["headers"]["traceparent"].as_str().unwrap_or_default();
        assert!(
            seams_core::TraceContext::parse(sent).is_some(),
            "{given:?} went on as {sent:?}"
        );
    }
}

#[test]
fn hop_by_hop_headers_are_stripped() {
    let mut headers = HeaderMap::new();
    for (k, v) in [
        ("connection", "close, x-private"),
        ("x-private", "1"),
        ("keep-alive", "timeout=5"),
        ("transfer-encoding", "chunked"),
        ("upgrade", "h2c"),
        ("te", "trailers"),
        ("x-correlation-id", "c-1"),
        ("traceparent", "00-x"),
        ("content-type", "application/json"),
    ] {
        headers.insert(k, HeaderValue::from_static(v));
    }
    strip_hop_by_hop(&mut headers);
    let mut left: Vec<&str> = headers.keys().map(|k| k.as_str()).collect();
    left.sort_unstable();
    assert_eq!(left, ["content-type", "traceparent", "x-correlation-id"]);
}

#[tokio::test]
async fn a_body_is_read_up_to_the_cap() {
    let chunks: Vec<Result<Bytes, std::io::Error>> = vec![
        Ok(Bytes::from_static(b"abc")),
        Ok(Bytes::from_static(b"defg")),
        Ok(Bytes::from_static(b"hij")),
    ];
    let body = Body::from_stream(futures::stream::iter(chunks));
    assert_eq!(read_capped(body, 5).await.unwrap(), "abcde");
    let body = Body::from("short");
    assert_eq!(read_capped(body, 100).await.unwrap(), "short");
}

#[test]
fn merging_tolerates_odd_answers() {
    assert_eq!(
        merge_dead_letters(vec![json!(null), json!({ "dead_letters": [1] })], 100),
        json!({ "dead_letters": [1], "next": null })
    );
    assert_eq!(
        merge_consistency(vec![json!([])]),
        json!({ "invariants": [], "lags": {}, "subscriptions": {} })
    );
    assert_eq!(
        merge_contracts(vec![json!({}), json!([{ "name": "a" }, { "name": "a" }])]),
        json!([{ "name": "a" }])
    );
    let doc = merge_openapi(vec![json!("nonsense")]);
    assert_eq!(doc["paths"], json!({}));
    assert_eq!(doc["openapi"], "3.1.0");
    assert_eq!(
        merge_asyncapi(vec![json!("nonsense"), json!([1])]),
        json!({})
    );
}

#[test]
fn asyncapi_documents_are_merged_channel_by_channel() {
    let billing = json!({
        "asyncapi": "3.0.0",
        "info": { "title": "billing" },
        "defaultContentType": "application/json",
        "channels": { "billing.invoice-paid": { "address": "billing.invoice-paid" } },
        "operations": { "fulfillment.receive.billing.invoice-paid": { "action": "receive" } },
        "components": { "schemas": { "Amount": { "type": "object" } } }
    });
    let catalog = json!({
        "asyncapi": "3.0.0",
        "info": { "title": "catalog" },
        "channels": { "catalog.product-added": { "address": "catalog.product-added" } },
        "operations": { "catalog.send.catalog.product-added": { "action": "send" } },
        "components": {
            "schemas": { "Amount": { "type": "object" }, "Sku": { "type": "string" } },
            "messages": { "m": {} }
        }
    });
    let doc = merge_asyncapi(vec![billing, catalog]);
    assert_eq!(doc["info"]["title"], "billing", "the first header");
    assert_eq!(doc["defaultContentType"], "application/json");
    let keys = |v: &Value| v.as_object().unwrap().keys().cloned().collect::<Vec<_>>();
    assert_eq!(
        keys(&doc["channels"]),
        ["billing.invoice-paid", "catalog.product-added"]
    );
    assert_eq!(
        keys(&doc["operations"]),
        [
            "catalog.send.catalog.product-added",
            "fulfillment.receive.billing.invoice-paid"
        ]
    );
    assert_eq!(keys(&doc["components"]["schemas"]), ["Amount", "Sku"]);
    assert_eq!(keys(&doc["components"]["messages"]), ["m"]);
}

#[tokio::test]
async fn dot_segments_and_encoded_slashes_are_refused_never_resolved() {
    let hits = Arc::new(AtomicUsize::new(0));
    let counted = hits.clone();
    let backend = spawn(Router::new().fallback(move |req: Request| {
        counted.fetch_add(1, Ordering::SeqCst);
        echo(req)
    }))
    .await;
    let gw = spawn(plain_router(
        Routes::new()
            .with("identity", backend.clone())
            .with("billing", backend),
        credential(),
    ))
    .await;
    // reqwest would resolve the dot segments itself: these go out raw.
    let raw = |path: &str| {
        let addr = gw.trim_start_matches("http://").to_owned();
        let path = path.to_owned();
        async move {
            use tokio::io::{AsyncReadExt, AsyncWriteExt};
            let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
            s.write_all(
                format!("GET {path} HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n").as_bytes(),
            )
            .await
            .unwrap();
            let mut out = String::new();
            s.read_to_string(&mut out).await.unwrap();
            out
        }
    };
    for path in [
        "/identity/../_seams/feed/identity",
        "/identity/%2e%2e/_seams/feed/identity",
        "/identity/%2E%2E/_seams/ops/identity.get-customer",
        "/identity/.%2e/metrics",
        "/billing/../metrics",
        "/billing/./invoices",
        "/billing/invoices/%2f..%2fmetrics",
        "/billing/invoices%5c..%5cmetrics",
        "/billing//invoices",
        "/billing/%zz",
    ] {
        let answer = raw(path).await;
        assert!(answer.starts_with("HTTP/1.1 400"), "{path}: {answer}");
        assert!(
            answer.contains("urn:seams:problem:invalid-path"),
            "{path}: {answer}"
        );
    }
    assert_eq!(hits.load(Ordering::SeqCst), 0, "nothing reached a service");
    // A dot inside a segment is just a character.
    let answer = raw("/billing/invoices/v1.2..3").await;
    assert!(answer.starts_with("HTTP/1.1 201"), "{answer}");
    // The gateway has no doors of its own besides the merged views
    // (`/metrics` is one of them, tested on its own).
    for path in ["/_seams/feed/identity", "/_seams/ops/identity.get-customer"] {
        assert!(raw(path).await.starts_with("HTTP/1.1 404"), "{path}");
    }
}

#[tokio::test]
async fn what_only_the_gateway_may_say_is_replaced_by_what_it_says() {
    let backend = spawn(Router::new().fallback(echo)).await;
    let (credential, verifier) = trust();
    let gw = spawn(plain_router(
        Routes::new().with("billing", backend),
        credential,
    ))
    .await;
    let res = client()
        .get(format!("{gw}/billing/invoices"))
        .header("x-seams-peer", "forged.by.client")
        .header("x-forwarded-for", "203.0.113.66")
        .header("x-seams-deadline-ms", "1")
        .header("authorization", "Bearer the-client-s")
        .send()
        .await
        .unwrap();
    let got: Value = res.json().await.unwrap();
    let headers = &got["headers"];
    assert_eq!(headers["x-forwarded-for"], "127.0.0.1", "{headers}");
    assert!(headers.get("x-seams-deadline-ms").is_none(), "{headers}");
    assert_eq!(
        headers["authorization"], "Bearer the-client-s",
        "the client's own, passed on"
    );
    let peer = headers["x-seams-peer"].as_str().unwrap();
    assert_ne!(peer, "forged.by.client");
    let who = verifier.verify(peer).await.unwrap();
    assert_eq!(
        who,
        seams_core::auth::Principal::Service {
            name: "gateway".into(),
            capabilities: vec![]
        }
    );
}

#[tokio::test]
async fn merged_views_go_with_the_client_s_credentials_and_pass_refusals_on() {
    let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
    let record = seen.clone();
    let service = spawn(Router::new().route(
        "/_seams/dead-letters",
        get(move |headers: HeaderMap| {
            let auth = headers
                .get("authorization")
                .map(|v| v.to_str().unwrap().to_owned());
            record.lock().unwrap().push(auth.clone());
            async move {
                if auth.as_deref() == Some("Bearer unlucky-operator") {
                    (
                        StatusCode::INTERNAL_SERVER_ERROR,
                        axum::Json(json!({ "type": "urn:seams:problem:internal" })),
                    )
                        .into_response()
                } else if auth.as_deref() == Some("Bearer careless-operator") {
                    (
                        StatusCode::BAD_REQUEST,
                        axum::Json(json!({ "type": "urn:seams:problem:invalid-query" })),
                    )
                        .into_response()
                } else if auth.as_deref() == Some("Bearer operator") {
                    axum::Json(json!({ "dead_letters": [] })).into_response()
                } else {
                    (
                        StatusCode::UNAUTHORIZED,
                        axum::Json(json!({ "type": "urn:seams:problem:unauthenticated" })),
                    )
                        .into_response()
                }
            }
        }),
    ))
    .await;
    let gw = spawn(plain_router(
        Routes::new().with("billing", service),
        credential(),
    ))
    .await;
    let res = client()
        .get(format!("{gw}/_seams/dead-letters"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        res.status(),
        StatusCode::UNAUTHORIZED,
        "not a 503: the service refused"
    );
    assert_eq!(res.headers()["www-authenticate"], r#"Bearer realm="seams""#);
    let res = client()
        .get(format!("{gw}/_seams/dead-letters"))
        .bearer_auth("operator")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    // A query every service refuses is the client's mistake, not an outage.
    let res = client()
        .get(format!("{gw}/_seams/dead-letters?limit=100000"))
        .bearer_auth("careless-operator")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    assert_eq!(
        problem_of(res).await["type"],
        "urn:seams:problem:invalid-query"
    );
    // A service that fails is a hole in the view: 503, not its 500.
    let res = client()
        .get(format!("{gw}/_seams/dead-letters"))
        .bearer_auth("unlucky-operator")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(
        *seen.lock().unwrap(),
        [
            None,
            Some("Bearer operator".to_owned()),
            Some("Bearer careless-operator".to_owned()),
            Some("Bearer unlucky-operator".to_owned())
        ]
    );
}

#[test]
fn pages_of_dead_letters_merge_in_one_order_and_cut_at_the_limit() {
    let d = |id: &str| json!({ "id": id });
    let merged = merge_dead_letters(
        vec![
            json!({ "dead_letters": [d("notification.2"), d("notification.10")], "next": null }),
            json!({ "dead_letters": [d("billing.7"), d("fulfillment.1")], "next": null }),
        ],
        3,
    );
    assert_eq!(
        merged,
        json!({
            "dead_letters": [d("billing.7"), d("fulfillment.1"), d("notification.2")],
            "next": "notification.2",
        })
    );
    // A service with more than it sent means there is a next page.
    let merged = merge_dead_letters(
        vec![json!({ "dead_letters": [d("billing.1")], "next": "billing.1" })],
        3,
    );
    assert_eq!(merged["next"], "billing.1");
    let merged = merge_dead_letters(vec![json!({ "dead_letters": [d("billing.1")] })], 3);
    assert_eq!(merged["next"], Value::Null);
}

#[test]
fn paths_are_checked_segment_by_segment_after_decoding() {
    for ok in [
        "/",
        "/billing/invoices",
        "/billing/invoices/v1.2..3",
        "/billing/%41b",
        "/billing/.well-known",
        "/billing/...",
    ] {
        assert_eq!(check_path(ok), Ok(()), "{ok}");
    }
    for bad in [
        "billing",
        "/billing/..",
        "/billing/.",
        "/billing/%2E",
        "/billing/%2e%2E",
        "/billing/a%2fb",
        "/billing/a%5Cb",
        "/billing/a%00",
        "/billing//x",
        "/billing/%",
        "/billing/%4",
        "/billing/%zz",
        "/billing/%+1",
        "/billing/%-1",
    ] {
        assert!(check_path(bad).is_err(), "{bad}");
    }
    assert_eq!(percent_decode("a%41%62c"), Some(b"aAbc".to_vec()));
    assert_eq!(percent_decode("%e2%80%ae"), Some(vec![0xe2, 0x80, 0xae]));
    assert_eq!(percent_decode("%+1"), None);
}

#[test]
fn merged_metrics_keep_each_family_once_with_every_service_labelled() {
    let billing = "# HELP seams_calls_total Contract calls made.\n\
# TYPE seams_calls_total counter\n\
seams_calls_total{callee=\"catalog\",operation=\"quote-prices\",outcome=\"ok\"} 3\n\
\n\
# TYPE seams_event_lag_seconds histogram\n\
seams_event_lag_seconds_bucket{hop=\"a->b\",le=\"1\"} 1\n\
seams_event_lag_seconds_bucket{hop=\"a->b\",le=\"+Inf\"} 2\n\
seams_event_lag_seconds_sum{hop=\"a->b\"} 2.5\n\
seams_event_lag_seconds_count{hop=\"a->b\"} 2\n\
plain_total 7\n";
    let notification = "# HELP seams_calls_total Contract calls made.\n\
# TYPE seams_calls_total counter\n\
seams_calls_total{callee=\"identity\",operation=\"get-customer\",outcome=\"ok\"} 1\n";
    let merged = merge_metrics(&[
        ("billing,catalog".to_owned(), Some(billing.to_owned())),
        ("notification".to_owned(), Some(notification.to_owned())),
        ("identity".to_owned(), None),
    ]);
    assert_eq!(
        merged.matches("# HELP seams_calls_total ").count(),
        1,
        "{merged}"
    );
    assert_eq!(
        merged.matches("# TYPE seams_calls_total ").count(),
        1,
        "{merged}"
    );
    let calls: Vec<&str> = merged
        .lines()
        .skip_while(|l| !l.starts_with("# TYPE seams_calls_total"))
        .skip(1)
        .take(2)
        .collect();
    assert_eq!(
        calls,
        [
            "seams_calls_total{service=\"billing,catalog\",callee=\"catalog\",operation=\"quote-prices\",outcome=\"ok\"} 3",
            "seams_calls_total{service=\"notification\",callee=\"identity\",operation=\"get-customer\",outcome=\"ok\"} 1",
        ],
        "a family's samples stay together: {merged}"
    );
    assert!(
        merged.contains("# TYPE seams_event_lag_seconds histogram\nseams_event_lag_seconds_bucket{service=\"billing,catalog\",hop=\"a->b\",le=\"1\"} 1\n"),
        "{merged}"
    );
    assert!(
        merged.contains(
            "seams_event_lag_seconds_count{service=\"billing,catalog\",hop=\"a->b\"} 2\n"
        ),
        "{merged}"
    );
    assert!(
        merged.contains("plain_total{service=\"billing,catalog\"} 7\n"),
        "{merged}"
    );
    assert!(
        merged.contains("seams_service_up{service=\"billing,catalog\"} 1\n"),
        "{merged}"
    );
    assert!(
        merged.contains("seams_service_up{service=\"identity\"} 0\n"),
        "{merged}"
    );
    assert!(!merged.contains("\n\n"), "{merged}");
}

/// A service's `/metrics`: only for `Bearer operator`, 403 for other
/// tokens, 401 without one (as the real services decide).
fn metrics_backend(series: &'static str) -> Router {
    Router::new().route(
        "/metrics",
        get(move |headers: HeaderMap| async move {
            match headers.get("authorization").and_then(|v| v.to_str().ok()) {
                Some("Bearer operator") => (
                    StatusCode::OK,
                    format!("# TYPE {series} gauge\n{series} 1\n"),
                )
                    .into_response(),
                Some(_) => (StatusCode::FORBIDDEN, r#"{"status":403}"#).into_response(),
                None => (StatusCode::UNAUTHORIZED, r#"{"status":401}"#).into_response(),
            }
        }),
    )
}

#[tokio::test]
async fn metrics_merge_every_service_for_operators_only() {
    let billing = spawn(metrics_backend("billing_up")).await;
    let identity = spawn(metrics_backend("identity_up")).await;
    let gw = spawn(plain_router(
        Routes::new()
            .with("billing", &billing)
            .with("identity", &identity)
            .with("catalog", closed_url()),
        credential(),
    ))
    .await;
    let res = client()
        .get(format!("{gw}/metrics"))
        .bearer_auth("operator")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert!(
        res.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain")
    );
    let text = res.text().await.unwrap();
    assert!(
        text.contains("billing_up{service=\"billing\"} 1\n"),
        "{text}"
    );
    assert!(
        text.contains("identity_up{service=\"identity\"} 1\n"),
        "{text}"
    );
    assert!(
        text.contains("seams_service_up{service=\"catalog\"} 0\n"),
        "{text}"
    );

    let res = client().get(format!("{gw}/metrics")).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    assert!(res.headers().contains_key("www-authenticate"));
    let res = client()
        .get(format!("{gw}/metrics"))
        .bearer_auth("a-customer")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    assert!(!res.text().await.unwrap().contains("_up"));
}

#[tokio::test]
async fn metrics_with_no_service_answering_are_a_503() {
    let gw = spawn(plain_router(
        Routes::new().with("billing", closed_url()),
        credential(),
    ))
    .await;
    let res = client()
        .get(format!("{gw}/metrics"))
        .bearer_auth("operator")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
}

/// A service whose first connection takes a request and closes without an
/// answer (as a service does whose drain closes a connection the request
/// just went down), and whose later connections answer 200 `ok`. Returns its
/// base URL and the count of connections it took.
async fn closing_first_connection() -> (String, Arc<AtomicUsize>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let taken = Arc::new(AtomicUsize::new(0));
    let counter = taken.clone();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            let n = counter.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(async move {
                let mut buf = vec![0u8; 64 * 1024];
                let _ = s.read(&mut buf).await;
                if n > 0 {
                    let _ = s
                        .write_all(
                            b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok",
                        )
                        .await;
                }
            });
        }
    });
    (format!("http://{addr}"), taken)
}

#[test]
fn only_idempotent_or_keyed_requests_may_be_sent_twice() {
    use axum::http::Method;
    let none = HeaderMap::new();
    let mut keyed = HeaderMap::new();
    keyed.insert("idempotency-key", HeaderValue::from_static("k-1"));
    for m in [
        Method::GET,
        Method::HEAD,
        Method::OPTIONS,
        Method::TRACE,
        Method::PUT,
        Method::DELETE,
    ] {
        assert!(may_resend(&m, &none), "{m}");
    }
    for m in [Method::POST, Method::PATCH, Method::CONNECT] {
        assert!(!may_resend(&m, &none), "{m}");
        assert!(may_resend(&m, &keyed), "{m} with a key");
    }
}

#[tokio::test]
async fn a_request_that_may_be_resent_survives_a_connection_closed_under_it() {
    for (method, key, want, connections) in [
        ("GET", None, StatusCode::OK, 2),
        ("POST", Some("k-1"), StatusCode::OK, 2),
        ("POST", None, StatusCode::SERVICE_UNAVAILABLE, 1),
    ] {
        let (url, taken) = closing_first_connection().await;
        let gw = spawn(plain_router(
            Routes::new().with("billing", url),
            credential(),
        ))
        .await;
        let mut req = client().request(method.parse().unwrap(), format!("{gw}/billing/invoices"));
        if let Some(key) = key {
            req = req.header("idempotency-key", key);
        }
        if method == "POST" {
            req = req.body("{}");
        }
        let res = req.send().await.unwrap();
        assert_eq!(res.status(), want, "{method} {key:?}");
        assert_eq!(
            taken.load(Ordering::SeqCst),
            connections,
            "{method} {key:?}"
        );
    }
}
