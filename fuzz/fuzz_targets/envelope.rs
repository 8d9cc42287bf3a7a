//! Fuzzes the event envelope decoder with whatever a feed or a NATS stream
//! could deliver: bytes parsed as an `Envelope` (as the consumers parse a
//! message), then decoded as every real event of the contracts, the way a
//! subscription's handler does before the consumer sees it.
//!
//! Besides "never panics", it checks what a consumer relies on: an envelope
//! that parsed writes back to one equal to it; a decoded event, wrapped
//! again, decodes to the same event; a parsed `traceparent` writes back to
//! the text it came from; a wire amount that parses as money prints.

#![no_main]

use billing_contract::{InvoiceCreated, InvoicePaid, InvoiceRefunded, InvoiceVoided};
use catalog_contract::{Amount, Money, ProductAdded};
use fulfillment_contract::{FulfillmentFailed, ShipmentCreated, ShipmentDispatched};
use identity_contract::{CustomerEmailChanged, CustomerRegistered};
use libfuzzer_sys::fuzz_target;
use seams_core::{Envelope, Event, TraceContext};

fuzz_target!(|data: &[u8]| {
    let Ok(env) = serde_json::from_slice::<Envelope>(data) else {
        return;
    };
    round_trips(&env);
    trace_context(&env);
    let ctx = env.consumer_context();
    assert_eq!(ctx.correlation_id, env.correlationid);
    assert_eq!(ctx.causation_id.as_deref(), Some(env.id.as_str()));

    // Every event the shop's subscriptions decode; all but one fail on
    // the type, which is the first check a decode makes.
    decodes::<InvoiceCreated>(&env, |e| {
        amounts(
            e.lines
                .iter()
                .flat_map(|l| [&l.unit_price, &l.line_total])
                .chain([&e.total]),
        )
    });
    decodes::<InvoicePaid>(&env, |e| amounts([&e.amount]));
    decodes::<InvoiceVoided>(&env, |_| {});
    decodes::<InvoiceRefunded>(&env, |e| amounts([&e.amount]));
    decodes::<CustomerRegistered>(&env, |_| {});
    decodes::<CustomerEmailChanged>(&env, |_| {});
    decodes::<ProductAdded>(&env, |e| amounts([&e.price]));
    decodes::<ShipmentCreated>(&env, |_| {});
    decodes::<ShipmentDispatched>(&env, |_| {});
    decodes::<FulfillmentFailed>(&env, |_| {});
});

/// Writing a parsed envelope and parsing it again gives the same envelope:
/// payloads are kept as the text they were read as, floats and numbers
/// beyond `f64` included.
fn round_trips(env: &Envelope) {
    let again =
        serde_json::to_vec(env).and_then(|bytes| serde_json::from_slice::<Envelope>(&bytes));
    assert!(
        matches!(&again, Ok(back) if back == env),
        "{env:?} came back as {again:?}"
    );
}

/// A `traceparent` that parses is the one that would be written.
fn trace_context(env: &Envelope) {
    let Some(text) = env.traceparent.as_deref() else {
        return;
    };
    if let Some(trace) = TraceContext::parse(text) {
        assert_eq!(trace.to_traceparent(), text.trim());
        assert_eq!(TraceContext::parse(&trace.to_traceparent()), Some(trace));
    }
}

/// Decodes `env` as `E` with the versions the contract accepts and with the
/// envelope's own version (which reaches the upcaster); a decoded event is
/// checked by `check` and must survive being wrapped again.
fn decodes<E: Event + PartialEq + std::fmt::Debug>(env: &Envelope, check: impl Fn(&E)) {
    for accepts in [E::CONTRACT.versioning.accepts, &[env.dataversion]] {
        match env.decode::<E>(accepts) {
            Ok(event) => {
                check(&event);
                let again = Envelope::wrap(
                    &event,
                    env.id.clone(),
                    env.time.clone(),
                    &env.consumer_context(),
                )
                .expect("an event that decoded has its declared ordering key");
                let current = [E::CONTRACT.versioning.current];
                assert_eq!(again.decode::<E>(&current).ok().as_ref(), Some(&event));
            }
            // Rendered as the dead-letter record does.
            Err(e) => {
                let _ = e.to_string();
            }
        }
    }
}

/// Amounts a consumer turns into money and prints (notification's mails).
fn amounts<'a>(amounts: impl IntoIterator<Item = &'a Amount>) {
    for amount in amounts {
        if let Ok(money) = Money::try_from(amount) {
            let text = money.to_string();
            assert!(text.ends_with(money.currency.code()), "{text}");
            assert_eq!(Amount::from(money), *amount);
        }
    }
}
