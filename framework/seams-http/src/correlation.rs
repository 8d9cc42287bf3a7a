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
use axum::middleware::Next;
use axum::response::Response;
use seams_core::{CallContext, TraceContext};
use tracing::Instrument;

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

/// The context a request with these headers runs in.
pub fn context_from_headers(headers: &HeaderMap) -> CallContext {
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
        .map_or_else(|| format!("req-{}", uuid::Uuid::now_v7()), str::to_owned);
    let deadline = headers
        .get(&DEADLINE_MS)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
        .map(|ms| std::time::Instant::now() + Duration::from_millis(ms.min(600_000)));
    CallContext {
        correlation_id,
        causation_id: Some(request_id),
        trace,
        deadline,
    }
}

/// Middleware: establishes the request's [`CallContext`] and a span carrying it.
pub async fn middleware(mut req: Request, next: Next) -> Response {
    let ctx = context_from_headers(req.headers());
    let span = tracing::info_span!(
        "request",
        method = %req.method(),
        path = %req.uri().path(),
        correlation_id = %ctx.correlation_id,
        status = tracing::field::Empty,
    );
    let correlation = HeaderValue::from_str(&ctx.correlation_id).ok();
    let traceparent = HeaderValue::from_str(&ctx.trace.to_traceparent()).ok();
    req.extensions_mut().insert(ctx);
    let mut res = next.run(req).instrument(span.clone()).await;
    span.record("status", res.status().as_u16());
    if let Some(v) = correlation {
        res.headers_mut().insert(CORRELATION_ID.clone(), v);
    }
    if let Some(v) = traceparent {
        res.headers_mut().insert(TRACEPARENT.clone(), v);
    }
    res
}

#[cfg(test)]
mod tests;
