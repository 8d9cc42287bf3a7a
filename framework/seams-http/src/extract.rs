//! Strict extractors whose every rejection is a problem.
//!
//! axum's own `Json` answers some rejections in plain text; these wrap it so
//! that malformed JSON is 400 `malformed-json`, a body of the wrong shape
//! (unknown field, wrong type, missing field) is 422 `invalid-body` naming the
//! field, a missing JSON content type is 415, and an oversized body is 413.

use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, JsonRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use seams_core::Problem;
use serde::de::DeserializeOwned;

use crate::problem::problem_response;

/// JSON body extractor with problem+json rejections.
#[derive(Debug, Clone, Copy, Default)]
pub struct Json<T>(pub T);

impl<T, S> FromRequest<S> for Json<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = Response;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        if !is_json(req.headers()) {
            return Err(problem_response(json_rejection(
                JsonRejection::MissingJsonContentType(Default::default()),
            )));
        }
        let body = Bytes::from_request(req, state)
            .await
            .map_err(|e| problem_response(bytes_rejection(e)))?;
        parse_object(&body).map(Json).map_err(problem_response)
    }
}

/// Whether the request declares a JSON body (`application/json`, any parameters).
pub fn is_json(headers: &axum::http::HeaderMap) -> bool {
    headers
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|m| m.trim().eq_ignore_ascii_case("application/json"))
}

/// Parses a request body that must be a JSON object.
///
/// serde reads a struct from an array of its fields too, so without this
/// check `["ann@example.com", "Ann"]` would be accepted as a registration;
/// every request body of the API is an object, and anything else is refused.
pub fn parse_object<T: DeserializeOwned>(body: &[u8]) -> Result<T, Problem> {
    let first = body.iter().copied().find(|b| !b.is_ascii_whitespace());
    if first.is_some_and(|b| b != b'{')
        && serde_json::from_slice::<serde::de::IgnoredAny>(body).is_ok()
    {
        return Err(
            Problem::new(422, "invalid-body", "Request body has the wrong shape")
                .detail("The request body must be a JSON object."),
        );
    }
    axum::Json::<T>::from_bytes(body)
        .map(|axum::Json(v)| v)
        .map_err(json_rejection)
}

/// Query-string extractor with problem+json rejections.
#[derive(Debug, Clone, Copy, Default)]
pub struct Query<T>(pub T);

impl<T, S> FromRequestParts<S> for Query<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match axum::extract::Query::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Query(value)) => Ok(Query(value)),
            Err(QueryRejection::FailedToDeserializeQueryString(e)) => Err(problem_response(
                Problem::new(400, "invalid-query", "Invalid query string").detail(e.body_text()),
            )),
            Err(other) => Err(other.into_response()),
        }
    }
}

/// Path-parameter extractor with problem+json rejections (400 `invalid-path`).
#[derive(Debug, Clone, Copy, Default)]
pub struct Path<T>(pub T);

impl<T, S> FromRequestParts<S> for Path<T>
where
    T: DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match axum::extract::Path::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Path(value)) => Ok(Path(value)),
            Err(e) => Err(problem_response(
                Problem::new(400, "invalid-path", "Invalid path parameter").detail(e.body_text()),
            )),
        }
    }
}

/// The problem a JSON rejection is.
pub fn json_rejection(rejection: JsonRejection) -> Problem {
    match rejection {
        JsonRejection::JsonDataError(e) => {
            let detail = e.body_text();
            let mut p = Problem::new(422, "invalid-body", "Request body has the wrong shape")
                .detail(detail.clone());
            if let Some(field) = field_of(&detail) {
                p = p.with("field", field);
            }
            p
        }
        JsonRejection::JsonSyntaxError(e) => {
            Problem::new(400, "malformed-json", "Request body is not valid JSON")
                .detail(e.body_text())
        }
        JsonRejection::MissingJsonContentType(_) => Problem::new(
            415,
            "unsupported-media-type",
            "Expected Content-Type: application/json",
        ),
        JsonRejection::BytesRejection(e) => bytes_rejection(e),
        other => Problem::new(400, "bad-request", "Bad request").detail(other.body_text()),
    }
}

/// The problem a body-reading rejection is (413 for oversized bodies).
pub fn bytes_rejection(rejection: BytesRejection) -> Problem {
    if rejection.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
        Problem::new(413, "body-too-large", "Request body too large")
            .detail(format!("The limit is {} bytes.", crate::BODY_LIMIT))
            .with("limit", crate::BODY_LIMIT as u64)
    } else {
        Problem::new(400, "bad-request", "Could not read the request body")
            .detail(rejection.body_text())
    }
}

/// Pulls the field path out of serde's error text: "Failed to deserialize the
/// JSON body into the target type: lines[0].quantity: invalid type ..." and
/// "unknown field `x`" / "missing field `x`".
fn field_of(detail: &str) -> Option<String> {
    for marker in ["unknown field `", "missing field `"] {
        if let Some(rest) = detail.split(marker).nth(1) {
            return rest.split('`').next().map(str::to_owned);
        }
    }
    let after = detail.split("target type: ").nth(1)?;
    let (path, _) = after.split_once(": ")?;
    (!path.contains(' ') && path != ".").then(|| path.to_owned())
}

#[cfg(test)]
mod tests;
