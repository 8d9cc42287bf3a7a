//! What a service presents when it calls another service or reads its feed:
//! its own service token, sent in the `X-Seams-Peer` header (a person's
//! token, when there is one, stays in `Authorization`).
//!
//! A service gets its token from whoever deploys it: `shop up --split`
//! mints one per service and keeps it fresh in a 0600 file (as Kubernetes
//! refreshes a projected service-account token), and a deployment can do
//! the same with `shop token --role service`. [`TokenFile`] rereads the file
//! when it changes. A process that holds the deployment's keys (the split
//! gateway) mints its own with [`SelfMinted`].

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::Context;

use crate::token::Minter;

/// The header a service token travels in.
pub const PEER_HEADER: &str = "x-seams-peer";

/// A service's current token.
pub trait Credential: Send + Sync + 'static {
    /// The token to send now.
    fn token(&self) -> anyhow::Result<Arc<str>>;
}

/// How often a [`TokenFile`] looks at its file for a new token at most.
const RECHECK: Duration = Duration::from_secs(5);

/// A token kept in a private file by whoever deployed this service.
pub struct TokenFile {
    path: PathBuf,
    state: RwLock<Option<Loaded>>,
    /// [`RECHECK`], shorter in tests.
    recheck: Duration,
}

struct Loaded {
    token: Arc<str>,
    modified: Option<SystemTime>,
    checked: Instant,
}

impl TokenFile {
    /// The token in `path` (read now, so a missing or public file fails at start).
    pub fn open(path: &Path) -> anyhow::Result<TokenFile> {
        TokenFile::with_recheck(path, RECHECK)
    }

    pub(crate) fn with_recheck(path: &Path, recheck: Duration) -> anyhow::Result<TokenFile> {
        let file = TokenFile {
            path: path.to_owned(),
            state: RwLock::new(None),
            recheck,
        };
        file.token()?;
        Ok(file)
    }

    fn read(&self) -> anyhow::Result<Loaded> {
        let bytes = crate::private::read(&self.path)?;
        let token = std::str::from_utf8(&bytes)
            .ok()
            .map(str::trim)
            .filter(|t| !t.is_empty() && t.bytes().all(|b| b.is_ascii_graphic()))
            .with_context(|| format!("{} holds no token", self.path.display()))?;
        Ok(Loaded {
            token: Arc::from(token),
            modified: std::fs::metadata(&self.path)
                .and_then(|m| m.modified())
                .ok(),
            checked: Instant::now(),
        })
    }
}

impl Credential for TokenFile {
    fn token(&self) -> anyhow::Result<Arc<str>> {
        {
            let state = self.state.read().unwrap_or_else(|e| e.into_inner());
            if let Some(l) = state.as_ref()
                && l.checked.elapsed() < self.recheck
            {
                return Ok(l.token.clone());
            }
        }
        let mut state = self.state.write().unwrap_or_else(|e| e.into_inner());
        let modified = std::fs::metadata(&self.path)
            .and_then(|m| m.modified())
            .ok();
        match state.as_mut() {
            Some(l) if l.modified == modified => {
                l.checked = Instant::now();
                Ok(l.token.clone())
            }
            _ => match self.read() {
                Ok(loaded) => {
                    let token = loaded.token.clone();
                    *state = Some(loaded);
                    Ok(token)
                }
                // A file being replaced this instant: keep what worked.
                Err(e) => match state.as_ref() {
                    Some(l) => {
                        tracing::warn!(path = %self.path.display(), error = format!("{e:#}"), "rereading the service token failed; using the previous one");
                        Ok(l.token.clone())
                    }
                    None => Err(e),
                },
            },
        }
    }
}

/// A token this process mints for itself with the deployment's keys,
/// renewed when half its lifetime has passed.
pub struct SelfMinted {
    minter: Minter,
    name: String,
    capabilities: Vec<String>,
    ttl: Duration,
    state: RwLock<Option<(Arc<str>, u64)>>,
}

impl SelfMinted {
    /// Tokens for the service `name` running `capabilities`, valid for `ttl`.
    pub fn new(
        minter: Minter,
        name: impl Into<String>,
        capabilities: Vec<String>,
        ttl: Duration,
    ) -> SelfMinted {
        SelfMinted {
            minter,
            name: name.into(),
            capabilities,
            ttl,
            state: RwLock::new(None),
        }
    }
}

impl Credential for SelfMinted {
    fn token(&self) -> anyhow::Result<Arc<str>> {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let renew_at = |exp: u64| exp.saturating_sub(self.ttl.as_secs() / 2);
        if let Some((token, exp)) = self
            .state
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .as_ref()
            && now < renew_at(*exp)
        {
            return Ok(token.clone());
        }
        let minted = self
            .minter
            .service(&self.name, &self.capabilities, self.ttl)?;
        let token: Arc<str> = Arc::from(minted.token);
        *self.state.write().unwrap_or_else(|e| e.into_inner()) =
            Some((token.clone(), minted.expires_at));
        Ok(token)
    }
}

#[cfg(test)]
mod tests;
