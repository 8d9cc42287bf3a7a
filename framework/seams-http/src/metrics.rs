//! Request metrics for every route: a count and a latency histogram per
//! method, route template and status, recorded through the `metrics` facade
//! (the runtime installs the Prometheus recorder and serves `/metrics`;
//! without a recorder these calls cost next to nothing).
//!
//! Labels use the route template (`/billing/invoices/{id}`), never the raw
//! path, and a method outside the standard ones is labelled `OTHER`, so the
//! number of series stays bounded whatever clients send.

use std::collections::HashMap;
use std::sync::RwLock;

use axum::http::{Method, StatusCode};
use metrics::{Counter, Histogram};

/// Requests served, by `method`, `route` and `status`.
pub const REQUESTS: &str = "seams_http_requests_total";
/// Seconds from the request's arrival to its response head, same labels.
pub const DURATION: &str = "seams_http_request_duration_seconds";

/// The route label of a request that matched no route.
pub const UNMATCHED: &str = "unmatched";

/// The request series seen so far, by route template, then method and status.
///
/// A request looks its two handles up here instead of building their keys
/// again: three label strings, two key hashes and two lookups in the
/// recorder's registry were a tenth of a trivial request's CPU. Handles are
/// taken on a series' first request, after the runtime installed its
/// recorder; the map is bounded by routes × methods × statuses.
#[derive(Default)]
pub(crate) struct Series {
    by_route: RwLock<HashMap<String, ByOutcome>>,
}

/// One route's handles, by method and status.
type ByOutcome = HashMap<(Method, StatusCode), (Counter, Histogram)>;

impl Series {
    /// Counts one request and records how long it took.
    pub(crate) fn record(&self, method: &Method, route: &str, status: StatusCode, seconds: f64) {
        let method = bounded(method);
        {
            let known = self.by_route.read().unwrap_or_else(|e| e.into_inner());
            if let Some((counter, histogram)) = known
                .get(route)
                .and_then(|by_outcome| by_outcome.get(&(method.clone(), status)))
            {
                counter.increment(1);
                histogram.record(seconds);
                return;
            }
        }
        let labels = [
            ("method", method.as_str().to_owned()),
            ("route", route.to_owned()),
            ("status", status.as_str().to_owned()),
        ];
        let counter = metrics::counter!(REQUESTS, &labels);
        let histogram = metrics::histogram!(DURATION, &labels);
        counter.increment(1);
        histogram.record(seconds);
        self.by_route
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .entry(route.to_owned())
            .or_default()
            .insert((method, status), (counter, histogram));
    }
}

/// `method` if it is one of the standard ones, else `OTHER`: any token is a
/// valid method, and one series per invented method would grow without bound.
fn bounded(method: &Method) -> Method {
    const STANDARD: [Method; 9] = [
        Method::GET,
        Method::POST,
        Method::PUT,
        Method::DELETE,
        Method::PATCH,
        Method::HEAD,
        Method::OPTIONS,
        Method::CONNECT,
        Method::TRACE,
    ];
    if STANDARD.contains(method) {
        method.clone()
    } else {
        Method::from_bytes(b"OTHER").unwrap_or_default()
    }
}

#[cfg(test)]
mod tests;
