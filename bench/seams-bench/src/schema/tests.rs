//! The baseline's tables have the structure billing's migrations give them.

use sqlx::sqlite::SqliteConnectOptions;
use sqlx::{Connection, Row, SqliteConnection};

use super::*;

/// Columns (name, type, not null, primary-key position), whether rows have a
/// rowid, and every index (uniqueness, columns) of `table`; index names are
/// left out, as SQLite makes up those of UNIQUE constraints.
async fn structure(conn: &mut SqliteConnection, table: &str) -> Vec<String> {
    let mut out = Vec::new();
    for row in sqlx::query(&format!("PRAGMA table_info({table})"))
        .fetch_all(&mut *conn)
        .await
        .unwrap()
    {
        out.push(format!(
            "column {} {} notnull={} pk={}",
            row.get::<String, _>("name"),
            row.get::<String, _>("type"),
            row.get::<i64, _>("notnull"),
            row.get::<i64, _>("pk"),
        ));
    }
    let sql: String = sqlx::query_scalar("SELECT sql FROM sqlite_master WHERE name = ?")
        .bind(table)
        .fetch_one(&mut *conn)
        .await
        .unwrap();
    out.push(format!(
        "without rowid: {}",
        sql.to_uppercase().contains("WITHOUT ROWID")
    ));
    let mut indexes = Vec::new();
    for index in sqlx::query(&format!("PRAGMA index_list({table})"))
        .fetch_all(&mut *conn)
        .await
        .unwrap()
    {
        let name: String = index.get("name");
        let columns: Vec<String> = sqlx::query(&format!("PRAGMA index_info('{name}')"))
            .fetch_all(&mut *conn)
            .await
            .unwrap()
            .iter()
            .map(|c| c.get::<String, _>("name"))
            .collect();
        indexes.push(format!(
            "index unique={} origin={} on {}",
            index.get::<i64, _>("unique"),
            index.get::<String, _>("origin"),
            columns.join(",")
        ));
    }
    indexes.sort();
    out.extend(indexes);
    out
}

#[tokio::test]
async fn the_baseline_writes_into_billings_tables() {
    let dir = std::env::temp_dir().join(format!("seams-bench-schema-{}", uuid::Uuid::new_v4()));
    let path = dir.join("billing.db");
    let db = seams_store::Db::open(&path, "billing", &billing::MIGRATIONS)
        .await
        .unwrap();
    drop(db);
    let mut migrated = SqliteConnection::connect_with(&SqliteConnectOptions::new().filename(&path))
        .await
        .unwrap();
    let mut baseline = SqliteConnection::connect("sqlite::memory:").await.unwrap();
    for statement in CREATE_INVOICE_TABLES {
        sqlx::query(statement).execute(&mut baseline).await.unwrap();
    }
    for table in TABLES {
        assert_eq!(
            structure(&mut baseline, table).await,
            structure(&mut migrated, table).await,
            "{table}"
        );
    }
    migrated.close().await.unwrap();
    let _ = std::fs::remove_dir_all(&dir);
}
