//! Reading a statement's placeholders: counted, checked, numbered, kept.

use std::rc::Rc;

use super::{KEPT, READ, shape};

fn placeholders(sql: &str) -> Result<usize, String> {
    shape(sql).map(|s| s.placeholders)
}

#[test]
fn the_highest_placeholder_is_counted_and_quoted_text_skipped() {
    assert_eq!(placeholders("INSERT INTO t (a, b) VALUES ($1, $2)"), Ok(2));
    assert_eq!(
        placeholders("UPDATE t SET a = '$9;' WHERE \"b$8\" = $3 OR c = $1"),
        Ok(3)
    );
    assert_eq!(placeholders("SELECT 1"), Ok(0));
    let sql = "INSERT INTO t (név, b) VALUES ('it''s $9; ok', $12)$1 RETURNING \"é\"";
    assert_eq!(placeholders(sql), Ok(12));
    assert_eq!(placeholders("$1$2"), Ok(2));
    assert_eq!(placeholders("a = $7"), Ok(7));
    assert_eq!(placeholders("a = $65535"), Ok(65_535));
}

#[test]
fn what_is_not_one_statement_with_placeholders_is_refused() {
    for bad in [
        "SELECT 1; SELECT 2",
        "SELECT $a",
        "SELECT $",
        "SELECT $0",
        "SELECT 'open",
        "SELECT 'a'; SELECT 2",
        "SELECT $1;",
        "SELECT \"open",
        "SELECT $99999999999999999999999",
        // Above PostgreSQL's limit: refused before a vector that long is made.
        "SELECT $65536",
        "SELECT $99999999999",
    ] {
        assert!(shape(bad).is_err(), "{bad}");
        // Refusals are not kept: the same text is refused again.
        assert!(shape(bad).is_err(), "{bad}, again");
    }
}

#[test]
fn placeholders_outside_quotes_are_numbered_and_gaps_are_seen() {
    let read = shape("UPDATE t SET a = '$9', \"b$8\" = $2 WHERE c = $1 OR d = $2").unwrap();
    assert_eq!(
        &*read.numbered,
        "UPDATE t SET a = '$9', \"b$8\" = ?2 WHERE c = ?1 OR d = ?2"
    );
    assert_eq!(read.placeholders, 2);
    assert!(read.complete);
    let gap = shape("SELECT $1, $3").unwrap();
    assert_eq!(&*gap.numbered, "SELECT ?1, ?3");
    assert_eq!(gap.placeholders, 3);
    assert!(!gap.complete, "$2 is missing");
    let none = shape("SELECT 'a$'").unwrap();
    assert_eq!(
        (&*none.numbered, none.placeholders, none.complete),
        ("SELECT 'a$'", 0, true)
    );
}

#[test]
fn a_text_is_read_once_and_the_kept_readings_are_bounded() {
    let sql = "SELECT a FROM kept WHERE b = $1";
    let first = shape(sql).unwrap();
    assert!(Rc::ptr_eq(&first, &shape(sql).unwrap()), "the kept reading");
    // Reading another text keeps the first.
    assert!(!Rc::ptr_eq(
        &first,
        &shape("SELECT a FROM kept WHERE b = $1 ").unwrap()
    ));
    assert!(Rc::ptr_eq(&first, &shape(sql).unwrap()), "still kept");
    for n in 0..=KEPT {
        let text = format!("SELECT {n} WHERE x = $1");
        assert_eq!(placeholders(&text), Ok(1));
    }
    let kept = READ.with_borrow(|read| read.len());
    assert!((1..=KEPT).contains(&kept), "{kept} kept");
    // Starting over forgets nothing that matters: the text is read again.
    assert_eq!(placeholders(sql), Ok(1));
}
