//! The one public router: every capability's routes under its prefix, the
//! framework's own routes, and the layers every request passes (body limit,
//! panic catching, metrics, correlation), with 404 and 405 as problems too.

use std::future::Future;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::response::Response;
use seams_core::Problem;
use tower_http::catch_panic::CatchPanicLayer;

use crate::problem::{internal, problem_response};

/// Assembles the public API: `parts` are (capability, routes) nested at
/// `/<capability>`; `framework` holds health, docs and admin routes.
pub fn public(parts: Vec<(&'static str, Router)>, framework: Router) -> Router {
    let mut app = framework;
    for (name, routes) in parts {
        app = app.nest(&format!("/{name}"), routes);
    }
    app.fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(crate::BODY_LIMIT))
        .layer(CatchPanicLayer::custom(on_panic))
        .layer(axum::middleware::from_fn(crate::metrics::middleware))
        .layer(axum::middleware::from_fn(crate::correlation::middleware))
}

async fn not_found() -> Response {
    problem_response(Problem::new(404, "not-found", "No such resource"))
}

async fn method_not_allowed() -> Response {
    problem_response(Problem::new(
        405,
        "method-not-allowed",
        "Method not allowed",
    ))
}

fn on_panic(err: Box<dyn std::any::Any + Send + 'static>) -> Response {
    let msg = err
        .downcast_ref::<String>()
        .map(String::as_str)
        .or_else(|| err.downcast_ref::<&str>().copied())
        .unwrap_or("unknown panic");
    tracing::error!(panic = msg, "handler panicked");
    problem_response(internal())
}

/// Serves `app` on `listener` until `shutdown` resolves, then lets in-flight
/// requests finish before returning.
pub async fn serve(
    listener: tokio::net::TcpListener,
    app: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
}
