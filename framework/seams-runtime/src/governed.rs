//! Timeouts, deadlines and retries, applied from each operation's declaration.
//!
//! Wraps any transport, so the monolith's in-process calls obey the same
//! rules as remote ones: each attempt gets the declared timeout, capped by the
//! caller's own deadline; a transient failure is retried only when the
//! declaration gives the caller retries (which the declaration check allows
//! only for idempotent operations), with exponential backoff and full jitter;
//! and every attempt passes the callee's circuit breaker and concurrency
//! limit ([`crate::breaker`]), failing fast while the callee is known to be down.

use std::sync::Arc;
use std::time::Duration;

use rand::Rng;
use seams_core::decl::Retries;
use seams_core::{BoxFuture, CallError, CallReply, CallRequest, Transport};
use tracing::Instrument;

use crate::breaker::{BreakerOptions, Breakers, Refused};

/// A transport that enforces declarations.
#[derive(Clone)]
pub struct Governed {
    inner: Arc<dyn Transport>,
    breakers: Breakers,
}

impl Governed {
    /// Governs `inner` with default breakers.
    pub fn new(inner: Arc<dyn Transport>) -> Governed {
        Governed::with_breakers(inner, Breakers::new(BreakerOptions::default()))
    }

    /// Governs `inner` with `breakers`.
    pub fn with_breakers(inner: Arc<dyn Transport>, breakers: Breakers) -> Governed {
        Governed { inner, breakers }
    }

    /// The breakers (for reporting their state).
    pub fn breakers(&self) -> &Breakers {
        &self.breakers
    }
}

impl Transport for Governed {
    fn call(&self, req: CallRequest) -> BoxFuture<'_, Result<CallReply, CallError>> {
        Box::pin(async move {
            let op = req.op;
            let started = std::time::Instant::now();
            let result = self.governed(req).await;
            let outcome = match &result {
                Ok(_) => "ok",
                Err(CallError::Timeout { .. }) => "timeout",
                Err(CallError::Unavailable { .. }) => "unavailable",
                Err(_) => "error",
            };
            let labels = [("callee", op.capability), ("operation", op.name)];
            metrics::counter!(
                "seams_calls_total",
                &[
                    ("callee", op.capability),
                    ("operation", op.name),
                    ("outcome", outcome)
                ]
            )
            .increment(1);
            metrics::histogram!("seams_call_duration_seconds", &labels)
                .record(started.elapsed().as_secs_f64());
            result
        })
    }
}

impl Governed {
    /// The call with every attempt, retry and breaker decision.
    async fn governed(&self, req: CallRequest) -> Result<CallReply, CallError> {
        {
            let op = req.op;
            let attempts = match op.retries {
                Retries::Caller(p) => p.max_attempts.max(1),
                Retries::Bus(_) | Retries::Nobody => 1,
            };
            let mut last = None;
            for attempt in 1..=attempts {
                if attempt > 1
                    && let Retries::Caller(policy) = op.retries
                {
                    // Full jitter: spreads retries of many callers apart.
                    let cap = policy.backoff(attempt);
                    let delay =
                        Duration::from_micros(rand::rng().random_range(0..=cap.as_micros() as u64));
                    if req.ctx.remaining().is_some_and(|left| left <= delay) {
                        break;
                    }
                    tokio::time::sleep(delay).await;
                }
                // Whether the caller's own deadline, not the declared
                // timeout, bounds this attempt.
                let caller_limited = req.ctx.remaining().is_some_and(|left| left < op.timeout);
                let mut ctx = req.ctx.for_call(op.timeout);
                // The client side of the hop; exported, the callee continues
                // this span, so its ids are what the call carries.
                let span = tracing::debug_span!(
                    "call",
                    operation = %op.id(),
                    attempt,
                    otel.kind = "client",
                    otel.name = %op.id(),
                    otel.status_code = tracing::field::Empty,
                );
                if let Some(own) = seams_telemetry::continue_from(&span, None) {
                    ctx.trace = own;
                }
                let budget = ctx.remaining().unwrap_or(op.timeout);
                if budget.is_zero() {
                    last = Some(CallError::Timeout {
                        op: op.id(),
                        after: Duration::ZERO,
                    });
                    break;
                }
                let attempt_req = CallRequest {
                    op,
                    body: req.body.clone(),
                    ctx,
                };
                let admission = match self.breakers.admit(op.capability) {
                    Ok(a) => a,
                    Err(refused) => {
                        let reason = match refused {
                            Refused::Open => "circuit open: the callee kept failing",
                            Refused::Saturated => "too many calls in flight to the callee",
                        };
                        // Retrying into an open breaker cannot help: fail fast.
                        return Err(CallError::Unavailable {
                            op: op.id(),
                            reason: reason.into(),
                        });
                    }
                };
                let outcome = tokio::time::timeout(budget, self.inner.call(attempt_req))
                    .instrument(span.clone())
                    .await;
                if !matches!(outcome, Ok(Ok(_))) {
                    span.record("otel.status_code", "ERROR");
                }
                let healthy = !matches!(
                    &outcome,
                    Err(_)
                        | Ok(Err(
                            CallError::Unavailable { .. } | CallError::Timeout { .. }
                        ))
                );
                // A timeout the caller's own short deadline caused says
                // nothing about the callee: it must not open the breaker
                // that protects everybody else's calls to it.
                let timed_out = matches!(&outcome, Err(_) | Ok(Err(CallError::Timeout { .. })));
                if !(timed_out && caller_limited) {
                    self.breakers.record(op.capability, healthy);
                }
                drop(admission);
                match outcome {
                    Err(_) => {
                        tracing::warn!(op = %op.id(), attempt, ?budget, "call timed out");
                        last = Some(CallError::Timeout {
                            op: op.id(),
                            after: budget,
                        });
                    }
                    Ok(Err(e)) if e.is_transient() => {
                        tracing::warn!(op = %op.id(), attempt, error = %e, "call failed");
                        last = Some(e);
                    }
                    Ok(done) => return done,
                }
            }
            Err(last.unwrap_or_else(|| CallError::Timeout {
                op: op.id(),
                after: Duration::ZERO,
            }))
        }
    }
}

#[cfg(test)]
mod tests;
