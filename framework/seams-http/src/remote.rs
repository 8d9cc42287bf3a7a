//! The HTTP side of a split: calling another service's operation, and the
//! wire format both ends agree on.
//!
//! A call is `POST {base}/_seams/ops/{capability}.{operation}` with the JSON
//! request; the caller's service token travels in `x-seams-peer` (the callee
//! answers 401 without one, 403 when the contracts do not name the caller
//! as a client of the operation), and its context as headers (`traceparent`,
//! `x-correlation-id`, `x-request-id` as the causation, and
//! `x-seams-deadline-ms`, the time the caller will still wait). The answer
//! is 200 with the JSON reply, or 422 with content type
//! [`REJECTED_CONTENT_TYPE`] carrying the operation's declared error; any
//! other status is a [`CallError`]. Timeouts and retries are not applied
//! here but by the governing transport around it, from the declaration.

use std::collections::HashMap;
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use seams_auth::{Credential, PEER_HEADER};
use seams_core::{BoxFuture, CallContext, CallError, CallReply, CallRequest, Payload, Transport};

use crate::correlation::{CORRELATION_ID, DEADLINE_MS, REQUEST_ID, TRACEPARENT};

/// Content type of a declared error reply.
pub const REJECTED_CONTENT_TYPE: &str = "application/vnd.seams.rejected+json";

/// Path of an operation under a service's base URL.
pub fn op_path(op_id: &str) -> String {
    format!("/_seams/ops/{op_id}")
}

/// Headers carrying `ctx` to the callee.
pub fn context_headers(ctx: &CallContext) -> Vec<(&'static http::HeaderName, String)> {
    let mut headers = vec![
        (&TRACEPARENT, ctx.trace.to_traceparent()),
        (&CORRELATION_ID, ctx.correlation_id.clone()),
    ];
    if let Some(c) = &ctx.causation_id {
        headers.push((&REQUEST_ID, c.clone()));
    }
    if let Some(left) = ctx.remaining() {
        headers.push((&DEADLINE_MS, left.as_millis().to_string()));
    }
    headers
}

/// Calls operations served by one remote service.
#[derive(Clone)]
pub struct HttpTransport {
    base: String,
    client: reqwest::Client,
    credential: Option<Arc<dyn Credential>>,
    /// Each called operation's URL, parsed on its first call.
    urls: Arc<RwLock<HashMap<String, reqwest::Url>>>,
}

impl std::fmt::Debug for HttpTransport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpTransport")
            .field("base", &self.base)
            .field("credential", &self.credential.is_some())
            .finish()
    }
}

impl HttpTransport {
    /// A transport to the service at `base` (e.g. `http://127.0.0.1:9001`).
    pub fn new(base: impl Into<String>, client: reqwest::Client) -> HttpTransport {
        HttpTransport {
            base: base.into().trim_end_matches('/').to_owned(),
            client,
            credential: None,
            urls: Arc::default(),
        }
    }

    /// The URL of operation `op_id` on this service, parsed once: given
    /// text, reqwest parses every call's URL again (the `url` crate, IDNA
    /// included), about 5 % of a caller's CPU at 64 calls in flight.
    /// Operations are declared, so the map holds a handful of entries.
    fn url(&self, op_id: &str) -> Result<reqwest::Url, String> {
        let parsed = self.urls.read().unwrap_or_else(PoisonError::into_inner);
        if let Some(url) = parsed.get(op_id) {
            return Ok(url.clone());
        }
        drop(parsed);
        let text = format!("{}{}", self.base, op_path(op_id));
        let url = reqwest::Url::parse(&text).map_err(|e| format!("cannot call {text:?}: {e}"))?;
        self.urls
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(op_id.to_owned(), url.clone());
        Ok(url)
    }

    /// Presents `credential` (this service's token) on every call.
    pub fn with_credential(mut self, credential: Arc<dyn Credential>) -> HttpTransport {
        self.credential = Some(credential);
        self
    }

    /// A client suitable for service-to-service calls (pooled, no proxy,
    /// bounded connect time), trusting the public roots.
    pub fn default_client() -> reqwest::Client {
        Self::client_trusting(&[])
    }

    /// [`HttpTransport::default_client`], also trusting `authorities` (a
    /// deployment's own CA, for services that serve HTTPS).
    ///
    /// Idle connections are dropped after 15 s, before the 20 s after which
    /// servers close them ([`crate::server::Limits::header_read_timeout`]),
    /// so a call rarely meets a connection the server is closing.
    pub fn client_trusting(authorities: &[reqwest::Certificate]) -> reqwest::Client {
        crate::tls::client_builder(authorities)
            .connect_timeout(Duration::from_secs(2))
            .pool_idle_timeout(Duration::from_secs(15))
            .no_proxy()
            .build()
            .unwrap_or_default()
    }
}

impl Transport for HttpTransport {
    fn call(&self, req: CallRequest) -> BoxFuture<'_, Result<CallReply, CallError>> {
        Box::pin(async move {
            let op = req.op.id();
            let body = req.body.into_json().map_err(|e| CallError::Protocol {
                op: op.clone(),
                reason: e.to_string(),
            })?;
            let url = self.url(&op).map_err(|reason| CallError::Unavailable {
                op: op.clone(),
                reason,
            })?;
            let mut builder = self
                .client
                .post(url)
                .header(http::header::CONTENT_TYPE, "application/json")
                .body(body);
            for (name, value) in context_headers(&req.ctx) {
                builder = builder.header(name, value);
            }
            if let Some(credential) = &self.credential {
                let token = credential.token().map_err(|e| CallError::Unavailable {
                    op: op.clone(),
                    reason: format!("no service token: {e:#}"),
                })?;
                builder = builder.header(PEER_HEADER, &*token);
            }
            let res = builder.send().await.map_err(|e| {
                if e.is_timeout() {
                    CallError::Timeout {
                        op: op.clone(),
                        after: req.ctx.remaining().unwrap_or_default(),
                    }
                } else {
                    CallError::Unavailable {
                        op: op.clone(),
                        reason: e.to_string(),
                    }
                }
            })?;
            let status = res.status();
            let rejected = res
                .headers()
                .get(http::header::CONTENT_TYPE)
                .is_some_and(|v| v.as_bytes() == REJECTED_CONTENT_TYPE.as_bytes());
            let body = res
                .bytes()
                .await
                .map_err(|e| CallError::Unavailable {
                    op: op.clone(),
                    reason: e.to_string(),
                })?
                .to_vec();
            match status.as_u16() {
                200 => Ok(CallReply::Ok(Payload::Json(body))),
                422 if rejected => Ok(CallReply::Rejected(Payload::Json(body))),
                503 | 502 | 429 => Err(CallError::Unavailable {
                    op,
                    reason: format!("answered {status}"),
                }),
                504 => Err(CallError::Timeout {
                    op,
                    after: req.ctx.remaining().unwrap_or_default(),
                }),
                404 => Err(CallError::Unavailable {
                    op,
                    reason: "not served there (404)".into(),
                }),
                401 | 403 => Err(CallError::Refused {
                    op,
                    reason: format!(
                        "the callee answered {status}: {}",
                        String::from_utf8_lossy(&body)
                    ),
                }),
                400 => Err(CallError::Protocol {
                    op,
                    reason: String::from_utf8_lossy(&body).into_owned(),
                }),
                _ => Err(CallError::Internal { op }),
            }
        })
    }
}

#[cfg(test)]
mod tests;
