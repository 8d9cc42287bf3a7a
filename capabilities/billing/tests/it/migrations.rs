//! Billing's schema changes applied to a database that already holds data:
//! `0002_compensation` rebuilds `invoices` (SQLite cannot alter a CHECK) on
//! a connection with foreign keys on, and must keep every row, every
//! reference to it and every constraint.

use std::borrow::Cow;

use sqlx::migrate::Migrator;

use super::*;

/// SQLite's migrations up to and including `version` (the history this
/// test replays is SQLite's; PostgreSQL's alters the CHECK in place).
fn migrations_up_to(version: i64) -> seams_store::Migrations {
    let all = sqlx::migrate!("./migrations/sqlite");
    seams_store::Migrations {
        sqlite: Migrator {
            migrations: Cow::Owned(
                all.migrations
                    .iter()
                    .filter(|m| m.version <= version)
                    .cloned()
                    .collect(),
            ),
            ..Migrator::DEFAULT
        },
        postgres: Migrator::DEFAULT,
    }
}

/// Runs each statement in one committed transaction of `db`.
async fn exec(db: &Db, statements: &[&str]) -> Result<(), seams_store::DbError> {
    let mut tx = db.begin().await?;
    for s in statements {
        seams_store::query(s).execute(&mut tx).await?;
    }
    Ok(tx.commit().await?)
}

#[tokio::test]
async fn a_database_from_before_compensation_migrates_and_keeps_its_rows() {
    let dir = tempfile::tempdir().unwrap();
    let first = migrations_up_to(1);
    assert_eq!(first.sqlite.migrations.len(), 1);
    let old = Db::open(&dir.path().join("billing.db"), "billing", &first)
        .await
        .unwrap();
    exec(
        &old,
        &[
            "INSERT INTO invoices VALUES ('inv-open', 'cust-1', 'EUR', 2100, 'open', '2026-01-01T00:00:00Z')",
            "INSERT INTO invoices VALUES ('inv-paid', 'cust-1', 'EUR', 2100, 'paid', '2026-01-01T00:00:01Z')",
            "INSERT INTO invoice_lines VALUES ('inv-open', 0, 'TEA', 2, 450, 900), ('inv-open', 1, 'MUG', 1, 1200, 1200)",
            "INSERT INTO invoice_lines VALUES ('inv-paid', 0, 'TEA', 2, 450, 900), ('inv-paid', 1, 'MUG', 1, 1200, 1200)",
            "INSERT INTO payments VALUES ('pay-1', 'inv-paid', 2100, 'EUR', '2026-01-01T00:00:02Z')",
        ],
    )
    .await
    .unwrap();
    let refused = exec(
        &old,
        &["UPDATE invoices SET status = 'voided' WHERE id = 'inv-open'"],
    )
    .await
    .unwrap_err();
    assert!(
        seams_store::check_violation(&refused, "status"),
        "the old CHECK refuses the new statuses, hence the rebuild: {refused}"
    );
    old.close().await;

    // Opening billing applies 0002.
    let w = world_in(dir).await;

    let got = w.app.get("/billing/invoices/inv-open").await;
    assert_eq!(got.status, StatusCode::OK, "{}", got.json);
    assert_eq!(
        got.json,
        json!({
            "id": "inv-open",
            "customer_id": "cust-1",
            "lines": [
                { "sku": "TEA", "quantity": 2, "unit_price": { "amount": 450, "currency": "EUR" }, "line_total": { "amount": 900, "currency": "EUR" } },
                { "sku": "MUG", "quantity": 1, "unit_price": { "amount": 1200, "currency": "EUR" }, "line_total": { "amount": 1200, "currency": "EUR" } },
            ],
            "total": { "amount": 2100, "currency": "EUR" },
            "status": "open",
            "created_at": "2026-01-01T00:00:00Z",
        })
    );
    assert_eq!(w.status("inv-paid").await, "paid");
    assert_eq!(
        (
            w.count("invoices").await,
            w.count("invoice_lines").await,
            w.count("payments").await,
            w.count("refunds").await
        ),
        (2, 4, 1, 0)
    );

    // Every reference still holds, and is still enforced.
    let orphans: Vec<String> = seams_store::query("SELECT \"table\" FROM pragma_foreign_key_check")
        .fetch_all(&mut w.db.read().await.unwrap())
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0).unwrap())
        .collect();
    assert_eq!(orphans, Vec::<String>::new());
    for orphan in [
        "INSERT INTO invoice_lines VALUES ('nope', 0, 'TEA', 1, 450, 450)",
        "INSERT INTO payments VALUES ('pay-2', 'nope', 2100, 'EUR', 't')",
        "DELETE FROM invoices WHERE id = 'inv-open'",
    ] {
        let e = exec(&w.db, &[orphan]).await.unwrap_err();
        assert!(e.to_string().contains("FOREIGN KEY"), "{orphan}: {e}");
    }
    // The new CHECK admits exactly the four statuses.
    let e = exec(
        &w.db,
        &["UPDATE invoices SET status = 'cancelled' WHERE id = 'inv-open'"],
    )
    .await
    .unwrap_err();
    assert!(seams_store::check_violation(&e, "status"), "{e}");
    let indexes: String = seams_store::query(
        "SELECT group_concat(name) FROM sqlite_master WHERE type = 'index' AND tbl_name = 'invoices' AND sql IS NOT NULL",
    )
    .fetch_one(&mut w.db.read().await.unwrap())
    .await
    .unwrap()
    .get(0)
    .unwrap();
    assert_eq!(indexes, "invoices_customer");

    // And the migrated rows are compensated like new ones.
    w.fail("inv-open").await;
    w.fail("inv-paid").await;
    assert_eq!(w.deliver().await, 2);
    assert_eq!(w.status("inv-open").await, "voided");
    assert_eq!(w.status("inv-paid").await, "refunded");
    let payment_id: String =
        seams_store::query("SELECT payment_id FROM refunds WHERE invoice_id = 'inv-paid'")
            .fetch_one(&mut w.db.read().await.unwrap())
            .await
            .unwrap()
            .get(0)
            .unwrap();
    assert_eq!(payment_id, "pay-1");
    assert_eq!(w.db.dead_letters().await.unwrap(), []);
}
