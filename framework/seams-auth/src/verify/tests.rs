//! What the verifier accepts and refuses: our tokens and an external
//! issuer's, forged, expired, misdirected and malformed ones.

use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use jsonwebtoken::{EncodingKey, Header};
use serde_json::json;

use super::*;
use crate::keys::SigningKeys;
use crate::token::Minter;

/// What a refused token's error must satisfy.
type Expect = fn(&AuthError) -> bool;

fn deployment() -> (Minter, Verifier) {
    let keys = KeyStore::in_memory(SigningKeys::generate().unwrap());
    (
        Minter::new(keys.clone(), "shop"),
        Verifier::new(vec![Issuer::deployment("shop", keys)]),
    )
}

fn now() -> u64 {
    unix_now()
}

#[tokio::test]
async fn people_and_services_are_told_apart() {
    let (minter, verifier) = deployment();
    let staff = minter
        .person("sam", Role::Staff, Duration::from_secs(60))
        .unwrap();
    assert_eq!(staff.expires_in, 60);
    assert_eq!(
        verifier.verify(&staff.token).await.unwrap(),
        Principal::Person {
            subject: "sam".into(),
            role: Role::Staff,
            issuer: "shop".into()
        }
    );
    let svc = minter
        .service("billing", &["billing".into()], Duration::from_secs(60))
        .unwrap();
    assert_eq!(
        verifier.verify(&svc.token).await.unwrap(),
        Principal::Service {
            name: "billing".into(),
            capabilities: vec!["billing".into()]
        }
    );
    // Answered again from the cache, the same.
    assert!(verifier.verify(&svc.token).await.unwrap().runs("billing"));
}

#[tokio::test]
async fn forged_expired_and_malformed_tokens_are_refused() {
    let (minter, verifier) = deployment();
    let (other, _) = deployment();
    let good = minter
        .person("c1", Role::Customer, Duration::from_secs(60))
        .unwrap()
        .token;
    let keys = minter.keys().current();
    let sign = |claims: serde_json::Value| keys.sign(&claims).unwrap();
    let base =
        json!({ "iss": "shop", "sub": "c1", "role": "customer", "iat": now(), "exp": now() + 60 });
    let with = |k: &str, v: serde_json::Value| {
        let mut c = base.clone();
        c[k] = v;
        sign(c)
    };
    let without = |k: &str| {
        let mut c = base.clone();
        c.as_object_mut().unwrap().remove(k);
        sign(c)
    };
    // The signature of `good` on other claims: a customer making themselves staff.
    let mut parts: Vec<&str> = good.split('.').collect();
    let staff_claims = B64.encode(
        serde_json::to_vec(&json!({ "iss": "shop", "sub": "c1", "role": "staff", "iat": now(), "exp": now() + 60 })).unwrap(),
    );
    parts[1] = &staff_claims;
    let tampered = parts.join(".");
    // `alg: none`, with the kid of a real key.
    let kid = keys.kids()[0].to_owned();
    let none = format!(
        "{}.{}.",
        B64.encode(json!({ "alg": "none", "kid": kid }).to_string()),
        B64.encode(base.to_string())
    );
    // HS256 keyed with the public key: the classic algorithm confusion.
    let public = B64
        .decode(keys.jwks()["keys"][0]["x"].as_str().unwrap())
        .unwrap();
    let mut hs = Header::new(jsonwebtoken::Algorithm::HS256);
    hs.kid = Some(kid.clone());
    let confused =
        jsonwebtoken::encode(&hs, &base, &EncodingKey::from_secret(&public).unwrap()).unwrap();
    let cases: Vec<(&str, String, Expect)> = vec![
        ("empty", String::new(), |e| *e == AuthError::Missing),
        ("garbage", "not.a.token".into(), |e| {
            matches!(e, AuthError::Malformed(_))
        }),
        ("huge", "a".repeat(MAX_TOKEN_BYTES + 1), |e| {
            matches!(e, AuthError::Malformed(_))
        }),
        (
            "another deployment's key",
            other
                .person("c1", Role::Customer, Duration::from_secs(60))
                .unwrap()
                .token,
            |e| matches!(e, AuthError::Rejected(_)),
        ),
        ("claims swapped under a signature", tampered, |e| {
            matches!(e, AuthError::Rejected(_))
        }),
        ("alg none", none, |e| {
            matches!(e, AuthError::Malformed(_) | AuthError::Rejected(_))
        }),
        ("HS256 with the public key", confused, |e| {
            matches!(e, AuthError::Rejected(_))
        }),
        ("expired", with("exp", json!(now() - 120)), |e| {
            *e == AuthError::Expired
        }),
        ("not yet valid", with("nbf", json!(now() + 600)), |e| {
            matches!(e, AuthError::Rejected(_))
        }),
        ("other issuer", with("iss", json!("evil")), |e| {
            matches!(e, AuthError::Rejected(_))
        }),
        // Found with the token fuzz target's claims property.
        (
            "the issuer among others",
            with("iss", json!(["shop", "evil"])),
            |e| matches!(e, AuthError::Rejected(_)),
        ),
        ("an audience", with("aud", json!("someone-else")), |e| {
            matches!(e, AuthError::Rejected(_))
        }),
        ("no exp", without("exp"), |e| {
            matches!(e, AuthError::Rejected(_))
        }),
        ("no sub", without("sub"), |e| {
            matches!(e, AuthError::Rejected(_))
        }),
        ("no role", without("role"), |e| {
            matches!(e, AuthError::Rejected(_))
        }),
        ("unknown role", with("role", json!("admin")), |e| {
            matches!(e, AuthError::Rejected(_))
        }),
        (
            "a subject of 257 bytes",
            with("sub", json!("x".repeat(257))),
            |e| matches!(e, AuthError::Rejected(_)),
        ),
        (
            "signed claims that are not an object",
            sign(json!(["c1", "customer"])),
            |e| matches!(e, AuthError::Malformed(_)),
        ),
        (
            "service without prefix",
            with("role", json!("service")),
            |e| matches!(e, AuthError::Rejected(_)),
        ),
        (
            "service caps not strings",
            {
                let mut c = base.clone();
                c["role"] = json!("service");
                c["sub"] = json!("service:billing");
                c["caps"] = json!([1]);
                sign(c)
            },
            |e| matches!(e, AuthError::Rejected(_)),
        ),
    ];
    for (what, token, expected) in cases {
        match verifier.verify(&token).await {
            Ok(p) => panic!("{what}: accepted as {p:?}"),
            Err(e) => assert!(expected(&e), "{what}: {e:?}"),
        }
    }
    assert!(verifier.verify(&good).await.is_ok());
    let longest = with("sub", json!("x".repeat(256)));
    assert!(
        verifier.verify(&longest).await.is_ok(),
        "a subject of 256 bytes"
    );
}

#[tokio::test]
async fn a_token_of_8_kib_is_read_and_a_longer_one_refused_unread() {
    let (minter, verifier) = deployment();
    let keys = minter.keys().current();
    let limit = 8 * 1024;
    // A bulky claim brings a genuine token to exactly the limit.
    let sized = |pad: usize| {
        keys.sign(&json!({ "iss": "shop", "sub": "c1", "role": "customer", "iat": now(), "exp": now() + 60, "pad": "x".repeat(pad) }))
            .unwrap()
    };
    // Three bytes of claims take four characters: start just short of it.
    let near = (limit - sized(0).len()) * 3 / 4 - 4;
    let token = (near..near + 16)
        .map(sized)
        .find(|t| t.len() >= limit)
        .filter(|t| t.len() == limit)
        .expect("a padding that makes the token exactly 8 KiB");
    assert!(verifier.verify(&token).await.is_ok());
    let longer = format!("{token}x");
    match verifier.verify(&longer).await {
        Err(AuthError::Malformed(e)) => assert!(e.contains("longer than"), "{e}"),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn a_cached_token_still_expires() {
    let (minter, verifier) = deployment();
    let keys = minter.keys().current();
    // Valid now only thanks to the leeway, and remembered as such.
    let token = keys
        .sign(&json!({ "iss": "shop", "sub": "c1", "role": "customer", "iat": now(), "exp": now() - 29 }))
        .unwrap();
    assert!(verifier.verify(&token).await.is_ok());
    assert!(
        verifier.verify(&token).await.is_ok(),
        "remembered, leeway included"
    );
    tokio::time::sleep(Duration::from_millis(2100)).await;
    assert_eq!(verifier.verify(&token).await, Err(AuthError::Expired));
}

#[tokio::test]
async fn a_verified_token_is_remembered_past_the_removal_of_its_key() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("identity.json");
    // Looking at the key file on every use, so a replaced key is gone at once.
    let keys = KeyStore::open_with_recheck(&path, Duration::ZERO).unwrap();
    let minter = Minter::new(keys.clone(), "shop");
    let verifier = Verifier::new(vec![Issuer::deployment("shop", keys)]);
    let person = |who: &str| {
        minter
            .person(who, Role::Customer, Duration::from_secs(60))
            .unwrap()
            .token
    };
    let (seen, unseen) = (person("c1"), person("c2"));
    assert!(verifier.verify(&seen).await.is_ok());
    SigningKeys::generate().unwrap().save(&path).unwrap();
    // Written within the same clock tick, the file could look unchanged.
    std::fs::File::options()
        .write(true)
        .open(&path)
        .unwrap()
        .set_modified(std::time::SystemTime::now() + Duration::from_secs(1))
        .unwrap();
    // Its signature is not checked again until it expires; a token of the
    // removed key not seen before is refused at once.
    assert!(verifier.verify(&seen).await.is_ok());
    assert!(matches!(
        verifier.verify(&unseen).await,
        Err(AuthError::Rejected(_))
    ));
    assert!(
        verifier.verify(&person("c3")).await.is_ok(),
        "the new key signs"
    );
}

/// Found with the token fuzz target's claims property, which asks every
/// token twice: a fractional `exp` was remembered as 0 (so the cached
/// answer was "expired"), and one near `u64::MAX` overflowed the leeway.
#[tokio::test]
async fn unusual_expiries_are_answered_the_same_from_the_cache() {
    let (minter, verifier) = deployment();
    let keys = minter.keys().current();
    for exp in [json!(now() as f64 + 600.5), json!(u64::MAX)] {
        let token = keys
            .sign(&json!({ "iss": "shop", "sub": "c1", "role": "customer", "exp": exp }))
            .unwrap();
        let first = verifier.verify(&token).await;
        assert!(first.is_ok(), "exp {exp}: {first:?}");
        assert_eq!(verifier.verify(&token).await, first, "exp {exp}");
    }
}

/// A JWKS endpoint on loopback serving `doc`, counting requests.
async fn serve_jwks(
    doc: std::sync::Arc<std::sync::Mutex<serde_json::Value>>,
) -> (String, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let hits = std::sync::Arc::new(AtomicUsize::new(0));
    let counted = hits.clone();
    let app = axum::Router::new().route(
        "/jwks.json",
        axum::routing::get(move || {
            let doc = doc.clone();
            let hits = counted.clone();
            async move {
                hits.fetch_add(1, Ordering::SeqCst);
                axum::Json(doc.lock().unwrap().clone())
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/jwks.json", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, hits)
}

#[tokio::test]
async fn remote_keys_are_fetched_once_and_refetched_for_a_rotation() {
    use std::sync::atomic::Ordering;
    let keys = KeyStore::in_memory(SigningKeys::generate().unwrap());
    let doc = std::sync::Arc::new(std::sync::Mutex::new(keys.current().jwks()));
    let (url, hits) = serve_jwks(doc.clone()).await;
    let refetch = Duration::from_millis(200);
    let mut issuer = Issuer::deployment_remote("shop", &url, reqwest::Client::new());
    issuer.keys = IssuerKeys::Remote(std::sync::Arc::new(
        RemoteJwks::new(url.clone(), reqwest::Client::new()).refetching_after(refetch),
    ));
    let verifier = Verifier::new(vec![issuer]);
    let minter = Minter::new(keys, "shop");
    for subject in ["a", "b", "c"] {
        let t = minter
            .person(subject, Role::Customer, Duration::from_secs(60))
            .unwrap();
        assert!(verifier.verify(&t.token).await.is_ok());
    }
    assert_eq!(hits.load(Ordering::SeqCst), 1, "keys are cached");
    // A token of a key the JWKS does not list: refused, and a flood of
    // such tokens costs at most one refetch per interval.
    let rotated = KeyStore::in_memory(SigningKeys::generate().unwrap());
    let stranger = Minter::new(rotated.clone(), "shop");
    let mut unknown = Vec::new();
    for subject in ["d", "e", "f"] {
        unknown.push(
            stranger
                .person(subject, Role::Customer, Duration::from_secs(60))
                .unwrap()
                .token,
        );
    }
    for t in &unknown {
        assert!(matches!(
            verifier.verify(t).await,
            Err(AuthError::Rejected(_))
        ));
    }
    assert_eq!(
        hits.load(Ordering::SeqCst),
        1,
        "no refetch within the interval"
    );
    // Once the issuer lists the new key, it verifies after the refetch interval.
    *doc.lock().unwrap() = rotated.current().jwks();
    tokio::time::sleep(refetch + Duration::from_millis(50)).await;
    for t in &unknown {
        assert!(verifier.verify(t).await.is_ok());
    }
    assert_eq!(hits.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn an_unreachable_issuer_is_unavailable_not_a_forgery() {
    let verifier = Verifier::new(vec![Issuer::deployment_remote(
        "shop",
        "http://127.0.0.1:9/jwks.json",
        reqwest::Client::new(),
    )]);
    let (minter, _) = deployment();
    let t = minter
        .person("c", Role::Customer, Duration::from_secs(60))
        .unwrap();
    assert!(matches!(
        verifier.verify(&t.token).await,
        Err(AuthError::Unavailable(_))
    ));
}

#[tokio::test]
async fn an_external_issuer_gives_people_roles_from_its_claim_never_services() {
    // An ES256 key, as Keycloak or Auth0 might use.
    let pair = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let point = pair.public_key_raw();
    let jwk = json!({
        "kty": "EC", "crv": "P-256", "use": "sig", "kid": "idp-1",
        "x": B64.encode(&point[1..33]), "y": B64.encode(&point[33..65]),
    });
    let doc = std::sync::Arc::new(std::sync::Mutex::new(json!({ "keys": [
        jwk,
        { "kty": "oct", "kid": "secret", "k": "c2VjcmV0" },
        { "kty": "OKP", "crv": "Ed25519", "kid": "short", "x": "AAAA" },
    ]})));
    let (url, _) = serve_jwks(doc).await;
    let (own_minter, _) = deployment();
    let own = own_minter.keys().clone();
    let verifier = Verifier::new(vec![
        Issuer::deployment("shop", own),
        Issuer::external(
            "https://idp.example",
            &url,
            "shop-api",
            "roles",
            reqwest::Client::new(),
        ),
    ]);
    let key = EncodingKey::from_ec_der(&pair.serialize_der());
    let mut header = Header::new(jsonwebtoken::Algorithm::ES256);
    header.kid = Some("idp-1".into());
    let sign = |claims: serde_json::Value| jsonwebtoken::encode(&header, &claims, &key).unwrap();
    let base = json!({ "iss": "https://idp.example", "aud": "shop-api", "sub": "u-42", "iat": now(), "exp": now() + 60 });
    let mut staff = base.clone();
    staff["roles"] = json!(["offline_access", "staff"]);
    assert_eq!(
        verifier.verify(&sign(staff.clone())).await.unwrap(),
        Principal::Person {
            subject: "u-42".into(),
            role: Role::Staff,
            issuer: "https://idp.example".into()
        }
    );
    let mut other_aud = staff.clone();
    other_aud["aud"] = json!("another-app");
    let mut no_aud = staff.clone();
    no_aud.as_object_mut().unwrap().remove("aud");
    let mut service = base.clone();
    service["roles"] = json!("service");
    service["sub"] = json!("service:billing");
    for (what, claims) in [
        ("another audience", other_aud),
        ("no audience", no_aud),
        ("a service", service),
    ] {
        assert!(
            matches!(
                verifier.verify(&sign(claims)).await,
                Err(AuthError::Rejected(_))
            ),
            "{what} accepted"
        );
    }
    let names: Vec<&str> = verifier.issuers().iter().map(|i| i.name.as_str()).collect();
    assert_eq!(names, ["shop", "https://idp.example"]);
    // Its issuer name does not let its tokens pass for ours, nor ours for its.
    let mut as_ours = staff;
    as_ours["iss"] = json!("shop");
    assert!(verifier.verify(&sign(as_ours)).await.is_err());
}
