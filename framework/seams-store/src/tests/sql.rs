//! The store's query surface on both backends: every kind of value goes in
//! and comes back as it was, a NULL keeps its type, and a row read wrongly
//! is an error, never a panic.

use super::*;

on_both!(
    every_kind_of_value_comes_back_as_it_was_bound,
    a_null_keeps_the_type_of_what_it_stands_for,
    a_row_read_wrongly_is_an_error_in_a_transaction_and_on_a_reader,
    statements_report_what_they_changed_and_found,
    placeholders_take_the_value_of_their_number_in_any_order,
    a_placeholder_without_a_value_or_a_value_without_one_is_refused,
);

/// A table with a column of every kind, in each backend's words.
async fn kinds_table(db: &Db) {
    let ddl = match db.backend() {
        // SQLite keeps booleans as integers; sqlx's `Any` driver cannot
        // read a NULL from a column declared BOOLEAN there.
        Backend::Sqlite => {
            "CREATE TABLE kinds (id INTEGER PRIMARY KEY, b INTEGER, i BIGINT, r REAL, \
             t TEXT, x BLOB)"
        }
        Backend::Postgres => {
            "CREATE TABLE kinds (id BIGINT PRIMARY KEY, b BOOLEAN, i BIGINT, \
             r DOUBLE PRECISION, t TEXT, x BYTEA)"
        }
    };
    let mut tx = db.begin().await.unwrap();
    query(ddl).execute(&mut tx).await.unwrap();
    tx.commit().await.unwrap();
}

const INSERT: &str = "INSERT INTO kinds (id, b, i, r, t, x) VALUES ($1, $2, $3, $4, $5, $6)";
const SELECT: &str = "SELECT b, i, r, t, x FROM kinds WHERE id = $1";

async fn every_kind_of_value_comes_back_as_it_was_bound(store: Store) {
    let db = store.open().await;
    kinds_table(&db).await;
    let owned_text = String::from("owned ünïcode");
    let mut tx = db.begin().await.unwrap();
    query(INSERT)
        .bind(1_i64)
        .bind(true)
        .bind(i64::MIN)
        .bind(-1.5_f64)
        .bind("borrowed")
        .bind(&b"\x00\xffbytes"[..])
        .execute(&mut tx)
        .await
        .unwrap();
    query(INSERT)
        .bind(2_i64)
        .bind(Some(false))
        .bind(Some(i64::MAX))
        .bind(Value::Real(1e300))
        .bind(&owned_text)
        .bind(vec![7_u8; 3])
        .execute(&mut tx)
        .await
        .unwrap();
    tx.commit().await.unwrap();

    let mut reader = db.read().await.unwrap();
    let row = query(SELECT)
        .bind(1_i64)
        .fetch_one(&mut reader)
        .await
        .unwrap();
    assert!(row.get::<bool>("b").unwrap());
    assert_eq!(row.get::<i64>("i").unwrap(), i64::MIN);
    assert_eq!(row.get::<f64>("r").unwrap(), -1.5);
    assert_eq!(row.get::<&str>("t").unwrap(), "borrowed");
    assert_eq!(row.get::<&[u8]>("x").unwrap(), b"\x00\xffbytes");
    let row = query(SELECT)
        .bind(2_i64)
        .fetch_one(&mut reader)
        .await
        .unwrap();
    assert_eq!(row.get::<Option<bool>>(0).unwrap(), Some(false));
    assert_eq!(row.get::<i64>(1).unwrap(), i64::MAX);
    assert_eq!(row.get::<f64>(2).unwrap(), 1e300);
    assert_eq!(row.get::<String>(3).unwrap(), owned_text);
    assert_eq!(row.get::<Vec<u8>>(4).unwrap(), vec![7_u8; 3]);
}

async fn a_null_keeps_the_type_of_what_it_stands_for(store: Store) {
    let db = store.open().await;
    kinds_table(&db).await;
    let absent_text: Option<String> = None;
    let mut tx = db.begin().await.unwrap();
    // PostgreSQL types every parameter: a NULL of the wrong type in a
    // BIGINT or BYTEA column is refused, so each must carry its own.
    query(INSERT)
        .bind(3_i64)
        .bind(None::<bool>)
        .bind(None::<i64>)
        .bind(None::<f64>)
        .bind(&absent_text)
        .bind(None::<Vec<u8>>)
        .execute(&mut tx)
        .await
        .unwrap();
    tx.commit().await.unwrap();

    let row = query(SELECT)
        .bind(3_i64)
        .fetch_one(&mut db.read().await.unwrap())
        .await
        .unwrap();
    assert_eq!(row.get::<Option<bool>>("b").unwrap(), None);
    assert_eq!(row.get::<Option<i64>>("i").unwrap(), None);
    assert_eq!(row.get::<Option<f64>>("r").unwrap(), None);
    assert_eq!(row.get::<Option<&str>>("t").unwrap(), None);
    assert_eq!(row.get::<Option<Vec<u8>>>("x").unwrap(), None);
    assert_eq!(None::<i64>.value(), Value::Null(Kind::Integer));
    assert_eq!(absent_text.as_deref().value(), Value::Null(Kind::Text));
    assert_eq!(None::<&[u8]>.value(), Value::Null(Kind::Blob));
}

async fn a_row_read_wrongly_is_an_error_in_a_transaction_and_on_a_reader(store: Store) {
    let db = store.open().await;
    let mut tx = db.begin().await.unwrap();
    read_wrongly(&mut tx).await;
    tx.commit().await.unwrap();
    read_wrongly(&mut db.read().await.unwrap()).await;
}

async fn read_wrongly(on: &mut impl On) {
    let row = query(
        "SELECT CAST(NULL AS BIGINT) AS absent, 'text' AS words, \
         CAST(2 AS BIGINT) AS two, CAST(1 AS BIGINT) AS one, CAST(0 AS BIGINT) AS zero",
    )
    .fetch_one(on)
    .await
    .unwrap();
    assert!(matches!(
        row.get::<i64>("missing"),
        Err(DbError::ColumnNotFound(name)) if name == "missing"
    ));
    assert!(matches!(
        row.get::<i64>(5),
        Err(DbError::ColumnIndexOutOfBounds { index: 5, len: 5 })
    ));
    assert!(matches!(
        row.get::<i64>("absent"),
        Err(DbError::ColumnDecode { .. })
    ));
    assert_eq!(row.get::<Option<i64>>("absent").unwrap(), None);
    match row.get::<i64>("words") {
        Err(DbError::ColumnDecode { source, .. }) => {
            // Each driver words it its own way; both name what was found.
            let said = source.to_string();
            assert!(said.contains("text") || said.contains("TEXT"), "{said}");
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        row.get::<bool>("absent"),
        Err(DbError::ColumnDecode { .. })
    ));
    assert!(matches!(
        row.get::<bool>("two"),
        Err(DbError::ColumnDecode { .. })
    ));
    assert!(row.get::<bool>("one").unwrap());
    assert!(!row.get::<bool>("zero").unwrap());
    assert_eq!(row.get::<&str>(1).unwrap(), "text");
    assert!(format!("{row:?}").contains("columns: 5"));
}

async fn statements_report_what_they_changed_and_found(store: Store) {
    let db = store.open().await;
    let mut tx = db.begin().await.unwrap();
    for body in ["a", "b", "c"] {
        add_note(&mut tx, body).await;
    }
    let changed = query("UPDATE notes SET body = body || '!' WHERE body <> $1")
        .bind("b")
        .execute(&mut tx)
        .await
        .unwrap();
    assert_eq!(changed, 2);
    let none = query("SELECT body FROM notes WHERE body = $1").bind("zzz");
    assert!(matches!(
        none.fetch_one(&mut tx).await,
        Err(DbError::RowNotFound)
    ));
    let none = query("SELECT body FROM notes WHERE body = $1").bind("zzz");
    assert!(none.fetch_optional(&mut tx).await.unwrap().is_none());
    let all = query("SELECT body FROM notes ORDER BY body")
        .fetch_all(&mut tx)
        .await
        .unwrap();
    let bodies: Vec<&str> = all.iter().map(|r| r.get(0).unwrap()).collect();
    assert_eq!(bodies, ["a!", "b", "c!"]);
    tx.commit().await.unwrap();
    assert_eq!(note_bodies(&db).await, ["a!", "b", "c!"]);
}

/// `$2` before `$1`, and `$2` twice: each takes the value bound in its
/// number's place (SQLite numbers `$N` names by first appearance, so a
/// driver that bound by position would swap them).
async fn placeholders_take_the_value_of_their_number_in_any_order(store: Store) {
    let db = store.open().await;
    let sql = "SELECT $2 AS second, $1 AS first, $2 AS again";
    let mut tx = db.begin().await.unwrap();
    let in_tx = query(sql)
        .bind(1_i64)
        .bind("two")
        .fetch_one(&mut tx)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    let mut reader = db.read().await.unwrap();
    let on_reader = query(sql)
        .bind(1_i64)
        .bind("two")
        .fetch_one(&mut reader)
        .await
        .unwrap();
    for row in [in_tx, on_reader] {
        assert_eq!(row.get::<&str>("second").unwrap(), "two");
        assert_eq!(row.get::<i64>("first").unwrap(), 1);
        assert_eq!(row.get::<&str>("again").unwrap(), "two");
    }
}

async fn a_placeholder_without_a_value_or_a_value_without_one_is_refused(store: Store) {
    let db = store.open().await;
    let mut reader = db.read().await.unwrap();
    let too_few = query("SELECT $1 AS a, $2 AS b").bind(1_i64);
    assert!(too_few.fetch_one(&mut reader).await.is_err());
    let too_many = query("SELECT $1 AS a").bind(1_i64).bind(2_i64);
    assert!(too_many.fetch_one(&mut reader).await.is_err());
    // A reader cannot write.
    let write = query("INSERT INTO notes (body) VALUES ($1)").bind("no");
    assert!(write.execute(&mut reader).await.is_err());
    // One statement at a time: SQLite would run the first and drop the rest.
    let two = query("SELECT 1; SELECT 2").fetch_all(&mut reader).await;
    assert!(matches!(two, Err(DbError::Encode(_))), "{two:?}");
    // The reader is still good for the next statement.
    let row = query("SELECT $1 AS a")
        .bind(3_i64)
        .fetch_one(&mut reader)
        .await
        .unwrap();
    assert_eq!(row.get::<i64>(0).unwrap(), 3);
}
