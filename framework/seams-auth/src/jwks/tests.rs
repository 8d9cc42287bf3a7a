//! Which JWKs are taken and which refused, and how a remote key set is
//! fetched, cached, refetched and capped, against a real JWKS endpoint on
//! loopback.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use serde_json::json;

use super::*;

fn b64(len: usize, byte: u8) -> String {
    B64.encode(vec![byte; len])
}

fn okp(x_len: usize) -> Value {
    json!({ "kty": "OKP", "crv": "Ed25519", "use": "sig", "x": b64(x_len, 7) })
}

fn rsa(n_len: usize) -> Value {
    // The top bit set, as in every real modulus of that many bytes.
    json!({ "kty": "RSA", "use": "sig", "n": b64(n_len, 0xc1), "e": "AQAB" })
}

fn ec(curve: &str, x_len: usize, y_len: usize) -> Value {
    json!({ "kty": "EC", "crv": curve, "x": b64(x_len, 3), "y": b64(y_len, 5) })
}

fn with(mut jwk: Value, field: &str, value: &str) -> Value {
    jwk[field] = json!(value);
    jwk
}

fn usable_json(jwk: &Value) -> Result<Vec<Algorithm>, String> {
    let jwk: Jwk = serde_json::from_value(jwk.clone()).map_err(|e| e.to_string())?;
    usable(&jwk).map(|k| k.algorithms)
}

#[test]
fn only_asymmetric_signature_keys_of_sound_size_curve_and_alg_are_usable() {
    use Algorithm::*;
    let rsa_family = vec![RS256, RS384, RS512, PS256, PS384, PS512];
    let cases: Vec<(&str, Value, Option<Vec<Algorithm>>)> = vec![
        ("Ed25519", okp(32), Some(vec![EdDSA])),
        (
            "Ed25519 naming EdDSA",
            with(okp(32), "alg", "EdDSA"),
            Some(vec![EdDSA]),
        ),
        ("Ed25519 of 31 bytes", okp(31), None),
        ("Ed448", with(okp(57), "crv", "Ed448"), None),
        ("Ed25519 naming RS256", with(okp(32), "alg", "RS256"), None),
        ("an encryption key", with(okp(32), "use", "enc"), None),
        ("RSA 2048", rsa(256), Some(rsa_family.clone())),
        ("RSA 4096", rsa(512), Some(rsa_family)),
        ("RSA 2040", rsa(255), None),
        ("RSA 1024", rsa(128), None),
        (
            "RSA naming PS384",
            with(rsa(256), "alg", "PS384"),
            Some(vec![PS384]),
        ),
        ("RSA naming ES256", with(rsa(256), "alg", "ES256"), None),
        ("P-256", ec("P-256", 32, 32), Some(vec![ES256])),
        ("P-384", ec("P-384", 48, 48), Some(vec![ES384])),
        ("P-521", ec("P-521", 66, 66), None),
        ("P-256 with a short x", ec("P-256", 31, 32), None),
        ("P-256 with a short y", ec("P-256", 32, 31), None),
        ("P-384 with P-256 coordinates", ec("P-384", 32, 32), None),
        (
            "P-256 naming ES384",
            with(ec("P-256", 32, 32), "alg", "ES384"),
            None,
        ),
        (
            "P-384 naming ES384",
            with(ec("P-384", 48, 48), "alg", "ES384"),
            Some(vec![ES384]),
        ),
        ("HMAC", json!({ "kty": "oct", "k": b64(32, 9) }), None),
    ];
    for (what, jwk, expected) in cases {
        match (usable_json(&jwk), expected) {
            (Ok(got), Some(want)) => assert_eq!(got, want, "{what}"),
            (Err(_), None) => {}
            (got, want) => panic!("{what}: got {got:?}, wanted {want:?}"),
        }
    }
}

#[test]
fn a_symmetric_key_is_refused_as_such() {
    // Its reason is what the operator reads in the log: it must say the
    // key was refused on principle, not for want of support.
    let reason = usable_json(&json!({ "kty": "oct", "alg": "HS256", "k": b64(32, 9) }))
        .expect_err("a symmetric key is never usable");
    assert!(reason.contains("symmetric"), "{reason}");
}

#[test]
fn keys_without_an_id_are_skipped() {
    let named = with(okp(32), "kid", "k1");
    let doc = json!({ "keys": [okp(32), with(okp(32), "kid", ""), named, with(rsa(128), "kid", "weak")] });
    let keys = parse(&doc).unwrap();
    assert_eq!(keys.keys().collect::<Vec<_>>(), ["k1"]);
    assert!(parse(&json!({ "no": "keys" })).is_err());
}

/// A JWKS endpoint on loopback serving `body` (or 503 while it is `None`),
/// counting requests.
struct Endpoint {
    url: String,
    body: Arc<Mutex<Option<Vec<u8>>>>,
    hits: Arc<AtomicUsize>,
}

impl Endpoint {
    async fn serving(doc: &Value) -> Endpoint {
        Endpoint::serving_bytes(serde_json::to_vec(doc).unwrap()).await
    }

    async fn serving_bytes(body: Vec<u8>) -> Endpoint {
        let body = Arc::new(Mutex::new(Some(body)));
        let hits = Arc::new(AtomicUsize::new(0));
        let (served, counted) = (body.clone(), hits.clone());
        let app = axum::Router::new().route(
            "/jwks.json",
            axum::routing::get(move || {
                let (body, hits) = (served.clone(), counted.clone());
                async move {
                    use axum::response::IntoResponse;
                    hits.fetch_add(1, Ordering::SeqCst);
                    match body.lock().unwrap().clone() {
                        Some(bytes) => bytes.into_response(),
                        None => axum::http::StatusCode::SERVICE_UNAVAILABLE.into_response(),
                    }
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/jwks.json", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        Endpoint { url, body, hits }
    }

    fn set(&self, doc: Option<&Value>) {
        *self.body.lock().unwrap() = doc.map(|d| serde_json::to_vec(d).unwrap());
    }

    fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }

    fn jwks(&self) -> RemoteJwks {
        RemoteJwks::new(self.url.clone(), reqwest::Client::new())
    }
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn set_of(kids: &[&str]) -> Value {
    let keys: Vec<Value> = kids.iter().map(|k| with(okp(32), "kid", k)).collect();
    json!({ "keys": keys })
}

#[tokio::test]
async fn a_fresh_set_answers_known_keys_without_asking_the_issuer() {
    let issuer = Endpoint::serving(&set_of(&["k1"])).await;
    // A refetch would always be due: only freshness keeps it from happening.
    let jwks = issuer.jwks().refetching_after(Duration::ZERO);
    assert_eq!(jwks.url(), issuer.url);
    for _ in 0..3 {
        jwks.key("k1").await.unwrap();
    }
    assert_eq!(issuer.hits(), 1);
    // A key it lacks is asked for, and refused once the issuer answered.
    assert!(matches!(jwks.key("k2").await, Err(AuthError::Rejected(_))));
    assert_eq!(issuer.hits(), 2);
}

#[tokio::test]
async fn an_old_set_is_refetched_when_due_and_kept_while_the_issuer_is_down() {
    let issuer = Endpoint::serving(&set_of(&["k1"])).await;
    // Old at once, but a refetch is not due: the cached key still answers.
    let patient = issuer
        .jwks()
        .fresh_for(Duration::ZERO)
        .refetching_after(Duration::from_secs(3600));
    patient.key("k1").await.unwrap();
    patient.key("k1").await.unwrap();
    assert_eq!(issuer.hits(), 1);

    // Old at once and a refetch always due: every lookup asks the issuer.
    let eager = issuer
        .jwks()
        .fresh_for(Duration::ZERO)
        .refetching_after(Duration::ZERO);
    eager.key("k1").await.unwrap();
    assert_eq!(issuer.hits(), 2);
    issuer.set(None);
    assert!(
        eager.key("k1").await.is_ok(),
        "the cached key outlives an outage"
    );
    assert_eq!(issuer.hits(), 3);
    // Back with a rotated set: the key it dropped is no longer trusted.
    issuer.set(Some(&set_of(&["k2"])));
    assert!(matches!(eager.key("k1").await, Err(AuthError::Rejected(_))));
    eager.key("k2").await.unwrap();
    assert_eq!(issuer.hits(), 5);
}

#[tokio::test]
async fn an_issuer_never_reached_makes_keys_unavailable_not_unknown() {
    let issuer = Endpoint::serving(&set_of(&["k1"])).await;
    issuer.set(None);
    let jwks = issuer.jwks();
    match jwks.key("k1").await {
        Err(AuthError::Unavailable(e)) => assert!(e.contains(&issuer.url), "{e}"),
        other => panic!("{:?}", other.map(|k| k.algorithms)),
    }
}

/// A key set of exactly `len` bytes, padded with a member nobody reads.
fn padded_set(len: usize) -> Vec<u8> {
    let mut doc = set_of(&["k1"]);
    doc["padding"] = json!("");
    let bare = serde_json::to_vec(&doc).unwrap().len();
    doc["padding"] = json!("x".repeat(len - bare));
    let bytes = serde_json::to_vec(&doc).unwrap();
    assert_eq!(bytes.len(), len);
    bytes
}

#[tokio::test]
async fn a_key_set_is_read_up_to_256_kib_and_no_further() {
    // Larger issuers publish sets of tens of KiB (certificate chains
    // included): the limit leaves them room and stops a runaway body.
    let limit = 256 * 1024;
    let at_limit = Endpoint::serving_bytes(padded_set(limit)).await;
    assert!(at_limit.jwks().key("k1").await.is_ok());
    let over = Endpoint::serving_bytes(padded_set(limit + 1)).await;
    assert!(matches!(
        over.jwks().key("k1").await,
        Err(AuthError::Unavailable(_))
    ));
}

#[tokio::test]
async fn a_p384_issuer_verifies_es384_tokens() {
    let pair = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P384_SHA384).unwrap();
    let point = pair.public_key_raw();
    let issuer = Endpoint::serving(&json!({ "keys": [{
        "kty": "EC", "crv": "P-384", "use": "sig", "kid": "idp-384",
        "x": B64.encode(&point[1..49]), "y": B64.encode(&point[49..97]),
    }]}))
    .await;
    let key = issuer.jwks().key("idp-384").await.unwrap();
    assert_eq!(key.algorithms, [Algorithm::ES384]);
    let mut header = jsonwebtoken::Header::new(Algorithm::ES384);
    header.kid = Some("idp-384".into());
    let token = jsonwebtoken::encode(
        &header,
        &json!({ "sub": "u-1", "exp": unix_now() + 60 }),
        &jsonwebtoken::EncodingKey::from_ec_der(&pair.serialize_der()),
    )
    .unwrap();
    let mut validation = jsonwebtoken::Validation::new(Algorithm::ES384);
    validation.set_required_spec_claims(&["sub"]);
    let claims = jsonwebtoken::decode::<Value>(&token, &key.key, &validation)
        .unwrap()
        .claims;
    assert_eq!(claims["sub"], "u-1");
}
