//! Notification's public routes: wire types in, service calls, wire types
//! out. No SQL here.

use axum::Router;
use axum::extract::State;
use axum::routing::get;
use notification_contract::{Deliveries, Delivery as DeliveryDto};
use seams_http::Query;
use serde::Deserialize;
use utoipa::OpenApi;

use crate::domain::Delivery;
use crate::error::Error;
use crate::service::{self, Deps};

/// `/notification` routes.
pub fn router(deps: Deps) -> Router {
    Router::new()
        .route("/deliveries", get(list_deliveries))
        .with_state(deps)
}

#[derive(OpenApi)]
#[openapi(paths(list_deliveries), components(schemas(Deliveries, DeliveryDto)))]
struct Api;

/// The OpenAPI document of these routes.
pub fn openapi() -> utoipa::openapi::OpenApi {
    Api::openapi()
}

/// `GET /deliveries` query. Unknown parameters are rejected like unknown body
/// fields (design brief §9): a misspelt `customer-id` must not silently
/// answer for nobody.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct ListDeliveries {
    /// The customer whose deliveries to list.
    customer_id: String,
}

fn dto(d: Delivery) -> DeliveryDto {
    DeliveryDto {
        id: d.id,
        customer_id: d.customer_id,
        event_id: d.event_id,
        event_type: d.event_type,
        channel: d.channel,
        recipient: d.recipient,
        subject: d.subject,
        status: d.status.as_str().to_owned(),
        attempts: d.attempts,
        last_error: d.last_error,
        created_at: d.created_at,
        delivered_at: d.delivered_at,
    }
}

/// List a customer's deliveries, oldest first (empty for an unknown customer).
#[utoipa::path(get, path = "/deliveries", params(ListDeliveries), responses(
    (status = 200, body = Deliveries),
    (status = 400, description = "invalid-query: missing, empty or unknown parameter", content_type = "application/problem+json"),
))]
async fn list_deliveries(
    State(deps): State<Deps>,
    Query(query): Query<ListDeliveries>,
) -> Result<axum::Json<Deliveries>, Error> {
    let deliveries = service::list_deliveries(&deps, &query.customer_id).await?;
    Ok(axum::Json(Deliveries {
        deliveries: deliveries.into_iter().map(dto).collect(),
    }))
}
