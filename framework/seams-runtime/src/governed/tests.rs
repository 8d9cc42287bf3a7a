//! Declarations decide timeouts and retries, with the clock paused.

use std::sync::atomic::{AtomicU32, Ordering as AtomicOrdering};
use std::time::Duration;

use seams_core::decl::*;
use seams_core::{CallContext, CallReply, Payload};

use super::*;

static FLAKY_QUERY: Operation = Operation {
    capability: "test",
    name: "flaky",
    summary: "",
    kind: Kind::Query,
    timeout: Duration::from_millis(100),
    retries: Retries::Caller(RetryPolicy {
        max_attempts: 3,
        initial_backoff: Duration::from_millis(10),
        max_backoff: Duration::from_millis(20),
    }),
    idempotency: Idempotency::ReadOnly,
    ordering: Ordering::Unordered,
    when_down: WhenDown::FailFast {
        problem: "down",
        retry_after: Duration::from_secs(1),
    },
    versioning: Versioning {
        current: 1,
        accepts: &[1],
    },
    request: seams_core::decl::no_body,
    response: seams_core::decl::no_body,
};

static ONCE_COMMAND: Operation = Operation {
    capability: "test",
    name: "once",
    summary: "",
    kind: Kind::Command,
    timeout: Duration::from_millis(100),
    retries: Retries::Nobody,
    idempotency: Idempotency::NotIdempotent { reason: "test" },
    ordering: Ordering::Unordered,
    when_down: WhenDown::FailFast {
        problem: "down",
        retry_after: Duration::from_secs(1),
    },
    versioning: Versioning {
        current: 1,
        accepts: &[1],
    },
    request: seams_core::decl::no_body,
    response: seams_core::decl::no_body,
};

/// Fails the first `failures` calls as unavailable, or hangs when `hang`.
struct Script {
    calls: AtomicU32,
    failures: u32,
    hang: bool,
}

impl Transport for Script {
    fn call(&self, _req: CallRequest) -> BoxFuture<'_, Result<CallReply, CallError>> {
        let n = self.calls.fetch_add(1, AtomicOrdering::SeqCst) + 1;
        Box::pin(async move {
            if self.hang {
                std::future::pending::<()>().await;
            }
            if n <= self.failures {
                return Err(CallError::Unavailable {
                    op: "x".into(),
                    reason: "down".into(),
                });
            }
            Ok(CallReply::Ok(Payload::Json(b"1".to_vec())))
        })
    }
}

fn governed(failures: u32, hang: bool) -> (Arc<Script>, Governed) {
    let script = Arc::new(Script {
        calls: AtomicU32::new(0),
        failures,
        hang,
    });
    (script.clone(), Governed::new(script))
}

fn req(op: &'static Operation) -> CallRequest {
    CallRequest {
        op,
        body: Payload::Json(b"{}".to_vec()),
        ctx: CallContext::new_root(),
    }
}

#[tokio::test(start_paused = true)]
async fn idempotent_queries_are_retried_until_they_answer() {
    let (script, g) = governed(2, false);
    assert_eq!(
        g.call(req(&FLAKY_QUERY)).await,
        Ok(CallReply::Ok(Payload::Json(b"1".to_vec())))
    );
    assert_eq!(script.calls.load(AtomicOrdering::SeqCst), 3);
}

#[tokio::test(start_paused = true)]
async fn retries_are_bounded() {
    let (script, g) = governed(10, false);
    assert!(matches!(
        g.call(req(&FLAKY_QUERY)).await,
        Err(CallError::Unavailable { .. })
    ));
    assert_eq!(script.calls.load(AtomicOrdering::SeqCst), 3);
}

#[tokio::test(start_paused = true)]
async fn commands_without_caller_retries_are_tried_once() {
    let (script, g) = governed(1, false);
    assert!(g.call(req(&ONCE_COMMAND)).await.is_err());
    assert_eq!(script.calls.load(AtomicOrdering::SeqCst), 1);
}

#[tokio::test(start_paused = true)]
async fn a_hanging_callee_times_out_per_attempt() {
    let (script, g) = governed(0, true);
    let started = tokio::time::Instant::now();
    assert!(matches!(
        g.call(req(&FLAKY_QUERY)).await,
        Err(CallError::Timeout { .. })
    ));
    assert_eq!(script.calls.load(AtomicOrdering::SeqCst), 3);
    assert!(started.elapsed() >= Duration::from_millis(300));
}

// Real time: the deadline is a std `Instant`, which a paused tokio clock does not move.
#[tokio::test]
async fn the_callers_deadline_caps_everything() {
    let (script, g) = governed(0, true);
    let mut r = req(&FLAKY_QUERY);
    r.ctx.deadline = Some(std::time::Instant::now() + Duration::from_millis(30));
    assert!(matches!(g.call(r).await, Err(CallError::Timeout { .. })));
    assert_eq!(script.calls.load(AtomicOrdering::SeqCst), 1);
}

fn governed_with(
    failures: u32,
    hang: bool,
    options: crate::breaker::BreakerOptions,
) -> (Arc<Script>, Governed) {
    let script = Arc::new(Script {
        calls: AtomicU32::new(0),
        failures,
        hang,
    });
    (
        script.clone(),
        Governed::with_breakers(script, crate::breaker::Breakers::new(options)),
    )
}

#[tokio::test(start_paused = true)]
async fn a_failing_callee_opens_the_breaker_then_a_probe_closes_it() {
    use crate::breaker::{BreakerOptions, State};
    let options = BreakerOptions {
        failures_to_open: 4,
        open_for: Duration::from_secs(5),
        max_in_flight: 8,
    };
    let (script, g) = governed_with(4, false, options);
    // Two calls of up to three attempts: the fourth failed attempt opens the breaker.
    assert!(g.call(req(&FLAKY_QUERY)).await.is_err());
    let second = g.call(req(&FLAKY_QUERY)).await;
    assert!(
        matches!(&second, Err(CallError::Unavailable { reason, .. }) if reason.contains("circuit open")),
        "{second:?}"
    );
    assert_eq!(script.calls.load(AtomicOrdering::SeqCst), 4);
    assert!(matches!(g.breakers().state("test"), State::Open { .. }));
    // While open, nothing reaches the callee.
    assert!(g.call(req(&FLAKY_QUERY)).await.is_err());
    assert_eq!(script.calls.load(AtomicOrdering::SeqCst), 4);
    // After the open period one probe goes through; it succeeds and closes the breaker.
    tokio::time::advance(Duration::from_secs(5)).await;
    assert_eq!(
        g.call(req(&FLAKY_QUERY)).await,
        Ok(CallReply::Ok(Payload::Json(b"1".to_vec())))
    );
    assert_eq!(g.breakers().state("test"), State::Closed);
}

#[tokio::test(start_paused = true)]
async fn a_failed_probe_opens_the_breaker_again() {
    use crate::breaker::{BreakerOptions, State};
    let options = BreakerOptions {
        failures_to_open: 1,
        open_for: Duration::from_secs(5),
        max_in_flight: 8,
    };
    let (script, g) = governed_with(2, false, options);
    assert!(g.call(req(&ONCE_COMMAND)).await.is_err());
    tokio::time::advance(Duration::from_secs(5)).await;
    assert!(g.call(req(&ONCE_COMMAND)).await.is_err(), "the probe fails");
    assert!(matches!(g.breakers().state("test"), State::Open { .. }));
    assert_eq!(script.calls.load(AtomicOrdering::SeqCst), 2);
}

#[tokio::test(start_paused = true)]
async fn calls_beyond_the_in_flight_limit_fail_fast() {
    use crate::breaker::BreakerOptions;
    let options = BreakerOptions {
        failures_to_open: 100,
        open_for: Duration::from_secs(5),
        max_in_flight: 2,
    };
    let (_, g) = governed_with(0, true, options);
    let g = Arc::new(g);
    let slow: Vec<_> = (0..2)
        .map(|_| {
            let g = g.clone();
            tokio::spawn(async move { g.call(req(&ONCE_COMMAND)).await })
        })
        .collect();
    tokio::task::yield_now().await;
    let third = g.call(req(&ONCE_COMMAND)).await;
    assert!(
        matches!(&third, Err(CallError::Unavailable { reason, .. }) if reason.contains("in flight")),
        "{third:?}"
    );
    for s in slow {
        assert!(matches!(s.await.unwrap(), Err(CallError::Timeout { .. })));
    }
}

// Real time: the deadline is a std `Instant`, which a paused tokio clock does not move.
#[tokio::test]
async fn timeouts_a_caller_s_own_short_deadline_caused_leave_the_breaker_closed() {
    use crate::breaker::{BreakerOptions, State};
    let options = BreakerOptions {
        failures_to_open: 1,
        open_for: Duration::from_secs(60),
        max_in_flight: 8,
    };
    let (script, g) = governed_with(0, true, options);
    // A caller that will wait 5 ms for an operation declared to take up to 100.
    for _ in 0..3 {
        let mut r = req(&ONCE_COMMAND);
        r.ctx.deadline = Some(std::time::Instant::now() + Duration::from_millis(5));
        assert!(matches!(g.call(r).await, Err(CallError::Timeout { .. })));
    }
    assert_eq!(
        g.breakers().state("test"),
        State::Closed,
        "not the callee's fault"
    );
    assert_eq!(script.calls.load(AtomicOrdering::SeqCst), 3);
    // A timeout within the declared timeout itself is the callee's: it counts.
    assert!(matches!(
        g.call(req(&ONCE_COMMAND)).await,
        Err(CallError::Timeout { .. })
    ));
    assert!(matches!(g.breakers().state("test"), State::Open { .. }));
}
