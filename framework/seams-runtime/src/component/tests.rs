//! How a consumer's database errors are classified.

use sqlx::Connection;

use super::*;

async fn sqlite() -> sqlx::SqliteConnection {
    let mut conn = sqlx::SqliteConnection::connect("sqlite::memory:")
        .await
        .unwrap();
    sqlx::query(
        "CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT NOT NULL CHECK (v <> ''), \
         parent INTEGER REFERENCES t (id))",
    )
    .execute(&mut conn)
    .await
    .unwrap();
    sqlx::query("PRAGMA foreign_keys = ON")
        .execute(&mut conn)
        .await
        .unwrap();
    sqlx::query("INSERT INTO t (id, v) VALUES (1, 'a')")
        .execute(&mut conn)
        .await
        .unwrap();
    conn
}

async fn error_of(conn: &mut sqlx::SqliteConnection, sql: &str) -> sqlx::Error {
    sqlx::query(sql).execute(conn).await.unwrap_err()
}

#[tokio::test]
async fn a_broken_unique_not_null_or_check_constraint_is_permanent() {
    let mut conn = sqlite().await;
    for sql in [
        "INSERT INTO t (id, v) VALUES (1, 'again')",
        "INSERT INTO t (id, v) VALUES (2, NULL)",
        "INSERT INTO t (id, v) VALUES (3, '')",
    ] {
        let e = error_of(&mut conn, sql).await;
        assert!(
            matches!(HandlerError::from(e), HandlerError::Permanent(_)),
            "{sql}"
        );
        // The same, wrapped in context on its way up.
        let e = anyhow::Error::from(error_of(&mut conn, sql).await).context("applying e1");
        assert!(
            matches!(HandlerError::from(e), HandlerError::Permanent(m) if m.starts_with("applying e1")),
            "{sql}"
        );
    }
}

#[tokio::test]
async fn a_missing_parent_row_and_anything_else_may_pass() {
    let mut conn = sqlite().await;
    let e = error_of(
        &mut conn,
        "INSERT INTO t (id, v, parent) VALUES (4, 'b', 99)",
    )
    .await;
    assert!(matches!(HandlerError::from(e), HandlerError::Transient(_)));
    let e = error_of(&mut conn, "SELECT * FROM no_such_table").await;
    assert!(matches!(HandlerError::from(e), HandlerError::Transient(_)));
    assert!(matches!(
        HandlerError::from(sqlx::Error::PoolTimedOut),
        HandlerError::Transient(_)
    ));
    assert!(matches!(
        HandlerError::from(anyhow::anyhow!("the catalog is down")),
        HandlerError::Transient(_)
    ));
}

#[tokio::test]
async fn the_kind_survives_the_any_driver_capabilities_write_through() {
    sqlx::any::install_default_drivers();
    let mut conn = sqlx::AnyConnection::connect("sqlite::memory:")
        .await
        .unwrap();
    sqlx::query("CREATE TABLE u (id INTEGER PRIMARY KEY)")
        .execute(&mut conn)
        .await
        .unwrap();
    sqlx::query("INSERT INTO u (id) VALUES (1)")
        .execute(&mut conn)
        .await
        .unwrap();
    let e = sqlx::query("INSERT INTO u (id) VALUES (1)")
        .execute(&mut conn)
        .await
        .unwrap_err();
    assert!(matches!(HandlerError::from(e), HandlerError::Permanent(_)));
}
