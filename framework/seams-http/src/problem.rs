//! Rendering problems as responses, in one place.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use seams_core::Problem;

/// A boundary error that knows its problem representation.
///
/// Implemented once per capability error enum; 5xx problems are logged with
/// the full cause chain and sent opaque.
pub trait IntoProblem: std::error::Error {
    /// The problem this error is, for a client.
    fn problem(&self) -> Problem;
}

/// Renders `problem` as `application/problem+json`, with `Retry-After` when the
/// problem carries a `retry_after` extension (seconds).
pub fn problem_response(problem: Problem) -> Response {
    let status = StatusCode::from_u16(problem.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let retry_after = problem
        .extensions
        .get("retry_after")
        .and_then(|v| v.as_u64());
    // A `Problem` has string keys and JSON values only, so it always serializes.
    let body = serde_json::to_vec(&problem).expect("problems serialize");
    let mut res = (status, body).into_response();
    res.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/problem+json"),
    );
    if let Some(secs) = retry_after {
        res.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(secs));
    }
    res
}

/// The extension member naming what a handler needed and could not reach:
/// `database` (its own), or the capability it called. A problem carrying it
/// is answered as the route's declared "when down" problem
/// ([`crate::declared`]), which keeps the member.
pub const UNAVAILABLE: &str = "unavailable";

/// Renders an error: logs it with its causes when it is a server fault.
/// A 503 that names what was [`UNAVAILABLE`] is marked with
/// [`crate::declared::Unavailable`], for the route's declaration to answer.
pub fn error_response<E: IntoProblem>(err: &E) -> Response {
    let problem = err.problem();
    if problem.status == 503 {
        // Declared unavailability (a dependency or the database is down, the
        // client is told when to retry) clears by itself; at ERROR, one line
        // per request during an outage would bury what needs a person.
        tracing::warn!(error = %DisplayChain(err), problem = %problem.problem_type, "request failed");
    } else if problem.status >= 500 {
        tracing::error!(error = %DisplayChain(err), problem = %problem.problem_type, "request failed");
    } else {
        tracing::debug!(error = %err, problem = %problem.problem_type, "request rejected");
    }
    if problem.status == 503 && problem.extensions.contains_key(UNAVAILABLE) {
        let mut res = problem_response(problem.clone());
        res.extensions_mut()
            .insert(crate::declared::Unavailable(problem));
        return res;
    }
    problem_response(problem)
}

/// 422 `invalid-field`, naming the field.
pub fn invalid_field(e: &seams_core::Invalid) -> Problem {
    Problem::new(422, "invalid-field", "A field is invalid")
        .detail(format!("{}: {}", e.field, e.reason))
        .with("field", e.field.clone())
}

/// The opaque 500 every unexpected failure becomes.
pub fn internal() -> Problem {
    Problem::new(500, "internal", "Internal error")
        .detail("The server failed; the failure is logged with this request's correlation id.")
}

/// 503 `overloaded` with `Retry-After: 1`: the service sheds this request
/// rather than queue it without bound; nothing was applied.
pub fn overloaded() -> Problem {
    Problem::new(503, "overloaded", "Overloaded")
        .detail("The service is at capacity and did not take this request; nothing was applied. Try again shortly.")
        .with("retry_after", 1)
}

/// An unexpected failure: a 503 `overloaded` when the database's single
/// writer stayed busy too long, a 503 `database-unavailable` when the
/// capability's own database is unreachable (its server restarting, marked
/// [`UNAVAILABLE`]); both with `Retry-After`, and in both nothing was
/// applied. Otherwise an opaque 500.
pub fn unexpected(err: &anyhow::Error) -> Problem {
    let sqlx_errors = || err.chain().filter_map(|e| e.downcast_ref::<sqlx::Error>());
    if sqlx_errors().any(seams_store::writer_busy) {
        return overloaded();
    }
    if sqlx_errors().any(seams_store::connection_lost) {
        Problem::new(503, "database-unavailable", "Database unavailable")
            .detail("This service cannot reach its database right now; nothing was applied. Try again shortly.")
            .with("retry_after", 1)
            .with(UNAVAILABLE, "database")
    } else {
        internal()
    }
}

/// What the caller's user sees when a call to `op` got no answer: the
/// operation's declared "when the other side is down" rule decides (a 503 of
/// the declared type with `Retry-After`, naming the callee as
/// [`UNAVAILABLE`]); a callee that broke its contract is an opaque 500 on
/// our side.
pub fn call_failed(op: &seams_core::decl::Operation, err: &seams_core::CallError) -> Problem {
    use seams_core::decl::WhenDown;
    match (err.is_transient(), op.when_down) {
        (
            true,
            WhenDown::FailFast {
                problem,
                retry_after,
            },
        ) => Problem::new(503, problem, format!("{} is unavailable", op.capability))
            .detail(format!("{err}; try again later."))
            .with("retry_after", retry_after.as_secs().max(1))
            .with(UNAVAILABLE, op.capability),
        _ => internal(),
    }
}

/// `Display` of an error followed by its sources.
pub struct DisplayChain<'a, E: ?Sized>(pub &'a E);

impl<E: std::error::Error + ?Sized> std::fmt::Display for DisplayChain<'_, E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)?;
        let mut source = self.0.source();
        while let Some(s) = source {
            write!(f, ": {s}")?;
            source = s.source();
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
