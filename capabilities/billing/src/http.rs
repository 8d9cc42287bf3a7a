//! Billing's public routes: keyed commands through `IdempotentJson`, wire
//! types in and out. No SQL here.
//!
//! Customers create and pay their own invoices; customers read their own,
//! staff any. Whose invoice it is, the service decides.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use billing_contract::{
    CREATE_INVOICE, CartLine, CreateInvoice, GET_INVOICE, Invoice as InvoiceDto, InvoiceLine,
    PAY_INVOICE, PayInvoice, Payment,
};
use catalog_contract::Amount;
use seams_core::auth::{Access, Role};
use seams_http::idempotency::{fresh, replay_after_conflict};
use seams_http::{Caller, Ctx, IdempotencyStore, IdempotentJson, Path, Routes};
use seams_store::Db;
use utoipa::OpenApi;

use crate::error::Error;
use crate::service::{self, Deps};

impl IdempotencyStore for Deps {
    fn idempotency_db(&self) -> &Db {
        self.store.db()
    }
}

/// `/billing` routes.
pub fn router(deps: Deps) -> Routes {
    const CUSTOMERS: Access = Access::People(&[Role::Customer]);
    Routes::new()
        .post("/invoices", &CREATE_INVOICE, CUSTOMERS, create_invoice)
        .get(
            "/invoices/{id}",
            &GET_INVOICE,
            Access::People(&[Role::Customer, Role::Staff]),
            get_invoice,
        )
        .post(
            "/invoices/{id}/payments",
            &PAY_INVOICE,
            CUSTOMERS,
            pay_invoice,
        )
        .with_state(deps)
}

#[derive(OpenApi)]
#[openapi(
    paths(create_invoice, get_invoice, pay_invoice),
    components(schemas(
        CreateInvoice,
        CartLine,
        InvoiceDto,
        InvoiceLine,
        PayInvoice,
        Payment,
        Amount
    ))
)]
struct Api;

/// The OpenAPI document of these routes.
pub fn openapi() -> utoipa::openapi::OpenApi {
    Api::openapi()
}

async fn answer(
    deps: &Deps,
    claim: &seams_store::IdempotencyClaim,
    res: Result<Vec<u8>, Error>,
) -> Response {
    match res {
        Ok(body) => fresh(StatusCode::CREATED, body),
        Err(Error::KeyConflict) => replay_after_conflict(deps.store.db(), claim).await,
        Err(e) => e.into_response(),
    }
}

/// Create an invoice for a cart (keyed: send `Idempotency-Key`).
#[utoipa::path(post, path = "/invoices", request_body = CreateInvoice,
    params(("Idempotency-Key" = String, Header, description = "Reuse on retries; a replay returns the first response")),
    responses(
        (status = 201, body = InvoiceDto),
        (status = 403, description = "forbidden: the invoice is for another customer than the token's", content_type = "application/problem+json"),
        (status = 422, description = "invalid-field (names the field) / idempotency-key-reused", content_type = "application/problem+json"),
        (status = 428, description = "idempotency-key-required", content_type = "application/problem+json"),
    ))]
async fn create_invoice(
    State(deps): State<Deps>,
    Ctx(ctx): Ctx,
    Caller(caller): Caller,
    cmd: IdempotentJson<CreateInvoice>,
) -> Response {
    let res = service::create_invoice(&deps, &ctx, &caller, cmd.value, &cmd.claim).await;
    answer(&deps, &cmd.claim, res).await
}

/// Pay an invoice in full, at most once (keyed).
#[utoipa::path(post, path = "/invoices/{id}/payments", request_body = PayInvoice,
    params(("id" = String, Path), ("Idempotency-Key" = String, Header)),
    responses(
        (status = 201, body = Payment),
        (status = 404, description = "invoice-not-found", content_type = "application/problem+json"),
        (status = 409, description = "invoice-already-paid (paid or refunded) / invoice-voided (cancelled: it cannot be fulfilled)", content_type = "application/problem+json"),
        (status = 422, description = "invalid-field: wrong amount or currency", content_type = "application/problem+json"),
        (status = 428, description = "idempotency-key-required", content_type = "application/problem+json"),
    ))]
async fn pay_invoice(
    State(deps): State<Deps>,
    Ctx(ctx): Ctx,
    Caller(caller): Caller,
    Path(id): Path<String>,
    cmd: IdempotentJson<PayInvoice>,
) -> Response {
    let res = service::pay_invoice(&deps, &ctx, &caller, &id, cmd.value, &cmd.claim).await;
    answer(&deps, &cmd.claim, res).await
}

/// Get an invoice; its `status` is `open`, `paid`, `voided` or `refunded`.
/// A customer gets their own only (another customer's is not found).
#[utoipa::path(get, path = "/invoices/{id}", params(("id" = String, Path)), responses(
    (status = 200, body = InvoiceDto),
    (status = 404, description = "invoice-not-found", content_type = "application/problem+json"),
))]
async fn get_invoice(
    State(deps): State<Deps>,
    Caller(caller): Caller,
    Path(id): Path<String>,
) -> Result<axum::Json<InvoiceDto>, Error> {
    Ok(axum::Json(service::invoice_dto(
        &service::get_invoice(&deps, &caller, &id).await?,
    )))
}
