//! Provisioning a capability's own PostgreSQL database and role.
//!
//! Each capability gets a role and a database of the same name. The role
//! owns its database and nothing else; `CONNECT` on the database is revoked
//! from `PUBLIC`, so no other capability's role can even open it. That is the
//! data-ownership rule of the design enforced by the server, not by
//! convention: billing cannot read identity's tables, it must call identity.
//!
//! Provisioning needs a role allowed to create roles and databases (the
//! "admin URL"); services themselves never get it. The password goes to
//! the server only as a SCRAM-SHA-256 verifier (computed here, as `libpq`'s
//! `PQencryptPasswordConn` does), so it never appears in the server's logs
//! or statistics as text.
//!
//! TLS is set in the URL, as libpq reads it: `?sslmode=verify-full&
//! sslrootcert=/path/ca.pem` encrypts and checks the server's certificate
//! (chain and host name) against that CA, besides the well-known public
//! ones (`sslmode=require` encrypts without checking, so it does not stop a
//! server in the middle). Provisioning connects with the admin URL as given
//! and hands its query string on to every capability's URL, so a TLS admin
//! URL yields capability URLs that use TLS the same way.

use sqlx::{Connection, Executor, PgConnection};

/// What provisioning produced for one capability.
#[derive(Clone, PartialEq, Eq)]
pub struct Provisioned {
    /// The capability (also the role and database name).
    pub capability: String,
    /// `postgres://<capability>:<password>@<host>:<port>/<capability>`,
    /// with the admin URL's query string (its TLS settings) kept.
    pub url: String,
}

impl std::fmt::Debug for Provisioned {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Provisioned")
            .field("capability", &self.capability)
            .field("url", &crate::redact(&self.url))
            .finish()
    }
}

/// Why provisioning failed.
#[derive(Debug, thiserror::Error)]
pub enum ProvisionError {
    /// Role and database names are spliced into DDL (PostgreSQL takes no
    /// parameters there), so only plain identifiers are accepted.
    #[error("{0:?} is not a plain identifier ([a-z][a-z0-9_]*, at most 63 bytes)")]
    BadName(String),
    /// Passwords are spliced as literals too, so they are restricted likewise.
    #[error("a provisioned password must be 16 to 128 ASCII letters and digits")]
    BadPassword,
    /// The admin URL does not parse.
    #[error("admin url: {0}")]
    AdminUrl(String),
    /// The server refused.
    #[error(transparent)]
    Db(#[from] sqlx::Error),
}

fn plain_identifier(name: &str) -> Result<(), ProvisionError> {
    let mut chars = name.chars();
    let ok = name.len() <= 63
        && chars.next().is_some_and(|c| c.is_ascii_lowercase())
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if ok {
        Ok(())
    } else {
        Err(ProvisionError::BadName(name.to_owned()))
    }
}

/// Creates (or updates) role `capability` with `password` and a database of
/// the same name owned by it, reachable by that role alone (and superusers).
/// Idempotent: running it again only resets the password.
pub async fn provision(
    admin_url: &str,
    capability: &str,
    password: &str,
) -> Result<Provisioned, ProvisionError> {
    plain_identifier(capability)?;
    if !(16..=128).contains(&password.len()) || !password.chars().all(|c| c.is_ascii_alphanumeric())
    {
        return Err(ProvisionError::BadPassword);
    }
    let mut url =
        url::Url::parse(admin_url).map_err(|e| ProvisionError::AdminUrl(e.to_string()))?;
    let mut admin = PgConnection::connect(admin_url).await?;
    let (exists,): (bool,) =
        sqlx::query_as("SELECT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = $1)")
            .bind(capability)
            .fetch_one(&mut admin)
            .await?;
    let verb = if exists { "ALTER" } else { "CREATE" };
    let verifier = scram_verifier(password);
    admin
        .execute(
            format!(
                "{verb} ROLE \"{capability}\" LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE PASSWORD '{verifier}'"
            )
            .as_str(),
        )
        .await?;
    let (exists,): (bool,) =
        sqlx::query_as("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)")
            .bind(capability)
            .fetch_one(&mut admin)
            .await?;
    if !exists {
        admin
            .execute(format!("CREATE DATABASE \"{capability}\" OWNER \"{capability}\"").as_str())
            .await?;
    }
    admin
        .execute(format!("REVOKE ALL ON DATABASE \"{capability}\" FROM PUBLIC").as_str())
        .await?;
    admin.close().await?;
    url.set_username(capability)
        .and_then(|()| url.set_password(Some(password)))
        .map_err(|()| ProvisionError::AdminUrl("cannot carry credentials".into()))?;
    url.set_path(&format!("/{capability}"));
    Ok(Provisioned {
        capability: capability.to_owned(),
        url: url.to_string(),
    })
}

/// The SCRAM-SHA-256 verifier of `password` (`SCRAM-SHA-256$<iterations>:
/// <salt>$<StoredKey>:<ServerKey>`), which PostgreSQL stores as given: a
/// role can log in with the password, and the server never sees it.
pub fn scram_verifier(password: &str) -> String {
    postgres_protocol::password::scram_sha_256(password.as_bytes())
}

/// A random password of 32 letters and digits.
pub fn new_password() -> String {
    use rand::Rng;
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let mut rng = rand::rng();
    (0..32)
        .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char)
        .collect()
}

#[cfg(test)]
mod tests;
