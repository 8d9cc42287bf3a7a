//! Criterion microbenchmarks of the in-process paths: what a contract call,
//! a pure decision and an event envelope cost inside one process.
//!
//! - `in-process-call`: `Client::ask(QuotePrices)` through `Governed`
//!   (declared timeout and retries) over `InProcess` against awaiting the
//!   very same async handler directly, for three SKUs. `contract` hands the
//!   typed values across (a release build's monolith); `contract-checking-wire`
//!   sends them through JSON both ways, as over HTTP (tests, chaos mode).
//!   `json-only` does just the four serde steps checking the wire adds
//!   (encode request, decode request, encode reply, decode reply).
//! - `decision`: `billing::domain::Invoice::build` pricing a three-line cart.
//! - `envelope`: `Envelope::wrap` + `serde_json::to_vec` of an
//!   `invoice-created`, and the way back (`from_slice` + `decode`).
//!
//! Run with `cargo bench -p seams-bench --bench micro`; `bench/run.sh`
//! runs it with shorter warm-up and measurement times.

use std::hint::black_box;
use std::sync::Arc;

use billing::domain::{Cart, Invoice};
use billing_contract::InvoiceCreated;
use catalog_contract::{Amount, Quote, QuoteError, QuotePrices, QuotedPrice};
use criterion::{Criterion, criterion_group, criterion_main};
use seams_core::{CallContext, Envelope};
use seams_runtime::Served;
use seams_runtime::governed::Governed;
use seams_runtime::inprocess::InProcess;

/// The SKUs every call quotes.
const SKUS: [&str; 3] = ["TEA", "MUG", "POT"];

fn skus() -> Vec<String> {
    SKUS.iter().map(|s| (*s).to_owned()).collect()
}

fn price(sku: &str) -> Option<(&'static str, i64)> {
    match sku {
        "TEA" => Some(("Green tea", 450)),
        "MUG" => Some(("Mug", 1200)),
        "POT" => Some(("Tea pot", 3500)),
        _ => None,
    }
}

/// Catalog's quote-prices as a plain async handler: what both sides of the comparison call.
async fn quote(req: QuotePrices, _ctx: CallContext) -> Result<Quote, QuoteError> {
    let unknown: Vec<String> = req
        .skus
        .iter()
        .filter(|s| price(s).is_none())
        .cloned()
        .collect();
    if !unknown.is_empty() {
        return Err(QuoteError::UnknownSkus { skus: unknown });
    }
    Ok(Quote {
        prices: req
            .skus
            .iter()
            .map(|sku| {
                let (name, amount) = price(sku).expect("checked above");
                QuotedPrice {
                    sku: sku.clone(),
                    name: name.to_owned(),
                    unit_price: Amount {
                        amount,
                        currency: "EUR".to_owned(),
                    },
                }
            })
            .collect(),
    })
}

fn in_process_call(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a current-thread runtime");
    let client = |inprocess: InProcess| {
        inprocess.register(&Served::answering(quote));
        seams_core::Client::new(Arc::new(Governed::new(Arc::new(inprocess))))
    };
    let typed = client(InProcess::new());
    let wire = client(InProcess::checking_the_wire());
    let ctx = CallContext::new_root();
    // Every side must answer the same thing, or the comparison means nothing.
    let direct = runtime.block_on(quote(QuotePrices { skus: skus() }, ctx.clone()));
    let ask = || QuotePrices { skus: skus() };
    assert_eq!(direct, runtime.block_on(typed.ask(ask(), &ctx)));
    assert_eq!(direct, runtime.block_on(wire.ask(ask(), &ctx)));

    let mut group = c.benchmark_group("in-process-call");
    group.bench_function("direct", |b| {
        b.to_async(&runtime).iter(|| async {
            quote(black_box(QuotePrices { skus: skus() }), ctx.clone())
                .await
                .expect("known SKUs")
        })
    });
    for (name, client) in [("contract", &typed), ("contract-checking-wire", &wire)] {
        group.bench_function(name, |b| {
            b.to_async(&runtime).iter(|| async {
                client
                    .ask(black_box(ask()), &ctx)
                    .await
                    .expect("known SKUs")
            })
        });
    }
    let reply = direct.expect("known SKUs");
    group.bench_function("json-only", |b| {
        b.iter(|| {
            let req = serde_json::to_vec(&QuotePrices {
                skus: black_box(skus()),
            })
            .expect("serializes");
            let req: QuotePrices = serde_json::from_slice(&req).expect("deserializes");
            black_box(req);
            let answer = serde_json::to_vec(black_box(&reply)).expect("serializes");
            let answer: Quote = serde_json::from_slice(&answer).expect("deserializes");
            answer
        })
    });
    group.finish();
}

fn three_line_cart() -> (Cart, Vec<QuotedPrice>) {
    let lines: Vec<(String, u32)> = vec![
        ("TEA".to_owned(), 2),
        ("MUG".to_owned(), 1),
        ("POT".to_owned(), 3),
    ];
    let cart = Cart::parse("0190a5b2-7c1e-7000-8000-000000000001", &lines).expect("valid cart");
    let prices = SKUS
        .iter()
        .map(|sku| {
            let (name, amount) = price(sku).expect("known SKU");
            QuotedPrice {
                sku: (*sku).to_owned(),
                name: name.to_owned(),
                unit_price: Amount {
                    amount,
                    currency: "EUR".to_owned(),
                },
            }
        })
        .collect();
    (cart, prices)
}

const INVOICE_ID: &str = "0190a5b2-7c1e-7000-8000-0000000000aa";
const NOW: &str = "2026-01-01T12:00:00.123456789Z";

fn decision(c: &mut Criterion) {
    let (cart, prices) = three_line_cart();
    let mut group = c.benchmark_group("decision");
    group.bench_function("invoice-build-3-lines", |b| {
        b.iter(|| {
            Invoice::build(
                INVOICE_ID.to_owned(),
                black_box(&cart),
                black_box(&prices),
                NOW.to_owned(),
            )
            .expect("prices every line")
        })
    });
    group.finish();
}

fn envelope(c: &mut Criterion) {
    let (cart, prices) = three_line_cart();
    let (_, event) =
        Invoice::build(INVOICE_ID.to_owned(), &cart, &prices, NOW.to_owned()).expect("priced");
    let ctx = CallContext::new_root();
    let event_id = "0190a5b2-7c1e-7000-8000-0000000000ee";
    let encode = || {
        let env = Envelope::wrap(black_box(&event), event_id.to_owned(), NOW.to_owned(), &ctx)
            .expect("the bench event has its key");
        serde_json::to_vec(&env).expect("envelopes serialize")
    };
    let bytes = encode();
    let mut group = c.benchmark_group("envelope");
    group.bench_function("encode", |b| b.iter(encode));
    group.bench_function("decode", |b| {
        b.iter(|| {
            let env: Envelope = serde_json::from_slice(black_box(&bytes)).expect("an envelope");
            env.decode::<InvoiceCreated>(&[1])
                .expect("invoice-created v1")
        })
    });
    group.finish();
}

criterion_group!(benches, in_process_call, decision, envelope);
criterion_main!(benches);
