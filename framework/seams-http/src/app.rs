//! The one public router: every capability's routes under its prefix, the
//! framework's own routes, and the layers every request passes (body limit,
//! panic catching, and the [`Edge`]: who is calling, correlation, span,
//! metrics), with 404 and 405 as problems too.

use std::convert::Infallible;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use axum::Router;
use axum::error_handling::HandleErrorLayer;
use axum::extract::{ConnectInfo, DefaultBodyLimit, MatchedPath, Request};
use axum::response::Response;
use seams_auth::{PEER_HEADER, Verifier};
use seams_core::auth::Principal;
use seams_core::{BoxFuture, Problem};
use tower::limit::GlobalConcurrencyLimitLayer;
use tower::{Layer, Service};
use tower_http::catch_panic::CatchPanicLayer;
use tracing::Instrument;

use crate::auth::{Peer, Trust, auth_response};
use crate::correlation::{Echo, context_and_parent, span, trace};
use crate::metrics::{Series, UNMATCHED};
use crate::problem::{internal, problem_response};
use crate::server::Limits;

/// Assembles the public API: `parts` are (capability, routes) nested at
/// `/<capability>`; `framework` holds health, docs and admin routes;
/// `verifier` checks every token the routes' guards ask about. The default
/// request limits apply ([`public_with`] sets others).
pub fn public(
    parts: Vec<(&'static str, Router)>,
    framework: Router,
    verifier: Arc<Verifier>,
) -> Router {
    public_with(parts, framework, verifier, &Limits::default())
}

/// [`public`] with `limits` on each request (its timeout, and how many are
/// handled at once before the rest are shed); the edge sees, counts and
/// answers the shed ones like any other.
pub fn public_with(
    parts: Vec<(&'static str, Router)>,
    framework: Router,
    verifier: Arc<Verifier>,
    limits: &Limits,
) -> Router {
    let mut app = framework;
    for (name, routes) in parts {
        app = app.nest(&format!("/{name}"), routes);
    }
    // One `layer` of one stack (outermost first): axum boxes every route at
    // each `layer`, and each box clones the boxes inside it per request.
    app.fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(
            tower::ServiceBuilder::new()
                .layer(EdgeLayer::new(verifier))
                // The request limits, as `server::limited` puts them.
                .layer(HandleErrorLayer::new(crate::server::refusal))
                .load_shed()
                .layer(GlobalConcurrencyLimitLayer::new(limits.max_in_flight))
                .timeout(limits.request_timeout)
                .layer(CatchPanicLayer::custom(on_panic))
                .layer(DefaultBodyLimit::max(crate::BODY_LIMIT)),
        )
}

/// Installs an [`Edge`] in front of every route (and the fallbacks).
#[derive(Clone)]
pub struct EdgeLayer {
    series: Arc<Series>,
    trust: Trust,
}

impl EdgeLayer {
    /// An edge whose guards verify tokens with `verifier`.
    pub fn new(verifier: Arc<Verifier>) -> EdgeLayer {
        EdgeLayer {
            series: Arc::default(),
            trust: Trust(verifier),
        }
    }
}

impl<S> Layer<S> for EdgeLayer {
    type Service = Edge<S>;

    fn layer(&self, inner: S) -> Edge<S> {
        Edge {
            inner,
            series: self.series.clone(),
            trust: self.trust.clone(),
        }
    }
}

/// The address of the client that sent a request: the peer of the TCP
/// connection, or, when the split gateway forwards it (a verified service
/// token), the address the gateway saw in `X-Forwarded-For`. `None` when
/// neither is known (a request built in a test).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientAddr(pub Option<IpAddr>);

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for ClientAddr {
    type Rejection = Infallible;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        _state: &S,
    ) -> Result<Self, Self::Rejection> {
        Ok(parts
            .extensions
            .get::<ClientAddr>()
            .copied()
            .unwrap_or(ClientAddr(None)))
    }
}

/// What every public request passes on its way in and out: who sent it
/// (a service token in `X-Seams-Peer` is verified here, and only such a
/// peer's deadline and forwarded client address are believed), its
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
    trust: Trust,
}

impl<S> Service<Request> for Edge<S>
where
    S: Service<Request, Response = Response, Error = Infallible> + Clone + Send + 'static,
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
        let (mut ctx, parent) = context_and_parent(req.headers());
        let span = span(&req, &ctx);
        let method = req.method().clone();
        let route = req.extensions().get::<MatchedPath>().cloned();
        let exported = trace(&span, &mut ctx, parent.as_ref(), || {
            let path = route.as_ref().map_or(UNMATCHED, MatchedPath::as_str);
            format!("{method} {path}")
        });
        let series = self.series.clone();
        let trust = self.trust.clone();
        // The clone that was polled ready is the one that is called.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        Box::pin(
            async move {
                let echo = Echo::of(&ctx);
                let peer = match req.headers().get(PEER_HEADER) {
                    None => None,
                    Some(value) => {
                        let token = value.to_str().unwrap_or_default();
                        let verified = trust.0.verify(token).await.and_then(|p| match p {
                            Principal::Service { .. } => Ok(p),
                            _ => Err(seams_auth::AuthError::Rejected(
                                "not a service token".into(),
                            )),
                        });
                        match verified {
                            Ok(p) => Some(p),
                            Err(e) => {
                                let mut res = auth_response(&e);
                                echo.apply(&mut res);
                                return Ok(res);
                            }
                        }
                    }
                };
                let trusted = peer.is_some();
                let direct = req
                    .extensions()
                    .get::<ConnectInfo<SocketAddr>>()
                    .map(|c| c.0.ip());
                let client = if trusted {
                    forwarded_for(req.headers()).or(direct)
                } else {
                    // A client's own deadline is not believed: a tiny one
                    // would time out calls and open the breakers that
                    // protect everybody else's requests.
                    ctx.deadline = None;
                    direct
                };
                req.extensions_mut().insert(ClientAddr(client));
                if let Some(p) = peer {
                    req.extensions_mut().insert(Peer(p));
                }
                req.extensions_mut().insert(ctx);
                req.extensions_mut().insert(trust);
                let Ok(mut res) = inner.call(req).await;
                echo.apply(&mut res);
                if exported {
                    let span = tracing::Span::current();
                    span.record("http.response.status_code", res.status().as_u16());
                    if res.status().is_server_error() {
                        span.record("otel.status_code", "ERROR");
                    }
                }
                let route = route.as_ref().map_or(UNMATCHED, MatchedPath::as_str);
                let seconds = started.elapsed().as_secs_f64();
                series.record(&method, route, res.status(), seconds);
                // An access log for whoever asks for it
                // (`RUST_LOG=seams_http=debug`): at `info` it would cost
                // every request a line nobody must act on.
                tracing::debug!(
                    status = res.status().as_u16(),
                    route,
                    ms = started.elapsed().as_millis() as u64,
                    "request answered"
                );
                Ok(res)
            }
            .instrument(span),
        )
    }
}

/// The client address a forwarding peer put in `X-Forwarded-For` (one
/// address: the gateway replaces whatever the client sent).
fn forwarded_for(headers: &axum::http::HeaderMap) -> Option<IpAddr> {
    headers
        .get("x-forwarded-for")?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()
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

#[cfg(test)]
mod tests;
