//! The answers the framework gives on a capability's behalf, written into
//! its OpenAPI document once rather than in every handler's annotation.
//!
//! A handler documents what its own code answers (`product-not-found`,
//! `duplicate-sku`). Before a request reaches it, the framework may already
//! have answered: the strict extractors ([`crate::extract`]) refuse a body
//! that is not JSON, too large or of the wrong shape, a path or query that
//! does not parse; the keyed-command extractor ([`crate::idempotency`])
//! refuses a missing, invalid or reused `Idempotency-Key`; the edge
//! ([`crate::server`]) sheds a request when it is at capacity or answers
//! one that took too long; a route's declaration answers with its declared
//! problem when the route is too slow or what it needs is down
//! ([`crate::declared`]; [`crate::routes::secure_openapi`] adds that
//! answer, knowing the route's declaration). [`document_framework_answers`] adds those
//! answers to every operation they can happen to, judged from what the
//! operation declares (a request body, path and query parameters, an
//! `Idempotency-Key` header), so a client generated from the document, or
//! a fuzzer checking answers against it, meets no status it was not told
//! about. Every problem answer gets the [`PROBLEM`] schema, so the body's
//! shape is documented too, and the `Idempotency-Key` the rule the
//! extractor enforces.

use utoipa::openapi::path::{Operation, ParameterIn};
use utoipa::openapi::schema::{ObjectBuilder, Type};
use utoipa::openapi::{
    Content, ContentBuilder, Header, OpenApi, Ref, RefOr, Response, ResponseBuilder, Schema,
};

use crate::idempotency::IDEMPOTENCY_KEY;

/// The media type of every problem answer.
pub const PROBLEM_JSON: &str = "application/problem+json";
/// The name of the problem schema in the document's components.
pub const PROBLEM: &str = "Problem";

/// A problem answer the framework can give: status, problem type slug, and
/// when it happens.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Answer {
    status: &'static str,
    slug: &'static str,
    why: &'static str,
}

const fn answer(status: &'static str, slug: &'static str, why: &'static str) -> Answer {
    Answer { status, slug, why }
}

/// What the edge may answer to any request.
const EVERY_REQUEST: &[Answer] = &[
    answer(
        "503",
        "overloaded",
        "the service is at capacity and did not take the request (Retry-After)",
    ),
    answer(
        "503",
        "request-timeout",
        "the request was not answered in time (Retry-After)",
    ),
];

/// What the JSON body extractors may answer.
const WITH_BODY: &[Answer] = &[
    answer("400", "malformed-json", "the body is not JSON"),
    answer("400", "bad-request", "the body could not be read"),
    answer(
        "413",
        "body-too-large",
        "the body is larger than the service accepts",
    ),
    answer(
        "415",
        "unsupported-media-type",
        "the body is not sent as application/json",
    ),
    answer(
        "422",
        "invalid-body",
        "the body is not an object of the documented shape (names the field)",
    ),
];

/// What the path extractor may answer.
const WITH_PATH: &[Answer] = &[answer(
    "400",
    "invalid-path",
    "a path parameter does not parse",
)];

/// What the query extractor may answer.
const WITH_QUERY: &[Answer] = &[answer(
    "400",
    "invalid-query",
    "a query parameter is missing, unknown or does not parse",
)];

/// What the keyed-command extractor may answer.
const KEYED: &[Answer] = &[
    answer(
        "400",
        "invalid-idempotency-key",
        "the Idempotency-Key is not 1-255 visible ASCII characters",
    ),
    answer(
        "422",
        "idempotency-key-reused",
        "the Idempotency-Key was first used with another request",
    ),
    answer(
        "428",
        "idempotency-key-required",
        "the Idempotency-Key header is missing",
    ),
];

/// What a guard may answer besides 401 and 403: the keys that verify
/// tokens cannot be had (an external issuer's JWKS is unreachable).
pub(crate) const GUARDED: &[Answer] = &[answer(
    "503",
    "auth-unavailable",
    "tokens cannot be verified right now (Retry-After)",
)];

/// The declared "when down" answer of a route declared as `op`: the
/// problem its declaration names, when it declares failing fast.
pub(crate) fn declared_answer(op: &'static seams_core::decl::Operation) -> Option<Answer> {
    match op.when_down {
        seams_core::decl::WhenDown::FailFast { problem, .. } => Some(answer(
            "503",
            problem,
            "not answered within the operation's declared timeout, or something it needs (its database, a capability it calls) is unavailable; the `unavailable` member names which (Retry-After)",
        )),
        seams_core::decl::WhenDown::QueueAndDeliverLater
        | seams_core::decl::WhenDown::Fallback { .. } => None,
    }
}

/// Adds the framework's answers to every operation of `doc`, gives every
/// problem answer the [`PROBLEM`] schema and documents `Retry-After` on
/// 429 and 503 answers. Answers an operation documents already keep their
/// description, extended with the problem types the framework adds.
pub fn document_framework_answers(doc: &mut OpenApi) {
    let mut any = false;
    for item in doc.paths.paths.values_mut() {
        for op in [
            &mut item.get,
            &mut item.post,
            &mut item.put,
            &mut item.patch,
            &mut item.delete,
        ]
        .into_iter()
        .flatten()
        {
            any = true;
            let mut keyed = false;
            for p in op.parameters.iter_mut().flatten() {
                if p.parameter_in == ParameterIn::Header
                    && p.name.eq_ignore_ascii_case(IDEMPOTENCY_KEY.as_str())
                {
                    keyed = true;
                    p.schema = Some(idempotency_key_schema());
                }
            }
            let params = op.parameters.as_deref().unwrap_or_default();
            let has = |place: ParameterIn| params.iter().any(|p| p.parameter_in == place);
            let mut answers: Vec<Answer> = EVERY_REQUEST.to_vec();
            if op.request_body.is_some() {
                answers.extend_from_slice(WITH_BODY);
            }
            if has(ParameterIn::Path) {
                answers.extend_from_slice(WITH_PATH);
            }
            if has(ParameterIn::Query) {
                answers.extend_from_slice(WITH_QUERY);
            }
            if keyed {
                answers.extend_from_slice(KEYED);
            }
            add_answers(op, &answers);
            type_problems(op);
        }
    }
    if any {
        doc.components
            .get_or_insert_with(Default::default)
            .schemas
            .insert(PROBLEM.to_owned(), problem_schema());
    }
}

/// Adds `answers` to `op`: a new problem response per status, or the
/// problem types appended to the description of one already documented.
pub(crate) fn add_answers(op: &mut Operation, answers: &[Answer]) {
    for a in answers {
        let responses = &mut op.responses.responses;
        match responses.get_mut(a.status) {
            None => {
                responses.insert(
                    a.status.to_owned(),
                    problem(&format!("{}: {}", a.slug, a.why)),
                );
            }
            Some(RefOr::T(res)) => {
                if !res.description.contains(a.slug) {
                    res.description = if res.description.is_empty() {
                        format!("{}: {}", a.slug, a.why)
                    } else {
                        format!("{}; {}: {}", res.description, a.slug, a.why)
                    };
                }
                res.content
                    .entry(PROBLEM_JSON.to_owned())
                    .or_insert_with(problem_content);
            }
            // A shared response is the document author's to describe.
            Some(RefOr::Ref(_)) => {}
        }
    }
}

/// A problem response described by `description`.
pub(crate) fn problem(description: &str) -> RefOr<Response> {
    RefOr::T(
        ResponseBuilder::new()
            .description(description)
            .content(PROBLEM_JSON, problem_content())
            .build(),
    )
}

fn problem_content() -> Content {
    ContentBuilder::new()
        .schema(Some(Ref::from_schema_name(PROBLEM)))
        .build()
}

/// Gives each problem answer of `op` without a schema the problem schema,
/// and its 429 and 503 answers their `Retry-After`.
fn type_problems(op: &mut Operation) {
    for (status, res) in op.responses.responses.iter_mut() {
        let RefOr::T(res) = res else { continue };
        if let Some(content) = res.content.get_mut(PROBLEM_JSON)
            && content.schema.is_none()
        {
            content.schema = Some(Ref::from_schema_name(PROBLEM).into());
        }
        if matches!(status.as_str(), "429" | "503") {
            res.headers
                .entry("Retry-After".to_owned())
                .or_insert_with(|| {
                    let mut h = Header::new(
                        ObjectBuilder::new()
                            .schema_type(Type::Integer)
                            .minimum(Some(0)),
                    );
                    h.description = Some("Seconds to wait before trying again.".to_owned());
                    h
                });
        }
    }
}

/// What [`crate::idempotency`] accepts as a key: 1-255 visible ASCII
/// characters.
fn idempotency_key_schema() -> RefOr<Schema> {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .min_length(Some(1))
        .max_length(Some(crate::idempotency::MAX_KEY_LEN))
        .pattern(Some("^[!-~]+$"))
        .into()
}

/// RFC 9457 problem details as every answer of this system carries them:
/// a stable `type` URN, a `title`, the HTTP `status`, an optional
/// `detail`, and extension members (`field`, `retry_after`, ...).
fn problem_schema() -> RefOr<Schema> {
    let string = || ObjectBuilder::new().schema_type(Type::String);
    ObjectBuilder::new()
        .schema_type(Type::Object)
        .description(Some(
            "RFC 9457 problem details. Match on `type`; `title` and `detail` are for people and may change. Extension members (such as `field`) may follow.",
        ))
        .property(
            "type",
            string()
                .pattern(Some(format!(
                    "^{}[a-z0-9]+(-[a-z0-9]+)*$",
                    seams_core::problem::TYPE_PREFIX
                )))
                .description(Some("Stable problem type, `urn:seams:problem:<slug>`.")),
        )
        .required("type")
        .property(
            "title",
            string().description(Some("Short summary of the type.")),
        )
        .required("title")
        .property(
            "status",
            ObjectBuilder::new()
                .schema_type(Type::Integer)
                .minimum(Some(400))
                .maximum(Some(599))
                .description(Some("The HTTP status code.")),
        )
        .required("status")
        .property(
            "detail",
            string().description(Some("What happened this time.")),
        )
        .into()
}

#[cfg(test)]
mod tests;

/// Documents `method path` from its declaration alone, for a route its
/// capability describes no further: the declaration's summary and id, a
/// string parameter per `{name}` segment of the path, a query parameter per
/// property of a `GET`'s declared request (its query string), the request
/// body of other methods and
/// the `200` answer as JSON of the declared schemas (their named parts
/// added to the document's components). What the framework answers on the
/// operation's behalf is added afterwards like for any other; an answer of
/// the handler's own (a `404 product-not-found`, say) needs an entry written
/// by hand, which then replaces this one. Fails, naming the schema, when a
/// declared schema is not one an OpenAPI document can hold.
pub(crate) fn describe(
    doc: &mut OpenApi,
    method: &axum::http::Method,
    path: &str,
    op: &seams_core::decl::Operation,
) -> Result<(), String> {
    use axum::http::Method;
    use utoipa::openapi::HttpMethod;
    use utoipa::openapi::path::{OperationBuilder, ParameterBuilder};
    use utoipa::openapi::request_body::RequestBodyBuilder;
    use utoipa::openapi::{Required, schema::SchemaType};

    let method = match *method {
        Method::GET => HttpMethod::Get,
        Method::POST => HttpMethod::Post,
        Method::PUT => HttpMethod::Put,
        Method::PATCH => HttpMethod::Patch,
        Method::DELETE => HttpMethod::Delete,
        _ => return Err(format!("{method} is not a method routes are declared with")),
    };
    let mut builder = OperationBuilder::new()
        .operation_id(Some(op.id()))
        .summary(Some(op.summary));
    for name in path
        .split('/')
        .filter_map(|s| s.strip_prefix('{')?.strip_suffix('}'))
    {
        builder = builder.parameter(
            ParameterBuilder::new()
                .name(name)
                .parameter_in(ParameterIn::Path)
                .required(Required::True)
                .schema(Some(
                    ObjectBuilder::new().schema_type(SchemaType::from(Type::String)),
                )),
        );
    }
    let request = (op.request)();
    if method == HttpMethod::Get && request != seams_core::decl::no_body() {
        // A GET's declared request is its query string
        // (`seams_schema::query_of`): a parameter per property.
        let (schema, parts) = seams_schema::for_openapi(request);
        let components = doc.components.get_or_insert_with(Default::default);
        for (name, part) in parts {
            let part = serde_json::from_value(part)
                .map_err(|e| format!("{}: request: {name}: {e}", op.id()))?;
            components.schemas.entry(name).or_insert(part);
        }
        let required = |name: &str| {
            schema["required"]
                .as_array()
                .is_some_and(|r| r.iter().any(|n| n == name))
        };
        let properties = schema["properties"]
            .as_object()
            .cloned()
            .unwrap_or_default();
        for (name, property) in properties {
            let description = property["description"].as_str().map(str::to_owned);
            let property: RefOr<Schema> = serde_json::from_value(property)
                .map_err(|e| format!("{}: request: {name}: {e}", op.id()))?;
            builder = builder.parameter(
                // `parameter_in` first: `required` forces a path parameter's.
                ParameterBuilder::new()
                    .parameter_in(ParameterIn::Query)
                    .required(if required(&name) {
                        Required::True
                    } else {
                        Required::False
                    })
                    .name(name)
                    .description(description)
                    .schema(Some(property)),
            );
        }
    } else if request != seams_core::decl::no_body() {
        let schema =
            into_document(doc, request).map_err(|e| format!("{}: request: {e}", op.id()))?;
        builder = builder.request_body(Some(
            RequestBodyBuilder::new()
                .content(
                    "application/json",
                    ContentBuilder::new().schema(Some(schema)).build(),
                )
                .required(Some(Required::True))
                .build(),
        ));
    }
    let response =
        into_document(doc, (op.response)()).map_err(|e| format!("{}: response: {e}", op.id()))?;
    let ok = ResponseBuilder::new().description(op.summary).content(
        "application/json",
        ContentBuilder::new().schema(Some(response)).build(),
    );
    doc.paths
        .add_path_operation(path, vec![method], builder.response("200", ok).build());
    Ok(())
}

/// A declared JSON Schema as an OpenAPI schema: its `$defs` become the
/// document's component schemas (the references pointed at them), the rest
/// stays as it is (OpenAPI 3.1 schemas are JSON Schema 2020-12).
fn into_document(doc: &mut OpenApi, schema: serde_json::Value) -> Result<RefOr<Schema>, String> {
    let (schema, parts) = seams_schema::for_openapi(schema);
    let components = doc.components.get_or_insert_with(Default::default);
    for (name, part) in parts {
        let part = serde_json::from_value(part).map_err(|e| format!("{name}: {e}"))?;
        components.schemas.entry(name).or_insert(part);
    }
    serde_json::from_value(schema).map_err(|e| e.to_string())
}
