//! A public route's declaration, applied to it at run time.
//!
//! Every route a capability hands over carries its declared
//! [`Operation`] ([`crate::Routes`] takes one with every route), and three
//! of the declaration's answers become behaviour here rather than
//! documentation:
//!
//! - The declared `timeout` bounds the handler (tower's `Timeout`, as the
//!   edge's request timeout in [`crate::server`] is). A handler that takes
//!   longer is dropped and the client gets the declared `when_down`
//!   problem: 503 of the declared type with the declared `Retry-After`.
//! - Nine tenths of it become the request's deadline in its
//!   [`CallContext`] (or the deadline the edge believed, if earlier), so
//!   contract calls the handler makes give up in time for the handler to
//!   answer with what was down, rather than being cut off mid-call.
//! - When the handler answers that something it needs is unavailable (its
//!   own database, or a capability it calls: the problems
//!   [`crate::problem::unexpected`] and [`crate::problem::call_failed`] mark
//!   with [`Unavailable`]), the client gets the route's declared `when_down`
//!   problem instead, naming what was unavailable in its `unavailable`
//!   member. A client of a route meets one "down" answer, the one the
//!   route declares, whatever the cause.
//!
//! A declaration whose `when_down` is not `FailFast` keeps the edge's
//! generic `request-timeout` answer and leaves "unavailable" answers as the
//! handler gave them.

use std::time::Instant;

use axum::error_handling::HandleErrorLayer;
use axum::extract::Request;
use axum::response::{IntoResponse, Response};
use axum::routing::MethodRouter;
use seams_core::decl::{Operation, WhenDown};
use seams_core::{CallContext, Problem};
use tower::ServiceBuilder;
use tower::util::{MapRequestLayer, MapResponseLayer};

use crate::problem::problem_response;

/// Marks a response as "something this handler needs is unavailable",
/// carrying the problem the handler answered; the route's declaration
/// decides what the client sees.
#[derive(Debug, Clone)]
pub struct Unavailable(pub Problem);

/// `route` behind `guard`, with `op`'s declaration applied: its deadline,
/// its timeout, and its answer when down.
///
/// One `route_layer` of one stack, not one per layer: axum boxes the route
/// at each `route_layer`, and every box clones the boxes inside it on every
/// request, so the cost of a request grows with the square of their number.
pub(crate) fn apply<S>(
    route: MethodRouter<S>,
    op: &'static Operation,
    guard: crate::auth::GuardLayer,
) -> MethodRouter<S>
where
    S: Clone + Send + Sync + 'static,
{
    route.route_layer(
        ServiceBuilder::new()
            .layer(guard)
            .layer(MapRequestLayer::new(move |req: Request| {
                with_deadline(op, req)
            }))
            .layer(HandleErrorLayer::new(move |_: tower::BoxError| {
                std::future::ready(timed_out(op))
            }))
            .timeout(op.timeout)
            .layer(MapResponseLayer::new(move |res: Response| {
                when_down(op, res)
            })),
    )
}

/// The request, with nine tenths of the declared timeout as its deadline
/// unless the edge believed an earlier one: the last tenth is the
/// handler's, to answer after its calls gave up.
fn with_deadline(op: &Operation, mut req: Request) -> Request {
    let own = Instant::now() + op.timeout.mul_f64(0.9);
    match req.extensions_mut().get_mut::<CallContext>() {
        Some(ctx) => ctx.deadline = Some(ctx.deadline.map_or(own, |d| d.min(own))),
        None => {
            let mut ctx = CallContext::new_root();
            ctx.deadline = Some(own);
            req.extensions_mut().insert(ctx);
        }
    }
    req
}

/// The declared problem of `op` when it cannot answer: 503, the declared
/// type, the declared `Retry-After` (at least a second, as headers count
/// whole seconds).
pub fn declared_problem(op: &Operation) -> Option<Problem> {
    match op.when_down {
        WhenDown::FailFast {
            problem,
            retry_after,
        } => Some(
            Problem::new(503, problem, format!("{} is unavailable", op.capability))
                .with("retry_after", retry_after.as_secs().max(1)),
        ),
        WhenDown::QueueAndDeliverLater | WhenDown::Fallback { .. } => None,
    }
}

/// What a handler slower than `op`'s declared timeout answers.
fn timed_out(op: &Operation) -> Response {
    tracing::warn!(
        operation = %op.id(),
        timeout_ms = op.timeout.as_millis() as u64,
        "request not answered within its declared timeout"
    );
    match declared_problem(op) {
        Some(p) => problem_response(p.detail(format!(
            "{} was not answered within its declared {} ms; it may or may not have taken effect. Retry a keyed command with its key.",
            op.id(),
            op.timeout.as_millis()
        ))),
        None => problem_response(crate::server::request_timeout()),
    }
    .into_response()
}

/// `res`, or `op`'s declared problem when `res` says something the handler
/// needs is unavailable.
fn when_down(op: &Operation, mut res: Response) -> Response {
    let Some(declared) = declared_problem(op) else {
        return res;
    };
    let Some(Unavailable(cause)) = res.extensions_mut().remove::<Unavailable>() else {
        return res;
    };
    let mut declared = declared;
    declared.detail = cause.detail;
    if let Some(what) = cause.extensions.get("unavailable") {
        declared = declared.with("unavailable", what.clone());
    }
    problem_response(declared)
}

// Visible to the other modules' tests, which declare their routes with its
// `declared` helper.
#[cfg(test)]
pub(crate) mod tests;
