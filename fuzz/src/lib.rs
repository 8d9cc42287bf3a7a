//! What the fuzz targets share: the deployment key they verify with, an
//! independent check of what a token really says, and the seed inputs
//! checked in under `fuzz/corpus/`.
//!
//! The key is made from a fixed seed, so a token minted once (the seed
//! corpus holds a few, valid until 2100) still verifies in every later run;
//! it signs nothing but fuzz inputs and no deployment trusts it.
//!
//! A fuzz target must not judge the verifier with the verifier's own logic,
//! so [`signed_claims`] checks a token the long way round, with
//! `ed25519-dalek` and strict base64url directly: whatever the verifier
//! accepts must pass it, with the same claims.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use ed25519_dalek::{Signature, SigningKey, VerifyingKey};
use serde_json::{Map, Value, json};

pub mod seeds;

/// The `iss` of every token the targets mint and trust.
pub const ISSUER: &str = "seams-fuzz";
/// The id of the fixture key.
pub const KID: &str = "fuzz-key-1";
/// Seed of the fixture key: a constant, not a secret.
const SEED: [u8; 32] = [0x5e; 32];

/// The fixture key's public half.
pub fn public_key() -> VerifyingKey {
    SigningKey::from_bytes(&SEED).verifying_key()
}

/// The fixture key as the deployment's private key file (a JWK set, the
/// format `SigningKeys::parse` reads).
pub fn key_file() -> String {
    json!({
        "keys": [{
            "kty": "OKP",
            "crv": "Ed25519",
            "kid": KID,
            "x": B64.encode(public_key().to_bytes()),
            "d": B64.encode(SEED),
            // Long published, so it is the key that signs.
            "created_at": 0,
        }]
    })
    .to_string()
}

/// The claims of `token` if, checked without the verifier, it is three
/// strict base64url segments, its header names EdDSA and the fixture key,
/// and its signature verifies under the fixture key; `None` otherwise.
pub fn signed_claims(token: &str) -> Option<Map<String, Value>> {
    let mut parts = token.split('.');
    let (header, payload, signature) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() {
        return None;
    }
    let head: Value = serde_json::from_slice(&B64.decode(header).ok()?).ok()?;
    if head.get("alg")?.as_str()? != "EdDSA" || head.get("kid")?.as_str()? != KID {
        return None;
    }
    let signature = Signature::from_slice(&B64.decode(signature).ok()?).ok()?;
    public_key()
        .verify_strict(format!("{header}.{payload}").as_bytes(), &signature)
        .ok()?;
    serde_json::from_slice(&B64.decode(payload).ok()?).ok()
}
