//! Identity's public routes: wire types in, domain calls, wire types out. No SQL here.

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post};
use identity_contract::{Customer as CustomerDto, RegisterCustomer};
use seams_http::{Ctx, Json, Path};
use utoipa::OpenApi;

use crate::error::Error;
use crate::service::{self, Deps};

/// `/identity` routes.
pub fn router(deps: Deps) -> Router {
    Router::new()
        .route("/customers", post(register_customer))
        .route("/customers/{id}", get(get_customer))
        .with_state(deps)
}

#[derive(OpenApi)]
#[openapi(
    paths(register_customer, get_customer),
    components(schemas(CustomerDto, RegisterCustomer))
)]
struct Api;

/// The OpenAPI document of these routes.
pub fn openapi() -> utoipa::openapi::OpenApi {
    Api::openapi()
}

/// Register a customer. The email is trimmed and lowercased; the response
/// carries the normalized form.
#[utoipa::path(post, path = "/customers", request_body = RegisterCustomer, responses(
    (status = 201, body = CustomerDto),
    (status = 409, description = "duplicate-email", content_type = "application/problem+json"),
    (status = 422, description = "invalid-field / invalid-body", content_type = "application/problem+json"),
))]
async fn register_customer(
    State(deps): State<Deps>,
    Ctx(ctx): Ctx,
    Json(body): Json<RegisterCustomer>,
) -> Result<(StatusCode, axum::Json<CustomerDto>), Error> {
    let customer = service::register_customer(&deps, &ctx, body).await?;
    Ok((StatusCode::CREATED, axum::Json(customer.into())))
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
