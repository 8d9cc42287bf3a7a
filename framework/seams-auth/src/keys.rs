//! The deployment's signing keys: Ed25519 key pairs in one private file,
//! the newest of which signs every token and all of which verify.
//!
//! The file is a JWK set of private keys (RFC 8037 `OKP`/`Ed25519`, with
//! `d`), mode 0600, created with one key when missing. Rotation adds a new
//! key and keeps only the one before it: two keys are live, so tokens
//! signed just before a rotation stay valid until they expire, and a key
//! rotated out twice verifies nothing more. The public half is what
//! identity publishes at `/.well-known/jwks.json`.
//!
//! A [`KeyStore`] is the shared handle a running process signs and
//! verifies with; it notices when the file was rotated underneath it (by
//! `shop keys rotate`) and reloads it, so rotation needs no restart.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use ed25519_dalek::SigningKey;
use ed25519_dalek::pkcs8::EncodePrivateKey;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header};
use rand::TryRngCore;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

/// How many keys stay live: the one that signs and the one before it.
pub const LIVE_KEYS: usize = 2;

/// How long a new key is published before it signs: longer than verifiers
/// cache a JWKS ([`crate::jwks::MAX_AGE`]), so none of them meets a token
/// signed with a key it has not fetched yet.
pub const PUBLISH_AHEAD: Duration = Duration::from_secs(360);

/// One key as the file stores it: a private JWK.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct StoredKey {
    kty: String,
    crv: String,
    kid: String,
    /// The public key, base64url.
    x: String,
    /// The private key (its 32-byte seed), base64url.
    d: String,
    /// When it was made (Unix seconds); orders keys.
    created_at: u64,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct KeyFile {
    keys: Vec<StoredKey>,
}

/// One usable key pair.
struct Key {
    kid: String,
    created_at: u64,
    seed: [u8; 32],
    public: [u8; 32],
    encoding: EncodingKey,
    decoding: DecodingKey,
}

impl Key {
    fn from_seed(seed: [u8; 32], kid: String, created_at: u64) -> anyhow::Result<Key> {
        let signing = SigningKey::from_bytes(&seed);
        let public = signing.verifying_key().to_bytes();
        let der = signing
            .to_pkcs8_der()
            .map_err(|e| anyhow::anyhow!("encoding key {kid}: {e}"))?;
        Ok(Key {
            encoding: EncodingKey::from_ed_der(der.as_bytes()),
            decoding: DecodingKey::from_ed_der(&public),
            kid,
            created_at,
            seed,
            public,
        })
    }

    fn generate(now: u64) -> anyhow::Result<Key> {
        let mut seed = [0u8; 32];
        rand::rngs::OsRng
            .try_fill_bytes(&mut seed)
            .map_err(|e| anyhow::anyhow!("reading the system's randomness: {e}"))?;
        let mut tag = [0u8; 6];
        rand::rngs::OsRng
            .try_fill_bytes(&mut tag)
            .map_err(|e| anyhow::anyhow!("reading the system's randomness: {e}"))?;
        // The creation time first, so kids sort by age in logs; then random
        // bits, so two keys made in one second differ.
        let kid = format!("{now}-{}", B64.encode(tag));
        Key::from_seed(seed, kid, now)
    }

    fn stored(&self) -> StoredKey {
        StoredKey {
            kty: "OKP".into(),
            crv: "Ed25519".into(),
            kid: self.kid.clone(),
            x: B64.encode(self.public),
            d: B64.encode(self.seed),
            created_at: self.created_at,
        }
    }

    fn parse(stored: StoredKey) -> anyhow::Result<Key> {
        let kid = stored.kid;
        anyhow::ensure!(
            stored.kty == "OKP" && stored.crv == "Ed25519",
            "key {kid}: only OKP/Ed25519 keys are supported"
        );
        anyhow::ensure!(
            !kid.is_empty() && kid.len() <= 128 && kid.bytes().all(|b| b.is_ascii_graphic()),
            "a key id must be 1-128 visible ASCII characters"
        );
        let seed: [u8; 32] = B64
            .decode(&stored.d)
            .ok()
            .and_then(|d| d.try_into().ok())
            .with_context(|| format!("key {kid}: `d` is not a 32-byte base64url value"))?;
        let key = Key::from_seed(seed, kid, stored.created_at)?;
        anyhow::ensure!(
            B64.encode(key.public) == stored.x,
            "key {}: `x` is not the public half of `d`",
            key.kid
        );
        Ok(key)
    }
}

/// A set of signing keys, oldest first; the newest signs.
pub struct SigningKeys {
    keys: Vec<Key>,
}

impl std::fmt::Debug for SigningKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the private halves.
        f.debug_list()
            .entries(self.keys.iter().map(|k| &k.kid))
            .finish()
    }
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

impl SigningKeys {
    /// One new key.
    pub fn generate() -> anyhow::Result<SigningKeys> {
        Ok(SigningKeys {
            keys: vec![Key::generate(unix_now())?],
        })
    }

    /// Reads the key file at `path`; refuses a file others can read.
    pub fn load(path: &Path) -> anyhow::Result<SigningKeys> {
        let bytes = crate::private::read(path)?;
        SigningKeys::parse(&bytes).with_context(|| format!("in {}", path.display()))
    }

    /// Parses a key file's contents.
    pub fn parse(bytes: &[u8]) -> anyhow::Result<SigningKeys> {
        let file: KeyFile = serde_json::from_slice(bytes).context("not a private JWK set")?;
        let mut keys = file
            .keys
            .into_iter()
            .map(Key::parse)
            .collect::<anyhow::Result<Vec<_>>>()?;
        if keys.is_empty() {
            bail!("the key set is empty");
        }
        keys.sort_by(|a, b| (a.created_at, &a.kid).cmp(&(b.created_at, &b.kid)));
        let mut seen = std::collections::HashSet::new();
        for key in &keys {
            anyhow::ensure!(
                seen.insert(key.kid.as_str()),
                "key id {} appears twice",
                key.kid
            );
        }
        Ok(SigningKeys { keys })
    }

    /// Reads the key file at `path`, first creating it (0600, in a 0700
    /// directory) with one new key when there is none. Says whether it was created.
    pub fn load_or_create(path: &Path) -> anyhow::Result<(SigningKeys, bool)> {
        if path.exists() {
            return Ok((SigningKeys::load(path)?, false));
        }
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            crate::private::create_dir(dir)?;
        }
        let keys = SigningKeys::generate()?;
        keys.save(path)?;
        Ok((keys, true))
    }

    /// Adds a new key to the file at `path` (creating the file if missing)
    /// and keeps only the newest [`LIVE_KEYS`]; returns the new set.
    pub fn rotate(path: &Path) -> anyhow::Result<SigningKeys> {
        let (mut keys, created) = SigningKeys::load_or_create(path)?;
        if created {
            return Ok(keys);
        }
        // Younger than the key it replaces, even within one second or if the
        // clock went back: creation times order the keys.
        let newest = keys.keys.last().map_or(0, |k| k.created_at);
        keys.keys.push(Key::generate(unix_now().max(newest + 1))?);
        let excess = keys.keys.len().saturating_sub(LIVE_KEYS);
        keys.keys.drain(..excess);
        keys.save(path)?;
        Ok(keys)
    }

    /// Writes the set to `path` (0600, atomically).
    pub fn save(&self, path: &Path) -> anyhow::Result<()> {
        let file = KeyFile {
            keys: self.keys.iter().map(Key::stored).collect(),
        };
        let mut json = serde_json::to_vec_pretty(&file).context("encoding the key set")?;
        json.push(b'\n');
        crate::private::write(path, &json)
    }

    /// The key ids, oldest first.
    pub fn kids(&self) -> Vec<&str> {
        self.keys.iter().map(|k| k.kid.as_str()).collect()
    }

    /// The key that signs now: the newest one published for at least
    /// [`PUBLISH_AHEAD`], or, when none has been (a new deployment, or two
    /// rotations in a row), the oldest one.
    fn signing(&self, now: u64) -> &Key {
        let published = |k: &&Key| k.created_at + PUBLISH_AHEAD.as_secs() <= now;
        self.keys
            .iter()
            .rev()
            .find(published)
            .or(self.keys.first())
            // `parse` and `generate` never make an empty set.
            .expect("a key set is never empty")
    }

    /// The id of the key that signs now.
    pub fn signing_kid(&self) -> &str {
        &self.signing(unix_now()).kid
    }

    /// Signs `claims` with the key that signs now (EdDSA, its `kid` in the
    /// header): see [`PUBLISH_AHEAD`].
    pub fn sign<T: Serialize>(&self, claims: &T) -> anyhow::Result<String> {
        let key = self.signing(unix_now());
        let mut header = Header::new(Algorithm::EdDSA);
        header.kid = Some(key.kid.clone());
        jsonwebtoken::encode(&header, claims, &key.encoding).context("signing a token")
    }

    /// The public key with id `kid`, for verification.
    pub fn decoding_key(&self, kid: &str) -> Option<&DecodingKey> {
        self.keys.iter().find(|k| k.kid == kid).map(|k| &k.decoding)
    }

    /// The public keys as a JWK set, newest first: what identity serves.
    pub fn jwks(&self) -> Value {
        let keys: Vec<Value> = self
            .keys
            .iter()
            .rev()
            .map(|k| {
                json!({
                    "kty": "OKP", "crv": "Ed25519", "use": "sig", "alg": "EdDSA",
                    "kid": k.kid, "x": B64.encode(k.public),
                })
            })
            .collect();
        json!({ "keys": keys })
    }
}

/// How often a [`KeyStore`] looks at its file for a rotation at most.
const RECHECK: Duration = Duration::from_secs(1);

/// The keys a process signs and verifies with, cheap to clone; backed by a
/// file it rereads when the file changes, or by keys held in memory only.
#[derive(Clone)]
pub struct KeyStore {
    path: Option<PathBuf>,
    state: Arc<RwLock<State>>,
    /// [`RECHECK`], shorter in tests.
    recheck: Duration,
}

struct State {
    keys: Arc<SigningKeys>,
    modified: Option<SystemTime>,
    checked: Instant,
}

impl std::fmt::Debug for KeyStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyStore")
            .field("path", &self.path)
            .field("keys", &self.current())
            .finish()
    }
}

fn modified(path: &Path) -> Option<SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

impl KeyStore {
    /// The key file at `path`, created with one key if missing.
    pub fn open(path: &Path) -> anyhow::Result<KeyStore> {
        KeyStore::open_with_recheck(path, RECHECK)
    }

    pub(crate) fn open_with_recheck(path: &Path, recheck: Duration) -> anyhow::Result<KeyStore> {
        let (keys, _) = SigningKeys::load_or_create(path)?;
        Ok(KeyStore {
            state: Arc::new(RwLock::new(State {
                keys: Arc::new(keys),
                modified: modified(path),
                checked: Instant::now(),
            })),
            path: Some(path.to_owned()),
            recheck,
        })
    }

    /// Keys held in memory only (tests, and tools that mint once).
    pub fn in_memory(keys: SigningKeys) -> KeyStore {
        KeyStore {
            path: None,
            state: Arc::new(RwLock::new(State {
                keys: Arc::new(keys),
                modified: None,
                checked: Instant::now(),
            })),
            recheck: RECHECK,
        }
    }

    /// Where the keys are kept, if in a file.
    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    /// The current keys. Rereads the file (at most once a second) when it
    /// changed; a file that no longer parses keeps the keys in use, loudly.
    pub fn current(&self) -> Arc<SigningKeys> {
        let stale = {
            let state = self.state.read().unwrap_or_else(|e| e.into_inner());
            if self.path.is_none() || state.checked.elapsed() < self.recheck {
                return state.keys.clone();
            }
            state.keys.clone()
        };
        let Some(path) = &self.path else {
            return stale;
        };
        let mut state = self.state.write().unwrap_or_else(|e| e.into_inner());
        if state.checked.elapsed() < self.recheck {
            return state.keys.clone();
        }
        state.checked = Instant::now();
        let now = modified(path);
        if now == state.modified {
            return state.keys.clone();
        }
        match SigningKeys::load(path) {
            Ok(keys) => {
                tracing::info!(path = %path.display(), kids = ?keys.kids(), "signing keys reloaded");
                state.keys = Arc::new(keys);
                state.modified = now;
            }
            Err(e) => {
                tracing::error!(path = %path.display(), error = format!("{e:#}"), "signing keys changed but cannot be read; keeping the ones in use");
                state.modified = now;
            }
        }
        state.keys.clone()
    }
}

#[cfg(test)]
mod tests;
