//! PostgreSQL over TLS, against a real server that accepts TCP connections
//! over TLS only, with a certificate from a throwaway CA: a `verify-full`
//! URL opens a [`Db`] whose writer and readers are encrypted, provisioning
//! through a TLS admin URL hands out capability URLs that use TLS the same
//! way, and a client trusting another CA, or asking for no TLS, is refused.

use seams_testkit::postgres::PostgresServer;
use seams_testkit::tls::TestCa;
use sqlx::{Connection, PgConnection};

use crate::tests::{NOTES, add_note, note_bodies};
use crate::{Db, Location, On, query};

/// Whether the session on `conn` is encrypted, as the server sees it.
async fn encrypted(on: &mut impl On) -> bool {
    query("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
        .fetch_one(on)
        .await
        .unwrap()
        .get(0)
        .unwrap()
}

/// The capability URL of `notes`, provisioned through `pg`'s admin URL
/// verified against `ca`.
async fn provision_notes(pg: &PostgresServer, ca: &TestCa) -> String {
    super::provision(
        &pg.admin_url_verified(&ca.ca_file()),
        "notes",
        &super::new_password(),
    )
    .await
    .unwrap()
    .url
}

#[tokio::test]
async fn a_verify_full_url_opens_a_db_that_writes_and_reads_encrypted() {
    let ca = TestCa::new().unwrap();
    let Some(pg) = PostgresServer::start_tls_or_skip(&ca) else {
        return;
    };
    let url = provision_notes(&pg, &ca).await;
    let db = Db::connect(&Location::Postgres { url }, "notes", &NOTES)
        .await
        .unwrap();

    let mut tx = db.begin().await.unwrap();
    add_note(&mut tx, "sealed").await;
    assert!(encrypted(&mut tx).await, "the writer's session");
    tx.commit().await.unwrap();

    assert_eq!(note_bodies(&db).await, ["sealed"]);
    assert!(
        encrypted(&mut db.read().await.unwrap()).await,
        "a reader's session"
    );
}

#[tokio::test]
async fn provisioning_through_a_tls_admin_url_hands_out_tls_urls() {
    let ca = TestCa::new().unwrap();
    let Some(pg) = PostgresServer::start_tls_or_skip(&ca) else {
        return;
    };
    let url = provision_notes(&pg, &ca).await;

    let parsed = url::Url::parse(&url).unwrap();
    let query: Vec<(String, String)> = parsed.query_pairs().into_owned().collect();
    assert_eq!(
        query,
        [
            ("sslmode".to_owned(), "verify-full".to_owned()),
            ("sslrootcert".to_owned(), ca.ca_file().display().to_string()),
        ],
        "{}",
        crate::redact(&url)
    );
    assert_eq!((parsed.username(), parsed.path()), ("notes", "/notes"));
    // The capability's own role gets in, encrypted.
    let mut conn = PgConnection::connect(&url).await.unwrap();
    let (ssl, user): (bool, String) = sqlx::query_as(
        "SELECT ssl, current_user::text FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
    )
    .fetch_one(&mut conn)
    .await
    .unwrap();
    assert!(ssl);
    assert_eq!(user, "notes");
}

#[tokio::test]
async fn a_server_certificate_from_another_ca_is_refused() {
    let ca = TestCa::new().unwrap();
    let Some(pg) = PostgresServer::start_tls_or_skip(&ca) else {
        return;
    };
    let url = provision_notes(&pg, &ca).await;
    let other = TestCa::new().unwrap();
    let trusting_other = url.replace(
        &ca.ca_file().display().to_string(),
        &other.ca_file().display().to_string(),
    );
    assert_ne!(trusting_other, url);

    let err = Db::connect(
        &Location::Postgres {
            url: trusting_other,
        },
        "notes",
        &NOTES,
    )
    .await
    .expect_err("a certificate this CA did not issue");
    let text = format!("{err:#}");
    assert!(text.contains("UnknownIssuer"), "{text}");

    let err = super::provision(
        &pg.admin_url_verified(&other.ca_file()),
        "other",
        &super::new_password(),
    )
    .await
    .expect_err("provisioning checks the server too");
    assert!(err.to_string().contains("UnknownIssuer"), "{err}");
}

#[tokio::test]
async fn the_tls_server_refuses_a_client_without_tls() {
    let ca = TestCa::new().unwrap();
    let Some(pg) = PostgresServer::start_tls_or_skip(&ca) else {
        return;
    };
    let err = PgConnection::connect(&format!("{}?sslmode=disable", pg.admin_url()))
        .await
        .expect_err("hostssl only");
    // The server's words: no `pg_hba.conf` line lets it in without encryption.
    assert!(format!("{err}").contains("no encryption"), "{err}");
}
