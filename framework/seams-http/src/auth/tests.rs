//! The guard of each declared access: who gets through, and how the
//! refused are answered.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::StatusCode;
use http_body_util::BodyExt;
use seams_auth::{Issuer, KeyStore, Minter, SigningKeys};
use seams_core::auth::Role;
use tower::ServiceExt;

use super::*;
use crate::routes::Routes;

/// Request headers of a case.
type Headers<'a> = Vec<(&'a str, &'a str)>;

struct World {
    minter: Minter,
    app: axum::Router,
}

fn world() -> World {
    let keys = KeyStore::in_memory(SigningKeys::generate().unwrap());
    let minter = Minter::new(keys.clone(), "t");
    let verifier = Arc::new(Verifier::new(vec![Issuer::deployment("t", keys)]));
    let who = |Caller(p): Caller| async move { format!("{p:?}") };
    let op = crate::declared::tests::declared("who", Duration::from_secs(5));
    let (routes, _) = Routes::new()
        .get("/open", op, Access::Open, who)
        .get("/staff", op, Access::People(&[Role::Staff]), who)
        .post(
            "/staff",
            op,
            Access::People(&[Role::Staff, Role::Customer]),
            who,
        )
        .get("/services", op, Access::Services, who)
        .with_state(())
        .into_parts();
    World {
        minter,
        app: crate::app::public(vec![("cap", routes)], axum::Router::new(), verifier),
    }
}

impl World {
    fn token(&self, role: Role) -> String {
        self.minter
            .person("x", role, Duration::from_secs(60))
            .unwrap()
            .token
    }

    async fn send(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
    ) -> (StatusCode, HeaderMap, String) {
        let mut req = Request::builder().method(method).uri(path);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let res = self
            .app
            .clone()
            .oneshot(req.body(Body::empty()).unwrap())
            .await
            .unwrap();
        let (parts, body) = res.into_parts();
        let body = body.collect().await.unwrap().to_bytes();
        (
            parts.status,
            parts.headers,
            String::from_utf8(body.to_vec()).unwrap(),
        )
    }
}

#[tokio::test]
async fn each_route_admits_its_declared_callers() {
    let w = world();
    let staff = format!("Bearer {}", w.token(Role::Staff));
    let customer = format!("Bearer {}", w.token(Role::Customer));
    let service = w
        .minter
        .service("billing", &["billing".into()], Duration::from_secs(60))
        .unwrap()
        .token;
    let service_as_person = format!("Bearer {service}");
    let cases: Vec<(&str, &str, Headers, u16)> = vec![
        ("GET", "/cap/open", vec![], 200),
        ("GET", "/cap/staff", vec![], 401),
        ("GET", "/cap/staff", vec![("authorization", &staff)], 200),
        ("GET", "/cap/staff", vec![("authorization", &customer)], 403),
        // The same path, another method, another access.
        (
            "POST",
            "/cap/staff",
            vec![("authorization", &customer)],
            200,
        ),
        ("GET", "/cap/services", vec![], 401),
        // A person is told the door is not theirs; a bad token is a bad token.
        ("GET", "/cap/services", vec![("authorization", &staff)], 403),
        (
            "GET",
            "/cap/services",
            vec![("authorization", "Bearer forged.token.here")],
            401,
        ),
        (
            "GET",
            "/cap/services",
            vec![("x-seams-peer", &service)],
            200,
        ),
        // A service token is not a person's.
        (
            "GET",
            "/cap/staff",
            vec![("authorization", &service_as_person)],
            403,
        ),
    ];
    for (method, path, headers, want) in cases {
        let (status, _, body) = w.send(method, path, &headers).await;
        assert_eq!(status.as_u16(), want, "{method} {path} {headers:?}: {body}");
    }
}

#[tokio::test]
async fn refusals_are_problems_with_a_bearer_challenge() {
    let w = world();
    let (status, headers, body) = w.send("GET", "/cap/staff", &[]).await;
    assert_eq!(status, 401);
    assert_eq!(headers["www-authenticate"], r#"Bearer realm="seams""#);
    assert_eq!(headers["content-type"], "application/problem+json");
    assert!(body.contains("urn:seams:problem:unauthenticated"), "{body}");

    for bad in [
        "Bearer",
        "Bearer ",
        "Basic abc",
        "bearer not.a.token",
        "Token x",
    ] {
        let (status, headers, body) = w.send("GET", "/cap/staff", &[("authorization", bad)]).await;
        assert_eq!(status, 401, "{bad}: {body}");
        assert!(headers.contains_key("www-authenticate"), "{bad}");
    }
    let customer = format!("Bearer {}", w.token(Role::Customer));
    let (status, headers, body) = w
        .send("GET", "/cap/staff", &[("authorization", &customer)])
        .await;
    assert_eq!(status, 403);
    assert!(body.contains("urn:seams:problem:forbidden"), "{body}");
    assert!(
        headers["www-authenticate"]
            .to_str()
            .unwrap()
            .contains("insufficient_scope")
    );
}

#[test]
fn bearer_tokens_are_read_strictly() {
    let h = |values: &[&str]| {
        let mut map = HeaderMap::new();
        for v in values {
            map.append(header::AUTHORIZATION, HeaderValue::from_str(v).unwrap());
        }
        map
    };
    assert_eq!(bearer(&h(&[])), Ok(None));
    assert_eq!(bearer(&h(&["Bearer abc"])), Ok(Some("abc")));
    assert_eq!(bearer(&h(&["bearer  abc "])), Ok(Some("abc")));
    assert_eq!(bearer(&h(&["Bearer "])), Err(AuthError::Missing));
    assert!(matches!(
        bearer(&h(&["Basic abc"])),
        Err(AuthError::Malformed(_))
    ));
    assert!(matches!(
        bearer(&h(&["Bearer a", "Bearer b"])),
        Err(AuthError::Malformed(_))
    ));
}

#[test]
fn each_auth_error_has_its_problem() {
    let cases = [
        (AuthError::Missing, 401, "unauthenticated"),
        (AuthError::Expired, 401, "invalid-token"),
        (AuthError::Malformed("x".into()), 401, "invalid-token"),
        (AuthError::Rejected("x".into()), 401, "invalid-token"),
        (AuthError::Unavailable("x".into()), 503, "auth-unavailable"),
    ];
    for (err, status, slug) in cases {
        let p = auth_problem(&err);
        assert_eq!((p.status, p.slug()), (status, Some(slug)), "{err:?}");
        // The reason is logged, never told: it would help a forger.
        assert!(!p.detail.unwrap_or_default().contains(": x"), "{err:?}");
    }
    let res = auth_response(&AuthError::Unavailable("down".into()));
    assert_eq!(res.headers()["retry-after"], "1");
    assert!(!res.headers().contains_key("www-authenticate"));
}
