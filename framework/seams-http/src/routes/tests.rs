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
fn a_documented_operation_that_is_not_routed_is_refused() {
    let mut d = doc(&[
        (HttpMethod::Post, "/things"),
        (HttpMethod::Get, "/things/{id}"),
        (HttpMethod::Patch, "/things/{id}"),
        (HttpMethod::Get, "/ghost"),
    ]);
    let problems = secure_openapi(&mut d, &table()).unwrap_err();
    assert_eq!(problems, ["GET /ghost is documented but not routed"]);
}

/// A payload with a named part, as `seams_schema::schema_of` writes one.
fn thing_schema() -> serde_json::Value {
    serde_json::json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "type": "object",
        "required": ["id", "price"],
        "properties": {
            "id": { "type": "string", "description": "#/$defs/Amount is only words here" },
            "price": { "$ref": "#/$defs/Amount" },
            "previous": { "oneOf": [{ "type": "null" }, { "$ref": "#/$defs/Amount" }] }
        },
        "$defs": {
            "Amount": { "type": "object", "properties": { "amount": { "type": "integer" } } }
        }
    })
}

fn described(op: &'static decl::Operation, method: Method) -> serde_json::Value {
    const PATH: &str = "/things/{id}/parts/{part}";
    let routes = Routes::new();
    let routes = match method {
        Method::GET => routes.get(PATH, op, Access::Open, || async { "" }),
        Method::PUT => routes.put(PATH, op, Access::Open, || async { "" }),
        Method::PATCH => routes.patch(PATH, op, Access::Open, || async { "" }),
        Method::DELETE => routes.delete(PATH, op, Access::Open, || async { "" }),
        _ => routes.post(PATH, op, Access::Open, || async { "" }),
    };
    let (_, table) = routes.with_state(()).into_parts();
    let mut d = doc(&[]);
    secure_openapi(&mut d, &table).unwrap();
    serde_json::to_value(&d).unwrap()
}

#[test]
fn a_route_documented_by_hand_nowhere_is_described_from_its_declaration() {
    let query = Box::leak(Box::new(decl::Operation {
        response: thing_schema,
        ..*declared("things", Duration::from_secs(2))
    }));
    let json = described(query, Method::GET);
    let op = &json["paths"]["/things/{id}/parts/{part}"]["get"];
    assert_eq!(op["operationId"], "cap.things");
    assert_eq!(op["summary"], "A test route.");
    let params: Vec<_> = op["parameters"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["name"].as_str().unwrap(),
                p["in"].as_str().unwrap(),
                p["required"].as_bool().unwrap(),
                p["schema"]["type"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        params,
        [
            ("id", "path", true, "string"),
            ("part", "path", true, "string")
        ]
    );
    let ok = &op["responses"]["200"]["content"]["application/json"]["schema"];
    assert_eq!(
        ok["properties"]["price"]["$ref"],
        "#/components/schemas/Amount"
    );
    assert_eq!(
        ok["properties"]["previous"]["oneOf"][1]["$ref"], "#/components/schemas/Amount",
        "references inside lists too"
    );
    assert_eq!(
        ok["properties"]["id"]["description"], "#/$defs/Amount is only words here",
        "only references are relinked"
    );
    assert!(
        ok.get("$defs").is_none() && ok.get("$schema").is_none(),
        "{ok}"
    );
    assert_eq!(
        json["components"]["schemas"]["Amount"]["properties"]["amount"]["type"],
        "integer"
    );
    assert!(op.get("requestBody").is_none(), "a query declares no body");
    // Then documented like any other: its declared answer when down, and
    // what the framework answers for a path parameter.
    assert!(
        op["responses"]["503"]["description"]
            .as_str()
            .unwrap()
            .contains("cap-unavailable")
    );
    assert!(
        op["responses"]["400"]["description"]
            .as_str()
            .unwrap()
            .contains("invalid-path")
    );

    // A GET's declared request is its query string: a parameter each.
    fn page() -> serde_json::Value {
        serde_json::json!({
            "type": "object",
            "required": ["owner"],
            "additionalProperties": false,
            "properties": {
                "owner": { "type": "string", "minLength": 1, "description": "Whose." },
                "limit": { "type": ["integer", "null"] }
            }
        })
    }
    let listing = Box::leak(Box::new(decl::Operation {
        request: page,
        ..*declared("things", Duration::from_secs(2))
    }));
    let json = described(listing, Method::GET);
    let op = &json["paths"]["/things/{id}/parts/{part}"]["get"];
    let query: Vec<_> = op["parameters"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["in"] == "query")
        .map(|p| {
            (
                p["name"].as_str().unwrap(),
                p["required"].as_bool().unwrap(),
            )
        })
        .collect();
    assert_eq!(query, [("limit", false), ("owner", true)]);
    let owner = op["parameters"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "owner")
        .unwrap();
    assert_eq!(owner["schema"]["minLength"], 1);
    assert_eq!(owner["description"], "Whose.");
    assert!(op.get("requestBody").is_none(), "a GET has no body");

    let command = Box::leak(Box::new(decl::Operation {
        request: thing_schema,
        ..*declared("things", Duration::from_secs(2))
    }));
    let json = described(command, Method::POST);
    for (method, key) in [
        (Method::PUT, "put"),
        (Method::PATCH, "patch"),
        (Method::DELETE, "delete"),
    ] {
        let json = described(command, method);
        let op = &json["paths"]["/things/{id}/parts/{part}"][key];
        assert_eq!(op["operationId"], "cap.things", "{key}");
    }
    let body = &json["paths"]["/things/{id}/parts/{part}"]["post"]["requestBody"];
    assert_eq!(body["required"], true);
    assert_eq!(
        body["content"]["application/json"]["schema"]["required"],
        serde_json::json!(["id", "price"])
    );
}

#[test]
fn a_declared_schema_a_document_cannot_hold_is_refused_by_name() {
    fn broken() -> serde_json::Value {
        serde_json::json!({ "type": "object", "$defs": { "Odd": { "type": 7 } } })
    }
    let op = Box::leak(Box::new(decl::Operation {
        response: broken,
        ..*declared("things", Duration::from_secs(2))
    }));
    let (_, table) = Routes::new()
        .get("/odd", op, Access::Open, || async { "" })
        .with_state(())
        .into_parts();
    let problems = secure_openapi(&mut doc(&[]), &table).unwrap_err();
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert!(
        problems[0].starts_with("GET /odd: cap.things: response: Odd: "),
        "{problems:?}"
    );
}
