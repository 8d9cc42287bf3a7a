//! Public routes, each declared with who may use it.
//!
//! [`Routes`] is the only way a capability hands its routes to the runtime:
//! every route is added with its method, path, [`Access`] and handler, so
//! there is no route without a guard ([`crate::auth::Guard`]) and no guard
//! without a route. The same list documents itself: [`secure_openapi`]
//! writes each operation's security requirement into the OpenAPI document,
//! and refuses a document that describes a route that does not exist or
//! leaves out one that does.
//!
//! ```
//! use axum::http::StatusCode;
//! use seams_core::auth::{Access, Role};
//! use seams_http::routes::Routes;
//!
//! let routes: Routes = Routes::new()
//!     .get("/products/{sku}", Access::People(&[Role::Customer, Role::Staff]), || async { "tea" })
//!     .post("/products", Access::People(&[Role::Staff]), || async { StatusCode::CREATED })
//!     .with_state(());
//! assert_eq!(routes.table().len(), 2);
//! ```

use axum::Router;
use axum::handler::Handler;
use axum::http::Method;
use axum::routing::MethodRouter;
use seams_core::auth::Access;
use utoipa::openapi::path::Operation;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme};
use utoipa::openapi::{Header, OpenApi, RefOr};

use crate::auth::GuardLayer;
use crate::openapi::{GUARDED, add_answers, document_framework_answers, problem};

/// The security scheme name every guarded operation refers to.
pub const BEARER: &str = "bearer";

/// One route and who may use it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteAccess {
    /// Method.
    pub method: Method,
    /// Path template, relative to the capability's prefix (`/invoices/{id}`).
    pub path: String,
    /// Who may use it.
    pub access: Access,
}

/// A capability's public routes, each with its declared access.
#[derive(Clone)]
pub struct Routes<S = ()> {
    router: Router<S>,
    table: Vec<RouteAccess>,
}

impl<S: Clone + Send + Sync + 'static> Default for Routes<S> {
    fn default() -> Self {
        Routes::new()
    }
}

macro_rules! method {
    ($(#[$doc:meta])* $name:ident, $method:ident) => {
        $(#[$doc])*
        pub fn $name<H, T>(self, path: &str, access: Access, handler: H) -> Self
        where
            H: Handler<T, S>,
            T: 'static,
        {
            self.add(Method::$method, path, access, axum::routing::$name(handler))
        }
    };
}

impl<S: Clone + Send + Sync + 'static> Routes<S> {
    /// No routes.
    pub fn new() -> Routes<S> {
        Routes {
            router: Router::new(),
            table: Vec::new(),
        }
    }

    method!(
        /// `GET path`, for `access`.
        get, GET
    );
    method!(
        /// `POST path`, for `access`.
        post, POST
    );
    method!(
        /// `PUT path`, for `access`.
        put, PUT
    );
    method!(
        /// `PATCH path`, for `access`.
        patch, PATCH
    );
    method!(
        /// `DELETE path`, for `access`.
        delete, DELETE
    );

    fn add(mut self, method: Method, path: &str, access: Access, route: MethodRouter<S>) -> Self {
        self.router = self
            .router
            .route(path, route.route_layer(GuardLayer::new(access)));
        self.table.push(RouteAccess {
            method,
            path: path.to_owned(),
            access,
        });
        self
    }

    /// Gives every handler `state`.
    pub fn with_state(self, state: S) -> Routes<()> {
        Routes {
            router: self.router.with_state(state),
            table: self.table,
        }
    }
}

impl Routes<()> {
    /// Every route and its access, in the order added.
    pub fn table(&self) -> &[RouteAccess] {
        &self.table
    }

    /// The router and the table.
    pub fn into_parts(self) -> (Router, Vec<RouteAccess>) {
        (self.router, self.table)
    }
}

fn operation_mut<'a>(
    doc: &'a mut OpenApi,
    path: &str,
    method: &Method,
) -> Option<&'a mut Operation> {
    let item = doc.paths.paths.get_mut(path)?;
    match *method {
        Method::GET => item.get.as_mut(),
        Method::POST => item.post.as_mut(),
        Method::PUT => item.put.as_mut(),
        Method::PATCH => item.patch.as_mut(),
        Method::DELETE => item.delete.as_mut(),
        _ => None,
    }
}

/// Writes each route's access into `doc` (the document of one
/// capability's routes, paths relative to its prefix): open operations
/// need no security, guarded ones the bearer scheme, with their 401, 403
/// and 503 `auth-unavailable` answers; then adds the answers the framework
/// gives before any handler runs ([`document_framework_answers`]). Fails,
/// listing every mismatch, when the document describes an operation that
/// is not routed or leaves out one that is.
pub fn secure_openapi(doc: &mut OpenApi, table: &[RouteAccess]) -> Result<(), Vec<String>> {
    let mut problems = Vec::new();
    let mut documented = Vec::new();
    for (path, item) in &doc.paths.paths {
        for (method, op) in [
            (Method::GET, &item.get),
            (Method::POST, &item.post),
            (Method::PUT, &item.put),
            (Method::PATCH, &item.patch),
            (Method::DELETE, &item.delete),
        ] {
            if op.is_some() {
                documented.push((method, path.clone()));
            }
        }
    }
    for (method, path) in &documented {
        if !table.iter().any(|r| r.method == method && &r.path == path) {
            problems.push(format!("{method} {path} is documented but not routed"));
        }
    }
    let mut guarded = false;
    for route in table {
        if matches!(route.access, Access::Services) {
            continue;
        }
        let Some(op) = operation_mut(doc, &route.path, &route.method) else {
            problems.push(format!(
                "{} {} is routed but not documented",
                route.method, route.path
            ));
            continue;
        };
        if route.access.is_open() {
            op.security = Some(Vec::new());
            continue;
        }
        guarded = true;
        op.security = Some(vec![SecurityRequirement::new(BEARER, Vec::<String>::new())]);
        let responses = &mut op.responses.responses;
        let unauthenticated = responses.entry("401".into()).or_insert_with(|| {
            problem(
                "unauthenticated / invalid-token: no valid access token (WWW-Authenticate: Bearer)",
            )
        });
        if let RefOr::T(res) = unauthenticated {
            res.headers
                .entry("WWW-Authenticate".to_owned())
                .or_insert_with(|| {
                    let mut h = Header::default();
                    h.description = Some("`Bearer realm=\"seams\"`, with `error=\"invalid_token\"` for a token refused (RFC 6750).".to_owned());
                    h
                });
        }
        responses
            .entry("403".into())
            .or_insert_with(|| problem(&format!("forbidden: this route is for {}", route.access)));
        add_answers(op, GUARDED);
    }
    if guarded {
        let components = doc.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            BEARER,
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .description(Some(
                        "An access token from POST /identity/sessions (customers) or `shop token` (staff, operators).",
                    ))
                    .build(),
            ),
        );
    }
    document_framework_answers(doc);
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems)
    }
}

#[cfg(test)]
mod tests;
