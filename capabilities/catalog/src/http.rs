//! Catalog's public routes: wire types in, domain calls, wire types out. No SQL here.
//!
//! Staff add products; customers and staff read them.

use axum::extract::State;
use axum::http::StatusCode;
use catalog_contract::{ADD_PRODUCT, AddProduct, Amount, GET_PRODUCT, Product as ProductDto};
use seams_core::auth::{Access, Role};
use seams_http::{Ctx, Json, Path, Routes};
use utoipa::OpenApi;

use crate::domain::Product;
use crate::error::Error;
use crate::service::{self, Deps};

/// Who may read the catalog.
const READERS: Access = Access::People(&[Role::Customer, Role::Staff]);
/// Who may change it.
const WRITERS: Access = Access::People(&[Role::Staff]);

/// `/catalog` routes.
pub fn router(deps: Deps) -> Routes {
    Routes::new()
        .post("/products", &ADD_PRODUCT, WRITERS, add_product)
        .get("/products/{sku}", &GET_PRODUCT, READERS, get_product)
        .with_state(deps)
}

#[derive(OpenApi)]
#[openapi(
    paths(add_product, get_product),
    components(schemas(ProductDto, AddProduct, Amount))
)]
struct Api;

/// The OpenAPI document of these routes.
pub fn openapi() -> utoipa::openapi::OpenApi {
    Api::openapi()
}

fn dto(p: Product) -> ProductDto {
    ProductDto {
        sku: p.sku.as_str().to_owned(),
        name: p.name.as_str().to_owned(),
        price: p.price.into(),
    }
}

/// Add a product.
#[utoipa::path(post, path = "/products", request_body = AddProduct, responses(
    (status = 201, body = ProductDto),
    (status = 409, description = "duplicate-sku", content_type = "application/problem+json"),
    (status = 422, description = "invalid-field / invalid-body", content_type = "application/problem+json"),
))]
async fn add_product(
    State(deps): State<Deps>,
    Ctx(ctx): Ctx,
    Json(body): Json<AddProduct>,
) -> Result<(StatusCode, axum::Json<ProductDto>), Error> {
    let product = service::add_product(&deps, &ctx, body).await?;
    Ok((StatusCode::CREATED, axum::Json(dto(product))))
}

/// Get a product.
#[utoipa::path(get, path = "/products/{sku}", params(("sku" = String, Path, min_length = 1, max_length = 64, pattern = "^[A-Za-z0-9._-]+$")), responses(
    (status = 200, body = ProductDto),
    (status = 404, description = "product-not-found", content_type = "application/problem+json"),
))]
async fn get_product(
    State(deps): State<Deps>,
    Path(sku): Path<String>,
) -> Result<axum::Json<ProductDto>, Error> {
    Ok(axum::Json(dto(service::get_product(&deps, &sku).await?)))
}
