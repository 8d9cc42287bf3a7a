//! Guarding every route: who the caller is, and whether the route's
//! declared [`Access`] lets them in, decided before the handler runs.
//!
//! The [`Edge`](crate::app::Edge) puts the process's [`Verifier`] in every
//! request and verifies a service token (`X-Seams-Peer`) when one comes.
//! Each route declared through [`crate::routes::Routes`] then passes a
//! [`Guard`]: an open route lets everyone in; a people route verifies the
//! `Authorization: Bearer` token and checks its role (none: 401 with
//! `WWW-Authenticate: Bearer`; a bad one: 401; the wrong role: 403); a
//! services route needs a verified service token. The handler reads the
//! result with [`Caller`], and decides what only it can: whether the
//! resource is the caller's.

use std::convert::Infallible;
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::extract::{FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::Response;
use seams_auth::{AuthError, Verifier};
use seams_core::auth::{Access, Principal};
use seams_core::{BoxFuture, Problem};
use tower::{Layer, Service};

use crate::problem::problem_response;

/// The authenticated caller of the current request ([`Principal::Anonymous`]
/// on an open route).
#[derive(Debug, Clone)]
pub struct Caller(pub Principal);

impl<S: Send + Sync> FromRequestParts<S> for Caller {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        Ok(Caller(
            parts
                .extensions
                .get::<Principal>()
                .cloned()
                .unwrap_or(Principal::Anonymous),
        ))
    }
}

/// The service that sent this request, when it sent a valid service token
/// (the split gateway forwarding a client's request, or a service calling).
#[derive(Debug, Clone)]
pub struct Peer(pub Principal);

/// The verifier of this process, as the edge hands it to guards.
#[derive(Clone)]
pub(crate) struct Trust(pub(crate) Arc<Verifier>);

/// The problem for a request whose credentials did not do.
pub fn auth_problem(err: &AuthError) -> Problem {
    match err {
        AuthError::Missing => Problem::new(401, "unauthenticated", "Authentication required")
            .detail("Send an access token: `Authorization: Bearer <token>` (POST /identity/sessions issues one)."),
        AuthError::Unavailable(reason) => {
            tracing::warn!(reason, "cannot verify tokens right now");
            Problem::new(503, "auth-unavailable", "Cannot verify credentials right now")
                .detail("The keys that verify tokens cannot be had at the moment; try again shortly.")
                .with("retry_after", 1)
        }
        AuthError::Expired => Problem::new(401, "invalid-token", "Invalid access token")
            .detail("The token has expired; get a new one."),
        AuthError::Malformed(_) | AuthError::Rejected(_) => {
            Problem::new(401, "invalid-token", "Invalid access token")
                .detail("The token is not one this system accepts.")
        }
    }
}

/// A 401/503 response for `err`, with `WWW-Authenticate` on 401 (RFC 6750).
pub fn auth_response(err: &AuthError) -> Response {
    tracing::debug!(error = %err, "credentials refused");
    let mut res = problem_response(auth_problem(err));
    let challenge = match err {
        AuthError::Missing => Some(r#"Bearer realm="seams""#),
        AuthError::Unavailable(_) => None,
        _ => Some(r#"Bearer realm="seams", error="invalid_token""#),
    };
    if let Some(c) = challenge {
        res.headers_mut()
            .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static(c));
    }
    res
}

/// 403 `forbidden`: authenticated, but this door is not theirs.
pub fn forbidden(detail: impl Into<String>) -> Response {
    let mut res =
        problem_response(Problem::new(403, "forbidden", "Not allowed").detail(detail.into()));
    res.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static(r#"Bearer realm="seams", error="insufficient_scope""#),
    );
    res
}

/// The token of `Authorization: Bearer <token>`; `Ok(None)` when there is
/// no such header, an error when it is there but not a bearer token.
pub fn bearer(headers: &HeaderMap) -> Result<Option<&str>, AuthError> {
    let mut values = headers.get_all(header::AUTHORIZATION).iter();
    let Some(value) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err(AuthError::Malformed(
            "more than one Authorization header".into(),
        ));
    }
    let value = value
        .to_str()
        .map_err(|_| AuthError::Malformed("not visible ASCII".into()))?;
    match value.split_once(' ') {
        Some((scheme, token)) if scheme.eq_ignore_ascii_case("bearer") => {
            let token = token.trim();
            if token.is_empty() {
                Err(AuthError::Missing)
            } else {
                Ok(Some(token))
            }
        }
        _ => Err(AuthError::Malformed("not a Bearer token".into())),
    }
}

/// What a guard needs of a request, taken out of it before waiting on
/// anything (the request's body cannot be held across an `await`).
struct Presented {
    peer: Option<Principal>,
    bearer: Result<Option<String>, AuthError>,
    trust: Option<Trust>,
}

impl Presented {
    fn of(req: &Request) -> Presented {
        Presented {
            peer: req.extensions().get::<Peer>().map(|p| p.0.clone()),
            bearer: bearer(req.headers()).map(|t| t.map(str::to_owned)),
            trust: req.extensions().get::<Trust>().cloned(),
        }
    }
}

/// The person a bearer token names, once verified; `None` when there is
/// no token.
async fn person(
    bearer: Result<Option<String>, AuthError>,
    trust: Option<Trust>,
) -> Result<Option<Principal>, Response> {
    let token = match bearer {
        Ok(Some(t)) => t,
        Ok(None) => return Ok(None),
        Err(e) => return Err(auth_response(&e)),
    };
    let Some(Trust(verifier)) = trust else {
        // Only a router assembled without the edge lacks it.
        tracing::error!("a guarded route has no verifier (not behind the edge)");
        return Err(auth_response(&AuthError::Unavailable("no verifier".into())));
    };
    verifier
        .verify(&token)
        .await
        .map(Some)
        .map_err(|e| auth_response(&e))
}

/// Who is making the request, as far as `access` needs to know: the
/// principal to hand the handler, or the response refusing the request.
async fn admit(access: Access, presented: Presented) -> Result<Principal, Response> {
    match access {
        Access::Open => Ok(presented.peer.unwrap_or(Principal::Anonymous)),
        Access::Services => match presented.peer {
            Some(peer) => Ok(peer),
            // A person who knocks is told the door is not theirs (once
            // their token checks out); nobody is told how services knock.
            None => match person(presented.bearer, presented.trust).await? {
                Some(_) => Err(forbidden(
                    "This door is for services, each presenting its own token; people's tokens do not open it.",
                )),
                None => Err(auth_response(&AuthError::Missing)),
            },
        },
        Access::People(_) => {
            let Some(principal) = person(presented.bearer, presented.trust).await? else {
                return Err(auth_response(&AuthError::Missing));
            };
            if access.admits(&principal) {
                Ok(principal)
            } else {
                Err(forbidden(format!(
                    "This route is for: {access}; the token's role is not among them."
                )))
            }
        }
    }
}

/// Installs a [`Guard`] for one route's declared access.
#[derive(Debug, Clone, Copy)]
pub struct GuardLayer {
    access: Access,
}

impl GuardLayer {
    /// Guards with `access`.
    pub fn new(access: Access) -> GuardLayer {
        GuardLayer { access }
    }
}

impl<S> Layer<S> for GuardLayer {
    type Service = Guard<S>;

    fn layer(&self, inner: S) -> Guard<S> {
        Guard {
            inner,
            access: self.access,
        }
    }
}

/// Lets a request through to the route only if its declared access admits
/// the caller, with the caller in the request's extensions for [`Caller`].
#[derive(Debug, Clone)]
pub struct Guard<S> {
    inner: S,
    access: Access,
}

impl<S> Service<Request> for Guard<S>
where
    S: Service<Request, Response = Response, Error = Infallible> + Clone + Send + 'static,
    S::Future: Send + 'static,
{
    type Response = Response;
    type Error = Infallible;
    type Future = BoxFuture<'static, Result<Response, Infallible>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request) -> Self::Future {
        // The clone that was polled ready is the one that is called.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let access = self.access;
        let presented = Presented::of(&req);
        Box::pin(async move {
            match admit(access, presented).await {
                Ok(principal) => {
                    req.extensions_mut().insert(principal);
                    inner.call(req).await
                }
                Err(refused) => Ok(refused),
            }
        })
    }
}

#[cfg(test)]
mod tests;
