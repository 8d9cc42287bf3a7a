//! Fulfillment's public routes: the keyed stock receipt through
//! `IdempotentJson`, the stock and shipment queries; wire types in and out.
//! No SQL here.
//!
//! Staff receive stock; customers and staff read stock levels; a customer
//! sees their own invoices' shipments, staff every invoice's.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use fulfillment_contract::{
    GET_STOCK, LIST_SHIPMENTS, ListShipments, RECEIVE_STOCK, ReceiveStock, Shipment as ShipmentDto,
    ShipmentLine, Shipments, StockLevel,
};
use seams_core::auth::{Access, Role};
use seams_http::idempotency::{fresh, replay_after_conflict};
use seams_http::{Caller, IdempotencyStore, IdempotentJson, Path, Query, Routes};
use seams_store::Db;
use utoipa::OpenApi;

use crate::error::Error;
use crate::service::{self, Deps};

impl IdempotencyStore for Deps {
    fn idempotency_db(&self) -> &Db {
        self.store.db()
    }
}

/// `/fulfillment` routes.
pub fn router(deps: Deps) -> Routes {
    const READERS: Access = Access::People(&[Role::Customer, Role::Staff]);
    Routes::new()
        .post(
            "/stock",
            &RECEIVE_STOCK,
            Access::People(&[Role::Staff]),
            receive_stock,
        )
        .get("/stock/{sku}", &GET_STOCK, READERS, get_stock)
        .get("/shipments", &LIST_SHIPMENTS, READERS, list_shipments)
        .with_state(deps)
}

#[derive(OpenApi)]
#[openapi(
    paths(receive_stock, get_stock, list_shipments),
    components(schemas(ReceiveStock, StockLevel, Shipments, ShipmentDto, ShipmentLine))
)]
struct Api;

/// The OpenAPI document of these routes.
pub fn openapi() -> utoipa::openapi::OpenApi {
    Api::openapi()
}

/// Receive units of a SKU (keyed: send `Idempotency-Key`, so a retried
/// delivery note is counted once); answers the stock level after receipt.
#[utoipa::path(post, path = "/stock", request_body = ReceiveStock,
    params(("Idempotency-Key" = String, Header, description = "Reuse on retries; a replay returns the first response")),
    responses(
        (status = 201, body = StockLevel),
        (status = 422, description = "invalid-field (names the field) / invalid-body / idempotency-key-reused", content_type = "application/problem+json"),
        (status = 428, description = "idempotency-key-required", content_type = "application/problem+json"),
    ))]
async fn receive_stock(State(deps): State<Deps>, cmd: IdempotentJson<ReceiveStock>) -> Response {
    match service::receive_stock(&deps, cmd.value, &cmd.claim).await {
        Ok(body) => fresh(StatusCode::CREATED, body),
        Err(Error::KeyConflict) => replay_after_conflict(deps.store.db(), &cmd.claim).await,
        Err(e) => e.into_response(),
    }
}

/// A SKU's stock: on hand, reserved and available. A SKU never received
/// has zeros (fulfillment does not own the product list, so it cannot
/// answer "no such product").
#[utoipa::path(get, path = "/stock/{sku}", params(("sku" = String, Path, min_length = 1, max_length = 64, pattern = "^[A-Za-z0-9._-]+$")), responses(
    (status = 200, body = StockLevel),
    (status = 400, description = "invalid-path: not a SKU", content_type = "application/problem+json"),
))]
async fn get_stock(
    State(deps): State<Deps>,
    Path(sku): Path<String>,
) -> Result<axum::Json<StockLevel>, Error> {
    let level = service::get_stock(&deps, &sku).await?;
    Ok(axum::Json(service::level_dto(&level)))
}

/// List an invoice's shipments, oldest first (empty for an invoice that has
/// none: unpaid, out of stock, or unknown).
#[utoipa::path(get, path = "/shipments", params(ListShipments), responses(
    (status = 200, body = Shipments),
    (status = 400, description = "invalid-query: missing, empty or unknown parameter", content_type = "application/problem+json"),
))]
async fn list_shipments(
    State(deps): State<Deps>,
    Caller(caller): Caller,
    Query(query): Query<ListShipments>,
) -> Result<axum::Json<Shipments>, Error> {
    let shipments = service::list_shipments(&deps, &caller, &query.invoice_id).await?;
    Ok(axum::Json(Shipments {
        shipments: shipments.iter().map(service::shipment_dto).collect(),
    }))
}
