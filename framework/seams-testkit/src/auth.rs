//! Tokens for tests: a throwaway issuer whose keys live in memory, and the
//! verifier that trusts it, so a route test presents the same kind of token
//! a real client would.

use std::sync::Arc;
use std::time::Duration;

use seams_auth::{Issuer, KeyStore, Minter, SigningKeys, Verifier};
use seams_core::auth::Role;

/// The issuer name test tokens carry.
pub const ISSUER: &str = "seams-test";

/// A throwaway issuer and the verifier that trusts it; cheap to clone.
#[derive(Clone)]
pub struct TestIssuer {
    minter: Minter,
    verifier: Arc<Verifier>,
}

impl Default for TestIssuer {
    fn default() -> Self {
        TestIssuer::new()
    }
}

impl TestIssuer {
    /// Fresh keys in memory.
    pub fn new() -> TestIssuer {
        let keys = KeyStore::in_memory(SigningKeys::generate().expect("generating a test key"));
        TestIssuer {
            minter: Minter::new(keys.clone(), ISSUER),
            verifier: Arc::new(Verifier::new(vec![Issuer::deployment(ISSUER, keys)])),
        }
    }

    /// What mints its tokens (what identity signs with in a test).
    pub fn minter(&self) -> Minter {
        self.minter.clone()
    }

    /// The verifier that trusts it.
    pub fn verifier(&self) -> Arc<Verifier> {
        self.verifier.clone()
    }

    fn person(&self, subject: &str, role: Role) -> String {
        self.minter
            .person(subject, role, Duration::from_secs(600))
            .expect("minting a test token")
            .token
    }

    /// A token of the customer `id`.
    pub fn customer(&self, id: &str) -> String {
        self.person(id, Role::Customer)
    }

    /// A staff member's token.
    pub fn staff(&self) -> String {
        self.person("test-staff", Role::Staff)
    }

    /// An operator's token.
    pub fn operator(&self) -> String {
        self.person("test-operator", Role::Operator)
    }

    /// The token of a service named `name` running `capabilities`.
    pub fn service(&self, name: &str, capabilities: &[&str]) -> String {
        let caps: Vec<String> = capabilities.iter().map(|c| c.to_string()).collect();
        self.minter
            .service(name, &caps, Duration::from_secs(600))
            .expect("minting a test token")
            .token
    }
}
