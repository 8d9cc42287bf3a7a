//! Timeouts, deadlines and retries, applied from each operation's declaration.
//!
//! Wraps any transport, so the monolith's in-process calls obey the same
//! rules as remote ones: each attempt gets the declared timeout, capped by the
//! caller's own deadline; a transient failure is retried only when the
//! declaration gives the caller retries (which the declaration check allows
//! only for idempotent operations), with exponential backoff and full jitter.

use std::sync::Arc;
use std::time::Duration;

use rand::Rng;
use seams_core::decl::Retries;
use seams_core::{BoxFuture, CallError, CallReply, CallRequest, Transport};

/// A transport that enforces declarations.
#[derive(Clone)]
pub struct Governed {
    inner: Arc<dyn Transport>,
}

impl Governed {
    /// Governs `inner`.
    pub fn new(inner: Arc<dyn Transport>) -> Governed {
        Governed { inner }
    }
}

impl Transport for Governed {
    fn call(&self, req: CallRequest) -> BoxFuture<'_, Result<CallReply, CallError>> {
        Box::pin(async move {
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
                let ctx = req.ctx.for_call(op.timeout);
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
                match tokio::time::timeout(budget, self.inner.call(attempt_req)).await {
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
        })
    }
}

#[cfg(test)]
mod tests;
