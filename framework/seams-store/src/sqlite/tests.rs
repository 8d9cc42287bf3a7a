//! The inline driver on its own, on an in-memory database: SQLite's
//! refusals keep the kind the store's classifiers read, statements run to
//! their end or stop at the first row as asked, and a connection refuses
//! a location that is not SQLite.

use super::*;

fn memory() -> rusqlite::Connection {
    let conn = rusqlite::Connection::open_in_memory().unwrap();
    conn.execute_batch(
        "PRAGMA foreign_keys = ON;
         CREATE TABLE parents (id INTEGER PRIMARY KEY);
         CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE,
                         n INTEGER CHECK (n >= 0), parent INTEGER REFERENCES parents (id));",
    )
    .unwrap();
    conn
}

fn insert(conn: &rusqlite::Connection, values: &[Value<'_>]) -> Result<u64, DbError> {
    run(
        conn,
        "INSERT INTO t (id, name, n, parent) VALUES ($1, $2, $3, $4)",
        values,
        Want::Changes,
    )
    .map(|o| o.changes)
}

fn row(id: i64, name: &'static str, n: i64, parent: Option<i64>) -> Vec<Value<'static>> {
    use crate::sql::{Kind, Param};
    vec![
        Value::Integer(id),
        name.value(),
        Value::Integer(n),
        parent.map_or(Value::Null(Kind::Integer), Value::Integer),
    ]
}

#[test]
fn refusals_keep_their_kind() {
    let conn = memory();
    assert_eq!(insert(&conn, &row(1, "a", 1, None)).unwrap(), 1);

    let unique = insert(&conn, &row(2, "a", 1, None)).unwrap_err();
    assert!(
        unique
            .to_string()
            .contains("UNIQUE constraint failed: t.name"),
        "{unique}"
    );
    assert_eq!(crate::unique_violation(&unique).as_deref(), Some("t.name"));
    let primary = insert(&conn, &row(1, "b", 1, None)).unwrap_err();
    assert_eq!(crate::unique_violation(&primary).as_deref(), Some("t.id"));

    let check = insert(&conn, &row(3, "c", -1, None)).unwrap_err();
    assert!(crate::check_violation(&check, "n >= 0"), "{check}");
    assert!(crate::unique_violation(&check).is_none());

    let foreign = insert(&conn, &row(4, "d", 1, Some(9))).unwrap_err();
    let DbError::Database(foreign) = foreign else {
        panic!("{foreign}")
    };
    assert_eq!(foreign.kind(), sqlx::error::ErrorKind::ForeignKeyViolation);

    let not_null = run(
        &conn,
        "INSERT INTO t (id, name) VALUES ($1, NULL)",
        &[Value::Integer(5)],
        Want::Changes,
    )
    .unwrap_err();
    let DbError::Database(not_null) = not_null else {
        panic!("{not_null}")
    };
    assert_eq!(not_null.kind(), sqlx::error::ErrorKind::NotNullViolation);
    assert_eq!(not_null.code().as_deref(), Some("1299"));
    assert!(
        not_null.message().contains("NOT NULL"),
        "{}",
        not_null.message()
    );

    let syntax = run(&conn, "SELEC 1", &[], Want::All).unwrap_err();
    let DbError::Database(syntax) = syntax else {
        panic!("{syntax}")
    };
    assert_eq!(syntax.kind(), sqlx::error::ErrorKind::Other);
    assert!(
        syntax.message().contains("syntax error"),
        "{}",
        syntax.message()
    );
    assert!(!crate::connection_lost(&DbError::Database(syntax)));
    // The driver's own refusals are no lost connection either.
    let misuse = error(rusqlite::Error::InvalidQuery);
    assert!(matches!(misuse, DbError::InvalidArgument(_)), "{misuse}");
    assert!(!crate::connection_lost(&misuse));
    assert!(matches!(
        error(rusqlite::Error::QueryReturnedNoRows),
        DbError::RowNotFound
    ));
}

#[test]
fn a_statement_runs_to_its_end_or_stops_at_the_first_row_as_asked() {
    let conn = memory();
    for (id, name) in [(1, "a"), (2, "b"), (3, "c")] {
        insert(&conn, &row(id, name, id, None)).unwrap();
    }
    // Every row it returns is a row it changed: run for its changes, all
    // three change; the count is SQLite's.
    let bumped = run(
        &conn,
        "UPDATE t SET n = n + 10 RETURNING id",
        &[],
        Want::Changes,
    )
    .unwrap();
    assert_eq!((bumped.changes, bumped.rows.len()), (3, 0));
    let all = run(&conn, "SELECT id, n FROM t ORDER BY id", &[], Want::All).unwrap();
    let ns: Vec<&Owned> = all
        .rows
        .iter()
        .map(|r| &r.sqlite_values().values[1])
        .collect();
    assert!(matches!(
        ns[..],
        [Owned::Integer(11), Owned::Integer(12), Owned::Integer(13)]
    ));
    // A read changes nothing, whatever the last write changed.
    assert_eq!(all.changes, 0);
    assert_eq!(&*all.rows[0].sqlite_values().columns, ["id", "n"]);

    let first = run(&conn, "SELECT name FROM t ORDER BY id", &[], Want::First).unwrap();
    assert_eq!(first.rows.len(), 1);
    assert!(matches!(&first.rows[0].sqlite_values().values[..], [Owned::Text(t)] if t == "a"));
}

#[test]
fn every_storage_class_is_copied_out() {
    let conn = memory();
    let out = run(
        &conn,
        "SELECT NULL, 7, 2.5, 'text', x'00ff'",
        &[],
        Want::First,
    )
    .unwrap();
    assert!(matches!(
        &out.rows[0].sqlite_values().values[..],
        [
            Owned::Null,
            Owned::Integer(7),
            Owned::Real(2.5),
            Owned::Text(t),
            Owned::Blob(b)
        ] if t == "text" && b == &[0, 255]
    ));
    let bad = run(&conn, "SELECT CAST(x'ff' AS TEXT)", &[], Want::First).unwrap_err();
    assert!(matches!(bad, DbError::Decode(_)), "{bad}");
}

#[test]
fn a_reader_is_opened_only_on_a_sqlite_file() {
    let postgres = Location::Postgres {
        url: "postgres://nobody@127.0.0.1:1/none".into(),
    };
    assert!(matches!(
        open_reader(&postgres),
        Err(DbError::Configuration(_))
    ));
    let missing = Location::Sqlite {
        path: std::path::PathBuf::from("/nonexistent/dir/none.db"),
        durability: crate::Durability::Full,
    };
    assert!(matches!(open_reader(&missing), Err(DbError::Database(_))));
    // The writer opens a file the migrations created; it creates none.
    assert!(matches!(open_writer(&missing), Err(DbError::Database(_))));
    let dir = tempfile::tempdir().unwrap();
    let absent = Location::Sqlite {
        path: dir.path().join("absent.db"),
        durability: crate::Durability::Full,
    };
    assert!(open_writer(&absent).is_err());
    assert!(!dir.path().join("absent.db").exists());
}

#[test]
fn a_transactions_own_statements_run_one_by_one_or_several_together() {
    use crate::writer::{RELEASE, SAVEPOINT};
    let conn = memory();
    let names = |conn: &rusqlite::Connection| -> Vec<String> {
        run(conn, "SELECT name FROM t ORDER BY id", &[], Want::All)
            .unwrap()
            .rows
            .iter()
            .map(|r| r.get::<String>(0).unwrap())
            .collect()
    };
    for round in 0..2 {
        // The second round runs the kept statements again.
        exec(&conn, "BEGIN IMMEDIATE").unwrap();
        insert(&conn, &row(1, "kept", 1, None)).unwrap();
        exec(&conn, SAVEPOINT).unwrap();
        insert(&conn, &row(2, "undone", 1, None)).unwrap();
        // Two statements: both run, so the savepoint is gone.
        exec(
            &conn,
            "ROLLBACK TO SAVEPOINT seams_tx; RELEASE SAVEPOINT seams_tx",
        )
        .unwrap();
        let gone = exec(&conn, RELEASE).unwrap_err();
        assert!(gone.to_string().contains("no such savepoint"), "{gone}");
        exec(&conn, SAVEPOINT).unwrap();
        insert(&conn, &row(3, "released", 1, None)).unwrap();
        exec(&conn, RELEASE).unwrap();
        exec(&conn, "COMMIT").unwrap();
        assert!(conn.is_autocommit(), "round {round}: the transaction ended");
        assert_eq!(names(&conn), ["kept", "released"], "round {round}");
        exec(&conn, "DELETE FROM t").unwrap();
    }
    let refused = exec(&conn, "COMMIT").unwrap_err();
    assert!(refused.to_string().contains("no transaction"), "{refused}");
}

#[test]
fn each_placeholder_takes_the_value_of_its_number_wherever_it_appears() {
    use crate::sql::Param;
    let conn = memory();
    let text = |sql: &str, values: &[Value<'_>]| -> String {
        let ran = run(&conn, sql, values, Want::First).unwrap();
        ran.rows[0].get::<String>(0).unwrap()
    };
    let (a, b, c) = ("a".value(), "b".value(), "c".value());
    assert_eq!(text("SELECT $2 || $1", &[a.clone(), b.clone()]), "ba");
    assert_eq!(
        text(
            "SELECT $3 || $1 || $3 || $2",
            &[a.clone(), b.clone(), c.clone()]
        ),
        "cacb"
    );
    // Text in quotes is not a placeholder, and stays as written.
    assert_eq!(text("SELECT '$2' || $1", std::slice::from_ref(&a)), "$2a");
}

#[test]
fn values_and_parameters_that_do_not_match_are_refused() {
    use crate::sql::Param;
    let conn = memory();
    let (a, b, c) = ("a".value(), "b".value(), "c".value());
    for (sql, values, why) in [
        // $2 appears nowhere: its value would be bound to nothing.
        (
            "SELECT $1, $3",
            vec![a.clone(), b.clone(), c.clone()],
            "skips one of $1…$3",
        ),
        // Parameters of SQLite's own syntax are counted beside the store's.
        ("SELECT $1, ?", vec![a.clone()], "2 parameters and 1 values"),
        (
            "SELECT $1, :name",
            vec![a.clone()],
            "2 parameters and 1 values",
        ),
        // A placeholder in a comment is seen by the store, not by SQLite.
        (
            "/* $2 */ SELECT $1",
            vec![a.clone(), b.clone()],
            "1 parameters and 2 values",
        ),
        // Fewer or more values than placeholders.
        (
            "SELECT $1, $2",
            vec![a.clone()],
            "2 parameters and 1 values",
        ),
        (
            "SELECT $1",
            vec![a.clone(), b.clone()],
            "1 parameters and 2 values",
        ),
        (
            "SELECT $1; SELECT 2",
            vec![a.clone()],
            "more than one statement",
        ),
    ] {
        let e = run(&conn, sql, &values, Want::All).unwrap_err();
        assert!(matches!(e, DbError::Encode(_)), "{sql}: {e:?}");
        assert!(e.to_string().contains(why), "{sql}: {e}");
    }
}
