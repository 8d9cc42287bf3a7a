//! Driving a capability's routes without a socket.
//!
//! [`App`] wraps a capability's routes in the same public layers the real
//! server uses (body limit, correlation, problem fallbacks), so a route test
//! sees exactly what a client would, minus the network.

use axum::Router;
use axum::body::Body;
use axum::http::{HeaderMap, Method, Request, StatusCode};
use http_body_util::BodyExt;
use serde_json::Value;
use tower::ServiceExt;

/// A capability's routes behind the public layers.
#[derive(Clone)]
pub struct App {
    router: Router,
}

/// A response, body parsed as JSON when it is JSON.
#[derive(Debug, Clone)]
pub struct Reply {
    /// Status.
    pub status: StatusCode,
    /// Headers.
    pub headers: HeaderMap,
    /// Raw body.
    pub bytes: Vec<u8>,
    /// Body as JSON (`Null` if it is not JSON).
    pub json: Value,
}

impl Reply {
    /// The problem `type` of an error response.
    pub fn problem_type(&self) -> &str {
        self.json["type"].as_str().unwrap_or("")
    }

    /// The `Content-Type` header.
    pub fn content_type(&self) -> &str {
        self.headers
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }
}

impl App {
    /// `routes` mounted at `/<name>`.
    pub fn new(name: &'static str, routes: Router) -> App {
        App {
            router: seams_http::app::public(vec![(name, routes)], Router::new()),
        }
    }

    /// Sends a request with a raw body and extra headers.
    pub async fn send(
        &self,
        method: Method,
        path: &str,
        body: impl Into<Body>,
        headers: &[(&str, &str)],
    ) -> Reply {
        let mut req = Request::builder().method(method).uri(path);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let req = req.body(body.into()).expect("valid request");
        let res = self.router.clone().oneshot(req).await.expect("infallible");
        let status = res.status();
        let headers = res.headers().clone();
        let bytes = res
            .into_body()
            .collect()
            .await
            .expect("body")
            .to_bytes()
            .to_vec();
        let json = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        Reply {
            status,
            headers,
            bytes,
            json,
        }
    }

    /// `GET path`.
    pub async fn get(&self, path: &str) -> Reply {
        self.send(Method::GET, path, Body::empty(), &[]).await
    }

    /// `POST path` with a JSON body and extra headers.
    pub async fn post(&self, path: &str, body: &Value, headers: &[(&str, &str)]) -> Reply {
        let mut all = vec![("content-type", "application/json")];
        all.extend_from_slice(headers);
        self.send(Method::POST, path, body.to_string(), &all).await
    }

    /// `POST path` with a raw body and content type JSON.
    pub async fn post_raw(
        &self,
        path: &str,
        body: impl Into<Body>,
        headers: &[(&str, &str)],
    ) -> Reply {
        let mut all = vec![("content-type", "application/json")];
        all.extend_from_slice(headers);
        self.send(Method::POST, path, body, &all).await
    }
}
