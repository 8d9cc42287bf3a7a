//! The gateway of `shop up --split`: one public address in front of the
//! per-capability service processes, so clients and `shop demo` see the same
//! API as the monolith's.
//!
//! It owns two things. Forwarding: a request under `/<capability>/…` goes, as
//! it came (method, path, query, end-to-end headers, body), to the service
//! that owns the capability, and the answer streams back as the service gave
//! it; the gateway only speaks for itself when there is no such capability
//! (404), the service cannot be reached (503 with `Retry-After`), or it does
//! not answer in time (504). And the framework routes, answered for the whole
//! system by asking every service and merging what they say: `/readyz`,
//! `/openapi.json`, `/asyncapi.json`, `/_seams/contracts`, `/_seams/consistency`,
//! `/_seams/dead-letters` (replays go to the owner of the dead letter) and
//! `/metrics` (every service's series with a `service` label, so one
//! Prometheus target covers the system).
//!
//! The gateway holds no state of its own beyond the routes and one pooled
//! HTTP client, so it can be restarted at any time, and it never enforces a
//! capability's rules: a too-large body is passed on (cut just past the
//! limit) so the service answers 413 itself, exactly as in the monolith,
//! and who may use a route is decided by the service (the client's
//! `Authorization` goes along, to the merged views' services too).
//!
//! It is the edge of the system, so it speaks for the clients it forwards:
//! it decides on the path only after checking it (a dot segment or an
//! encoded slash, raw or percent-encoded, is 400 `invalid-path`, never
//! resolved), builds the service's URL from the checked path, replaces
//! what a client must not say itself (`X-Seams-Peer`, `X-Forwarded-For`,
//! `X-Seams-Deadline-Ms`) with its own service token and the client's
//! address, and so lets the service believe that address.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderName, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use bytes::{Bytes, BytesMut};
use futures::StreamExt;
use seams_auth::{Credential, PEER_HEADER};
use seams_core::Problem;
use seams_http::problem_response;
use serde_json::{Map, Value, json};
use tracing::Instrument;

/// Which service answers for which capability: capability name (the first
/// path segment of its routes) → base URL of the service, such as
/// `http://127.0.0.1:40123`. Several capabilities may share a base URL when
/// they are colocated in one process; framework routes ask each service once.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Routes {
    /// (capability, base URL without a trailing slash), in insertion order,
    /// which is the order merged answers list services in.
    entries: Vec<(String, String)>,
}

impl Routes {
    /// No routes.
    pub fn new() -> Routes {
        Routes::default()
    }

    /// Routes `capability` to the service at `base_url`, replacing an earlier route.
    pub fn insert(&mut self, capability: impl Into<String>, base_url: impl Into<String>) {
        let capability = capability.into();
        let base_url = base_url.into().trim_end_matches('/').to_owned();
        match self.entries.iter_mut().find(|(c, _)| *c == capability) {
            Some(entry) => entry.1 = base_url,
            None => self.entries.push((capability, base_url)),
        }
    }

    /// These routes plus `capability` → `base_url`.
    pub fn with(mut self, capability: impl Into<String>, base_url: impl Into<String>) -> Routes {
        self.insert(capability, base_url);
        self
    }

    /// The base URL of the service owning `capability`.
    pub fn url(&self, capability: &str) -> Option<&str> {
        self.entries
            .iter()
            .find(|(c, _)| c == capability)
            .map(|(_, u)| u.as_str())
    }

    /// Every (capability, base URL), in insertion order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.entries.iter().map(|(c, u)| (c.as_str(), u.as_str()))
    }

    /// The distinct services, each with the capabilities it owns, in order of
    /// first appearance.
    fn services(&self) -> Vec<Service> {
        let mut services: Vec<Service> = Vec::new();
        for (cap, url) in &self.entries {
            match services.iter_mut().find(|s| s.url == *url) {
                Some(s) => s.capabilities.push(cap.clone()),
                None => services.push(Service {
                    url: url.clone(),
                    capabilities: vec![cap.clone()],
                }),
            }
        }
        services
    }
}

impl<C: Into<String>, U: Into<String>> FromIterator<(C, U)> for Routes {
    fn from_iter<I: IntoIterator<Item = (C, U)>>(iter: I) -> Routes {
        let mut routes = Routes::new();
        for (c, u) in iter {
            routes.insert(c, u);
        }
        routes
    }
}

/// One service process behind the gateway.
#[derive(Debug, Clone)]
struct Service {
    /// Base URL, without a trailing slash.
    url: String,
    /// The capabilities it owns, named in problems and readiness answers.
    capabilities: Vec<String>,
}

/// How long the gateway waits; tests shorten these.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Timeouts {
    /// A forwarded request must produce its response headers within this,
    /// and its body must not stall longer than this between reads (504).
    pub(crate) forward: Duration,
    /// Each service's answer to a framework route (readiness, documents).
    pub(crate) admin: Duration,
}

/// How long a forwarded request may take to produce its response.
pub const FORWARD_TIMEOUT: Duration = Duration::from_secs(30);

impl Default for Timeouts {
    fn default() -> Timeouts {
        Timeouts {
            forward: FORWARD_TIMEOUT,
            admin: Duration::from_secs(10),
        }
    }
}

/// The gateway's router: forwards `/<capability>/…` to the owning service and
/// answers the framework routes for the whole system, presenting
/// `credential` (the gateway's own service token) to the services, which it
/// reaches trusting `authorities` as well as the public roots. Serve
/// it like any router (`seams_http::server::serve(listener, router(…), limits, shutdown)`).
pub fn router(
    routes: Routes,
    authorities: &[reqwest::Certificate],
    credential: Arc<dyn Credential>,
) -> Router {
    router_with(routes, authorities, credential, Timeouts::default())
}

/// [`router`] with explicit timeouts.
pub(crate) fn router_with(
    routes: Routes,
    authorities: &[reqwest::Certificate],
    credential: Arc<dyn Credential>,
    timeouts: Timeouts,
) -> Router {
    // Services may serve HTTPS, with the deployment's own CA.
    let client = seams_http::tls::client_builder(authorities)
        // The gateway relays answers verbatim: a redirect is the client's to follow.
        .redirect(reqwest::redirect::Policy::none())
        // Services are on known addresses; an HTTP_PROXY meant for the outside
        // world must not capture loopback traffic.
        .no_proxy()
        .connect_timeout(Duration::from_secs(5))
        .read_timeout(timeouts.forward)
        .pool_idle_timeout(Duration::from_secs(60))
        .build()
        // Building fails only when a TLS backend or the resolver cannot start;
        // this client uses neither TLS nor custom resolution.
        .expect("building the gateway's HTTP client");
    let gateway = Gateway(Arc::new(Inner {
        services: routes.services(),
        routes,
        client,
        timeouts,
        credential,
    }));
    Router::new()
        .route(
            "/healthz",
            get(|| async { axum::Json(json!({ "status": "ok" })) }),
        )
        .route("/readyz", get(readyz))
        .route("/openapi.json", get(openapi))
        .route("/asyncapi.json", get(asyncapi))
        .route("/_seams/contracts", get(contracts))
        .route("/_seams/consistency", get(consistency))
        .route("/_seams/dead-letters", get(dead_letters))
        .route("/_seams/dead-letters/{id}/replay", post(replay_dead_letter))
        .route("/metrics", get(metrics))
        .fallback(forward)
        .method_not_allowed_fallback(|| async {
            problem_response(Problem::new(
                405,
                "method-not-allowed",
                "Method not allowed",
            ))
        })
        .with_state(gateway)
}

#[derive(Clone)]
struct Gateway(Arc<Inner>);

struct Inner {
    routes: Routes,
    /// The distinct services of `routes`, asked once each by framework routes.
    services: Vec<Service>,
    /// One pooled client for every forwarded request and every fan-out.
    client: reqwest::Client,
    timeouts: Timeouts,
    /// The gateway's own service token.
    credential: Arc<dyn Credential>,
}

/// Headers only the gateway may set on what it forwards: whatever a client
/// sent under these names is dropped.
const GATEWAY_ONLY: [&str; 3] = [PEER_HEADER, "x-forwarded-for", "x-seams-deadline-ms"];

/// Why a request path is refused before anything routes it.
fn check_path(path: &str) -> Result<(), &'static str> {
    if !path.starts_with('/') {
        return Err("the path must start with /");
    }
    for segment in path[1..].split('/') {
        let decoded = percent_decode(segment).ok_or("the path has a malformed %-escape")?;
        if decoded == b"." || decoded == b".." {
            return Err("the path has a dot segment (`.` or `..`, raw or %-encoded)");
        }
        if decoded.iter().any(|b| matches!(b, b'/' | b'\\' | 0)) {
            return Err("the path has an encoded slash, backslash or NUL in a segment");
        }
    }
    if path.contains("//") {
        return Err("the path has an empty segment");
    }
    Ok(())
}

/// `segment` with its %-escapes decoded, or `None` if one is malformed.
/// Written out here (a few lines) rather than taking a crate in for it:
/// the check needs only the bytes, not a URL model that might normalize
/// the very segments it must refuse.
fn percent_decode(segment: &str) -> Option<Vec<u8>> {
    let bytes = segment.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            // Two hex digits exactly: `from_str_radix` alone would also
            // take a sign (`%+1`).
            let hex = bytes.get(i + 1..i + 3)?;
            if !hex.iter().all(u8::is_ascii_hexdigit) {
                return None;
            }
            out.push(u8::from_str_radix(std::str::from_utf8(hex).ok()?, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    Some(out)
}

/// Headers that describe one connection rather than the message, which a
/// proxy must not pass on (RFC 9110 section 7.6.1).
const HOP_BY_HOP: [&str; 9] = [
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

/// Removes hop-by-hop headers, including those the `Connection` header names.
fn strip_hop_by_hop(headers: &mut HeaderMap) {
    let named: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|name| HeaderName::from_bytes(name.trim().as_bytes()).ok())
        .collect();
    for name in named {
        headers.remove(name);
    }
    for name in HOP_BY_HOP {
        headers.remove(name);
    }
}

/// Reads at most `cap` bytes of `body`. The rest is left unread: the service
/// only needs to see that the body is over its limit to answer 413.
async fn read_capped(body: Body, cap: usize) -> Result<Bytes, axum::Error> {
    let mut stream = body.into_data_stream();
    let mut buf = BytesMut::new();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk?;
        let room = cap - buf.len();
        if chunk.len() >= room {
            buf.extend_from_slice(&chunk[..room]);
            break;
        }
        buf.extend_from_slice(&chunk);
    }
    Ok(buf.freeze())
}

/// The first path segment: the capability a public route belongs to.
fn capability_of(path: &str) -> &str {
    path.trim_start_matches('/')
        .split('/')
        .next()
        .unwrap_or_default()
}

fn service_unavailable(capabilities: &[String], detail: String) -> Response {
    problem_response(
        Problem::new(
            503,
            "service-unavailable",
            format!("{} is unavailable", capabilities.join(", ")),
        )
        .detail(detail)
        .with("capabilities", capabilities.to_vec())
        .with("retry_after", 1),
    )
}

/// Any request under `/<capability>/…`: relayed to the owning service.
async fn forward(State(gw): State<Gateway>, req: Request) -> Response {
    if let Err(why) = check_path(req.uri().path()) {
        return problem_response(Problem::new(400, "invalid-path", "Invalid path").detail(why));
    }
    let capability = capability_of(req.uri().path()).to_owned();
    if gw.0.routes.url(&capability).is_none() {
        return problem_response(
            Problem::new(404, "not-found", "No such resource")
                .detail(format!("No capability serves {}.", req.uri().path())),
        );
    }
    relay(&gw, &capability, req).await
}

/// Sends `req` as it came (same method, path, query and end-to-end headers)
/// to the service owning `capability`, and relays its answer as it streams.
/// The request goes on with this hop's `traceparent` (a child of the
/// client's, or a trace started here): the gateway's log lines and the
/// service's share a trace id (and the correlation id the service derives
/// from it), and exported, the gateway's span is the service's parent.
async fn relay(gw: &Gateway, capability: &str, req: Request) -> Response {
    let (mut ctx, parent) = seams_http::correlation::context_and_parent(req.headers());
    let span = tracing::info_span!(
        "relay",
        %capability,
        method = %req.method(),
        path = %req.uri().path(),
        trace_id = ctx.trace.trace_id_hex(),
        correlation_id = ctx.correlation_id.as_str(),
        otel.kind = "client",
        otel.name = tracing::field::Empty,
    );
    seams_http::correlation::trace(&span, &mut ctx, parent.as_ref(), || {
        format!("gateway {capability}")
    });
    relay_in(gw, capability, req, &ctx).instrument(span).await
}

async fn relay_in(
    gw: &Gateway,
    capability: &str,
    req: Request,
    ctx: &seams_core::CallContext,
) -> Response {
    let base = gw.0.routes.url(capability).unwrap_or_default();
    let target = match req.uri().path_and_query() {
        Some(pq) => format!("{base}{pq}"),
        None => format!("{base}{}", req.uri().path()),
    };
    let (parts, body) = req.into_parts();
    let had_body = parts.headers.contains_key(header::CONTENT_LENGTH)
        || parts.headers.contains_key(header::TRANSFER_ENCODING);
    let body = match read_capped(body, seams_http::BODY_LIMIT + 1).await {
        Ok(body) => body,
        Err(e) => {
            tracing::debug!(error = %e, "reading the request body");
            return problem_response(
                Problem::new(400, "bad-request", "Could not read the request body")
                    .detail(e.to_string()),
            );
        }
    };
    let client_addr = parts
        .extensions
        .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
        .map(|c| c.0.ip());
    let mut headers = parts.headers;
    strip_hop_by_hop(&mut headers);
    // The client addressed the gateway, and the body may have been cut:
    // reqwest sets both from what it actually sends.
    headers.remove(header::HOST);
    headers.remove(header::CONTENT_LENGTH);
    // The service continues this hop: the client's trace if it sent one
    // (this hop is its child), else the one started here.
    if let Ok(v) = ctx.trace.to_traceparent().parse() {
        headers.insert(seams_http::correlation::TRACEPARENT.clone(), v);
    }
    if let Err(e) = speak_for_client(gw, &mut headers, client_addr) {
        tracing::error!(error = format!("{e:#}"), "the gateway has no service token");
        return problem_response(seams_http::problem::internal());
    }
    let resend = may_resend(&parts.method, &headers);
    let send = || {
        let mut request =
            gw.0.client
                .request(parts.method.clone(), &target)
                .headers(headers.clone());
        if had_body || !body.is_empty() {
            request = request.body(body.clone());
        }
        request.send()
    };
    let forwarded = tokio::time::timeout(gw.0.timeouts.forward, async {
        match send().await {
            // A kept-alive connection the service closed as the request
            // went out (a restart's drain): no answer came, so a request
            // that may be sent twice goes again, on a fresh connection.
            Err(e) if resend && !e.is_timeout() => {
                tracing::debug!(error = %e, "no answer on a kept-alive connection; sending again");
                send().await
            }
            sent => sent,
        }
    })
    .await;
    let res = match forwarded {
        Ok(Ok(res)) => res,
        Ok(Err(e)) if !e.is_timeout() => {
            tracing::warn!(error = %e, "service unreachable");
            return service_unavailable(
                &[capability.to_owned()],
                format!("The {capability} service could not be reached; try again shortly."),
            );
        }
        Ok(Err(_)) | Err(_) => {
            let ms = gw.0.timeouts.forward.as_millis();
            tracing::warn!(timeout_ms = ms as u64, "service did not answer in time");
            return problem_response(
                Problem::new(504, "gateway-timeout", format!("{capability} did not answer in time"))
                    .detail(format!(
                        "The {capability} service gave no answer within {ms} ms; the request may or may not have taken effect."
                    ))
                    .with("capabilities", vec![capability.to_owned()]),
            );
        }
    };
    let res: axum::http::Response<reqwest::Body> = res.into();
    let (parts, body) = res.into_parts();
    let mut headers = parts.headers;
    strip_hop_by_hop(&mut headers);
    let mut out = Response::new(Body::new(body));
    *out.status_mut() = parts.status;
    *out.headers_mut() = headers;
    out
}

/// Whether a request the service may have received may be sent again
/// when no answer came: its method is idempotent, or it carries an
/// `Idempotency-Key` (the service answers a repeat with the first answer).
/// The rule of RFC 9110 §9.2.2, and Go's `net/http` transport's.
pub(crate) fn may_resend(method: &axum::http::Method, headers: &HeaderMap) -> bool {
    use axum::http::Method;
    [
        Method::GET,
        Method::HEAD,
        Method::OPTIONS,
        Method::TRACE,
        Method::PUT,
        Method::DELETE,
    ]
    .contains(method)
        || headers.contains_key("idempotency-key")
}

/// Replaces what only the gateway may say with what it says: its own
/// service token, and the address the client connected from.
fn speak_for_client(
    gw: &Gateway,
    headers: &mut HeaderMap,
    client: Option<std::net::IpAddr>,
) -> anyhow::Result<()> {
    for name in GATEWAY_ONLY {
        headers.remove(name);
    }
    let token = gw.0.credential.token()?;
    if let Ok(v) = header::HeaderValue::from_str(&token) {
        headers.insert(PEER_HEADER, v);
    }
    if let Some(ip) = client
        && let Ok(v) = header::HeaderValue::from_str(&ip.to_string())
    {
        headers.insert("x-forwarded-for", v);
    }
    Ok(())
}

/// What one service answered to a framework route.
struct Answer<'a> {
    service: &'a Service,
    /// The status and JSON body, or why there is none.
    result: Result<(StatusCode, Value), String>,
}

impl Gateway {
    /// Asks every service `GET {url}{path}` at once, on behalf of the
    /// client whose `Authorization` this is (each service decides).
    async fn ask_all(
        &self,
        path: &str,
        authorization: Option<&header::HeaderValue>,
    ) -> Vec<Answer<'_>> {
        let asks = self.0.services.iter().map(|service| async move {
            let url = format!("{}{path}", service.url);
            let result = async {
                let mut request = self.0.client.get(&url).timeout(self.0.timeouts.admin);
                if let Some(a) = authorization {
                    request = request.header(header::AUTHORIZATION, a);
                }
                let res = request.send().await.map_err(|e| e.to_string())?;
                let status = res.status();
                let body = res.json::<Value>().await.unwrap_or(Value::Null);
                Ok::<_, String>((status, body))
            }
            .await;
            if let Err(e) = &result {
                tracing::warn!(url = %seams_core::redact(&url), error = %seams_core::redact(e), "service did not answer");
            }
            Answer { service, result }
        });
        futures::future::join_all(asks).await
    }

    /// Every service's successful JSON answer to `path`, or a 503 naming the
    /// services that gave none: a merged view with a hole in it would look
    /// complete (no dead letters, every invariant holding) when it is not.
    /// A service refusing the client (401, 403) or its request (400: a bad
    /// query is bad for every service) is passed on as it said it.
    async fn collect(&self, path: &str, req_headers: &HeaderMap) -> Result<Vec<Value>, Response> {
        let mut values = Vec::new();
        let mut failing = Vec::new();
        for answer in self
            .ask_all(path, req_headers.get(header::AUTHORIZATION))
            .await
        {
            match answer.result {
                Ok((status, body)) if status.is_success() => values.push(body),
                Ok((status, body))
                    if [
                        StatusCode::BAD_REQUEST,
                        StatusCode::UNAUTHORIZED,
                        StatusCode::FORBIDDEN,
                    ]
                    .contains(&status) =>
                {
                    let mut res = (status, axum::Json(body)).into_response();
                    res.headers_mut().insert(
                        header::CONTENT_TYPE,
                        header::HeaderValue::from_static("application/problem+json"),
                    );
                    if status == StatusCode::UNAUTHORIZED {
                        res.headers_mut().insert(
                            header::WWW_AUTHENTICATE,
                            header::HeaderValue::from_static(r#"Bearer realm="seams""#),
                        );
                    }
                    return Err(res);
                }
                _ => failing.extend(answer.service.capabilities.iter().cloned()),
            }
        }
        if failing.is_empty() {
            Ok(values)
        } else {
            Err(service_unavailable(
                &failing,
                format!(
                    "{path} needs every service; these did not answer: {}.",
                    failing.join(", ")
                ),
            ))
        }
    }
}

/// `/readyz`: ready only when every service says it is.
async fn readyz(State(gw): State<Gateway>) -> Response {
    let mut failing = Vec::new();
    for answer in gw.ask_all("/readyz", None).await {
        if !matches!(answer.result, Ok((status, _)) if status == StatusCode::OK) {
            failing.extend(answer.service.capabilities.iter().cloned());
        }
    }
    if failing.is_empty() {
        axum::Json(json!({ "status": "ready" })).into_response()
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            axum::Json(json!({ "status": "not ready", "failing": failing })),
        )
            .into_response()
    }
}

async fn openapi(State(gw): State<Gateway>, headers: HeaderMap) -> Response {
    match gw.collect("/openapi.json", &headers).await {
        Ok(docs) => axum::Json(merge_openapi(docs)).into_response(),
        Err(res) => res,
    }
}

async fn asyncapi(State(gw): State<Gateway>, headers: HeaderMap) -> Response {
    match gw.collect("/asyncapi.json", &headers).await {
        Ok(docs) => axum::Json(merge_asyncapi(docs)).into_response(),
        Err(res) => res,
    }
}

async fn contracts(State(gw): State<Gateway>, headers: HeaderMap) -> Response {
    match gw.collect("/_seams/contracts", &headers).await {
        Ok(lists) => axum::Json(merge_contracts(lists)).into_response(),
        Err(res) => res,
    }
}

async fn consistency(State(gw): State<Gateway>, headers: HeaderMap) -> Response {
    match gw.collect("/_seams/consistency", &headers).await {
        Ok(reports) => axum::Json(merge_consistency(reports)).into_response(),
        Err(res) => res,
    }
}

/// `GET /_seams/dead-letters`: each service's page after the same cursor,
/// merged into one page in the order every service uses (capability, then
/// age), cut at the page's limit.
async fn dead_letters(State(gw): State<Gateway>, req: Request) -> Response {
    let query = req.uri().query().unwrap_or("");
    let limit = query
        .split('&')
        .find_map(|kv| kv.strip_prefix("limit="))
        .map_or(Some(100), |l| l.parse::<usize>().ok());
    let path = if query.is_empty() {
        "/_seams/dead-letters".to_owned()
    } else {
        format!("/_seams/dead-letters?{query}")
    };
    // A malformed limit goes to the services as it came, which refuse it.
    match gw.collect(&path, req.headers()).await {
        Ok(lists) => axum::Json(merge_dead_letters(lists, limit.unwrap_or(100))).into_response(),
        Err(res) => res,
    }
}

/// The gauge the merged `/metrics` adds: whether each service's own
/// `/metrics` answered this scrape.
pub const SERVICE_UP: &str = "seams_service_up";

/// `GET /metrics`: every service's exposition, each series labelled with
/// its `service`, for one scrape target. Each service decides who may read
/// it (the client's `Authorization` goes along), and a refusal is passed on
/// as it came. A service that does not answer leaves its series out and
/// shows as `seams_service_up{service=…} 0`, rather than failing the whole
/// scrape: the others' series are what an operator needs during an outage.
/// Only when none answers is it a 503.
async fn metrics(State(gw): State<Gateway>, headers: HeaderMap) -> Response {
    let authorization = headers.get(header::AUTHORIZATION);
    let inner = &gw.0;
    let asks = inner.services.iter().map(|service| async move {
        let url = format!("{}/metrics", service.url);
        let mut request = inner.client.get(&url).timeout(inner.timeouts.admin);
        if let Some(a) = authorization {
            request = request.header(header::AUTHORIZATION, a);
        }
        let result = async {
            let res = request.send().await?;
            let status = res.status();
            let body = res.bytes().await?;
            Ok::<_, reqwest::Error>((status, body))
        }
        .await;
        (service, result)
    });
    let mut parts = Vec::new();
    for (service, result) in futures::future::join_all(asks).await {
        let name = service.capabilities.join(",");
        match result {
            Ok((status, body)) if status.is_success() => {
                parts.push((name, Some(String::from_utf8_lossy(&body).into_owned())));
            }
            Ok((status, body))
                if status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN =>
            {
                let mut res = (status, body).into_response();
                res.headers_mut().insert(
                    header::CONTENT_TYPE,
                    header::HeaderValue::from_static("application/problem+json"),
                );
                if status == StatusCode::UNAUTHORIZED {
                    res.headers_mut().insert(
                        header::WWW_AUTHENTICATE,
                        header::HeaderValue::from_static(r#"Bearer realm="seams""#),
                    );
                }
                return res;
            }
            Ok((status, _)) => {
                tracing::warn!(service = %name, %status, "a service's /metrics failed");
                parts.push((name, None));
            }
            Err(e) => {
                tracing::warn!(service = %name, error = %seams_core::redact(&e.to_string()), "a service's /metrics did not answer");
                parts.push((name, None));
            }
        }
    }
    if parts.iter().all(|(_, text)| text.is_none()) {
        let all: Vec<String> =
            gw.0.services
                .iter()
                .flat_map(|s| s.capabilities.iter().cloned())
                .collect();
        return service_unavailable(&all, "No service answered /metrics.".to_owned());
    }
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        merge_metrics(&parts),
    )
        .into_response()
}

/// One metric family of an exposition: its `# HELP` and `# TYPE` lines and
/// its samples.
#[derive(Default)]
struct Family {
    help: Option<String>,
    kind: Option<String>,
    samples: Vec<String>,
}

/// Whether sample `name` belongs to family `family` (a histogram's or a
/// summary's `_bucket`, `_sum` and `_count` do).
fn of_family(name: &str, family: &str) -> bool {
    name == family
        || name
            .strip_prefix(family)
            .is_some_and(|rest| matches!(rest, "_bucket" | "_sum" | "_count"))
}

/// `sample` (`name{labels} value` or `name value`) with `service="…"` added
/// as its first label.
fn with_service(sample: &str, service: &str) -> String {
    match sample.find(['{', ' ']) {
        Some(i) if sample[i..].starts_with("{}") => {
            format!(
                "{}{{service=\"{service}\"}}{}",
                &sample[..i],
                &sample[i + 2..]
            )
        }
        Some(i) if sample[i..].starts_with('{') => {
            format!(
                "{}{{service=\"{service}\",{}",
                &sample[..i],
                &sample[i + 1..]
            )
        }
        Some(i) => format!("{}{{service=\"{service}\"}}{}", &sample[..i], &sample[i..]),
        None => sample.to_owned(),
    }
}

/// The services' expositions (Prometheus text format) as one: every family
/// once, with its `# HELP` and `# TYPE` once and the samples of every
/// service together under them (the format wants a family's lines in one
/// place), each sample labelled with its `service`; then [`SERVICE_UP`] for
/// each service, 0 for those whose text is `None`.
pub(crate) fn merge_metrics(parts: &[(String, Option<String>)]) -> String {
    let mut order: Vec<String> = Vec::new();
    let mut families: std::collections::HashMap<String, Family> = std::collections::HashMap::new();
    for (service, text) in parts {
        let Some(text) = text else { continue };
        let mut current: Option<String> = None;
        for line in text.lines() {
            let line = line.trim_end();
            if line.is_empty() {
                continue;
            }
            let first_word = |rest: &str| rest.split(' ').next().unwrap_or(rest).to_owned();
            let (name, meta) = if let Some(rest) = line.strip_prefix("# HELP ") {
                (first_word(rest), Some(true))
            } else if let Some(rest) = line.strip_prefix("# TYPE ") {
                (first_word(rest), Some(false))
            } else if line.starts_with('#') {
                continue;
            } else {
                let sample = line.split(['{', ' ']).next().unwrap_or(line);
                match &current {
                    Some(f) if of_family(sample, f) => (f.clone(), None),
                    _ => (sample.to_owned(), None),
                }
            };
            if !families.contains_key(&name) {
                order.push(name.clone());
            }
            let family = families.entry(name.clone()).or_default();
            match meta {
                Some(true) => {
                    family.help.get_or_insert_with(|| line.to_owned());
                }
                Some(false) => {
                    family.kind.get_or_insert_with(|| line.to_owned());
                }
                None => family.samples.push(with_service(line, service)),
            }
            current = Some(name);
        }
    }
    let mut out = String::new();
    for name in &order {
        let Some(family) = families.get(name) else {
            continue;
        };
        for line in family
            .help
            .iter()
            .chain(family.kind.iter())
            .chain(family.samples.iter())
        {
            out.push_str(line);
            out.push('\n');
        }
    }
    out.push_str(&format!(
        "# HELP {SERVICE_UP} 1 if the service's own /metrics answered this scrape through the gateway, else 0.\n# TYPE {SERVICE_UP} gauge\n"
    ));
    for (service, text) in parts {
        out.push_str(&format!(
            "{SERVICE_UP}{{service=\"{service}\"}} {}\n",
            u8::from(text.is_some())
        ));
    }
    out
}

/// `POST /_seams/dead-letters/{capability}.{n}/replay`: the dead letter lives
/// in its capability's database, so the owning service replays it.
async fn replay_dead_letter(
    State(gw): State<Gateway>,
    seams_http::Path(id): seams_http::Path<String>,
    req: Request,
) -> Response {
    let capability = id.split_once('.').map_or("", |(cap, _)| cap);
    if gw.0.routes.url(capability).is_none() {
        return problem_response(
            Problem::new(404, "dead-letter-not-found", "No such dead letter")
                .with("id", id.clone()),
        );
    }
    relay(&gw, capability, req).await
}

/// One AsyncAPI document from every service's (each describes the events
/// its capabilities publish, with every declared consumer): the first one's
/// header (`asyncapi`, `info`, `defaultContentType`), every service's
/// `channels` and `operations`, and every kind of `components`.
pub(crate) fn merge_asyncapi(docs: Vec<Value>) -> Value {
    let mut out = Map::new();
    let mut components: Map<String, Value> = Map::new();
    for doc in docs {
        let Value::Object(doc) = doc else { continue };
        for key in ["asyncapi", "info", "defaultContentType"] {
            if let (false, Some(v)) = (out.contains_key(key), doc.get(key)) {
                out.insert(key.to_owned(), v.clone());
            }
        }
        for key in ["channels", "operations"] {
            if let Some(Value::Object(entries)) = doc.get(key) {
                let slot = out
                    .entry(key.to_owned())
                    .or_insert_with(|| Value::Object(Map::new()));
                if let Value::Object(slot) = slot {
                    slot.extend(entries.clone());
                }
            }
        }
        merge_components(&mut components, doc.get("components"));
    }
    if !components.is_empty() {
        out.insert("components".into(), Value::Object(components));
    }
    Value::Object(out)
}

/// Adds every kind of `components` (schemas, messages, …) of one document.
fn merge_components(into: &mut Map<String, Value>, components: Option<&Value>) {
    let Some(Value::Object(c)) = components else {
        return;
    };
    for (kind, entries) in c {
        let Value::Object(entries) = entries else {
            continue;
        };
        let slot = into
            .entry(kind.clone())
            .or_insert_with(|| Value::Object(Map::new()));
        if let Value::Object(slot) = slot {
            slot.extend(entries.clone());
        }
    }
}

/// One OpenAPI document from every service's: the first one's header
/// (`openapi`, `info`), every service's `paths`, every kind of `components`
/// (schemas and the rest), and `tags` without repeats.
pub(crate) fn merge_openapi(docs: Vec<Value>) -> Value {
    let mut out = Map::new();
    let mut paths = Map::new();
    let mut components: Map<String, Value> = Map::new();
    let mut tags: Vec<Value> = Vec::new();
    for doc in docs {
        let Value::Object(doc) = doc else { continue };
        for key in ["openapi", "info"] {
            if let (false, Some(v)) = (out.contains_key(key), doc.get(key)) {
                out.insert(key.to_owned(), v.clone());
            }
        }
        if let Some(Value::Object(p)) = doc.get("paths") {
            paths.extend(p.clone());
        }
        merge_components(&mut components, doc.get("components"));
        if let Some(Value::Array(t)) = doc.get("tags") {
            for tag in t {
                if !tags.iter().any(|seen| seen.get("name") == tag.get("name")) {
                    tags.push(tag.clone());
                }
            }
        }
    }
    out.entry("openapi").or_insert_with(|| json!("3.1.0"));
    out.entry("info")
        .or_insert_with(|| json!({ "title": "Seams shop", "version": env!("CARGO_PKG_VERSION") }));
    out.insert("paths".into(), Value::Object(paths));
    if !components.is_empty() {
        out.insert("components".into(), Value::Object(components));
    }
    if !tags.is_empty() {
        out.insert("tags".into(), Value::Array(tags));
    }
    Value::Object(out)
}

/// Every service's contract rows, each contract once. A contract between two
/// services is known to both (the owner and a consumer), each listing the
/// consumers it knows of, so repeated rows keep the first and gather the
/// consumers of all.
pub(crate) fn merge_contracts(lists: Vec<Value>) -> Value {
    let mut rows: Vec<Value> = Vec::new();
    for row in lists.into_iter().flat_map(into_array) {
        let seen = rows
            .iter_mut()
            .find(|r| r.get("name").is_some() && r.get("name") == row.get("name"));
        let Some(seen) = seen else {
            rows.push(row);
            continue;
        };
        if let (Some(Value::Array(have)), Some(Value::Array(more))) =
            (seen.get_mut("consumers"), row.get("consumers"))
        {
            for c in more {
                if !have.contains(c) {
                    have.push(c.clone());
                }
            }
        }
    }
    Value::Array(rows)
}

/// One consistency report from every service's: invariants listed once each
/// (an invariant reported by two services keeps the report with the most
/// samples: the one from the process that measures it), and the `lags` and
/// `subscriptions` maps joined.
pub(crate) fn merge_consistency(reports: Vec<Value>) -> Value {
    let mut invariants: Vec<Value> = Vec::new();
    let mut lags = Map::new();
    let mut subscriptions = Map::new();
    let samples = |v: &Value| v.get("samples").and_then(Value::as_u64).unwrap_or(0);
    for report in reports {
        let Value::Object(mut report) = report else {
            continue;
        };
        for inv in report.remove("invariants").into_iter().flat_map(into_array) {
            let seen = invariants.iter_mut().find(|i| {
                i.get("invariant").is_some() && i.get("invariant") == inv.get("invariant")
            });
            match seen {
                Some(seen) if samples(&inv) > samples(seen) => *seen = inv,
                Some(_) => {}
                None => invariants.push(inv),
            }
        }
        if let Some(Value::Object(l)) = report.remove("lags") {
            lags.extend(l);
        }
        if let Some(Value::Object(s)) = report.remove("subscriptions") {
            subscriptions.extend(s);
        }
    }
    json!({ "invariants": invariants, "lags": lags, "subscriptions": subscriptions })
}

/// Every service's page of dead letters in one page of at most `limit`,
/// ordered as each service orders its own (capability, then number); their
/// ids (`capability.n`) already say which service holds them. `next` is the
/// last id when any service had more, or the merged page was cut.
pub(crate) fn merge_dead_letters(lists: Vec<Value>, limit: usize) -> Value {
    let mut more = false;
    let mut all: Vec<Value> = lists
        .into_iter()
        .flat_map(|mut l| {
            more |= l.get("next").is_some_and(|n| !n.is_null());
            into_array(
                l.get_mut("dead_letters")
                    .map(Value::take)
                    .unwrap_or_default(),
            )
        })
        .collect();
    let key = |v: &Value| {
        let id = v.get("id").and_then(Value::as_str).unwrap_or("");
        let (cap, n) = id.split_once('.').unwrap_or((id, ""));
        (cap.to_owned(), n.parse::<i64>().unwrap_or(i64::MAX))
    };
    all.sort_by_key(key);
    if all.len() > limit {
        all.truncate(limit);
        more = true;
    }
    let next = if more {
        all.last().and_then(|v| v.get("id")).cloned()
    } else {
        None
    };
    json!({ "dead_letters": all, "next": next })
}

fn into_array(v: Value) -> Vec<Value> {
    match v {
        Value::Array(a) => a,
        _ => Vec::new(),
    }
}

#[cfg(test)]
mod tests;
