//! How an error becomes an answer, and at which level it is logged: ERROR
//! is for what an operator must act on, so a declared 503 is only a
//! warning and a client's mistake only a debug line.

use std::sync::{Arc, Mutex};

use axum::http::{StatusCode, header};
use seams_core::Problem;
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::layer::{Context, Layer, SubscriberExt};

use super::{IntoProblem, error_response};

#[derive(Debug, thiserror::Error)]
#[error("failed with {0}")]
struct Failed(u16);

impl IntoProblem for Failed {
    fn problem(&self) -> Problem {
        let problem = Problem::new(self.0, "test-failure", "It failed");
        if self.0 == 503 {
            problem.with("retry_after", 2)
        } else {
            problem
        }
    }
}

/// Records the level of every event.
struct Levels(Arc<Mutex<Vec<Level>>>);

impl<S: Subscriber> Layer<S> for Levels {
    fn on_event(&self, event: &Event<'_>, _: Context<'_, S>) {
        self.0.lock().unwrap().push(*event.metadata().level());
    }
}

/// The answer to `err` and the levels of the lines rendering it logged.
fn render(err: Failed) -> (axum::response::Response, Vec<Level>) {
    let levels = Arc::new(Mutex::new(Vec::new()));
    let subscriber = tracing_subscriber::registry().with(Levels(levels.clone()));
    let res = tracing::subscriber::with_default(subscriber, || error_response(&err));
    let seen = levels.lock().unwrap().clone();
    (res, seen)
}

#[test]
fn a_server_fault_is_an_error_a_declared_outage_a_warning_a_client_mistake_debug() {
    for (status, level) in [
        (500, Level::ERROR),
        (502, Level::ERROR),
        (503, Level::WARN),
        (504, Level::ERROR),
        (422, Level::DEBUG),
        (404, Level::DEBUG),
    ] {
        let (res, levels) = render(Failed(status));
        assert_eq!(res.status().as_u16(), status);
        assert_eq!(levels, vec![level], "{status}");
    }
}

#[test]
fn the_answer_is_the_problem_as_problem_json_with_its_retry_after() {
    let (res, _) = render(Failed(503));
    assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(
        res.headers()[header::CONTENT_TYPE],
        "application/problem+json"
    );
    assert_eq!(res.headers()[header::RETRY_AFTER], "2");
}
