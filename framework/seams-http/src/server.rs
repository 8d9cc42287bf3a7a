//! Serving the public router on a socket, holding up under abuse: every
//! limit an edge needs, each one hyper's, tower's or tokio's.
//!
//! - A connection must send a whole request head within
//!   [`Limits::header_read_timeout`] (hyper's `header_read_timeout`, which
//!   hyper also applies while a kept-alive connection waits for its next
//!   request, so the same bound closes idle connections): a slow or silent
//!   client cannot hold a socket for long.
//! - At most [`Limits::max_connections`] connections are served at once; the
//!   next one waits in the kernel's backlog until one closes, instead of
//!   taking a file descriptor the process needs for its databases.
//! - At most [`Limits::max_in_flight`] requests are handled at once; more are
//!   shed at once with 503 `overloaded` and `Retry-After` (tower's
//!   `ConcurrencyLimit` and `LoadShed`), never queued without bound.
//! - Each request must be answered within [`Limits::request_timeout`]
//!   (tower's `Timeout`): 503 `request-timeout`. A capability's route is
//!   bounded sooner by its declared timeout ([`crate::declared`]).
//! - At shutdown the server stops accepting, lets in-flight requests finish
//!   for at most [`Limits::drain_timeout`] (hyper-util's graceful shutdown),
//!   then closes what is left, so a slow client cannot hold up the ordered
//!   stop behind it.
//! - When a successor may be accepting on the same socket (a rolling
//!   restart), the server first spends [`Limits::lame_duck`] still serving
//!   its open connections, answering each request with `Connection: close`,
//!   so that clients move to the successor after a complete answer instead
//!   of sending a request down a connection at the moment it is closed.
//! - Given a TLS configuration ([`crate::tls::server_config`]), it speaks
//!   HTTPS only; the handshake must finish within the header timeout too.
//!
//! The accept loop itself is written here (about as long as `axum::serve`'s,
//! which this replaces) because `axum::serve` offers none of these settings:
//! not hyper's timeouts, not a connection cap, not a deadline on the drain.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::error_handling::HandleErrorLayer;
use axum::extract::ConnectInfo;
use axum::response::{IntoResponse, Response};
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use seams_core::Problem;
use tokio::sync::Semaphore;
use tokio_util::either::Either;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

use crate::problem::problem_response;

/// The edge's limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// The whole request head must arrive within this; also how long an
    /// idle kept-alive connection is kept.
    pub header_read_timeout: Duration,
    /// A request is answered within this, or with 503 `request-timeout`.
    pub request_timeout: Duration,
    /// Connections served at once; more wait in the backlog.
    pub max_connections: usize,
    /// Requests handled at once; more are shed with 503 `overloaded`.
    pub max_in_flight: usize,
    /// How long the drain at shutdown may take before connections are closed.
    pub drain_timeout: Duration,
    /// At shutdown, how long open connections are still served (each
    /// answer closing its connection) before the drain: zero unless another
    /// process may take over the socket.
    pub lame_duck: Duration,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            header_read_timeout: Duration::from_secs(20),
            request_timeout: Duration::from_secs(30),
            max_connections: 10_000,
            max_in_flight: 1_024,
            drain_timeout: Duration::from_secs(10),
            lame_duck: Duration::ZERO,
        }
    }
}

impl Limits {
    /// The default limits, with at most as many connections as `fd_limit`
    /// file descriptors allow after keeping `reserve` for everything else
    /// (databases, logs, outgoing calls).
    pub fn for_fd_limit(fd_limit: u64, reserve: u64) -> Limits {
        let room = fd_limit.saturating_sub(reserve).max(64);
        Limits {
            max_connections: room.min(Limits::default().max_connections as u64) as usize,
            ..Limits::default()
        }
    }
}

/// How often a lame duck looks whether any connection is left.
const LAME_DUCK_POLL: Duration = Duration::from_millis(10);

/// `app` behind the request limits: a timeout, and a concurrency limit that
/// sheds what it cannot take. The refusals are problems like any other.
///
/// The limit is global (one semaphore for every route): axum applies a
/// layer to each route separately, so a per-service limit would be one per
/// route.
pub fn limited(app: Router, limits: &Limits) -> Router {
    app.layer(
        tower::ServiceBuilder::new()
            .layer(HandleErrorLayer::new(refusal))
            .load_shed()
            .layer(tower::limit::GlobalConcurrencyLimitLayer::new(
                limits.max_in_flight,
            ))
            .timeout(limits.request_timeout),
    )
}

pub(crate) async fn refusal(err: tower::BoxError) -> Response {
    if err.is::<tower::load_shed::error::Overloaded>() {
        problem_response(crate::problem::overloaded())
    } else if err.is::<tower::timeout::error::Elapsed>() {
        problem_response(request_timeout())
    } else {
        tracing::error!(error = %err, "request refused by the edge");
        problem_response(crate::problem::internal())
    }
    .into_response()
}

/// 503 `request-timeout` with `Retry-After: 1`: the request was not
/// answered within the edge's timeout (a route's declared timeout answers
/// with its declared problem instead, see [`crate::declared`]).
pub(crate) fn request_timeout() -> Problem {
    Problem::new(503, "request-timeout", "Request timed out")
        .detail("The request was not answered in time; it may or may not have taken effect. Retry a keyed command with its key.")
        .with("retry_after", 1)
}

/// Whether an accept error concerns one connection only (the client went
/// away), as opposed to the listener or the process (out of descriptors).
fn is_connection_error(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        std::io::ErrorKind::ConnectionRefused
            | std::io::ErrorKind::ConnectionAborted
            | std::io::ErrorKind::ConnectionReset
    )
}

/// Serves `app` on `listener` (over TLS when `tls` is given) within
/// `limits` until `shutdown` resolves; then drains for at most the drain
/// timeout and returns. Requests see the peer's address as
/// `ConnectInfo<SocketAddr>`.
pub async fn serve(
    listener: tokio::net::TcpListener,
    app: Router,
    limits: Limits,
    tls: Option<Arc<rustls::ServerConfig>>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let acceptor = tls.map(tokio_rustls::TlsAcceptor::from);
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let graceful = GracefulShutdown::new();
    let closing = CancellationToken::new();
    let retiring = CancellationToken::new();
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .keep_alive(true);
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let slot = tokio::select! {
            slot = slots.clone().acquire_owned() => match slot {
                Ok(slot) => slot,
                Err(_) => break,
            },
            () = &mut shutdown => break,
        };
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) if is_connection_error(&e) => continue,
                Err(e) => {
                    // Out of descriptors, most likely: give the process a
                    // moment to close some rather than spin.
                    tracing::error!(error = %e, "accepting a connection failed");
                    tokio::select! {
                        () = tokio::time::sleep(Duration::from_millis(200)) => continue,
                        () = &mut shutdown => break,
                    }
                }
            },
            () = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        let retiring_now = retiring.clone();
        let service = app
            .clone()
            .map_request(
                move |mut req: axum::extract::Request<hyper::body::Incoming>| {
                    req.extensions_mut().insert(ConnectInfo(peer));
                    req
                },
            )
            .map_response(move |mut res: Response| {
                // hyper closes the connection once this answer is written.
                if retiring_now.is_cancelled() {
                    res.headers_mut().insert(
                        axum::http::header::CONNECTION,
                        axum::http::HeaderValue::from_static("close"),
                    );
                }
                res
            });
        let watcher = graceful.watcher();
        let closing = closing.clone();
        let http = http.clone();
        let acceptor = acceptor.clone();
        let handshake_timeout = limits.header_read_timeout;
        tokio::spawn(async move {
            // The slot is released when this task ends, however it ends.
            let _slot = slot;
            let io = match acceptor {
                None => Either::Left(stream),
                Some(acceptor) => {
                    let handshake = tokio::select! {
                        r = tokio::time::timeout(handshake_timeout, acceptor.accept(stream)) => r,
                        () = closing.cancelled() => return,
                    };
                    match handshake {
                        Ok(Ok(tls)) => Either::Right(tls),
                        Ok(Err(e)) => {
                            tracing::debug!(%peer, error = %e, "TLS handshake failed");
                            return;
                        }
                        Err(_) => {
                            tracing::debug!(%peer, "TLS handshake timed out");
                            return;
                        }
                    }
                }
            };
            let connection =
                http.serve_connection(TokioIo::new(io), TowerToHyperService::new(service));
            tokio::select! {
                result = watcher.watch(connection) => {
                    if let Err(e) = result {
                        tracing::debug!(%peer, error = %e, "connection ended");
                    }
                }
                // Dropping the connection closes it.
                () = closing.cancelled() => {}
            }
        });
    }
    drop(listener);
    if !limits.lame_duck.is_zero() {
        retiring.cancel();
        let open = limits.max_connections - slots.available_permits();
        tracing::info!(
            open,
            lame_duck_ms = limits.lame_duck.as_millis() as u64,
            "no longer accepting; serving open connections, each answer closing its own"
        );
        // Over early once no connection is left to serve.
        let over = tokio::time::Instant::now() + limits.lame_duck;
        while slots.available_permits() < limits.max_connections
            && tokio::time::Instant::now() < over
        {
            tokio::time::sleep(LAME_DUCK_POLL.min(over - tokio::time::Instant::now())).await;
        }
    }
    let open = limits.max_connections - slots.available_permits();
    tracing::info!(open, "draining HTTP connections");
    if tokio::time::timeout(limits.drain_timeout, graceful.shutdown())
        .await
        .is_err()
    {
        let left = limits.max_connections - slots.available_permits();
        tracing::warn!(
            left,
            after_ms = limits.drain_timeout.as_millis() as u64,
            "drain deadline passed; closing the connections still open"
        );
        closing.cancel();
    }
    Ok(())
}

#[cfg(test)]
mod tests;
