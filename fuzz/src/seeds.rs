//! The seed inputs of each target, made from the real types so they stay
//! true to what the system sends: envelopes wrapped by `Envelope::wrap`,
//! tokens signed by `SigningKeys`, argument lists `shop` accepts.
//!
//! `cargo run --manifest-path fuzz/Cargo.toml --example seeds` writes them
//! to `fuzz/corpus/<target>/`; they are checked in, so a run starts from
//! valid inputs rather than from nothing.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use billing_contract::{CreatedLine, InvoiceCreated, InvoiceRefunded};
use catalog_contract::{Amount, ProductAdded};
use fulfillment_contract::{FulfillmentFailed, ShipmentDispatched, Shortage};
use identity_contract::CustomerRegistered;
use seams_auth::{Claims, SigningKeys};
use seams_core::{CallContext, Envelope, Event, TraceContext};
use serde_json::{Value, json};

/// One seed: its file name and contents.
pub type Seed = (&'static str, Vec<u8>);

/// A far-off expiry (2100-01-01), so the checked-in tokens stay valid.
pub const FAR_FUTURE: u64 = 4_102_444_800;

fn context() -> CallContext {
    CallContext {
        correlation_id: "4bf92f3577b34da6a3ce929d0e0e4736".into(),
        causation_id: Some("0190b1d2-7c3a-7e55-8a3b-3c1d2e4f5a6b".into()),
        trace: TraceContext {
            trace_id: [0x4b; 16],
            span_id: [0x00, 0xf0, 0x67, 0xaa, 0x0b, 0xa9, 0x02, 0xb7],
            flags: 1,
        },
        deadline: None,
    }
}

fn eur(amount: i64) -> Amount {
    Amount {
        amount,
        currency: "EUR".into(),
    }
}

fn envelope<E: Event>(event: &E, sequence: u64) -> Vec<u8> {
    let Ok(mut env) = Envelope::wrap(
        event,
        "0190b1d2-7c3a-7e55-8a3b-3c1d2e4f5a6c".into(),
        "2026-05-01T12:00:00Z".into(),
        &context(),
    ) else {
        return Vec::new();
    };
    env.sequence = Some(sequence);
    serde_json::to_vec(&env).unwrap_or_default()
}

/// `event` written in versions 1 and 2 at once, as a producer told
/// `--emit billing.invoice-created=1 --emit billing.invoice-created=2` does.
fn both_versions(event: &InvoiceCreated, sequence: u64) -> Vec<u8> {
    let Ok(env) = Envelope::wrap(
        event,
        "0190b1d2-7c3a-7e55-8a3b-3c1d2e4f5a6d".into(),
        "2026-05-01T12:00:00Z".into(),
        &context(),
    ) else {
        return Vec::new();
    };
    let Ok(mut env) = env.written_as(&billing_contract::INVOICE_CREATED, &[1, 2]) else {
        return Vec::new();
    };
    env.sequence = Some(sequence);
    serde_json::to_vec(&env).unwrap_or_default()
}

/// Envelopes of real events, as a feed or a NATS stream carries them,
/// and the inputs of findings fixed since (named `regress-*`).
pub fn envelopes() -> Vec<Seed> {
    let line = CreatedLine {
        sku: "SKU-1".into(),
        quantity: 2,
        unit_price: eur(1250),
        line_total: eur(2500),
        name: Some("Green tea".into()),
    };
    let created = InvoiceCreated {
        invoice_id: "inv-1".into(),
        customer_id: "cus-1".into(),
        lines: vec![line],
        total: eur(2500),
    };
    vec![
        ("invoice-created.json", envelope(&created, 1)),
        ("invoice-created-v1-and-v2.json", both_versions(&created, 1)),
        (
            "invoice-refunded.json",
            envelope(
                &InvoiceRefunded {
                    invoice_id: "inv-1".into(),
                    customer_id: "cus-1".into(),
                    payment_id: "pay-1".into(),
                    amount: Amount {
                        amount: 700,
                        currency: "JPY".into(),
                    },
                    reason: "out-of-stock".into(),
                },
                2,
            ),
        ),
        (
            "customer-registered.json",
            envelope(
                &CustomerRegistered {
                    customer_id: "cus-1".into(),
                    email: "ann@example.com".into(),
                    name: "Ann".into(),
                },
                3,
            ),
        ),
        (
            "product-added.json",
            envelope(
                &ProductAdded {
                    sku: "SKU-1".into(),
                    name: "Teapot".into(),
                    price: eur(1250),
                },
                4,
            ),
        ),
        (
            "shipment-dispatched.json",
            envelope(
                &ShipmentDispatched {
                    shipment_id: "shp-1".into(),
                    invoice_id: "inv-1".into(),
                    customer_id: "cus-1".into(),
                    dispatched_at: "2026-05-01T13:00:00Z".into(),
                },
                5,
            ),
        ),
        (
            "fulfillment-failed.json",
            envelope(
                &FulfillmentFailed {
                    invoice_id: "inv-1".into(),
                    customer_id: "cus-1".into(),
                    reason: "out-of-stock".into(),
                    shortages: vec![Shortage {
                        sku: "SKU-1".into(),
                        requested: 3,
                        available: 1,
                    }],
                },
                6,
            ),
        ),
        ("regress-traceparent-flags.json", uppercase_flags()),
    ]
}

/// An envelope whose `traceparent` has uppercase flags (refused since).
fn uppercase_flags() -> Vec<u8> {
    let text = String::from_utf8(envelope(
        &CustomerRegistered {
            customer_id: "cus-1".into(),
            email: "ann@example.com".into(),
            name: "Ann".into(),
        },
        7,
    ))
    .unwrap_or_default();
    text.replace("-00f067aa0ba902b7-01", "-00f067aa0ba902b7-A1")
        .into_bytes()
}

fn tagged(mode: u8, body: impl AsRef<[u8]>) -> Vec<u8> {
    let mut out = vec![mode];
    out.extend_from_slice(body.as_ref());
    out
}

fn signed(keys: &SigningKeys, sub: &str, role: &str, caps: &[&str], exp: u64) -> Vec<u8> {
    let claims = Claims {
        iss: crate::ISSUER.into(),
        sub: sub.into(),
        role: role.into(),
        iat: 1_700_000_000,
        exp,
        caps: caps.iter().map(|c| (*c).to_owned()).collect(),
    };
    keys.sign(&claims).unwrap_or_default().into_bytes()
}

/// Inputs of the `token` target: a mode digit, then what that mode reads
/// (see the target's module doc); `regress-*` are findings fixed since.
pub fn tokens() -> Vec<Seed> {
    let Ok(keys) = SigningKeys::parse(crate::key_file().as_bytes()) else {
        return Vec::new();
    };
    let person = signed(&keys, "ann", "customer", &[], FAR_FUTURE);
    let service = signed(
        &keys,
        "service:billing",
        "service",
        &["billing"],
        FAR_FUTURE,
    );
    let expired = signed(&keys, "sam", "staff", &[], 1_000_000_000);
    // Unsigned (`alg: none`), naming the fixture key: must never pass.
    let unsigned = format!(
        "{}.{}.",
        B64.encode(json!({"alg": "none", "kid": crate::KID}).to_string()),
        B64.encode(
            json!({"iss": crate::ISSUER, "sub": "ann", "role": "operator", "exp": FAR_FUTURE})
                .to_string()
        ),
    );
    let jwks = keys.jwks();
    let odd_jwks = json!({"keys": [
        {"kty": "oct", "kid": "sym", "k": "c2VjcmV0"},
        {"kty": "OKP", "crv": "Ed25519", "use": "enc", "kid": "enc", "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"},
        {"kty": "RSA", "kid": "rsa", "alg": "RS256", "e": "AQAB", "n": "w".repeat(342)},
        {"kty": "EC", "crv": "P-256", "kid": "ec", "x": "A".repeat(43), "y": "B".repeat(43)},
        {"kty": "OKP", "crv": "Ed25519", "alg": "RS256", "kid": "mismatch", "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"},
    ]});
    vec![
        ("raw-person", tagged(b'0', &person)),
        ("raw-service", tagged(b'0', &service)),
        ("raw-expired", tagged(b'0', &expired)),
        ("raw-unsigned", tagged(b'0', &unsigned)),
        ("mutate-person", tagged(b'1', [0, 0, 0, 0, 0x10, 0x33, 0x01])),
        ("mutate-service", tagged(b'1', [1, 2, 0, 0, 0x40, 0x02, 0x07])),
        (
            "claims-person",
            tagged(
                b'2',
                json!({"iss": crate::ISSUER, "sub": "ann", "role": "customer", "exp": FAR_FUTURE})
                    .to_string(),
            ),
        ),
        (
            "claims-service",
            tagged(
                b'2',
                json!({"iss": crate::ISSUER, "sub": "service:billing", "role": ["service"], "caps": ["billing"], "exp": FAR_FUTURE, "nbf": 0})
                    .to_string(),
            ),
        ),
        (
            "claims-audience",
            tagged(
                b'2',
                json!({"iss": crate::ISSUER, "sub": "ann", "role": ["admin", "staff"], "aud": "other", "exp": FAR_FUTURE})
                    .to_string(),
            ),
        ),
        ("jwks-fixture", tagged(b'3', jwks.to_string())),
        ("jwks-odd", tagged(b'3', odd_jwks.to_string())),
        ("keyfile-fixture", tagged(b'4', crate::key_file())),
        ("keyfile-rotated", tagged(b'4', rotated_key_file())),
        (
            "regress-exp-fraction",
            tagged(
                b'2',
                json!({"iss": crate::ISSUER, "sub": "ann", "role": "customer", "exp": FAR_FUTURE as f64 + 0.5})
                    .to_string(),
            ),
        ),
        (
            "regress-exp-max",
            tagged(
                b'2',
                json!({"iss": crate::ISSUER, "sub": "ann", "role": "customer", "exp": u64::MAX})
                    .to_string(),
            ),
        ),
        (
            "regress-iss-array",
            tagged(
                b'2',
                json!({"iss": [crate::ISSUER, "evil"], "sub": "ann", "role": "staff", "exp": FAR_FUTURE})
                    .to_string(),
            ),
        ),
        ("regress-keyfile-kid-twice", tagged(b'4', kid_twice_key_file())),
    ]
}

/// Three keys, the first and the last under one id (refused since).
fn kid_twice_key_file() -> String {
    let Ok(mut file) = serde_json::from_str::<Value>(&rotated_key_file()) else {
        return String::new();
    };
    if let Some(Value::Array(keys)) = file.get_mut("keys")
        && let Some(first) = keys.first().cloned()
    {
        let mut again = first;
        again["created_at"] = json!(1_800_000_000);
        keys.push(again);
    }
    file.to_string()
}

/// The fixture key file after a rotation: two keys (here the same pair
/// under two ids, as a file can only hold pairs that match).
fn rotated_key_file() -> String {
    let Ok(Value::Object(mut file)) = serde_json::from_str::<Value>(&crate::key_file()) else {
        return String::new();
    };
    if let Some(Value::Array(keys)) = file.get_mut("keys")
        && let Some(first) = keys.first().cloned()
    {
        let mut second = first;
        second["kid"] = json!("fuzz-key-2");
        second["created_at"] = json!(1_700_000_000);
        keys.push(second);
    }
    Value::Object(file).to_string()
}

/// Inputs of the `config` target: arguments separated by NUL, then
/// optionally two NULs and the text of a `--config` file; `regress-*` are
/// findings fixed since.
pub fn configs() -> Vec<Seed> {
    let argv = |args: &[&str], file: Option<&str>| {
        let mut out = args.join("\0").into_bytes();
        if let Some(text) = file {
            out.extend_from_slice(b"\0\0");
            out.extend_from_slice(text.as_bytes());
        }
        out
    };
    vec![
        ("up", argv(&["up"], None)),
        (
            "up-split",
            argv(
                &[
                    "up",
                    "--split",
                    "--addr",
                    "127.0.0.1:0",
                    "--data",
                    "/tmp/shop",
                ],
                None,
            ),
        ),
        (
            "up-tuned",
            argv(
                &[
                    "up",
                    "--chaos",
                    "--chaos-min-delay-ms",
                    "5",
                    "--chaos-max-delay-ms=1",
                    "--durability",
                    "normal",
                    "--token-ttl-secs",
                    "600",
                    "--max-connections",
                    "10",
                ],
                None,
            ),
        ),
        (
            "up-oidc",
            argv(
                &[
                    "up",
                    "--oidc-issuer",
                    "https://idp.example",
                    "--oidc-jwks-url",
                    "https://idp.example/jwks",
                    "--oidc-audience",
                    "shop",
                    "--oidc-role-claim",
                    "roles",
                ],
                None,
            ),
        ),
        (
            "up-postgres",
            argv(
                &[
                    "up",
                    "--database",
                    "billing=postgres://billing:s3cr3t@db/billing",
                    "--database",
                    "identity=postgresql://db/identity,catalog=postgres://db/catalog",
                    "--nats",
                    "nats://token@127.0.0.1:4222,nats://127.0.0.1:4223",
                ],
                None,
            ),
        ),
        (
            "serve-peers",
            argv(
                &[
                    "serve",
                    "billing",
                    "catalog",
                    "--peer",
                    "identity=http://127.0.0.1:7001",
                    "--peer",
                    "fulfillment=http://127.0.0.1:7002/,notification=https://127.0.0.1:7003",
                ],
                None,
            ),
        ),
        (
            "token-service",
            argv(
                &[
                    "token",
                    "--role",
                    "service",
                    "--subject",
                    "billing",
                    "--capability",
                    "billing",
                    "--ttl",
                    "15m",
                ],
                None,
            ),
        ),
        (
            "token-staff",
            argv(
                &[
                    "token",
                    "--role",
                    "staff",
                    "--subject",
                    "sam",
                    "--ttl",
                    "7d",
                ],
                None,
            ),
        ),
        (
            "keys-rotate",
            argv(&["keys", "rotate", "--data", "d"], None),
        ),
        (
            "regress-nats-list",
            argv(
                &[
                    "up",
                    "--nats",
                    "nats://127.0.0.1:4222,nats://u:s3cr3t@127.0.0.1:4223",
                ],
                None,
            ),
        ),
        (
            "file-split",
            argv(
                &["up", "--split"],
                Some(
                    "addr = \"127.0.0.1:0\"\ngroups = [[\"billing\", \"catalog\"], [\"identity\"]]\nissuer = \"shop\"\n\n[smtp]\nhost = \"127.0.0.1\"\nport = 2525\n",
                ),
            ),
        ),
        (
            "file-serve",
            argv(
                &["serve", "identity", "--issuer", "seams"],
                Some(
                    "durability = \"normal\"\n\n[peers]\ncatalog = \"http://127.0.0.1:7001\"\nbilling = \"http://127.0.0.1:7002\"\nfulfillment = \"http://127.0.0.1:7003\"\nnotification = \"http://127.0.0.1:7004\"\n\n[databases]\nidentity = \"postgres://id:pw@db/identity\"\n\n[oidc]\nissuer = \"https://idp\"\njwks_url = \"https://idp/jwks\"\naudience = \"shop\"\n",
                ),
            ),
        ),
    ]
}
