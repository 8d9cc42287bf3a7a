//! Fuzzes the token verifier, the JWKS parser and the key file parser:
//! what a client, an issuer's JWKS endpoint or a hand-edited key file
//! could hand them.
//!
//! The first byte picks a mode (`'0'`…`'4'` in the seeds, any byte works):
//! - `0` raw: the rest is a bearer token, verified against the deployment's
//!   key. Nothing is accepted that does not carry a real signature of that
//!   key, checked independently ([`seams_fuzz::signed_claims`]).
//! - `1` mutate: the rest edits a real token (flipped, inserted or removed
//!   bytes, swapped or replaced segments); an accepted result must carry
//!   exactly the minted claims, and the unedited token must be accepted.
//! - `2` claims: the rest is a JSON claims set, signed with the real key;
//!   whatever is accepted must follow the rules the verifier promises
//!   (issuer, subject, expiry, audience, roles, service names), well-formed
//!   claims must be accepted, and asking again (from the cache) must answer
//!   the same.
//! - `3` JWKS: the rest is a JWKS document, parsed as a remote issuer's;
//!   no symmetric key is taken, and only the real public key verifies a
//!   real token.
//! - `4` key file: the rest is the deployment's private key file; a set
//!   that loads publishes no private half and verifies what it signs.

#![no_main]

use std::sync::OnceLock;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use arbitrary::{Arbitrary, Unstructured};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use jsonwebtoken::Validation;
use libfuzzer_sys::fuzz_target;
use seams_auth::{AuthError, Issuer, KeyStore, Minter, SigningKeys, Verifier};
use seams_core::auth::{Principal, Role};
use seams_fuzz::{ISSUER, signed_claims};
use serde_json::{Map, Value};

/// Clock skew the verifier allows on `exp` and `nbf`.
const LEEWAY: u64 = 30;

struct Fixture {
    runtime: tokio::runtime::Runtime,
    keys: KeyStore,
    verifier: Verifier,
    /// A customer's token and a service's, minted once per process.
    minted: [(String, Principal); 2],
}

fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let keys = SigningKeys::parse(seams_fuzz::key_file().as_bytes())
            .expect("the fixture key file parses");
        let keys = KeyStore::in_memory(keys);
        let minter = Minter::new(keys.clone(), ISSUER);
        let hour = Duration::from_secs(3600);
        let person = minter
            .person("ann", Role::Customer, hour)
            .expect("minting with the fixture key");
        let service = minter
            .service("billing", &["billing".to_owned()], hour)
            .expect("minting with the fixture key");
        Fixture {
            runtime: tokio::runtime::Builder::new_current_thread()
                .build()
                .expect("a current-thread runtime"),
            verifier: Verifier::new(vec![Issuer::deployment(ISSUER, keys.clone())]),
            keys,
            minted: [
                (
                    person.token,
                    Principal::Person {
                        subject: "ann".into(),
                        role: Role::Customer,
                        issuer: ISSUER.into(),
                    },
                ),
                (
                    service.token,
                    Principal::Service {
                        name: "billing".into(),
                        capabilities: vec!["billing".into()],
                    },
                ),
            ],
        }
    })
}

fn verify(verifier: &Verifier, token: &str) -> Result<Principal, AuthError> {
    fixture().runtime.block_on(verifier.verify(token))
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    match mode.wrapping_sub(b'0') % 5 {
        0 => raw(rest),
        1 => mutate(rest),
        2 => claims(rest),
        3 => jwks(rest),
        _ => key_file(rest),
    }
});

/// Whatever is accepted is genuinely signed by the key, with claims that
/// name the principal the verifier answered.
fn raw(rest: &[u8]) {
    let Ok(token) = std::str::from_utf8(rest) else {
        return;
    };
    let now = now();
    let answer = verify(&fixture().verifier, token);
    if answer.is_ok() {
        let Some(claims) = signed_claims(token) else {
            panic!("accepted without a real signature: {token:?}");
        };
        judge(&claims, now, &answer);
    }
}

#[derive(Debug, Arbitrary)]
struct Mutation {
    service: bool,
    edits: Vec<Edit>,
}

#[derive(Debug, Arbitrary)]
enum Edit {
    Flip {
        at: u16,
        bit: u8,
    },
    Set {
        at: u16,
        byte: u8,
    },
    Insert {
        at: u16,
        byte: u8,
    },
    Remove {
        at: u16,
    },
    Truncate {
        len: u16,
    },
    SwapSegments {
        a: u8,
        b: u8,
    },
    /// Replaces a segment with the base64url of `json` (a forged header or claims).
    Forge {
        segment: u8,
        json: String,
    },
    /// Replaces a segment with the other minted token's.
    Splice {
        segment: u8,
    },
}

fn apply(token: &mut Vec<u8>, edit: &Edit, other: &str) {
    let at = |i: u16, len: usize| usize::from(i) % len.max(1);
    match *edit {
        Edit::Flip { at: i, bit } if !token.is_empty() => {
            let i = at(i, token.len());
            token[i] ^= 1 << (bit % 8);
        }
        Edit::Set { at: i, byte } if !token.is_empty() => {
            let i = at(i, token.len());
            token[i] = byte;
        }
        Edit::Insert { at: i, byte } => {
            let i = at(i, token.len() + 1);
            token.insert(i, byte);
        }
        Edit::Remove { at: i } if !token.is_empty() => {
            let i = at(i, token.len());
            token.remove(i);
        }
        Edit::Truncate { len } => token.truncate(usize::from(len)),
        Edit::SwapSegments { a, b } => {
            let mut segments = split(token);
            let n = segments.len();
            segments.swap(usize::from(a) % n, usize::from(b) % n);
            *token = segments.join(&b'.');
        }
        Edit::Forge { segment, ref json } => {
            replace(token, segment, B64.encode(json).into_bytes());
        }
        Edit::Splice { segment } => {
            let theirs = split(other.as_bytes());
            let i = usize::from(segment) % theirs.len();
            replace(token, segment, theirs[i].clone());
        }
        _ => {}
    }
}

fn split(token: &[u8]) -> Vec<Vec<u8>> {
    token.split(|b| *b == b'.').map(<[u8]>::to_vec).collect()
}

fn replace(token: &mut Vec<u8>, segment: u8, with: Vec<u8>) {
    let mut segments = split(token);
    let n = segments.len();
    segments[usize::from(segment) % n] = with;
    *token = segments.join(&b'.');
}

/// An edited token is refused, or it is the minted one, claims and all.
fn mutate(rest: &[u8]) {
    let Ok(mutation) = Mutation::arbitrary_take_rest(Unstructured::new(rest)) else {
        return;
    };
    let f = fixture();
    let (mine, other) = if mutation.service {
        (&f.minted[1], &f.minted[0])
    } else {
        (&f.minted[0], &f.minted[1])
    };
    let minted = &mine.0;
    let mut token = minted.clone().into_bytes();
    for edit in &mutation.edits {
        apply(&mut token, edit, &other.0);
    }
    let Ok(token) = String::from_utf8(token) else {
        return;
    };
    match verify(&f.verifier, &token) {
        // Edits can rebuild the other minted token, never a third one.
        Ok(accepted) => {
            let claims = signed_claims(&token);
            assert!(
                f.minted.iter().any(|(minted, principal)| {
                    claims.is_some() && claims == signed_claims(minted) && accepted == *principal
                }),
                "accepted {token:?} as {accepted:?}, which was never minted"
            );
        }
        Err(e) => assert!(token != *minted, "the minted token was refused: {e}"),
    }
}

/// What the verifier must answer for a token carrying `claims`, signed by
/// the deployment's key, at `now`.
#[derive(Debug, PartialEq)]
enum Judgement {
    Accept(Principal),
    Refuse,
    /// Within two minutes of `exp` or `nbf`, where the clock decides:
    /// either answer is fine, as long as an acceptance names the right principal.
    Either,
}

fn expected(claims: &Map<String, Value>, now: u64) -> Judgement {
    let close = |t: u64| t.abs_diff(now) < 2 * LEEWAY + 60;
    // RFC 7519 NumericDate: seconds, possibly with a fraction.
    let seconds = |v: &Value| match v {
        Value::Number(n) => n.as_u64().or_else(|| {
            n.as_f64()
                .filter(|f| f.is_finite() && *f >= 0.0 && *f < u64::MAX as f64)
                .map(|f| f.round() as u64)
        }),
        _ => None,
    };
    // A claim that is `null` is absent.
    let claim = |name: &str| claims.get(name).filter(|v| !v.is_null());
    let Some(exp) = claim("exp").and_then(seconds) else {
        return Judgement::Refuse;
    };
    if close(exp) {
        return Judgement::Either;
    }
    if exp < now {
        return Judgement::Refuse;
    }
    if let Some(nbf) = claim("nbf") {
        match seconds(nbf) {
            Some(nbf) if close(nbf) => return Judgement::Either,
            Some(nbf) if nbf <= now => {}
            _ => return Judgement::Refuse,
        }
    }
    // No audience is expected, so a token that names one was meant for somebody else.
    if claim("aud").is_some() || claim("iss").and_then(Value::as_str) != Some(ISSUER) {
        return Judgement::Refuse;
    }
    let Some(sub) = claim("sub").and_then(Value::as_str) else {
        return Judgement::Refuse;
    };
    if sub.is_empty() || sub.len() > 256 {
        return Judgement::Refuse;
    }
    let roles: Vec<&str> = match claims.get("role") {
        Some(Value::String(s)) => vec![s.as_str()],
        Some(Value::Array(a)) => a.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    };
    if roles == ["service"] {
        let Some(name) = sub.strip_prefix("service:") else {
            return Judgement::Refuse;
        };
        let capabilities = match claims.get("caps") {
            None => Some(Vec::new()),
            Some(Value::Array(a)) => a
                .iter()
                .map(|c| c.as_str().map(str::to_owned))
                .collect::<Option<Vec<_>>>(),
            Some(_) => None,
        };
        return match capabilities {
            Some(capabilities) => Judgement::Accept(Principal::Service {
                name: name.to_owned(),
                capabilities,
            }),
            None => Judgement::Refuse,
        };
    }
    match roles.iter().find_map(|r| Role::parse(r)) {
        Some(role) => Judgement::Accept(Principal::Person {
            subject: sub.to_owned(),
            role,
            issuer: ISSUER.to_owned(),
        }),
        None => Judgement::Refuse,
    }
}

/// Checks the verifier's `answer` about a token carrying `claims` (signed
/// by the real key) against what the rules say at `now`.
fn judge(claims: &Map<String, Value>, now: u64, answer: &Result<Principal, AuthError>) {
    match (expected(claims, now), answer) {
        (Judgement::Accept(want), Ok(got)) => assert_eq!(&want, got, "{claims:?}"),
        (Judgement::Accept(want), Err(e)) => panic!("refused {claims:?} ({e}), expected {want:?}"),
        (Judgement::Refuse, Ok(got)) => panic!("accepted {claims:?} as {got:?}"),
        (Judgement::Either, Ok(got)) => assert!(
            matches!(expected_ignoring_time(claims), Judgement::Accept(want) if &want == got),
            "accepted {claims:?} as {got:?}"
        ),
        (Judgement::Refuse | Judgement::Either, Err(_)) => {}
    }
}

/// Claims signed with the real key are judged by the rules, twice: the
/// second answer comes from the verifier's cache and must be the first.
fn claims(rest: &[u8]) {
    let Ok(Value::Object(claims)) = serde_json::from_slice::<Value>(rest) else {
        return;
    };
    let f = fixture();
    let Ok(token) = f.keys.current().sign(&claims) else {
        return;
    };
    let now = now();
    let first = verify(&f.verifier, &token);
    let second = verify(&f.verifier, &token);
    judge(&claims, now, &first);
    if expected(&claims, now) != Judgement::Either {
        // The same answer, up to the wording of a refusal: which missing
        // claim is named first varies.
        let kind = |answer: &Result<Principal, AuthError>| {
            answer.as_ref().map_err(std::mem::discriminant).cloned()
        };
        assert_eq!(
            kind(&first),
            kind(&second),
            "asked twice about {claims:?}: {first:?}, then {second:?}"
        );
    }
}

/// [`expected`] as if `exp` and `nbf` were comfortably valid.
fn expected_ignoring_time(claims: &Map<String, Value>) -> Judgement {
    let mut claims = claims.clone();
    claims.insert("exp".into(), Value::from(u64::from(u32::MAX)));
    claims.remove("nbf");
    expected(&claims, 1)
}

/// A remote issuer's key set: asymmetric signature keys only, and only the
/// real public key verifies a real token.
fn jwks(rest: &[u8]) {
    let Ok(doc) = serde_json::from_slice::<Value>(rest) else {
        return;
    };
    let Ok(keys) = seams_auth::jwks::parse(&doc) else {
        return;
    };
    let raw = doc.get("keys").and_then(Value::as_array);
    let real = B64.encode(seams_fuzz::public_key().to_bytes());
    for (kid, key) in &keys {
        // A JWKS may list a key id twice; one of those JWKs was taken.
        let listed: Vec<&Value> = raw
            .into_iter()
            .flatten()
            .filter(|k| k.get("kid").and_then(Value::as_str) == Some(kid))
            .collect();
        assert!(
            listed.iter().any(|k| matches!(
                k.get("kty").and_then(Value::as_str),
                Some("OKP" | "RSA" | "EC")
            )),
            "took {kid:?}, listed as {listed:?}"
        );
        assert!(!key.algorithms.is_empty());
        let mut validation = Validation::new(key.algorithms[0]);
        validation.algorithms = key.algorithms.clone();
        validation.set_issuer(&[ISSUER]);
        for (token, _) in &fixture().minted {
            let verified = jsonwebtoken::decode::<Map<String, Value>>(token, &key.key, &validation);
            if verified.is_ok() {
                assert!(
                    listed
                        .iter()
                        .any(|k| k.get("x").and_then(Value::as_str) == Some(real.as_str())),
                    "{kid:?} verifies the real key's tokens: {listed:?}"
                );
            }
        }
    }
}

/// A key file that loads: its ids are unique, its public set leaks no
/// private half and lists every key, and it verifies what it signs.
fn key_file(rest: &[u8]) {
    let Ok(keys) = SigningKeys::parse(rest) else {
        return;
    };
    let kids: Vec<String> = keys.kids().into_iter().map(str::to_owned).collect();
    assert!(!kids.is_empty());
    let public = keys.jwks();
    let Some(published) = public.get("keys").and_then(Value::as_array) else {
        panic!("our JWKS has no key array: {public}");
    };
    assert!(
        published.iter().all(|k| k.get("d").is_none()),
        "a private half is published"
    );
    let usable = match seams_auth::jwks::parse(&public) {
        Ok(usable) => usable,
        Err(e) => panic!("our own JWKS does not parse ({e}): {public}"),
    };
    let mut listed: Vec<&String> = usable.keys().collect();
    listed.sort();
    let mut all: Vec<&String> = kids.iter().collect();
    all.sort();
    all.dedup();
    assert_eq!(listed, all, "every key is published, once");
    assert_eq!(all.len(), kids.len(), "key ids are unique");

    let store = KeyStore::in_memory(keys);
    let minted = match Minter::new(store.clone(), ISSUER).person(
        "ann",
        Role::Staff,
        Duration::from_secs(60),
    ) {
        Ok(minted) => minted,
        Err(e) => panic!("a loaded key set does not sign: {e:#}"),
    };
    let verifier = Verifier::new(vec![Issuer::deployment(ISSUER, store)]);
    let answer = verify(&verifier, &minted.token);
    assert!(
        matches!(&answer, Ok(p) if p.has_role(Role::Staff)),
        "a loaded key set refuses what it signed: {answer:?}"
    );
}
