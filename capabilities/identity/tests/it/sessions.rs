//! Signing in, and who may read and change what: tokens for the right
//! password only, the same answer for a wrong password and an unknown
//! address, limits on attempts, passwords never stored or shown, and a
//! customer's record closed to everyone else.

use axum::http::StatusCode;
use identity_contract::{CreateSession, RegisterCustomer};
use seams_core::auth::{Principal, Role};
use serde_json::{Value, json};

use super::{PASSWORD, World, world, world_with};

fn limits(per_email: u32, per_address: u32) -> identity::credentials::Limits {
    identity::credentials::Limits {
        per_email: std::num::NonZeroU32::new(per_email).unwrap(),
        per_address: std::num::NonZeroU32::new(per_address).unwrap(),
    }
}

async fn sign_in(w: &World, email: &str, password: &str) -> seams_testkit::oneshot::Reply {
    w.app
        .anonymous()
        .post(
            "/identity/sessions",
            &json!({ "email": email, "password": password }),
            &[],
        )
        .await
}

#[tokio::test]
async fn the_right_password_gets_a_token_for_that_customer() {
    let w = world().await;
    let id = w.register("ann@example.com").await;
    let r = sign_in(&w, " Ann@Example.com ", PASSWORD).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.json);
    assert_eq!(r.json["token_type"], "Bearer");
    assert_eq!(r.json["expires_in"], 900);
    assert_eq!(r.headers["cache-control"], "no-store");
    let token = r.json["access_token"].as_str().unwrap();
    let who = w.app.issuer().verifier().verify(token).await.unwrap();
    assert_eq!(
        who,
        Principal::Person {
            subject: id.clone(),
            role: Role::Customer,
            issuer: seams_testkit::auth::ISSUER.into()
        }
    );
    // The token opens the customer's own record.
    let r = w
        .app
        .as_token(token)
        .get(&format!("/identity/customers/{id}"))
        .await;
    assert_eq!(
        (r.status, &r.json["email"]),
        (StatusCode::OK, &json!("ann@example.com"))
    );
}

#[tokio::test]
async fn a_wrong_password_and_an_unknown_address_get_the_same_answer() {
    let w = world().await;
    w.register("ann@example.com").await;
    let answers: Vec<(StatusCode, Value)> = {
        let mut out = Vec::new();
        for (email, password) in [
            ("ann@example.com", "wrong password!"),
            ("ann@example.com", ""),
            ("nobody@example.com", PASSWORD),
            ("not an address", PASSWORD),
        ] {
            let r = sign_in(&w, email, password).await;
            assert_eq!(r.content_type(), "application/problem+json");
            assert!(
                r.headers.get("www-authenticate").is_none(),
                "not a token problem"
            );
            out.push((r.status, r.json));
        }
        out
    };
    for a in &answers {
        assert_eq!(a, &answers[0], "every failure looks the same");
    }
    assert_eq!(answers[0].0, StatusCode::UNAUTHORIZED);
    assert_eq!(
        answers[0].1["type"],
        "urn:seams:problem:invalid-credentials"
    );
}

#[tokio::test]
async fn sign_in_attempts_are_limited_per_address_and_per_email() {
    let w = world_with(limits(2, 100)).await;
    w.register("ann@example.com").await;
    w.register("bob@example.com").await;
    for _ in 0..2 {
        assert_eq!(
            sign_in(&w, "ann@example.com", "wrong password!")
                .await
                .status,
            StatusCode::UNAUTHORIZED
        );
    }
    // The limit counts attempts, so even the right password waits now...
    let r = sign_in(&w, "ANN@example.com", PASSWORD).await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS, "{}", r.json);
    assert_eq!(r.json["type"], "urn:seams:problem:too-many-attempts");
    let retry: u64 = r.headers["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=60).contains(&retry), "{retry}");
    // ...while another customer is not held up by Ann's limit.
    assert_eq!(
        sign_in(&w, "bob@example.com", PASSWORD).await.status,
        StatusCode::CREATED
    );

    // Per client address, sign-ups count too (these requests have no
    // address: they share the one key of unknown addresses).
    let w = world_with(limits(100, 3)).await;
    w.register("ann@example.com").await;
    assert_eq!(
        sign_in(&w, "ann@example.com", PASSWORD).await.status,
        StatusCode::CREATED
    );
    assert_eq!(
        sign_in(&w, "bob@example.com", PASSWORD).await.status,
        StatusCode::UNAUTHORIZED
    );
    let r = sign_in(&w, "ann@example.com", PASSWORD).await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS);
    let body = json!({ "email": "cy@example.com", "name": "Cy", "password": PASSWORD });
    let r = w.app.post("/identity/customers", &body, &[]).await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS, "{}", r.json);
    assert_eq!(
        w.n_customers().await,
        1,
        "the refused sign-up wrote nothing"
    );
}

#[tokio::test]
async fn passwords_are_checked_hashed_and_never_shown() {
    let w = world().await;
    for (password, why) in [
        ("short", "under 8 characters"),
        ("x".repeat(129).as_str(), "over 128 characters"),
        ("eight\u{7}chars", "a control character"),
    ] {
        let body = json!({ "email": "ann@example.com", "name": "Ann", "password": password });
        let r = w.app.post("/identity/customers", &body, &[]).await;
        assert_eq!(
            (r.status, r.problem_type(), &r.json["field"]),
            (
                StatusCode::UNPROCESSABLE_ENTITY,
                "urn:seams:problem:invalid-field",
                &json!("password")
            ),
            "{why}"
        );
        assert!(!r.json.to_string().contains(password), "{why}: echoed");
    }
    let r = w
        .app
        .post(
            "/identity/customers",
            &json!({ "email": "ann@example.com", "name": "Ann" }),
            &[],
        )
        .await;
    assert_eq!(
        (r.status, &r.json["field"]),
        (StatusCode::UNPROCESSABLE_ENTITY, &json!("password"))
    );
    assert_eq!(w.n_customers().await, 0);

    // Multi-byte characters count as one each.
    let accented = "é".repeat(8);
    let body = json!({ "email": "ann@example.com", "name": "Ann", "password": accented });
    let r = w.app.post("/identity/customers", &body, &[]).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.json);
    assert!(
        !r.bytes
            .windows(accented.len())
            .any(|w| w == accented.as_bytes())
    );
    let hash: String = seams_store::query("SELECT password_hash FROM customers")
        .fetch_one(&mut w.component.db.read().await.unwrap())
        .await
        .unwrap()
        .get(0)
        .unwrap();
    assert!(hash.starts_with("$argon2id$"), "{hash}");
    assert!(!hash.contains(&accented));
    let events = w.component.db.read_outbox(0, 10).await.unwrap();
    assert!(events.iter().all(|e| !e.data.get().contains(&accented)));
    assert_eq!(
        sign_in(&w, "ann@example.com", &accented).await.status,
        StatusCode::CREATED
    );

    // Debug output of the wire types never shows a password either.
    let shown = format!(
        "{:?} {:?}",
        RegisterCustomer {
            email: "a@b.c".into(),
            name: "A".into(),
            password: "hunter22-secret".into()
        },
        CreateSession {
            email: "a@b.c".into(),
            password: "hunter22-secret".into()
        },
    );
    assert!(!shown.contains("hunter22"), "{shown}");
}

#[tokio::test]
async fn a_customer_s_record_is_closed_to_everyone_else() {
    let w = world().await;
    let ann = w.register("ann@example.com").await;
    let bob = w.register("bob@example.com").await;
    let path = format!("/identity/customers/{ann}");
    // Bob learns nothing: Ann's record is "not found" to him, as an unknown one is.
    let as_bob = w.app.as_customer(&bob);
    let r = as_bob.get(&path).await;
    assert_eq!(
        (r.status, r.problem_type()),
        (
            StatusCode::NOT_FOUND,
            "urn:seams:problem:customer-not-found"
        )
    );
    let r = as_bob
        .send(
            axum::http::Method::PATCH,
            &path,
            json!({ "email": "bob.evil@example.com" }).to_string(),
            &[("content-type", "application/json")],
        )
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "{}", r.json);
    assert_eq!(
        w.get(&path).await.json["email"],
        "ann@example.com",
        "unchanged"
    );
    assert_eq!(w.n_events().await, 2, "only the registrations");

    // Staff and operators are not customers: the door is not theirs.
    for app in [w.app.as_staff(), w.app.as_operator()] {
        let r = app.get(&path).await;
        assert_eq!(
            (r.status, r.problem_type()),
            (StatusCode::FORBIDDEN, "urn:seams:problem:forbidden")
        );
    }
    // Nobody, and a token from elsewhere, are not let in at all.
    let r = w.app.anonymous().get(&path).await;
    assert_eq!(
        (r.status, r.problem_type()),
        (
            StatusCode::UNAUTHORIZED,
            "urn:seams:problem:unauthenticated"
        )
    );
    assert_eq!(r.headers["www-authenticate"], r#"Bearer realm="seams""#);
    let stranger = seams_testkit::auth::TestIssuer::new().customer(&ann);
    let r = w.app.as_token(stranger).get(&path).await;
    assert_eq!(
        (r.status, r.problem_type()),
        (StatusCode::UNAUTHORIZED, "urn:seams:problem:invalid-token")
    );
    assert!(
        r.headers["www-authenticate"]
            .to_str()
            .unwrap()
            .contains("invalid_token")
    );
    let r = w
        .app
        .anonymous()
        .send(
            axum::http::Method::GET,
            &path,
            "",
            &[("authorization", "Basic YW5uOnB3")],
        )
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn the_public_keys_are_open_and_verify_the_tokens() {
    let w = world().await;
    let r = w
        .app
        .anonymous()
        .get("/identity/.well-known/jwks.json")
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.headers["cache-control"], "public, max-age=300");
    let keys = r.json["keys"].as_array().unwrap();
    assert_eq!(keys.len(), 1);
    assert_eq!(keys[0]["kty"], "OKP");
    assert_eq!(keys[0]["alg"], "EdDSA");
    assert!(keys[0].get("d").is_none(), "no private half");
    // Those keys alone verify a token identity minted.
    w.register("ann@example.com").await;
    let token = sign_in(&w, "ann@example.com", PASSWORD).await.json["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let keys = seams_auth::jwks::parse(&r.json).unwrap();
    let kid = jsonwebtoken::decode_header(&token).unwrap().kid.unwrap();
    let key = &keys[&kid];
    let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::EdDSA);
    validation.set_issuer(&[seams_testkit::auth::ISSUER]);
    let claims = jsonwebtoken::decode::<Value>(&token, &key.key, &validation)
        .unwrap()
        .claims;
    assert_eq!(claims["role"], "customer");
}
