//! The route table writes its access into the OpenAPI document, and the two
//! must describe the same routes.

use utoipa::openapi::HttpMethod;
use utoipa::openapi::path::{OperationBuilder, PathItem};

use std::time::Duration;

use super::*;
use crate::declared::tests::declared;
use seams_core::auth::Role;

fn doc(paths: &[(HttpMethod, &str)]) -> OpenApi {
    let mut doc = utoipa::openapi::OpenApiBuilder::new().build();
    for (method, path) in paths {
        let item = doc
            .paths
            .paths
            .entry((*path).to_owned())
            .or_insert_with(|| PathItem::new(method.clone(), OperationBuilder::new().build()));
        let op = Some(OperationBuilder::new().build());
        match method {
            HttpMethod::Get => item.get = op,
            HttpMethod::Post => item.post = op,
            HttpMethod::Patch => item.patch = op,
            _ => unreachable!(),
        }
    }
    doc
}

fn table() -> Vec<RouteAccess> {
    let op = declared("things", Duration::from_secs(2));
    let (_, table) = Routes::new()
        .post("/things", op, Access::Open, || async { "" })
        .get(
            "/things/{id}",
            op,
            Access::People(&[Role::Staff]),
            || async { "" },
        )
        .patch(
            "/things/{id}",
            op,
            Access::People(&[Role::Customer]),
            || async { "" },
        )
        .post("/internal", op, Access::Services, || async { "" })
        .with_state(())
        .into_parts();
    table
}

#[test]
fn every_operation_gets_its_security_and_guarded_ones_their_refusals() {
    let mut d = doc(&[
        (HttpMethod::Post, "/things"),
        (HttpMethod::Get, "/things/{id}"),
        (HttpMethod::Patch, "/things/{id}"),
    ]);
    secure_openapi(&mut d, &table()).unwrap();
    let json = serde_json::to_value(&d).unwrap();
    let op = |path: &str, method: &str| json["paths"][path][method].clone();
    assert_eq!(op("/things", "post")["security"], serde_json::json!([]));
    assert!(op("/things", "post")["responses"].get("401").is_none());
    assert_eq!(
        op("/things/{id}", "get")["security"],
        serde_json::json!([{ "bearer": [] }])
    );
    let unauthenticated = &op("/things/{id}", "get")["responses"]["401"];
    assert_eq!(
        unauthenticated["content"]["application/problem+json"]["schema"]["$ref"],
        "#/components/schemas/Problem"
    );
    assert!(unauthenticated["headers"]["WWW-Authenticate"].is_object());
    assert!(
        op("/things/{id}", "get")["responses"]["503"]["description"]
            .as_str()
            .unwrap()
            .contains("auth-unavailable")
    );
    // Every route, open or guarded, documents its declared answer when
    // down, with Retry-After, and names its declaration.
    for (path, method) in [
        ("/things", "post"),
        ("/things/{id}", "get"),
        ("/things/{id}", "patch"),
    ] {
        let op = op(path, method);
        let down = &op["responses"]["503"];
        assert!(
            down["description"]
                .as_str()
                .unwrap()
                .contains("cap-unavailable"),
            "{path} {method}: {down}"
        );
        assert!(down["headers"]["Retry-After"].is_object(), "{down}");
        assert_eq!(op["x-seams-operation"], "cap.things");
        assert_eq!(op["x-seams-timeout-ms"], 2000);
    }
    // An open door has no guard to be unavailable.
    assert!(
        !op("/things", "post")["responses"]["503"]["description"]
            .as_str()
            .unwrap()
            .contains("auth-unavailable")
    );
    assert!(
        op("/things/{id}", "patch")["responses"]["403"]["description"]
            .as_str()
            .unwrap()
            .contains("customer")
    );
    let scheme = &json["components"]["securitySchemes"]["bearer"];
    assert_eq!(scheme["type"], "http");
    assert_eq!(scheme["scheme"], "bearer");
    assert_eq!(scheme["bearerFormat"], "JWT");
    // Internal doors are not in the public document.
    assert!(json["paths"].get("/internal").is_none());
}

#[test]
fn a_document_and_a_table_that_disagree_are_refused() {
    let mut d = doc(&[
        (HttpMethod::Post, "/things"),
        (HttpMethod::Get, "/things/{id}"),
        (HttpMethod::Get, "/ghost"),
    ]);
    let problems = secure_openapi(&mut d, &table()).unwrap_err();
    assert_eq!(
        problems,
        [
            "GET /ghost is documented but not routed",
            "PATCH /things/{id} is routed but not documented",
        ]
    );
}
