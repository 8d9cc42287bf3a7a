//! Request metrics for every route: a count and a latency histogram per
//! method, route template and status, recorded through the `metrics` facade
//! (the runtime installs the Prometheus recorder and serves `/metrics`;
//! without a recorder these calls cost next to nothing).
//!
//! Labels use the route template (`/billing/invoices/{id}`), never the raw
//! path, so the number of series stays bounded whatever clients send.

use std::time::Instant;

use axum::extract::{MatchedPath, Request};
use axum::middleware::Next;
use axum::response::Response;

/// Requests served, by `method`, `route` and `status`.
pub const REQUESTS: &str = "seams_http_requests_total";
/// Seconds from the request's arrival to its response head, same labels.
pub const DURATION: &str = "seams_http_request_duration_seconds";

/// The middleware; `public` installs it on every route.
pub async fn middleware(req: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = req.method().as_str().to_owned();
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let response = next.run(req).await;
    let labels = [
        ("method", method),
        ("route", route),
        ("status", response.status().as_u16().to_string()),
    ];
    metrics::counter!(REQUESTS, &labels).increment(1);
    metrics::histogram!(DURATION, &labels).record(started.elapsed().as_secs_f64());
    response
}
