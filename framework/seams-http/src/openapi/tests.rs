//! Every operation's document lists what the framework answers before its
//! handler runs, judged from what the operation declares.

use serde_json::{Value, json};
use utoipa::openapi::HttpMethod;
use utoipa::openapi::path::{OperationBuilder, ParameterBuilder, PathItem};
use utoipa::openapi::request_body::RequestBodyBuilder;

use super::*;

fn param(name: &str, place: ParameterIn) -> utoipa::openapi::path::Parameter {
    ParameterBuilder::new()
        .name(name)
        .parameter_in(place)
        .build()
}

/// A document of: a keyed command with a body and a path parameter (its
/// 422 already documented by the handler), a query, and a bare read.
fn doc() -> OpenApi {
    let keyed = OperationBuilder::new()
        .parameter(param("id", ParameterIn::Path))
        .parameter(param("Idempotency-Key", ParameterIn::Header))
        .request_body(Some(RequestBodyBuilder::new().build()))
        .response("201", Response::new("created"))
        .response(
            "422",
            ResponseBuilder::new()
                .description("invalid-field: names the field")
                .content(PROBLEM_JSON, ContentBuilder::new().build())
                .build(),
        )
        .build();
    let query = OperationBuilder::new()
        .parameter(param("customer_id", ParameterIn::Query))
        .response("200", Response::new("a page"))
        .build();
    let bare = OperationBuilder::new()
        .response("200", Response::new("ok"))
        .build();
    let mut doc = utoipa::openapi::OpenApiBuilder::new().build();
    for (path, method, op) in [
        ("/things/{id}/payments", HttpMethod::Post, keyed),
        ("/things", HttpMethod::Get, query),
        ("/healthy", HttpMethod::Get, bare),
    ] {
        doc.paths
            .paths
            .insert(path.to_owned(), PathItem::new(method, op));
    }
    doc
}

fn documented() -> Value {
    let mut d = doc();
    document_framework_answers(&mut d);
    serde_json::to_value(&d).unwrap()
}

fn statuses(op: &Value) -> Vec<String> {
    op["responses"]
        .as_object()
        .unwrap()
        .keys()
        .cloned()
        .collect()
}

#[test]
fn a_keyed_command_with_a_body_and_a_path_lists_every_refusal_before_its_handler() {
    let json = documented();
    let op = &json["paths"]["/things/{id}/payments"]["post"];
    assert_eq!(
        statuses(op),
        ["201", "400", "413", "415", "422", "428", "503"]
    );
    let description = |status: &str| op["responses"][status]["description"].as_str().unwrap();
    for slug in [
        "malformed-json",
        "bad-request",
        "invalid-path",
        "invalid-idempotency-key",
    ] {
        assert!(description("400").contains(slug), "400 lacks {slug}");
    }
    // The handler's own words stay first; the framework's types follow.
    assert!(description("422").starts_with("invalid-field: names the field; "));
    assert!(description("422").contains("invalid-body"));
    assert!(description("422").contains("idempotency-key-reused"));
    assert!(description("413").contains("body-too-large"));
    assert!(description("415").contains("unsupported-media-type"));
    assert!(description("428").contains("idempotency-key-required"));
    assert!(description("503").contains("overloaded"));
    assert!(description("503").contains("request-timeout"));
    // The key's schema is the rule the extractor enforces.
    assert_eq!(
        op["parameters"][1]["schema"],
        json!({ "type": "string", "minLength": 1, "maxLength": 255, "pattern": "^[!-~]+$" })
    );
}

#[test]
fn a_read_gets_only_what_its_parameters_can_cause() {
    let json = documented();
    assert_eq!(
        statuses(&json["paths"]["/things"]["get"]),
        ["200", "400", "503"]
    );
    assert!(
        json["paths"]["/things"]["get"]["responses"]["400"]["description"]
            .as_str()
            .unwrap()
            .starts_with("invalid-query")
    );
    assert_eq!(statuses(&json["paths"]["/healthy"]["get"]), ["200", "503"]);
}

#[test]
fn every_problem_answer_has_the_problem_schema_and_a_shed_one_its_retry_after() {
    let json = documented();
    let problem_ref = json!({ "$ref": "#/components/schemas/Problem" });
    for (path, method) in [
        ("/things/{id}/payments", "post"),
        ("/things", "get"),
        ("/healthy", "get"),
    ] {
        let responses = json["paths"][path][method]["responses"]
            .as_object()
            .unwrap();
        for (status, res) in responses {
            if status.starts_with('2') {
                assert!(res.get("content").is_none(), "{path} {status}");
                continue;
            }
            assert_eq!(
                res["content"][PROBLEM_JSON]["schema"], problem_ref,
                "{method} {path} {status}"
            );
        }
        let retry = &responses["503"]["headers"]["Retry-After"];
        assert_eq!(retry["schema"]["type"], "integer");
    }
    let schema = &json["components"]["schemas"][PROBLEM];
    assert_eq!(schema["required"], json!(["type", "title", "status"]));
    assert_eq!(
        schema["properties"]["type"]["pattern"],
        "^urn:seams:problem:[a-z0-9]+(-[a-z0-9]+)*$"
    );
}

#[test]
fn a_document_without_operations_is_left_alone() {
    let mut d = utoipa::openapi::OpenApiBuilder::new().build();
    document_framework_answers(&mut d);
    assert!(d.components.is_none());
}
