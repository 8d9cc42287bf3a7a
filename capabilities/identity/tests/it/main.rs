//! Identity against a real SQLite file, through its public routes and its
//! served `get-customer` operation.

use std::sync::Arc;

use axum::http::{Method, StatusCode};
use identity_contract::{Customer, GetCustomerError, IdentityClient};
use seams_core::{CallContext, CallError};
use seams_runtime::{Runtime, SystemOptions, inprocess::InProcess};
use seams_testkit::oneshot::App;
use serde_json::{Value, json};

struct World {
    _dir: tempfile::TempDir,
    app: App,
    component: seams_runtime::Component,
}

async fn world() -> World {
    let dir = tempfile::tempdir().unwrap();
    let env = Runtime::new(SystemOptions::default()).env(dir.path());
    let component = identity::component(&env).await.unwrap();
    let app = App::new("identity", component.routes.clone());
    World {
        _dir: dir,
        app,
        component,
    }
}

impl World {
    /// Customers in the table, read behind the routes' back.
    async fn n_customers(&self) -> i64 {
        let (n,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM customers")
            .fetch_one(self.component.db.reader())
            .await
            .unwrap();
        n
    }

    async fn n_events(&self) -> usize {
        self.component.db.read_outbox(0, 100).await.unwrap().len()
    }

    fn client(&self) -> IdentityClient {
        let transport = InProcess::new();
        for s in &self.component.serves {
            transport.register(s);
        }
        IdentityClient::new(Arc::new(transport))
    }
}

fn ann() -> Value {
    json!({ "email": "ann@example.com", "name": "Ann Smith" })
}

fn is_uuid_v7(s: &str) -> bool {
    uuid::Uuid::try_parse(s).is_ok_and(|u| u.get_version_num() == 7 && u.to_string() == s)
}

#[tokio::test]
async fn registers_and_gets_a_customer_and_publishes_it() {
    let w = world().await;
    let traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    let r = w
        .app
        .post(
            "/identity/customers",
            &json!({ "email": "  Ann@Example.COM ", "name": "Ann Smith" }),
            &[("traceparent", traceparent)],
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.json);
    let id = r.json["id"].as_str().unwrap().to_owned();
    assert!(is_uuid_v7(&id), "{id}");
    let expected = json!({ "id": id, "email": "ann@example.com", "name": "Ann Smith" });
    assert_eq!(r.json, expected);

    let r = w.app.get(&format!("/identity/customers/{id}")).await;
    assert_eq!((r.status, &r.json), (StatusCode::OK, &expected));

    let feed = w.component.db.read_outbox(0, 10).await.unwrap();
    assert_eq!(feed.len(), 1);
    let event = &feed[0];
    assert_eq!(event.event_type, "identity.customer-registered");
    assert_eq!(event.source, "/seams/identity");
    assert_eq!(event.subject, id);
    assert_eq!(event.dataversion, 1);
    assert_eq!(
        event.data,
        json!({ "customer_id": id, "email": "ann@example.com", "name": "Ann Smith" })
    );
    assert!(is_uuid_v7(&event.id) && event.id != id, "{}", event.id);
    assert!(
        event
            .traceparent
            .as_deref()
            .is_some_and(|t| t.starts_with("00-4bf92f3577b34da6a3ce929d0e0e4736-")),
        "the event continues the request's trace: {:?}",
        event.traceparent
    );

    let (created_at,): (String,) = sqlx::query_as("SELECT created_at FROM customers WHERE id = ?")
        .bind(&id)
        .fetch_one(w.component.db.reader())
        .await
        .unwrap();
    assert_eq!(
        created_at, event.time,
        "row and event share the clock reading"
    );
    assert!(
        created_at.contains('T') && created_at.ends_with('Z'),
        "{created_at}"
    );
}

#[tokio::test]
async fn a_duplicate_email_is_a_conflict_and_changes_nothing() {
    let w = world().await;
    let r = w.app.post("/identity/customers", &ann(), &[]).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.json);
    let first = r.json;
    for email in ["ann@example.com", "ANN@example.com", "  Ann@Example.Com\t"] {
        let body = json!({ "email": email, "name": "Someone Else" });
        let r = w.app.post("/identity/customers", &body, &[]).await;
        assert_eq!(r.status, StatusCode::CONFLICT, "{email:?}: {}", r.json);
        assert_eq!(r.problem_type(), "urn:seams:problem:duplicate-email");
        assert_eq!(r.content_type(), "application/problem+json");
        assert_eq!(r.json["field"], "email");
        assert_eq!(r.json["email"], "ann@example.com");
    }
    let r = w
        .app
        .get(&format!(
            "/identity/customers/{}",
            first["id"].as_str().unwrap()
        ))
        .await;
    assert_eq!(r.json, first, "the first registration is untouched");
    assert_eq!(w.n_customers().await, 1, "no second row");
    assert_eq!(w.n_events().await, 1, "no second event");
}

#[tokio::test]
async fn bad_input_is_a_problem_naming_the_field_and_writes_nothing() {
    let w = world().await;
    let cases = [
        (
            json!({ "email": "not-an-email", "name": "Ann" }),
            422,
            "invalid-field",
            Some("email"),
        ),
        (
            json!({ "email": "ann@@example.com", "name": "Ann" }),
            422,
            "invalid-field",
            Some("email"),
        ),
        (
            json!({ "email": "ann\u{a0}x@example.com", "name": "Ann" }),
            422,
            "invalid-field",
            Some("email"),
        ),
        (
            json!({ "email": format!("{}@example.com", "a".repeat(250)), "name": "Ann" }),
            422,
            "invalid-field",
            Some("email"),
        ),
        (
            json!({ "email": "ann@example.com", "name": "   " }),
            422,
            "invalid-field",
            Some("name"),
        ),
        (
            json!({ "email": "ann@example.com", "name": "" }),
            422,
            "invalid-field",
            Some("name"),
        ),
        (
            json!({ "email": "ann@example.com", "name": "x".repeat(201) }),
            422,
            "invalid-field",
            Some("name"),
        ),
        (
            json!({ "email": "ann@example.com", "name": "Ann\u{0}" }),
            422,
            "invalid-field",
            Some("name"),
        ),
        (
            json!({ "email": "ann@example.com", "name": "Ann", "admin": true }),
            422,
            "invalid-body",
            Some("admin"),
        ),
        (
            json!({ "email": 42, "name": "Ann" }),
            422,
            "invalid-body",
            Some("email"),
        ),
        (
            json!({ "email": "ann@example.com", "name": null }),
            422,
            "invalid-body",
            Some("name"),
        ),
        (
            json!({ "email": "ann@example.com" }),
            422,
            "invalid-body",
            Some("name"),
        ),
        (json!({ "name": "Ann" }), 422, "invalid-body", Some("email")),
        (json!("ann@example.com"), 422, "invalid-body", None),
        (json!(42), 422, "invalid-body", None),
        (json!(null), 422, "invalid-body", None),
    ];
    for (body, status, slug, field) in cases {
        let r = w.app.post("/identity/customers", &body, &[]).await;
        assert_eq!(r.status.as_u16(), status, "{body}: {}", r.json);
        assert_eq!(
            r.problem_type(),
            format!("urn:seams:problem:{slug}"),
            "{body}"
        );
        assert_eq!(r.content_type(), "application/problem+json", "{body}");
        if let Some(field) = field {
            assert_eq!(r.json["field"], field, "{body}: {}", r.json);
        }
    }

    let r = w
        .app
        .post_raw("/identity/customers", "{\"email\": ", &[])
        .await;
    assert_eq!(
        (r.status, r.problem_type()),
        (StatusCode::BAD_REQUEST, "urn:seams:problem:malformed-json")
    );

    let r = w
        .app
        .send(
            Method::POST,
            "/identity/customers",
            ann().to_string(),
            &[("content-type", "text/plain")],
        )
        .await;
    assert_eq!(r.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert_eq!(r.content_type(), "application/problem+json");

    let r = w
        .app
        .send(Method::POST, "/identity/customers", ann().to_string(), &[])
        .await;
    assert_eq!(
        r.status,
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "no content type"
    );

    // Over the 64 KiB body limit, even though the name alone would also be invalid.
    let huge = json!({ "email": "ann@example.com", "name": "x".repeat(70 * 1024) });
    let r = w.app.post("/identity/customers", &huge, &[]).await;
    assert_eq!(
        (r.status, r.problem_type()),
        (
            StatusCode::PAYLOAD_TOO_LARGE,
            "urn:seams:problem:body-too-large"
        )
    );

    assert_eq!(w.n_customers().await, 0, "nothing half-applied");
    assert_eq!(w.n_events().await, 0, "nothing published");

    // The same address is still free.
    let r = w.app.post("/identity/customers", &ann(), &[]).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.json);
}

/// serde's derived `Deserialize` also reads a struct from a JSON array of its
/// fields in order; `seams_http::Json` accepts only objects, so
/// `["ann@example.com", "Ann"]` must not register Ann.
#[tokio::test]
async fn a_json_array_is_not_a_registration() {
    let w = world().await;
    for body in [
        json!(["ann@example.com", "Ann"]),
        json!(["ann@example.com", "Ann", "extra"]),
    ] {
        let r = w.app.post("/identity/customers", &body, &[]).await;
        assert_eq!(
            (r.status, r.problem_type()),
            (
                StatusCode::UNPROCESSABLE_ENTITY,
                "urn:seams:problem:invalid-body"
            ),
            "{body}: {}",
            r.json
        );
    }
    assert_eq!(w.n_customers().await, 0);
    assert_eq!(w.n_events().await, 0);
}

#[tokio::test]
async fn unknown_customers_and_routes_are_404_problems() {
    let w = world().await;
    let unknown = uuid::Uuid::now_v7().to_string();
    for id in [unknown.as_str(), "nope", "NOT-A-UUID", "1"] {
        let r = w.app.get(&format!("/identity/customers/{id}")).await;
        assert_eq!(
            (r.status, r.problem_type()),
            (
                StatusCode::NOT_FOUND,
                "urn:seams:problem:customer-not-found"
            ),
            "{id}"
        );
        assert_eq!(r.json["id"], id);
    }

    // A registered id in another spelling is not a second URL for it.
    let r = w.app.post("/identity/customers", &ann(), &[]).await;
    let id = r.json["id"].as_str().unwrap().to_uppercase();
    let r = w.app.get(&format!("/identity/customers/{id}")).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);

    let r = w.app.get("/identity/customers/%ff%fe").await;
    assert_eq!(
        (r.status, r.problem_type()),
        (StatusCode::BAD_REQUEST, "urn:seams:problem:invalid-path")
    );
    let r = w.app.get("/identity/nothing-here").await;
    assert_eq!(
        (r.status, r.problem_type()),
        (StatusCode::NOT_FOUND, "urn:seams:problem:not-found")
    );
    let r = w
        .app
        .send(Method::DELETE, "/identity/customers", "", &[])
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
async fn serves_get_customer_through_the_contract_client() {
    let w = world().await;
    let r = w.app.post("/identity/customers", &ann(), &[]).await;
    let registered: Customer = serde_json::from_value(r.json).unwrap();
    let client = w.client();
    let ctx = CallContext::new_root();

    let got = client.get_customer(&ctx, &registered.id).await.unwrap();
    assert_eq!(got, registered);

    let unknown = uuid::Uuid::now_v7().to_string();
    for id in [unknown.as_str(), "not-a-uuid", ""] {
        let err = client.get_customer(&ctx, id).await.unwrap_err();
        assert_eq!(err, GetCustomerError::NotFound { id: id.into() });
    }
}

#[tokio::test]
async fn a_database_failure_is_an_opaque_call_error_not_a_not_found() {
    let w = world().await;
    let client = w.client();
    w.component.db.close().await;
    let id = uuid::Uuid::now_v7().to_string();
    let err = client
        .get_customer(&CallContext::new_root(), &id)
        .await
        .unwrap_err();
    // The handler answers `Internal`, and the serving side passes it on as itself.
    match err {
        GetCustomerError::Call(CallError::Internal { op }) => {
            assert_eq!(op, identity_contract::GET_CUSTOMER.id());
        }
        other => panic!("expected an opaque call error, got {other:?}"),
    }
}
