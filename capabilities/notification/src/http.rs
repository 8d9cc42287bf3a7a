//! Notification's public routes: wire types in, service calls, wire types
//! out. No SQL here.
//!
//! `GET /contacts/{customer_id}` reads the contact read model. Its answers
//! carry a `Seams-Freshness` header (how far the projection has read
//! identity's feed, and how long ago it got there), and it honours a
//! `Seams-Consistency-Token` from an identity write: it waits, bounded, for
//! the projection to reach the token, or answers 503 `stale-read`.

use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
pub use notification_contract::Contact;
use notification_contract::{
    Deliveries, Delivery as DeliveryDto, GET_CONTACT, LIST_DELIVERIES, ListDeliveries,
};
use seams_core::auth::{Access, Role};
use seams_http::{Caller, Path, Query, Routes};
use seams_runtime::consistency::{FRESHNESS_HEADER, TOKEN_HEADER};
use utoipa::OpenApi;

use crate::domain::Delivery;
use crate::error::{Error, insert_freshness};
use crate::service::{self, CONTACTS_SUBSCRIPTION, Deps};
use crate::store::ContactEntry;

/// `/notification` routes.
pub fn router(deps: Deps) -> Routes {
    const CUSTOMERS: Access = Access::People(&[Role::Customer]);
    Routes::new()
        .get("/deliveries", &LIST_DELIVERIES, CUSTOMERS, list_deliveries)
        .get(
            "/contacts/{customer_id}",
            &GET_CONTACT,
            CUSTOMERS,
            get_contact,
        )
        .with_state(deps)
}

#[derive(OpenApi)]
#[openapi(
    paths(list_deliveries, get_contact),
    components(schemas(Deliveries, DeliveryDto, Contact))
)]
struct Api;

/// The OpenAPI document of these routes.
pub fn openapi() -> utoipa::openapi::OpenApi {
    Api::openapi()
}

impl From<ContactEntry> for Contact {
    fn from(e: ContactEntry) -> Contact {
        Contact {
            customer_id: e.contact.customer_id,
            email: e.contact.email,
            name: e.contact.name,
            updated_at: e.updated_at,
        }
    }
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
    (status = 400, description = "invalid-query: missing, empty or unknown parameter, a bad `after` or `limit`", content_type = "application/problem+json"),
    (status = 404, description = "customer-not-found: not the caller's own deliveries", content_type = "application/problem+json"),
))]
async fn list_deliveries(
    State(deps): State<Deps>,
    Caller(caller): Caller,
    Query(query): Query<ListDeliveries>,
) -> Result<axum::Json<Deliveries>, Error> {
    let page = service::list_deliveries(
        &deps,
        &caller,
        &query.customer_id,
        query.after.as_deref(),
        query.limit,
    )
    .await?;
    Ok(axum::Json(Deliveries {
        deliveries: page.deliveries.into_iter().map(dto).collect(),
        next: page.next,
    }))
}

/// The request's consistency token, if it has one; more than one, or one
/// that is not text, is refused rather than guessed at.
fn consistency_token(headers: &HeaderMap) -> Result<Option<&str>, Error> {
    let mut values = headers.get_all(TOKEN_HEADER).iter();
    match (values.next(), values.next()) {
        (None, _) => Ok(None),
        (Some(v), None) => v
            .to_str()
            .map(Some)
            .map_err(|_| Error::InvalidToken("the token is not visible ASCII".into())),
        (Some(_), Some(_)) => Err(Error::InvalidToken("more than one token".into())),
    }
}

/// Get a customer's contact from notification's read model.
///
/// With a consistency token from an identity write (`identity:<position>`),
/// the read first waits, bounded, until the model has applied that write.
/// The `Seams-Freshness` header is absent only until the model has read
/// identity's feed once since the process started.
#[utoipa::path(get, path = "/contacts/{customer_id}",
    params(
        ("customer_id" = String, Path, description = "Identity's customer id"),
        ("seams-consistency-token" = Option<String>, Header, pattern = "^identity:[0-9]{1,19}$", description = "`identity:<position>` from an identity write to read after"),
    ),
    responses(
        (status = 200, body = Contact, headers(
            ("seams-freshness" = String, description = "`subscription=…; position=…; age-ms=…`: what the answer reflects"),
        )),
        (status = 400, description = "invalid-consistency-token", content_type = "application/problem+json"),
        (status = 404, description = "contact-not-found", content_type = "application/problem+json"),
        (status = 503, description = "stale-read: the model did not reach the token in time (Retry-After)", content_type = "application/problem+json"),
    ),
)]
async fn get_contact(
    State(deps): State<Deps>,
    Caller(caller): Caller,
    Path(customer_id): Path<String>,
    headers: HeaderMap,
) -> Response {
    let mut freshness = None;
    let res = async {
        service::own_contact(&caller, &customer_id)?;
        service::wait_for_token(&deps, consistency_token(&headers)?).await?;
        // Taken before the read: positions only move after their changes
        // commit, so the answer is at least as fresh as this says.
        freshness = deps.consistency.freshness(CONTACTS_SUBSCRIPTION);
        service::get_contact(&deps, &caller, &customer_id).await
    }
    .await;
    let mut res = match res {
        Ok(entry) => axum::Json(Contact::from(entry)).into_response(),
        Err(e) => e.into_response(),
    };
    // A stale read carries the freshness its wait gave up at.
    if !res.headers().contains_key(FRESHNESS_HEADER)
        && let Some(f) = freshness.or_else(|| deps.consistency.freshness(CONTACTS_SUBSCRIPTION))
    {
        insert_freshness(&mut res, &f);
    }
    res
}
