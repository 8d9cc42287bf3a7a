//! What authentication costs in CPU, counted in instructions: one kind of
//! operation, done exactly `COUNT` times after a fixed setup, so that
//! `bench/auth-cost.sh` can run it under callgrind at two counts and divide
//! the difference in instructions by the difference in counts. Wall-clock
//! time on the shared 2-core VM moves by tens of percent; instruction
//! counts do not, and the subtraction removes the process's start, the
//! setup and the teardown.
//!
//! The setup of an operation never depends on `COUNT`, or it would not
//! cancel: operations that need tokens nobody has verified yet
//! (`verify-new`, `request-new`, and their baseline `ed25519-verify`) mint
//! the same fixed pool of [`POOL`] tokens whatever the count, and use the
//! first `COUNT` of them. Every operation is done once more before the
//! counted ones (a warm-up outside the count), so one-time work (the first
//! allocation of a cache shard, a route's first metrics series) stays in
//! the setup.
//!
//! The operations, each through the crates' real APIs:
//! - `mint`: [`Minter::person`], a customer's 15-minute token, as identity
//!   signs one at sign-in (and `shop token` and the supervisor do).
//! - `ed25519-sign`: a bare `ed25519-dalek` signature over a message as
//!   long as a token's signing input, with a key parsed once: `mint`'s floor.
//! - `verify-new`: [`Verifier::verify`] of a token it has not seen
//!   (SHA-256 cache key, cache miss, header, signature and claim checks,
//!   cache insert).
//! - `ed25519-verify`: the bare signature check of the same tokens, with
//!   the key parsed once: `verify-new`'s floor.
//! - `verify-cached`: [`Verifier::verify`] of the token it verified last (a
//!   cache hit).
//! - `json-claims`: `serde_json` parsing a token's claims into a map, as
//!   any JWT library must once per token: what a cache hit should stay under.
//! - `sha256-token`: SHA-256 of a token, the cache key every verification
//!   computes first.
//! - `request-bare`: `GET` of a JSON route through a bare axum router,
//!   in-process (`tower::ServiceExt::oneshot`, no socket, no hyper).
//! - `request-open`: the same route through Seams' public router
//!   (`seams_http::app::public`: edge, limits, guard) declared open, no token.
//! - `request-cached` / `request-new`: the same route declared for
//!   customers, with a bearer token the verifier has seen / has not seen.
//! - `argon2-verify`: identity's [`Credentials::verify`] of a right
//!   password against an Argon2id hash made with identity's parameters.
//!
//! No tracing subscriber is installed, so the requests' spans cost what a
//! disabled span costs; `shop` installs one. Nothing here uses the network.

use std::hint::black_box;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, ensure};
use axum::Router;
use axum::body::Body;
use axum::http::{HeaderValue, Request, StatusCode, header};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use clap::{Parser, ValueEnum};
use ed25519_dalek::{Signature, Signer, SigningKey, Verifier as _, VerifyingKey};
use http_body_util::BodyExt;
use identity::credentials::{Credentials, Limits};
use identity::domain::Password;
use seams_auth::{Issuer, KeyStore, Minter, SigningKeys, Verifier};
use seams_core::auth::{Access, Role};
use seams_http::routes::Doors;
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};
use tower::ServiceExt;

/// Tokens minted in the setup of the operations that need unseen ones,
/// whatever the count: the largest count those operations accept. Below
/// the verifier's cache size (16,384), so no verification evicts another.
const POOL: usize = 4_000;

/// The issuer name a shop's tokens carry by default.
const ISSUER: &str = "seams";

/// A customer token's lifetime by default (`token_ttl_secs`).
const TTL: Duration = Duration::from_secs(900);

/// The route every request operation asks for, under its capability prefix.
const PATH: &str = "/bench/ping";

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Op {
    Mint,
    Ed25519Sign,
    VerifyNew,
    Ed25519Verify,
    VerifyCached,
    JsonClaims,
    Sha256Token,
    RequestBare,
    RequestOpen,
    RequestCached,
    RequestNew,
    Argon2Verify,
}

#[derive(Debug, Parser)]
#[command(
    name = "auth-cost",
    about = "Does COUNT operations of one kind after a fixed setup, for callgrind"
)]
struct Args {
    /// The operation.
    #[arg(value_enum)]
    op: Op,
    /// How many times to do it (the warm-up one not counted).
    count: usize,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    // What the CPU offers decides which SHA-256 and curve code runs, and
    // callgrind's simulated CPU offers less than the real one: the
    // instruction counts are of the paths these lines name.
    #[cfg(target_arch = "x86_64")]
    eprintln!(
        "cpu features seen: sha={} avx2={} avx512ifma={}",
        std::arch::is_x86_feature_detected!("sha"),
        std::arch::is_x86_feature_detected!("avx2"),
        std::arch::is_x86_feature_detected!("avx512ifma"),
    );
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("building a current-thread runtime")?;
    runtime.block_on(run(args.op, args.count))?;
    eprintln!("{:?}: {} done", args.op, args.count);
    Ok(())
}

/// The deployment's keys, its minter and a verifier that trusts them, as
/// the process running identity holds them (`app/shop/src/trust.rs`).
struct Deployment {
    keys: KeyStore,
    minter: Minter,
    verifier: Arc<Verifier>,
}

impl Deployment {
    fn new() -> anyhow::Result<Deployment> {
        let keys = KeyStore::in_memory(SigningKeys::generate()?);
        Ok(Deployment {
            minter: Minter::new(keys.clone(), ISSUER),
            verifier: Arc::new(Verifier::new(vec![Issuer::deployment(
                ISSUER,
                keys.clone(),
            )])),
            keys,
        })
    }

    /// A customer's token; `i` makes it distinct, at a fixed length (a
    /// customer id is a hyphenated UUID).
    fn token(&self, i: usize) -> anyhow::Result<String> {
        let subject = format!("00000000-0000-4000-8000-{i:012}");
        Ok(self.minter.person(&subject, Role::Customer, TTL)?.token)
    }

    /// [`POOL`] distinct tokens, none verified yet.
    fn pool(&self) -> anyhow::Result<Vec<String>> {
        (0..POOL).map(|i| self.token(i)).collect()
    }

    /// The public key tokens verify with, parsed once.
    fn verifying_key(&self) -> anyhow::Result<VerifyingKey> {
        let jwks = self.keys.current().jwks();
        let x = jwks["keys"][0]["x"]
            .as_str()
            .context("the key set has no public key")?;
        let bytes: [u8; 32] = B64
            .decode(x)
            .ok()
            .and_then(|b| b.try_into().ok())
            .context("the public key is not 32 bytes")?;
        Ok(VerifyingKey::from_bytes(&bytes)?)
    }
}

/// A token's signing input (`header.payload`) and its signature.
fn signed_parts(token: &str) -> anyhow::Result<(Vec<u8>, Signature)> {
    let (input, signature) = token.rsplit_once('.').context("a JWT has three parts")?;
    let signature = Signature::from_slice(&B64.decode(signature)?)?;
    Ok((input.as_bytes().to_vec(), signature))
}

/// A token's claims, the JSON text its payload encodes.
fn claims_json(token: &str) -> anyhow::Result<Vec<u8>> {
    let payload = token.split('.').nth(1).context("a JWT has three parts")?;
    Ok(B64.decode(payload)?)
}

async fn run(op: Op, count: usize) -> anyhow::Result<()> {
    let needs_pool = matches!(op, Op::VerifyNew | Op::Ed25519Verify | Op::RequestNew);
    ensure!(
        !needs_pool || count < POOL,
        "{op:?} takes at most {} (one pool token is the warm-up)",
        POOL - 1
    );
    let deployment = Deployment::new()?;
    // What SHA-256, base64 and the JSON parse are fed scales with this.
    eprintln!("a token is {} bytes", deployment.token(0)?.len());
    let pool = if needs_pool {
        deployment.pool()?
    } else {
        Vec::new()
    };
    match op {
        Op::Mint => {
            for i in 0..=count {
                black_box(deployment.token(i)?);
            }
        }
        Op::Ed25519Sign => {
            let key = SigningKey::from_bytes(&[7; 32]);
            let (input, _) = signed_parts(&deployment.token(0)?)?;
            for _ in 0..=count {
                black_box(key.sign(black_box(&input)));
            }
        }
        Op::VerifyNew => {
            for token in &pool[..=count] {
                black_box(deployment.verifier.verify(token).await?);
            }
        }
        Op::Ed25519Verify => {
            let key = deployment.verifying_key()?;
            let parts = pool
                .iter()
                .map(|t| signed_parts(t))
                .collect::<anyhow::Result<Vec<_>>>()?;
            for (input, signature) in &parts[..=count] {
                key.verify(input, signature)?;
            }
        }
        Op::VerifyCached => {
            let token = deployment.token(0)?;
            for _ in 0..=count {
                black_box(deployment.verifier.verify(black_box(&token)).await?);
            }
        }
        Op::JsonClaims => {
            let claims = claims_json(&deployment.token(0)?)?;
            for _ in 0..=count {
                black_box(serde_json::from_slice::<Map<String, Value>>(black_box(
                    &claims,
                ))?);
            }
        }
        Op::Sha256Token => {
            let token = deployment.token(0)?;
            for _ in 0..=count {
                black_box(Sha256::digest(black_box(token.as_bytes())));
            }
        }
        Op::RequestBare => {
            let app = Router::new().route(PATH, axum::routing::get(ping));
            requests(&app, &[], count).await?;
        }
        Op::RequestOpen => {
            requests(&seams(&deployment, Access::Open), &[], count).await?;
        }
        Op::RequestCached => {
            let token = bearer(&deployment.token(0)?)?;
            let app = seams(&deployment, Access::People(&[Role::Customer]));
            requests(&app, &[token], count).await?;
        }
        Op::RequestNew => {
            let tokens = pool
                .iter()
                .map(|t| bearer(t))
                .collect::<anyhow::Result<Vec<_>>>()?;
            let app = seams(&deployment, Access::People(&[Role::Customer]));
            requests(&app, &tokens[..=count], count).await?;
        }
        Op::Argon2Verify => {
            let credentials = Credentials::new(Limits::default());
            let password = "correct horse battery staple";
            let parsed = Password::parse(password)
                .map_err(|e| anyhow::anyhow!("the password is invalid: {}", e.reason))?;
            let stored = credentials.hash(parsed).await?;
            for _ in 0..=count {
                let ok = credentials
                    .verify(password.to_owned(), Some(stored.clone()))
                    .await?;
                ensure!(ok, "the right password did not verify");
            }
        }
    }
    Ok(())
}

/// The handler of every request operation: the body Seams' `/healthz` answers.
async fn ping() -> axum::Json<Value> {
    axum::Json(json!({ "status": "ok" }))
}

/// Seams' public router with one `GET` route, [`PATH`], for `access`.
fn seams(deployment: &Deployment, access: Access) -> Router {
    // A framework door, bounded by the edge alone: what these figures
    // measured before routes carried a declaration.
    let routes = Doors::new().get("/ping", access, ping).with_state(());
    seams_http::app::public(
        vec![("bench", routes)],
        Router::new(),
        deployment.verifier.clone(),
    )
}

fn bearer(token: &str) -> anyhow::Result<HeaderValue> {
    Ok(HeaderValue::from_str(&format!("Bearer {token}"))?)
}

/// A warm-up request, then `count` more, each answered 200 with its whole
/// body read; request `i` carries `tokens[i]` (all of them the one token
/// when there is one; none when there are none).
async fn requests(app: &Router, tokens: &[HeaderValue], count: usize) -> anyhow::Result<()> {
    for i in 0..=count {
        let mut request = Request::get(PATH);
        if let Some(token) = tokens.get(i).or(tokens.first()) {
            request = request.header(header::AUTHORIZATION, token.clone());
        }
        let response = app.clone().oneshot(request.body(Body::empty())?).await?;
        ensure!(
            response.status() == StatusCode::OK,
            "request {i} answered {}",
            response.status()
        );
        black_box(response.into_body().collect().await?.to_bytes());
    }
    Ok(())
}
