//! Identity against a real SQLite file, through its public routes and its
//! served `get-customer` operation: registering, changing an address, the
//! events each write leaves in the outbox and the consistency token it
//! answers with; signing in and who may read and change what (`sessions`).

mod sessions;

use std::sync::Arc;

use axum::http::{Method, StatusCode};
use identity_contract::{Customer, GetCustomer, GetCustomerError};
use seams_core::{CallContext, CallError};
use seams_runtime::{Runtime, SystemOptions, inprocess::InProcess};
use seams_testkit::oneshot::{App, Reply};
use serde_json::{Value, json};

struct World {
    _dir: tempfile::TempDir,
    app: App,
    component: seams_runtime::Component,
}

/// A password every test customer has.
pub(crate) const PASSWORD: &str = "correct horse battery staple";

async fn world() -> World {
    world_with(identity::credentials::Limits::default()).await
}

async fn world_with(limits: identity::credentials::Limits) -> World {
    let dir = tempfile::tempdir().unwrap();
    let env = Runtime::new(SystemOptions::default()).env(dir.path());
    let issuer = seams_testkit::auth::TestIssuer::new();
    let opts = identity::Options {
        limits,
        ..identity::Options::new(issuer.minter())
    };
    let component = identity::component(&env, opts).await.unwrap();
    let app = App::with_issuer("identity", component.routes.clone(), issuer);
    World {
        _dir: dir,
        app,
        component,
    }
}

impl World {
    /// Customers in the table, read behind the routes' back.
    async fn n_customers(&self) -> i64 {
        seams_store::query("SELECT COUNT(*) FROM customers")
            .fetch_one(&mut self.component.db.read().await.unwrap())
            .await
            .unwrap()
            .get(0)
            .unwrap()
    }

    async fn n_events(&self) -> usize {
        self.component.db.read_outbox(0, 100).await.unwrap().len()
    }

    /// The app as the customer a `/identity/customers/{id}` path names (the
    /// owner of the record), anonymous for any other path.
    fn owner_of(&self, path: &str) -> App {
        match path.strip_prefix("/identity/customers/") {
            Some(id) => self.app.as_customer(id),
            None => self.app.anonymous(),
        }
    }

    /// `GET path`, as the owner of the record it names.
    async fn get(&self, path: &str) -> Reply {
        self.owner_of(path).get(path).await
    }

    /// `PATCH path` with a JSON body, as the owner of the record it names.
    async fn patch(&self, path: &str, body: &Value, headers: &[(&str, &str)]) -> Reply {
        let mut all = vec![("content-type", "application/json")];
        all.extend_from_slice(headers);
        self.owner_of(path)
            .send(Method::PATCH, path, body.to_string(), &all)
            .await
    }

    /// Registers `email` and returns the customer's id.
    async fn register(&self, email: &str) -> String {
        let body = json!({ "email": email, "name": "Someone", "password": PASSWORD });
        let r = self.app.post("/identity/customers", &body, &[]).await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.json);
        r.json["id"].as_str().unwrap().to_owned()
    }

    fn client(&self) -> seams_core::Client {
        let transport = InProcess::new();
        for s in &self.component.serves {
            transport.register(s);
        }
        seams_core::Client::new(Arc::new(transport))
    }
}

fn ann() -> Value {
    json!({ "email": "ann@example.com", "name": "Ann Smith", "password": PASSWORD })
}

/// The `Seams-Consistency-Token` of a reply, if any.
fn token(r: &Reply) -> Option<&str> {
    r.headers
        .get(seams_runtime::consistency::TOKEN_HEADER)
        .map(|v| v.to_str().unwrap())
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
            &json!({ "email": "  Ann@Example.COM ", "name": "Ann Smith", "password": PASSWORD }),
            &[("traceparent", traceparent)],
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.json);
    let id = r.json["id"].as_str().unwrap().to_owned();
    assert!(is_uuid_v7(&id), "{id}");
    let expected = json!({ "id": id, "email": "ann@example.com", "name": "Ann Smith" });
    assert_eq!(r.json, expected);
    let r_created = r;

    let r = w.get(&format!("/identity/customers/{id}")).await;
    assert_eq!((r.status, &r.json), (StatusCode::OK, &expected));

    let feed = w.component.db.read_outbox(0, 10).await.unwrap();
    assert_eq!(feed.len(), 1);
    let event = &feed[0];
    assert_eq!(
        token(&r_created),
        Some(format!("identity:{}", event.sequence.unwrap()).as_str()),
        "the registration names its event's outbox position"
    );
    assert_eq!(event.event_type, "identity.customer-registered");
    assert_eq!(event.source, "/seams/identity");
    assert_eq!(event.subject, id);
    assert_eq!(event.dataversion, 1);
    assert_eq!(
        event.data.to_value().unwrap(),
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

    let created_at: String = seams_store::query("SELECT created_at FROM customers WHERE id = $1")
        .bind(&id)
        .fetch_one(&mut w.component.db.read().await.unwrap())
        .await
        .unwrap()
        .get(0)
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
        let body = json!({ "email": email, "name": "Someone Else", "password": PASSWORD });
        let r = w.app.post("/identity/customers", &body, &[]).await;
        assert_eq!(r.status, StatusCode::CONFLICT, "{email:?}: {}", r.json);
        assert_eq!(r.problem_type(), "urn:seams:problem:duplicate-email");
        assert_eq!(r.content_type(), "application/problem+json");
        assert_eq!(r.json["field"], "email");
        assert_eq!(r.json["email"], "ann@example.com");
        assert_eq!(token(&r), None, "a refused write has no position");
    }
    let r = w
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
            json!({ "email": "not-an-email", "name": "Ann", "password": PASSWORD }),
            422,
            "invalid-field",
            Some("email"),
        ),
        (
            json!({ "email": "ann@@example.com", "name": "Ann", "password": PASSWORD }),
            422,
            "invalid-field",
            Some("email"),
        ),
        (
            json!({ "email": "ann\u{a0}x@example.com", "name": "Ann", "password": PASSWORD }),
            422,
            "invalid-field",
            Some("email"),
        ),
        (
            json!({ "email": format!("{}@example.com", "a".repeat(250)), "name": "Ann", "password": PASSWORD }),
            422,
            "invalid-field",
            Some("email"),
        ),
        (
            json!({ "email": "ann@example.com", "name": "   ", "password": PASSWORD }),
            422,
            "invalid-field",
            Some("name"),
        ),
        (
            json!({ "email": "ann@example.com", "name": "", "password": PASSWORD }),
            422,
            "invalid-field",
            Some("name"),
        ),
        (
            json!({ "email": "ann@example.com", "name": "x".repeat(201), "password": PASSWORD }),
            422,
            "invalid-field",
            Some("name"),
        ),
        (
            json!({ "email": "ann@example.com", "name": "Ann\u{0}", "password": PASSWORD }),
            422,
            "invalid-field",
            Some("name"),
        ),
        (
            json!({ "email": "ann@example.com", "name": "Ann", "admin": true, "password": PASSWORD }),
            422,
            "invalid-body",
            Some("admin"),
        ),
        (
            json!({ "email": 42, "name": "Ann", "password": PASSWORD }),
            422,
            "invalid-body",
            Some("email"),
        ),
        (
            json!({ "email": "ann@example.com", "name": null, "password": PASSWORD }),
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
    let huge =
        json!({ "email": "ann@example.com", "name": "x".repeat(70 * 1024), "password": PASSWORD });
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
        let r = w.get(&format!("/identity/customers/{id}")).await;
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
    let r = w.get(&format!("/identity/customers/{id}")).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);

    let r = w
        .app
        .as_customer("x")
        .get("/identity/customers/%ff%fe")
        .await;
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

    let ask = |id: &str| GetCustomer { id: id.to_owned() };
    let got = client.ask(ask(&registered.id), &ctx).await.unwrap();
    assert_eq!(got, registered);

    let unknown = uuid::Uuid::now_v7().to_string();
    for id in [unknown.as_str(), "not-a-uuid", ""] {
        let err = client.ask(ask(id), &ctx).await.unwrap_err();
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
        .ask(GetCustomer { id }, &CallContext::new_root())
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

#[tokio::test]
async fn changing_the_email_publishes_it_and_answers_with_a_token() {
    let w = world().await;
    let id = w.register("ann@example.com").await;
    let path = format!("/identity/customers/{id}");
    let traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    let r = w
        .patch(
            &path,
            &json!({ "email": " Ann.Smith@Example.ORG " }),
            &[("traceparent", traceparent)],
        )
        .await;

    assert_eq!(r.status, StatusCode::OK, "{}", r.json);
    let expected = json!({ "id": id, "email": "ann.smith@example.org", "name": "Someone" });
    assert_eq!(r.json, expected);
    let r_get = w.get(&path).await;
    assert_eq!(r_get.json, expected, "stored");

    let feed = w.component.db.read_outbox(0, 10).await.unwrap();
    assert_eq!(feed.len(), 2, "registration, then the change");
    let event = &feed[1];
    assert_eq!(event.event_type, "identity.customer-email-changed");
    assert_eq!(event.source, "/seams/identity");
    assert_eq!(event.subject, id, "keyed by customer");
    assert_eq!(event.dataversion, 1);
    assert_eq!(
        event.data.to_value().unwrap(),
        json!({ "customer_id": id, "email": "ann.smith@example.org" })
    );
    assert!(
        event
            .traceparent
            .as_deref()
            .is_some_and(|t| t.starts_with("00-4bf92f3577b34da6a3ce929d0e0e4736-")),
        "the event continues the request's trace: {:?}",
        event.traceparent
    );
    let position = event.sequence.unwrap();
    assert!(position > feed[0].sequence.unwrap());
    assert_eq!(
        token(&r),
        Some(format!("identity:{position}").as_str()),
        "the token names the event's outbox position"
    );
    let parsed = seams_runtime::consistency::Token::parse(token(&r).unwrap()).unwrap();
    assert_eq!(
        (parsed.producer.as_str(), parsed.position),
        ("identity", position)
    );

    // Changing back is a change too, with a later position.
    let r = w
        .patch(&path, &json!({ "email": "ann@example.com" }), &[])
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.json);
    assert_eq!(r.json["email"], "ann@example.com");
    let feed = w.component.db.read_outbox(0, 10).await.unwrap();
    assert_eq!(feed.len(), 3);
    assert_eq!(
        token(&r),
        Some(format!("identity:{}", feed[2].sequence.unwrap()).as_str())
    );
}

#[tokio::test]
async fn the_same_email_again_changes_nothing_and_publishes_nothing() {
    let w = world().await;
    let id = w.register("ann@example.com").await;
    let path = format!("/identity/customers/{id}");
    let expected = json!({ "id": id, "email": "ann@example.com", "name": "Someone" });

    for email in ["ann@example.com", "ANN@Example.com", "\tann@example.com "] {
        let r = w.patch(&path, &json!({ "email": email }), &[]).await;
        assert_eq!(r.status, StatusCode::OK, "{email:?}: {}", r.json);
        assert_eq!(r.json, expected, "{email:?}");
        assert_eq!(token(&r), None, "{email:?}: nothing to wait for");
    }
    assert_eq!(w.n_events().await, 1, "only the registration");

    // A real change after the no-ops still publishes exactly one event.
    let r = w
        .patch(&path, &json!({ "email": "ann@example.org" }), &[])
        .await;
    assert!(token(&r).is_some());
    let r = w
        .patch(&path, &json!({ "email": "ann@example.org" }), &[])
        .await;
    assert_eq!((r.status, token(&r)), (StatusCode::OK, None), "a repeat");
    assert_eq!(w.n_events().await, 2);
}

#[tokio::test]
async fn another_customer_s_email_is_a_conflict_and_changes_nothing() {
    let w = world().await;
    let ann = w.register("ann@example.com").await;
    let bob = w.register("bob@example.com").await;
    let path = format!("/identity/customers/{bob}");

    for email in ["ann@example.com", " ANN@example.com"] {
        let r = w.patch(&path, &json!({ "email": email }), &[]).await;
        assert_eq!(r.status, StatusCode::CONFLICT, "{email:?}: {}", r.json);
        assert_eq!(r.problem_type(), "urn:seams:problem:duplicate-email");
        assert_eq!(r.content_type(), "application/problem+json");
        assert_eq!(r.json["field"], "email");
        assert_eq!(r.json["email"], "ann@example.com");
        assert_eq!(token(&r), None);
    }
    let r = w.get(&path).await;
    assert_eq!(r.json["email"], "bob@example.com", "Bob is untouched");
    let r = w.get(&format!("/identity/customers/{ann}")).await;
    assert_eq!(r.json["email"], "ann@example.com", "Ann is untouched");
    assert_eq!(w.n_events().await, 2, "only the registrations");

    // Once Ann moves, her old address is Bob's to take, and her new one is hers.
    let r = w
        .patch(
            &format!("/identity/customers/{ann}"),
            &json!({ "email": "ann@example.org" }),
            &[],
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.json);
    let r = w
        .patch(&path, &json!({ "email": "ann@example.com" }), &[])
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.json);
    let taken = json!({ "email": "ann@example.org", "name": "Someone Else", "password": PASSWORD });
    let r = w.app.post("/identity/customers", &taken, &[]).await;
    assert_eq!(r.status, StatusCode::CONFLICT, "{}", r.json);
    assert_eq!(w.n_events().await, 4);
}

#[tokio::test]
async fn changing_the_email_of_an_unknown_customer_is_a_404() {
    let w = world().await;
    let known = w.register("ann@example.com").await;
    let unknown = uuid::Uuid::now_v7().to_string();
    let upper = known.to_uppercase();
    for id in [unknown.as_str(), "nope", upper.as_str()] {
        // Not found even with an invalid address: the customer is looked up first.
        for email in ["bob@example.com", "not-an-email"] {
            let r = w
                .patch(
                    &format!("/identity/customers/{id}"),
                    &json!({ "email": email }),
                    &[],
                )
                .await;
            assert_eq!(
                (r.status, r.problem_type()),
                (
                    StatusCode::NOT_FOUND,
                    "urn:seams:problem:customer-not-found"
                ),
                "{id} {email}"
            );
            assert_eq!(r.json["id"], id);
        }
    }
    assert_eq!(w.n_events().await, 1);
}

#[tokio::test]
async fn a_bad_email_change_is_a_problem_and_writes_nothing() {
    let w = world().await;
    let id = w.register("ann@example.com").await;
    let path = format!("/identity/customers/{id}");
    let cases = [
        (
            json!({ "email": "not-an-email" }),
            422,
            "invalid-field",
            Some("email"),
        ),
        (json!({ "email": "" }), 422, "invalid-field", Some("email")),
        (
            json!({ "email": "ann@@example.com" }),
            422,
            "invalid-field",
            Some("email"),
        ),
        (
            json!({ "email": format!("{}@example.com", "a".repeat(250)) }),
            422,
            "invalid-field",
            Some("email"),
        ),
        (
            json!({ "email": "bob@example.com", "name": "Bob", "password": PASSWORD }),
            422,
            "invalid-body",
            Some("name"),
        ),
        (json!({ "email": 42 }), 422, "invalid-body", Some("email")),
        (json!({ "email": null }), 422, "invalid-body", Some("email")),
        (json!({}), 422, "invalid-body", Some("email")),
        (json!(["bob@example.com"]), 422, "invalid-body", None),
        (json!("bob@example.com"), 422, "invalid-body", None),
        (json!(null), 422, "invalid-body", None),
    ];
    for (body, status, slug, field) in cases {
        let r = w.patch(&path, &body, &[]).await;
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
        assert_eq!(token(&r), None, "{body}");
    }

    let json_type = [("content-type", "application/json")];
    let r = w
        .app
        .as_customer(&id)
        .send(Method::PATCH, &path, "{\"email\": ", &json_type)
        .await;
    assert_eq!(
        (r.status, r.problem_type()),
        (StatusCode::BAD_REQUEST, "urn:seams:problem:malformed-json")
    );
    let body = json!({ "email": "bob@example.com" }).to_string();
    let r = w
        .app
        .as_customer(&id)
        .send(Method::PATCH, &path, body.clone(), &[])
        .await;
    assert_eq!(
        r.status,
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "no content type"
    );
    let r = w
        .app
        .as_customer(&id)
        .send(
            Method::PATCH,
            &path,
            body,
            &[("content-type", "text/plain")],
        )
        .await;
    assert_eq!(r.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert_eq!(r.content_type(), "application/problem+json");
    let huge = json!({ "email": format!("{}@example.com", "x".repeat(70 * 1024)) });
    let r = w.patch(&path, &huge, &[]).await;
    assert_eq!(
        (r.status, r.problem_type()),
        (
            StatusCode::PAYLOAD_TOO_LARGE,
            "urn:seams:problem:body-too-large"
        )
    );
    let r = w
        .patch(
            "/identity/customers/%ff%fe",
            &json!({ "email": "bob@example.com" }),
            &[],
        )
        .await;
    assert_eq!(
        (r.status, r.problem_type()),
        (StatusCode::BAD_REQUEST, "urn:seams:problem:invalid-path")
    );

    let r = w.get(&path).await;
    assert_eq!(r.json["email"], "ann@example.com", "nothing half-applied");
    assert_eq!(w.n_events().await, 1, "nothing published");
}

#[tokio::test]
async fn the_component_declares_its_public_and_served_operations_and_events() {
    let w = world().await;
    let c = &w.component;
    let public: Vec<String> = c.public().iter().map(|op| op.id()).collect();
    assert_eq!(
        public,
        [
            identity_contract::REGISTER_CUSTOMER.id(),
            identity_contract::SHOW_CUSTOMER.id(),
            identity_contract::CHANGE_EMAIL.id(),
            identity_contract::CREATE_SESSION.id(),
            identity_contract::GET_JWKS.id(),
        ]
    );
    let served: Vec<String> = c.serves.iter().map(|s| s.op.id()).collect();
    assert_eq!(served, [identity_contract::GET_CUSTOMER.id()]);
    // Every operation the contract declares is offered, publicly or to other capabilities.
    let mut offered: Vec<String> = public.into_iter().chain(served).collect();
    let mut declared: Vec<String> = identity_contract::OPERATIONS
        .iter()
        .map(|op| op.id())
        .collect();
    offered.sort();
    declared.sort();
    assert_eq!(offered, declared);
    let published: Vec<&str> = c.publishes.iter().map(|e| e.event_type).collect();
    assert_eq!(
        published,
        [
            "identity.customer-registered",
            "identity.customer-email-changed"
        ]
    );
    assert!(c.subscriptions.is_empty());
}
