//! Passwords and sign-in attempts: hashing and checking passwords with
//! Argon2id, and limiting how often anyone may try.
//!
//! Hashing is deliberately slow (the OWASP-recommended Argon2id cost, about
//! 19 MiB and tens of milliseconds of one core per hash), so it runs off the
//! async threads and only a few at once: a burst of sign-ups or sign-ins
//! waits briefly for a turn, then is answered 503 `overloaded`, instead of
//! starving every other request of CPU. An unknown email is checked against
//! a throwaway hash, so a wrong address and a wrong password take the same
//! time and get the same answer.
//!
//! Attempts are limited per email address and per client address (GCRA
//! from `governor`): guessing one customer's password from many addresses,
//! and many customers' from one address, both meet 429 with `Retry-After`.

use std::num::NonZeroU32;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use argon2::Argon2;
use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use governor::clock::Clock;
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use tokio::sync::Semaphore;

use crate::domain::Password;

/// How many sign-in attempts are allowed, per minute, and in a burst.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Attempts per email address per minute (and as a burst).
    pub per_email: NonZeroU32,
    /// Attempts (sign-ins and sign-ups) per client address per minute (and as a burst).
    pub per_address: NonZeroU32,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            per_email: NonZeroU32::new(5).expect("non-zero"),
            per_address: NonZeroU32::new(30).expect("non-zero"),
        }
    }
}

/// Hashes at most this many passwords at once.
const HASHING_AT_ONCE: usize = 2;
/// How long a request waits for a turn to hash before it is shed.
const HASHING_WAIT: Duration = Duration::from_secs(3);

/// Why a credential operation did not complete.
#[derive(Debug, thiserror::Error)]
pub enum Refused {
    /// Too many attempts for this email or client address; try again after this long.
    #[error("too many attempts; retry in {0:?}")]
    TooMany(Duration),
    /// Every hashing slot stayed busy: shed.
    #[error("too many password checks in progress")]
    Busy,
    /// The hasher failed (it does not on valid parameters).
    #[error(transparent)]
    Failed(#[from] anyhow::Error),
}

/// Password hashing and the attempt limits; cheap to clone.
#[derive(Clone)]
pub struct Credentials {
    inner: Arc<Inner>,
}

struct Inner {
    hashing: Semaphore,
    per_email: DefaultKeyedRateLimiter<String>,
    per_address: DefaultKeyedRateLimiter<String>,
    /// What an unknown email's password is checked against.
    decoy: OnceLock<String>,
}

fn quota(per_minute: NonZeroU32) -> Quota {
    Quota::per_minute(per_minute).allow_burst(per_minute)
}

impl Credentials {
    /// With `limits`.
    pub fn new(limits: Limits) -> Credentials {
        Credentials {
            inner: Arc::new(Inner {
                hashing: Semaphore::new(HASHING_AT_ONCE),
                per_email: RateLimiter::keyed(quota(limits.per_email)),
                per_address: RateLimiter::keyed(quota(limits.per_address)),
                decoy: OnceLock::new(),
            }),
        }
    }

    /// Counts one attempt from `address` (sign-up or sign-in).
    pub fn attempt_from(&self, address: &str) -> Result<(), Refused> {
        check(&self.inner.per_address, address)
    }

    /// Counts one sign-in attempt for `email` (normalized, or as sent when
    /// it does not parse).
    pub fn attempt_for(&self, email: &str) -> Result<(), Refused> {
        check(&self.inner.per_email, email)
    }

    /// Forgets limiter state that no longer limits anyone (run every minute
    /// or so), so the limiters hold only recent keys.
    pub fn forget_idle(&self) {
        for limiter in [&self.inner.per_email, &self.inner.per_address] {
            limiter.retain_recent();
            limiter.shrink_to_fit();
        }
    }

    /// Keys the limiters hold now.
    pub fn tracked(&self) -> usize {
        self.inner.per_email.len() + self.inner.per_address.len()
    }

    /// `password` as an Argon2id PHC string with a fresh salt.
    pub async fn hash(&self, password: Password) -> Result<String, Refused> {
        self.blocking(move || hash(&password)).await?
    }

    /// Whether `password` matches `stored` (a PHC string); `None` (no such
    /// customer, or one without a password) is checked against a decoy so
    /// it takes as long, and never matches.
    pub async fn verify(&self, password: String, stored: Option<String>) -> Result<bool, Refused> {
        let inner = self.inner.clone();
        self.blocking(move || {
            let (hash, real) = match stored.filter(|s| !s.is_empty()) {
                Some(s) => (s, true),
                None => (decoy(&inner)?.to_owned(), false),
            };
            let Ok(parsed) = PasswordHash::new(&hash) else {
                tracing::error!("a stored password hash does not parse");
                return Ok(false);
            };
            let ok = Argon2::default()
                .verify_password(password.as_bytes(), &parsed)
                .is_ok();
            Ok(ok && real)
        })
        .await?
    }

    /// Runs `work` on a blocking thread once a hashing slot is free.
    async fn blocking<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, Refused> {
        let permit = tokio::time::timeout(HASHING_WAIT, self.inner.hashing.acquire())
            .await
            .map_err(|_| Refused::Busy)?
            .map_err(|_| Refused::Busy)?;
        let result = tokio::task::spawn_blocking(work)
            .await
            .map_err(|e| anyhow::anyhow!("password hashing task: {e}"))?;
        drop(permit);
        Ok(result)
    }
}

fn check(limiter: &DefaultKeyedRateLimiter<String>, key: &str) -> Result<(), Refused> {
    limiter
        .check_key(&key.to_owned())
        .map_err(|not_until| Refused::TooMany(not_until.wait_time_from(limiter.clock().now())))
}

fn hash(password: &Password) -> Result<String, Refused> {
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| Refused::Failed(anyhow::anyhow!("hashing a password: {e}")))
}

fn decoy(inner: &Inner) -> Result<&str, Refused> {
    if let Some(d) = inner.decoy.get() {
        return Ok(d);
    }
    let throwaway = Password::parse("not a password anyone has").map_err(|e| {
        Refused::Failed(anyhow::anyhow!(
            "the decoy password is invalid: {}",
            e.reason
        ))
    })?;
    let made = hash(&throwaway)?;
    Ok(inner.decoy.get_or_init(|| made))
}

#[cfg(test)]
mod tests;
