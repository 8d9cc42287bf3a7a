//! Public routes, each tied to its declared operation and to who may use it.
//!
//! [`Routes`] is the only way a capability hands its routes to the runtime:
//! every route is added with its method, path, declared [`decl::Operation`],
//! [`Access`] and handler, so there is no route without a declaration and a
//! guard ([`crate::auth::Guard`]), and no guard without a route. The
//! declaration is applied, not only listed ([`crate::declared`]: its
//! timeout, its deadline, its answer when down), and the same list
//! documents itself: [`secure_openapi`] writes each operation's security
//! requirement and declared "down" answer into the OpenAPI document, and
//! refuses a document that describes a route that does not exist or leaves
//! out one that does.
//!
//! The framework's own doors (health, documents, metrics, operators' and
//! services' endpoints) belong to no capability and declare no operation:
//! they are [`Doors`], guarded the same way, bounded by the edge's request
//! timeout; a capability's `Component` takes only [`Routes`].
//!
//! ```
//! use std::time::Duration;
//! use axum::http::StatusCode;
//! use seams_core::auth::{Access, Role};
//! use seams_core::decl::*;
//! use seams_http::routes::Routes;
//!
//! static GET_PRODUCT: Operation = Operation {
//!     capability: "catalog",
//!     name: "get-product",
//!     summary: "A product (GET /catalog/products/{sku}).",
//!     kind: Kind::Query,
//!     timeout: Duration::from_secs(2),
//!     retries: Retries::Caller(RetryPolicy::STANDARD),
//!     idempotency: Idempotency::ReadOnly,
//!     ordering: Ordering::Unordered,
//!     when_down: WhenDown::FailFast { problem: "catalog-unavailable", retry_after: Duration::from_secs(2) },
//!     versioning: Versioning { current: 1, accepts: &[1] },
//!     request: no_body,
//!     response: no_body,
//! };
//!
//! let routes: Routes = Routes::new()
//!     .get("/products/{sku}", &GET_PRODUCT, Access::People(&[Role::Customer, Role::Staff]), || async { "tea" })
//!     .with_state(());
//! assert_eq!(routes.table().len(), 1);
//! assert!(std::ptr::eq(routes.operations()[0], &GET_PRODUCT));
//! ```
//!
//! A route without a declaration does not compile:
//!
//! ```compile_fail,E0061
//! use seams_core::auth::Access;
//! use seams_http::routes::Routes;
//!
//! let routes: Routes = Routes::new()
//!     .get("/products/{sku}", Access::Open, || async { "tea" })
//!     .with_state(());
//! ```

use axum::Router;
use axum::handler::Handler;
use axum::http::Method;
use axum::routing::MethodRouter;
use seams_core::auth::Access;
use seams_core::decl;
use utoipa::openapi::path::Operation;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme};
use utoipa::openapi::{Header, OpenApi, RefOr};

use crate::auth::GuardLayer;
use crate::openapi::{
    GUARDED, add_answers, declared_answer, describe, document_framework_answers, problem,
};

/// The security scheme name every guarded operation refers to.
pub const BEARER: &str = "bearer";

/// One route, its declaration and who may use it.
#[derive(Debug, Clone)]
pub struct RouteAccess {
    /// Method.
    pub method: Method,
    /// Path template, relative to the capability's prefix (`/invoices/{id}`).
    pub path: String,
    /// Who may use it.
    pub access: Access,
    /// Its declared operation.
    pub operation: &'static decl::Operation,
}

/// A capability's public routes, each with its declared operation and access.
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
        pub fn $name<H, T>(
            self,
            path: &str,
            operation: &'static decl::Operation,
            access: Access,
            handler: H,
        ) -> Self
        where
            H: Handler<T, S>,
            T: 'static,
        {
            self.add(Method::$method, path, operation, access, axum::routing::$name(handler))
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
        /// `GET path`, declared as `operation`, for `access`.
        get, GET
    );
    method!(
        /// `POST path`, declared as `operation`, for `access`.
        post, POST
    );
    method!(
        /// `PUT path`, declared as `operation`, for `access`.
        put, PUT
    );
    method!(
        /// `PATCH path`, declared as `operation`, for `access`.
        patch, PATCH
    );
    method!(
        /// `DELETE path`, declared as `operation`, for `access`.
        delete, DELETE
    );

    fn add(
        mut self,
        method: Method,
        path: &str,
        operation: &'static decl::Operation,
        access: Access,
        route: MethodRouter<S>,
    ) -> Self {
        let route = crate::declared::apply(route, operation, GuardLayer::new(access));
        self.router = self.router.route(path, route);
        self.table.push(RouteAccess {
            method,
            path: path.to_owned(),
            access,
            operation,
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
    /// Every route, its declaration and its access, in the order added.
    pub fn table(&self) -> &[RouteAccess] {
        &self.table
    }

    /// The operations the routes are declared as, each once, in the order
    /// their first route was added.
    pub fn operations(&self) -> Vec<&'static decl::Operation> {
        let mut out: Vec<&'static decl::Operation> = Vec::new();
        for r in &self.table {
            if !out.iter().any(|o| std::ptr::eq(*o, r.operation)) {
                out.push(r.operation);
            }
        }
        out
    }

    /// The router and the table.
    pub fn into_parts(self) -> (Router, Vec<RouteAccess>) {
        (self.router, self.table)
    }
}

/// The framework's own doors: each with its method, path and [`Access`],
/// behind the same guard as a route, but declaring no operation (they
/// belong to no capability, and a `Component` cannot take them).
#[derive(Clone)]
pub struct Doors<S = ()> {
    router: Router<S>,
}

impl<S: Clone + Send + Sync + 'static> Default for Doors<S> {
    fn default() -> Self {
        Doors::new()
    }
}

macro_rules! door {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        pub fn $name<H, T>(mut self, path: &str, access: Access, handler: H) -> Self
        where
            H: Handler<T, S>,
            T: 'static,
        {
            self.router = self.router.route(
                path,
                axum::routing::$name(handler).route_layer(GuardLayer::new(access)),
            );
            self
        }
    };
}

impl<S: Clone + Send + Sync + 'static> Doors<S> {
    /// No doors.
    pub fn new() -> Doors<S> {
        Doors {
            router: Router::new(),
        }
    }

    door!(
        /// `GET path`, for `access`.
        get
    );
    door!(
        /// `POST path`, for `access`.
        post
    );

    /// Gives every handler `state`: the router to serve.
    pub fn with_state(self, state: S) -> Router {
        self.router.with_state(state)
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

/// Writes each route's access and declaration into `doc` (the document of
/// one capability's routes, paths relative to its prefix): every operation
/// its declared "when down" answer (a 503 of the declared type), open
/// operations no security, guarded ones the bearer scheme, with their 401,
/// 403 and 503 `auth-unavailable` answers; then adds the answers the framework
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
        if operation_mut(doc, &route.path, &route.method).is_none()
            && let Err(e) = describe(doc, &route.method, &route.path, route.operation)
        {
            problems.push(format!("{} {}: {e}", route.method, route.path));
        }
        let Some(op) = operation_mut(doc, &route.path, &route.method) else {
            continue;
        };
        if let Some(answer) = declared_answer(route.operation) {
            add_answers(op, &[answer]);
        }
        // Which declaration the route carries, for readers of the document
        // (`shop contracts` prints the rest of it).
        op.extensions.get_or_insert_with(Default::default).merge(
            utoipa::openapi::extensions::ExtensionsBuilder::new()
                .add("x-seams-operation", route.operation.id())
                .add(
                    "x-seams-timeout-ms",
                    route.operation.timeout.as_millis() as u64,
                )
                .build(),
        );
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
