//! Identity's public routes: wire types in, domain calls, wire types out. No SQL here.
//!
//! Writes that publish an event answer with a `Seams-Consistency-Token`
//! header (`identity:<outbox position>`); a client presents it to a read
//! model fed by identity's events (notification's contacts) to read its own
//! write there.

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use identity_contract::{ChangeEmail, Customer as CustomerDto, RegisterCustomer};
use seams_http::{Ctx, Json, Path};
use seams_runtime::consistency::TOKEN_HEADER;
use utoipa::OpenApi;

use crate::error::Error;
use crate::service::{self, Deps, Written};

/// `/identity` routes.
pub fn router(deps: Deps) -> Router {
    Router::new()
        .route("/customers", post(register_customer))
        .route("/customers/{id}", get(get_customer).patch(change_email))
        .with_state(deps)
}

#[derive(OpenApi)]
#[openapi(
    paths(register_customer, get_customer, change_email),
    components(schemas(CustomerDto, RegisterCustomer, ChangeEmail))
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
))]
async fn register_customer(
    State(deps): State<Deps>,
    Ctx(ctx): Ctx,
    Json(body): Json<RegisterCustomer>,
) -> Result<Response, Error> {
    let w = service::register_customer(&deps, &ctx, body).await?;
    written(StatusCode::CREATED, w)
}

/// Get a customer.
#[utoipa::path(get, path = "/customers/{id}", params(("id" = String, Path)), responses(
    (status = 200, body = CustomerDto),
    (status = 404, description = "customer-not-found", content_type = "application/problem+json"),
))]
async fn get_customer(
    State(deps): State<Deps>,
    Path(id): Path<String>,
) -> Result<axum::Json<CustomerDto>, Error> {
    Ok(axum::Json(service::get_customer(&deps, &id).await?.into()))
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
    Path(id): Path<String>,
    Json(body): Json<ChangeEmail>,
) -> Result<Response, Error> {
    let w = service::change_email(&deps, &ctx, &id, body).await?;
    written(StatusCode::OK, w)
}
