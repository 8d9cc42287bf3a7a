//! Driving a capability's routes without a socket.
//!
//! [`App`] wraps a capability's routes in the same public layers the real
//! server uses (body limit, correlation, problem fallbacks, the guards of
//! every route), so a route test sees exactly what a client would, minus the
//! network. Tokens come from a [`TestIssuer`] the app trusts: [`App::as_customer`]
//! and the like give a copy of the app that presents one on every request.

use axum::Router;
use axum::body::Body;
use axum::http::{HeaderMap, Method, Request, StatusCode};
use http_body_util::BodyExt;
use seams_http::Routes;
use serde_json::Value;
use tower::ServiceExt;

use crate::auth::TestIssuer;

/// A capability's routes behind the public layers.
#[derive(Clone)]
pub struct App {
    router: Router,
    issuer: TestIssuer,
    /// `Authorization` sent with every request, if any.
    token: Option<String>,
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
    /// `routes` mounted at `/<name>`, trusting a fresh test issuer.
    pub fn new(name: &'static str, routes: Routes) -> App {
        App::with_issuer(name, routes, TestIssuer::new())
    }

    /// `routes` mounted at `/<name>`, trusting `issuer`.
    pub fn with_issuer(name: &'static str, routes: Routes, issuer: TestIssuer) -> App {
        let (routes, _) = routes.into_parts();
        App {
            router: seams_http::app::public(vec![(name, routes)], Router::new(), issuer.verifier()),
            issuer,
            token: None,
        }
    }

    /// The issuer the app trusts.
    pub fn issuer(&self) -> &TestIssuer {
        &self.issuer
    }

    /// This app, sending `Authorization: Bearer <token>` with every request.
    pub fn as_token(&self, token: impl Into<String>) -> App {
        App {
            token: Some(token.into()),
            ..self.clone()
        }
    }

    /// This app, as the customer `id`.
    pub fn as_customer(&self, id: &str) -> App {
        self.as_token(self.issuer.customer(id))
    }

    /// This app, as staff.
    pub fn as_staff(&self) -> App {
        self.as_token(self.issuer.staff())
    }

    /// This app, as an operator.
    pub fn as_operator(&self) -> App {
        self.as_token(self.issuer.operator())
    }

    /// This app, without credentials.
    pub fn anonymous(&self) -> App {
        App {
            token: None,
            ..self.clone()
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
        if let Some(token) = &self.token
            && !headers
                .iter()
                .any(|(k, _)| k.eq_ignore_ascii_case("authorization"))
        {
            req = req.header("authorization", format!("Bearer {token}"));
        }
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
