//! Identity for people and services: the deployment's signing keys, the
//! tokens signed with them, and verifying a token locally, without a call
//! to whoever issued it.
//!
//! Identity (the capability) signs people's access tokens; every other
//! capability verifies them with identity's public keys, held in the same
//! process in the monolith or fetched once from identity's JWKS when split.
//! Services of a split system carry service tokens signed with the same
//! keys, naming the capabilities they run. A deployment may also trust an
//! external OIDC issuer for people.
//!
//! Layout:
//! - [`keys`]: the Ed25519 key file (private, rotatable), and [`KeyStore`],
//!   the handle a process signs and verifies with.
//! - [`token`]: the claims Seams puts in a token, and [`Minter`].
//! - [`verify`]: [`Verifier`], which trusts a list of [`Issuer`]s.
//! - [`jwks`]: public keys fetched from a JWKS URL and cached.
//! - [`credential`]: the token a service presents to another one.
//! - [`private`]: files only their owner can read.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> anyhow::Result<()> {
//! use std::time::Duration;
//! use seams_auth::{Issuer, KeyStore, Minter, SigningKeys, Verifier};
//! use seams_core::auth::{Principal, Role};
//!
//! let keys = KeyStore::in_memory(SigningKeys::generate()?);
//! let minter = Minter::new(keys.clone(), "shop");
//! let verifier = Verifier::new(vec![Issuer::deployment("shop", keys)]);
//! let minted = minter.person("sam", Role::Staff, Duration::from_secs(60))?;
//! assert!(verifier.verify(&minted.token).await?.has_role(Role::Staff));
//! # Ok(()) }
//! ```
#![warn(missing_docs)]
#![deny(unreachable_pub)]

pub mod credential;
pub mod jwks;
pub mod keys;
pub mod private;
pub mod token;
pub mod verify;

pub use credential::{Credential, PEER_HEADER, SelfMinted, TokenFile};
pub use keys::{KeyStore, SigningKeys};
pub use token::{Claims, Minted, Minter};
pub use verify::{AuthError, Issuer, IssuerKeys, Verifier};
