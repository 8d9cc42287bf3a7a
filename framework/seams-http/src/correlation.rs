//! Correlation and trace context for every request.
//!
//! A request may bring a W3C `traceparent` (its trace id becomes the
//! correlation id) or an `X-Correlation-Id` of its own; otherwise one is
//! assigned. The resulting [`CallContext`] is put in the request's extensions,
//! follows every call and event the request causes, and is echoed in the
//! response headers so a client can quote it.

use std::time::Duration;

use axum::extract::{FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderName, HeaderValue};
use axum::response::Response;
use seams_core::{CallContext, TraceContext};

/// `X-Correlation-Id`.
pub static CORRELATION_ID: HeaderName = HeaderName::from_static("x-correlation-id");
/// `traceparent`.
pub static TRACEPARENT: HeaderName = HeaderName::from_static("traceparent");
/// `X-Request-Id`: the id of this request, the causation id of what it causes.
pub static REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
/// `X-Seams-Deadline-Ms`: milliseconds the caller will still wait.
pub static DEADLINE_MS: HeaderName = HeaderName::from_static("x-seams-deadline-ms");

/// The context of the current request; a new root if the middleware did not run.
#[derive(Debug, Clone)]
pub struct Ctx(pub CallContext);

impl<S: Send + Sync> FromRequestParts<S> for Ctx {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        Ok(Ctx(parts
            .extensions
            .get::<CallContext>()
            .cloned()
            .unwrap_or_else(CallContext::new_root)))
    }
}

fn valid_correlation_id(v: &str) -> bool {
    (1..=128).contains(&v.len())
        && v.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(&b))
}

/// `req-` and a time-ordered UUID, without `format!`'s machinery (this runs
/// for every request).
fn new_request_id() -> String {
    let mut buf = uuid::Uuid::encode_buffer();
    let uuid = uuid::Uuid::now_v7().hyphenated();
    let mut id = String::with_capacity(4 + uuid::fmt::Hyphenated::LENGTH);
    id.push_str("req-");
    id.push_str(uuid.encode_lower(&mut buf));
    id
}

/// The context a request with these headers runs in.
pub fn context_from_headers(headers: &HeaderMap) -> CallContext {
    context_and_parent(headers).0
}

/// [`context_from_headers`], and the span the request continues (its
/// `traceparent`), for [`trace`].
pub fn context_and_parent(headers: &HeaderMap) -> (CallContext, Option<TraceContext>) {
    let parent = headers
        .get(&TRACEPARENT)
        .and_then(|v| v.to_str().ok())
        .and_then(TraceContext::parse);
    let trace = parent.map_or_else(TraceContext::new_root, |p| p.child());
    let correlation_id = headers
        .get(&CORRELATION_ID)
        .and_then(|v| v.to_str().ok())
        .filter(|v| valid_correlation_id(v))
        .map_or_else(|| trace.trace_id_hex(), str::to_owned);
    let request_id = headers
        .get(&REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .filter(|v| valid_correlation_id(v))
        .map_or_else(new_request_id, str::to_owned);
    let deadline = headers
        .get(&DEADLINE_MS)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
        .map(|ms| std::time::Instant::now() + Duration::from_millis(ms.min(600_000)));
    let ctx = CallContext {
        correlation_id,
        causation_id: Some(request_id),
        trace,
        deadline,
    };
    (ctx, parent)
}

/// Makes `span` (opened for this request with `ctx`'s ids as its `trace_id`
/// and `correlation_id` fields) continue `parent`, and, when the span is
/// exported, moves `ctx` onto it: the ids the request then carries on are
/// the exported span's, recorded on the span again, and a correlation id
/// that was the trace id stays the trace id. `name` is the span's name in
/// the exported trace. Returns whether the span is exported.
pub fn trace(
    span: &tracing::Span,
    ctx: &mut CallContext,
    parent: Option<&TraceContext>,
    name: impl FnOnce() -> String,
) -> bool {
    let Some(own) = seams_telemetry::continue_named(span, parent, name) else {
        // The span was made with `ctx`'s ids: recording them again would
        // format every field of the span a second time, on every request.
        return false;
    };
    if own.trace_id != ctx.trace.trace_id && ctx.correlation_id == ctx.trace.trace_id_hex() {
        ctx.correlation_id = own.trace_id_hex();
    }
    ctx.trace = own;
    span.record("trace_id", ctx.trace.trace_id_hex());
    span.record("correlation_id", ctx.correlation_id.as_str());
    true
}

/// Headers echoed on the response, so a client can quote them.
pub(crate) struct Echo {
    correlation: Option<HeaderValue>,
    traceparent: Option<HeaderValue>,
}

impl Echo {
    /// What a response to a request running in `ctx` carries.
    pub(crate) fn of(ctx: &CallContext) -> Echo {
        Echo {
            correlation: HeaderValue::from_str(&ctx.correlation_id).ok(),
            traceparent: HeaderValue::try_from(ctx.trace.to_traceparent()).ok(),
        }
    }

    /// Puts the headers on `res`.
    pub(crate) fn apply(self, res: &mut Response) {
        if let Some(v) = self.correlation {
            res.headers_mut().insert(CORRELATION_ID.clone(), v);
        }
        if let Some(v) = self.traceparent {
            res.headers_mut().insert(TRACEPARENT.clone(), v);
        }
    }
}

/// The span a request running in `ctx` runs in: every log line it causes
/// names its trace id and its correlation id ([`trace`] records them again
/// if exporting changes them), and, exported, it is the server side of the
/// hop.
pub(crate) fn span(req: &Request, ctx: &CallContext) -> tracing::Span {
    tracing::info_span!(
        "request",
        method = %req.method(),
        path = %req.uri().path(),
        trace_id = ctx.trace.trace_id_hex(),
        correlation_id = ctx.correlation_id.as_str(),
        otel.kind = "server",
        otel.name = tracing::field::Empty,
        otel.status_code = tracing::field::Empty,
        http.response.status_code = tracing::field::Empty,
    )
}

#[cfg(test)]
mod tests;
