//! The one public router: every capability's routes under its prefix, the
//! framework's own routes, and the layers every request passes (body limit,
//! panic catching, and the [`Edge`]: correlation, span, metrics), with 404
//! and 405 as problems too.

use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use axum::Router;
use axum::extract::{DefaultBodyLimit, MatchedPath, Request};
use axum::response::Response;
use seams_core::{BoxFuture, Problem};
use tower::{Layer, Service};
use tower_http::catch_panic::CatchPanicLayer;
use tracing::Instrument;

use crate::correlation::{Echo, context_from_headers, span};
use crate::metrics::{Series, UNMATCHED};
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
        .layer(EdgeLayer::default())
}

/// Installs an [`Edge`] in front of every route (and the fallbacks).
#[derive(Clone, Default)]
pub struct EdgeLayer {
    series: Arc<Series>,
}

impl<S> Layer<S> for EdgeLayer {
    type Service = Edge<S>;

    fn layer(&self, inner: S) -> Edge<S> {
        Edge {
            inner,
            series: self.series.clone(),
        }
    }
}

/// What every public request passes on its way in and out: its
/// [`CallContext`](seams_core::CallContext) from the headers (put in the
/// request's extensions for [`Ctx`](crate::Ctx)), a span that carries the
/// correlation id, the correlation headers echoed on the response, and the
/// request's count and latency by route template.
///
/// A hand-written service rather than two `middleware::from_fn`s: each of
/// those cloned and boxed the rest of the stack per request, and the two
/// added 5-6 µs of CPU to a trivial read that bare axum serves in 9-10
/// (BENCHMARKS.md, trivial read).
#[derive(Clone)]
pub struct Edge<S> {
    inner: S,
    series: Arc<Series>,
}

impl<S> Service<Request> for Edge<S>
where
    S: Service<Request, Response = Response, Error = Infallible>,
    S::Future: Send + 'static,
{
    type Response = Response;
    type Error = Infallible;
    type Future = BoxFuture<'static, Result<Response, Infallible>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request) -> Self::Future {
        let started = Instant::now();
        let ctx = context_from_headers(req.headers());
        let span = span(&req, &ctx);
        let echo = Echo::of(&ctx);
        let method = req.method().clone();
        let route = req.extensions().get::<MatchedPath>().cloned();
        req.extensions_mut().insert(ctx);
        let response = {
            // The inner service may start work before it returns its future.
            let _entered = span.enter();
            self.inner.call(req)
        };
        let series = self.series.clone();
        Box::pin(
            async move {
                let Ok(mut res) = response.await;
                echo.apply(&mut res);
                let route = route.as_ref().map_or(UNMATCHED, MatchedPath::as_str);
                let seconds = started.elapsed().as_secs_f64();
                series.record(&method, route, res.status(), seconds);
                Ok(res)
            }
            .instrument(span),
        )
    }
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

#[cfg(test)]
mod tests;
