//! Rolling restarts of a running split system: `shop rollout CAP…` asks the
//! supervisor, through `POST /_seams/rollout` on the gateway (operators
//! only), to replace the service running a capability with a fresh process
//! of the executable on disk, without a request meeting a closed door.
//!
//! The successor is started on the same listening socket as the service it
//! replaces (the supervisor holds every service's socket, see
//! [`bind_ports`](super::bind_ports)), and only once it says it is
//! listening is the old process asked to stop: it stops accepting, finishes
//! what it has in flight and closes its idle connections, while the kernel
//! hands every new connection to the successor. A successor that does not
//! start (a broken build, a setting it refuses) changes nothing: the old
//! process keeps serving and the rollout answers why. One service is rolled
//! at a time in the whole system.
//!
//! A rollout may also change the two settings a version rollout moves
//! through, for the rolled service only: the versions its events are
//! written in (`--emit`) and the versions its consumers read (`--accept`).
//! The supervisor keeps them for that service's later restarts.

use std::ffi::OsString;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use seams_auth::Verifier;
use seams_core::Problem;
use seams_core::auth::Access;
use seams_http::problem_response;
use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, oneshot};

/// The settings a rollout may change for one service: the versions its
/// events are written in (`--emit TYPE=VERSION`) and the versions its
/// consumers read (`--accept CONSUMER:TYPE=VERSION`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Versions {
    /// `--emit` values.
    pub emit: Vec<String>,
    /// `--accept` values.
    pub accept: Vec<String>,
}

impl Versions {
    /// The `serve` arguments that say them.
    pub(crate) fn args(&self) -> Vec<OsString> {
        let emit = self.emit.iter().flat_map(|e| ["--emit", e.as_str()]);
        let accept = self.accept.iter().flat_map(|a| ["--accept", a.as_str()]);
        emit.chain(accept).map(OsString::from).collect()
    }

    /// These settings with what `request` replaces.
    fn replaced(&self, request: &RolloutRequest) -> Versions {
        Versions {
            emit: request.emit.clone().unwrap_or_else(|| self.emit.clone()),
            accept: request
                .accept
                .clone()
                .unwrap_or_else(|| self.accept.clone()),
        }
    }
}

/// The body of `POST /_seams/rollout`: which service to roll (by one of its
/// capabilities), and the settings that replace its current ones (absent:
/// kept; an empty list: cleared).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RolloutRequest {
    /// A capability the service runs.
    pub capability: String,
    /// Its `--emit` values from now on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub emit: Option<Vec<String>>,
    /// Its `--accept` values from now on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub accept: Option<Vec<String>>,
}

/// One service rolled: the answer of `POST /_seams/rollout`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rolled {
    /// The service's name (its capabilities joined).
    pub service: String,
    /// The process replaced.
    pub old_pid: Option<u32>,
    /// The process serving now.
    pub new_pid: Option<u32>,
    /// How long the successor took to listen, in milliseconds.
    pub ready_ms: u64,
    /// How long the old process then took to drain and exit.
    pub stopped_ms: u64,
    /// Its `--emit` values now.
    pub emit: Vec<String>,
    /// Its `--accept` values now.
    pub accept: Vec<String>,
}

/// What the supervisor of one service is asked: roll with these settings.
pub(crate) struct Roll {
    pub(crate) versions: Versions,
    pub(crate) reply: oneshot::Sender<Result<Rolled, String>>,
}

/// One service as the rollout route knows it.
#[derive(Clone)]
pub(crate) struct Rollable {
    pub(crate) capabilities: Vec<String>,
    pub(crate) versions: Arc<std::sync::Mutex<Versions>>,
    pub(crate) rolls: mpsc::Sender<Roll>,
}

/// The rollout route's state.
#[derive(Clone)]
pub(crate) struct Control {
    pub(crate) services: Vec<Rollable>,
    /// Verifies the operator's token.
    pub(crate) verifier: Arc<Verifier>,
    /// Held while a service is rolled: one at a time in the whole system.
    pub(crate) busy: Arc<tokio::sync::Mutex<()>>,
}

/// `POST /_seams/rollout`.
pub(crate) fn router(control: Control) -> Router {
    Router::new()
        .route("/_seams/rollout", post(rollout))
        .with_state(control)
}

/// How long a rollout may take as a whole: a start and a stop.
pub(crate) const ROLLOUT_TIMEOUT: Duration =
    Duration::from_secs(super::START_TIMEOUT.as_secs() + super::STOP_TIMEOUT.as_secs());

/// The largest rollout request read: a capability and two short lists.
const BODY_LIMIT: usize = 64 * 1024;

async fn rollout(
    State(control): State<Control>,
    headers: HeaderMap,
    body: axum::body::Body,
) -> Response {
    // Who asks comes first: nobody learns what the route accepts without
    // an operator's token.
    let token = match seams_http::auth::bearer(&headers) {
        Ok(Some(token)) => token,
        Ok(None) => return seams_http::auth::auth_response(&seams_auth::AuthError::Missing),
        Err(e) => return seams_http::auth::auth_response(&e),
    };
    let principal = match control.verifier.verify(token).await {
        Ok(p) => p,
        Err(e) => return seams_http::auth::auth_response(&e),
    };
    if !Access::OPERATORS.admits(&principal) {
        return seams_http::auth::forbidden(
            "Rolling a service out is for operators; the token's role is not operator.",
        );
    }
    let Ok(body) = axum::body::to_bytes(body, BODY_LIMIT).await else {
        return problem_response(
            Problem::new(413, "body-too-large", "Request body too large")
                .detail(format!("At most {BODY_LIMIT} bytes.")),
        );
    };
    let request: RolloutRequest = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => {
            return problem_response(
                Problem::new(400, "bad-request", "The rollout request does not parse")
                    .detail(e.to_string()),
            );
        }
    };
    let Some(service) = control
        .services
        .iter()
        .find(|s| s.capabilities.contains(&request.capability))
    else {
        return problem_response(
            Problem::new(404, "not-found", "No such capability")
                .detail(format!("No service runs {:?}.", request.capability)),
        );
    };
    let current = service
        .versions
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clone();
    let versions = current.replaced(&request);
    if let Err(e) = check(&versions) {
        return problem_response(
            Problem::new(
                400,
                "invalid-settings",
                "The rollout's settings are invalid",
            )
            .detail(format!("{e:#}")),
        );
    }
    let Ok(_one_at_a_time) = control.busy.try_lock() else {
        return problem_response(
            Problem::new(409, "rollout-in-progress", "A rollout is in progress")
                .detail("Another service is being rolled; try again once it is done.")
                .with("retry_after", 1),
        );
    };
    let (reply, answer) = oneshot::channel();
    if service.rolls.send(Roll { versions, reply }).await.is_err() {
        return problem_response(Problem::new(
            503,
            "shutting-down",
            "The system is shutting down",
        ));
    }
    match tokio::time::timeout(ROLLOUT_TIMEOUT, answer).await {
        Ok(Ok(Ok(rolled))) => {
            tracing::info!(
                service = %rolled.service,
                old_pid = rolled.old_pid,
                new_pid = rolled.new_pid,
                ready_ms = rolled.ready_ms,
                stopped_ms = rolled.stopped_ms,
                "rolled out"
            );
            axum::Json(rolled).into_response()
        }
        Ok(Ok(Err(why))) => problem_response(
            Problem::new(502, "rollout-failed", "The successor did not start")
                .detail(format!("{why}.")),
        ),
        Ok(Err(_)) => problem_response(Problem::new(
            503,
            "shutting-down",
            "The system is shutting down",
        )),
        Err(_) => problem_response(
            Problem::new(504, "rollout-timeout", "The rollout did not finish in time").detail(
                format!(
                    "No answer within {} s; the service's supervisor goes on with it.",
                    ROLLOUT_TIMEOUT.as_secs()
                ),
            ),
        ),
    }
}

/// Refuses settings that do not parse, or name types and consumers the
/// system does not have, before any process is started with them.
fn check(versions: &Versions) -> anyhow::Result<()> {
    let mut config = crate::config::Config::new(
        std::net::SocketAddr::from(([127, 0, 0, 1], 0)),
        std::path::PathBuf::new(),
    );
    config.emit = versions.emit.clone();
    config.accept = versions.accept.clone();
    config.emit_versions()?;
    config.accept_versions()?;
    Ok(())
}

#[cfg(test)]
mod tests;
