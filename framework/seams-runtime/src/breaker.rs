//! Per-callee circuit breakers and concurrency limits.
//!
//! A callee that keeps failing (unavailable or timing out) is not called
//! for a while: after `failures_to_open` consecutive transient failures the
//! breaker opens and calls fail fast, which the caller's contract turns into
//! its declared "when the other side is down" answer (a 503 with
//! `Retry-After`), instead of piling up requests that wait for timeouts.
//! After `open_for`, one probe call is let through (half-open): success
//! closes the breaker, failure opens it again. Independently, at most
//! `max_in_flight` calls to one callee are outstanding; one more fails fast
//! rather than queueing behind a slow callee.
//!
//! Written here rather than taken from tower: a [`seams_core::Transport`]
//! is not a tower `Service`, and the state has to be shared per callee
//! capability across every operation and caller in the process.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

/// 1 while `callee`'s breaker is open or probing (calls fail fast), 0
/// while closed; set on every change of state, so it costs nothing per call.
pub const BREAKER_OPEN: &str = "seams_breaker_open";

fn report(callee: &str, open: bool) {
    metrics::gauge!(BREAKER_OPEN, "callee" => callee.to_owned()).set(if open { 1.0 } else { 0.0 });
}

/// Tuning of breakers and limits (the same for every callee).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BreakerOptions {
    /// Consecutive transient failures that open the breaker.
    pub failures_to_open: u32,
    /// How long it stays open before a probe.
    pub open_for: Duration,
    /// Calls in flight to one callee at most.
    pub max_in_flight: usize,
}

impl Default for BreakerOptions {
    fn default() -> Self {
        BreakerOptions {
            failures_to_open: 5,
            open_for: Duration::from_secs(5),
            max_in_flight: 256,
        }
    }
}

/// A breaker's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// Calls flow.
    Closed,
    /// Calls fail fast until the instant.
    Open {
        /// When a probe may go.
        until: Instant,
    },
    /// One probe is in flight; other calls fail fast.
    HalfOpen,
}

struct Callee {
    state: State,
    failures: u32,
    in_flight: Arc<Semaphore>,
}

/// Why a call was not let through.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refused {
    /// The breaker is open (or probing).
    Open,
    /// `max_in_flight` calls are outstanding.
    Saturated,
}

/// Breakers of every callee; cheap to clone.
#[derive(Clone)]
pub struct Breakers {
    options: BreakerOptions,
    callees: Arc<Mutex<HashMap<String, Callee>>>,
}

/// Permission to make one call; report how it went with [`Breakers::record`].
pub struct Admission {
    _permit: OwnedSemaphorePermit,
}

impl Breakers {
    /// Breakers with `options`.
    pub fn new(options: BreakerOptions) -> Breakers {
        Breakers {
            options,
            callees: Arc::new(Mutex::new(HashMap::new())),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Callee>> {
        self.callees.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Asks to call `callee` now.
    pub fn admit(&self, callee: &str) -> Result<Admission, Refused> {
        let mut callees = self.lock();
        // Looked up before inserting: the key is allocated once per callee, not per call.
        if !callees.contains_key(callee) {
            callees.insert(
                callee.to_owned(),
                Callee {
                    state: State::Closed,
                    failures: 0,
                    in_flight: Arc::new(Semaphore::new(self.options.max_in_flight)),
                },
            );
            // The series exists from the first call on, not only once it opens.
            report(callee, false);
        }
        let c = callees.get_mut(callee).expect("inserted above");
        match c.state {
            State::Closed => {}
            State::Open { until } if Instant::now() >= until => c.state = State::HalfOpen,
            State::Open { .. } | State::HalfOpen => return Err(Refused::Open),
        }
        let permit = c
            .in_flight
            .clone()
            .try_acquire_owned()
            .map_err(|_| Refused::Saturated)?;
        Ok(Admission { _permit: permit })
    }

    /// Records the outcome of an admitted call: `healthy` unless it failed transiently.
    pub fn record(&self, callee: &str, healthy: bool) {
        let mut callees = self.lock();
        let Some(c) = callees.get_mut(callee) else {
            return;
        };
        if healthy {
            if c.state != State::Closed {
                tracing::info!(callee, "circuit closed");
                report(callee, false);
            }
            c.state = State::Closed;
            c.failures = 0;
            return;
        }
        c.failures += 1;
        let reopen = c.state == State::HalfOpen;
        if reopen || (c.state == State::Closed && c.failures >= self.options.failures_to_open) {
            tracing::warn!(callee, failures = c.failures, open_for = ?self.options.open_for, "circuit opened");
            c.state = State::Open {
                until: Instant::now() + self.options.open_for,
            };
            report(callee, true);
        }
    }

    /// The state of `callee`'s breaker.
    pub fn state(&self, callee: &str) -> State {
        self.lock().get(callee).map_or(State::Closed, |c| c.state)
    }
}

#[cfg(test)]
mod tests;
