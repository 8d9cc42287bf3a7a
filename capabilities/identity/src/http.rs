//! Identity's public routes: wire types in, domain calls, wire types out. No SQL here.
//!
//! Anyone may register and sign in (both rate limited) and read the public
//! keys tokens are verified with; a customer reads and changes their own
//! record only.
//!
//! Writes that publish an event answer with a `Seams-Consistency-Token`
//! header (`identity:<outbox position>`); a client presents it to a read
//! model fed by identity's events (notification's contacts) to read its own
//! write there.

use axum::extract::State;
use axum::http::{HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use identity_contract::{
    CHANGE_EMAIL, CREATE_SESSION, ChangeEmail, CreateSession, Customer as CustomerDto, GET_JWKS,
    REGISTER_CUSTOMER, RegisterCustomer, SHOW_CUSTOMER, Session,
};
use seams_core::auth::{Access, Role};
use seams_http::{Caller, ClientAddr, Ctx, Json, Path, Routes};
use seams_runtime::consistency::TOKEN_HEADER;
use utoipa::OpenApi;

use crate::error::Error;
use crate::service::{self, Deps, Written};

/// `/identity` routes.
pub fn router(deps: Deps) -> Routes {
    const CUSTOMERS: Access = Access::People(&[Role::Customer]);
    Routes::new()
        .post(
            "/customers",
            &REGISTER_CUSTOMER,
            Access::Open,
            register_customer,
        )
        .get("/customers/{id}", &SHOW_CUSTOMER, CUSTOMERS, get_customer)
        .patch("/customers/{id}", &CHANGE_EMAIL, CUSTOMERS, change_email)
        .post("/sessions", &CREATE_SESSION, Access::Open, create_session)
        .get("/.well-known/jwks.json", &GET_JWKS, Access::Open, jwks)
        .with_state(deps)
}

#[derive(OpenApi)]
#[openapi(
    paths(register_customer, get_customer, change_email, create_session, jwks),
    components(schemas(CustomerDto, RegisterCustomer, ChangeEmail, CreateSession, Session))
)]
struct Api;

/// The OpenAPI document of these routes.
pub fn openapi() -> utoipa::openapi::OpenApi {
    Api::openapi()
}

/// The customer as JSON with `status`, and the write's token header if it published.
fn written(status: StatusCode, w: Written) -> Result<Response, Error> {
    let mut res = (status, axum::Json(CustomerDto::from(w.customer))).into_response();
    if let Some(token) = w.token {
        let value = HeaderValue::try_from(token.to_string())
            .map_err(|e| anyhow::Error::from(e).context("rendering the consistency token"))?;
        res.headers_mut()
            .insert(HeaderName::from_static(TOKEN_HEADER), value);
    }
    Ok(res)
}

/// Register a customer. The email is trimmed and lowercased; the response
/// carries the normalized form.
#[utoipa::path(post, path = "/customers", request_body = RegisterCustomer, responses(
    (status = 201, body = CustomerDto, headers(
        ("seams-consistency-token" = String, description = "`identity:<position>` of the customer-registered event"),
    )),
    (status = 409, description = "duplicate-email", content_type = "application/problem+json"),
    (status = 422, description = "invalid-field / invalid-body", content_type = "application/problem+json"),
    (status = 429, description = "too-many-attempts, with Retry-After", content_type = "application/problem+json"),
    (status = 503, description = "overloaded, with Retry-After", content_type = "application/problem+json"),
))]
async fn register_customer(
    State(deps): State<Deps>,
    Ctx(ctx): Ctx,
    ClientAddr(client): ClientAddr,
    Json(body): Json<RegisterCustomer>,
) -> Result<Response, Error> {
    let w = service::register_customer(&deps, &ctx, client, body).await?;
    written(StatusCode::CREATED, w)
}

/// Sign in: a short-lived access token for the customer with this email
/// and password. A wrong password and an unknown email get the same 401;
/// attempts are limited per email and per client address.
#[utoipa::path(post, path = "/sessions", request_body = CreateSession, responses(
    (status = 201, body = Session),
    (status = 401, description = "invalid-credentials", content_type = "application/problem+json"),
    (status = 422, description = "invalid-body", content_type = "application/problem+json"),
    (status = 429, description = "too-many-attempts, with Retry-After", content_type = "application/problem+json"),
    (status = 503, description = "overloaded, with Retry-After", content_type = "application/problem+json"),
))]
async fn create_session(
    State(deps): State<Deps>,
    ClientAddr(client): ClientAddr,
    Json(body): Json<CreateSession>,
) -> Result<Response, Error> {
    let session = service::create_session(&deps, client, body).await?;
    let mut res = (StatusCode::CREATED, axum::Json(session)).into_response();
    // RFC 6749 section 5.1: a response carrying a token is never cached.
    res.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(res)
}

/// The public keys access tokens are verified with (RFC 7517 JWK set);
/// a new key is listed here for a while before it signs anything.
#[utoipa::path(get, path = "/.well-known/jwks.json", responses(
    (status = 200, description = "The JWK set", content_type = "application/json"),
))]
async fn jwks(State(deps): State<Deps>) -> Response {
    let mut res = axum::Json(deps.minter.keys().current().jwks()).into_response();
    res.headers_mut().insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=300"),
    );
    res
}

/// Get a customer.
#[utoipa::path(get, path = "/customers/{id}", params(("id" = String, Path)), responses(
    (status = 200, body = CustomerDto),
    (status = 404, description = "customer-not-found", content_type = "application/problem+json"),
))]
async fn get_customer(
    State(deps): State<Deps>,
    Caller(caller): Caller,
    Path(id): Path<String>,
) -> Result<axum::Json<CustomerDto>, Error> {
    Ok(axum::Json(
        service::get_customer(&deps, &caller, &id).await?.into(),
    ))
}

/// Change a customer's email. The address is normalized like at
/// registration; the same address again changes nothing, publishes nothing
/// and answers without a token.
#[utoipa::path(patch, path = "/customers/{id}", params(("id" = String, Path)), request_body = ChangeEmail, responses(
    (status = 200, body = CustomerDto, headers(
        ("seams-consistency-token" = String, description = "`identity:<position>` of the customer-email-changed event; absent when nothing changed"),
    )),
    (status = 404, description = "customer-not-found", content_type = "application/problem+json"),
    (status = 409, description = "duplicate-email", content_type = "application/problem+json"),
    (status = 422, description = "invalid-field / invalid-body", content_type = "application/problem+json"),
))]
async fn change_email(
    State(deps): State<Deps>,
    Ctx(ctx): Ctx,
    Caller(caller): Caller,
    Path(id): Path<String>,
    Json(body): Json<ChangeEmail>,
) -> Result<Response, Error> {
    let w = service::change_email(&deps, &ctx, &caller, &id, body).await?;
    written(StatusCode::OK, w)
}
