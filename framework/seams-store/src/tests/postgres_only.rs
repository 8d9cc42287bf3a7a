//! PostgreSQL alone: what the server enforces for the split.

use super::*;
use std::sync::Arc;
use std::time::Duration;

#[tokio::test]
async fn a_capability_role_cannot_open_another_capabilitys_database() {
    let Some(pg) = PostgresServer::start_or_skip() else {
        return;
    };
    let billing = pg.provision("billing").await.unwrap();
    let identity = pg.provision("identity").await.unwrap();
    use sqlx::Connection;
    // Each role reaches its own database...
    sqlx::PgConnection::connect(&billing).await.unwrap();
    sqlx::PgConnection::connect(&identity).await.unwrap();
    // ...and billing's credentials cannot read identity's.
    let mut cross = url::Url::parse(&billing).unwrap();
    cross.set_path("/identity");
    let err = sqlx::PgConnection::connect(cross.as_str())
        .await
        .expect_err("billing must not open identity's database");
    assert!(
        err.to_string()
            .contains("permission denied for database \"identity\""),
        "{err}"
    );
    // Nor may it make itself a new database to share.
    let mut own = sqlx::PgConnection::connect(&billing).await.unwrap();
    let err = sqlx::query("CREATE DATABASE shared")
        .execute(&mut own)
        .await
        .expect_err("no CREATEDB");
    assert!(err.to_string().contains("permission denied"), "{err}");
    // Provisioning again is harmless (it only rotates the password).
    let again = pg.provision("billing").await.unwrap();
    assert!(
        sqlx::PgConnection::connect(&billing).await.is_err(),
        "old password"
    );
    sqlx::PgConnection::connect(&again).await.unwrap();
}

#[tokio::test]
async fn provisioning_sends_the_server_a_verifier_never_the_password() {
    let Some(pg) = PostgresServer::start_or_skip() else {
        return;
    };
    use sqlx::Connection;
    let mut admin = sqlx::PgConnection::connect(&pg.admin_url()).await.unwrap();
    // Every statement into the server's log, to read what it was sent.
    sqlx::query("ALTER SYSTEM SET log_statement = 'all'")
        .execute(&mut admin)
        .await
        .unwrap();
    sqlx::query("SELECT pg_reload_conf()")
        .execute(&mut admin)
        .await
        .unwrap();
    let url = pg.provision("billing").await.unwrap();
    let password = url::Url::parse(&url)
        .unwrap()
        .password()
        .unwrap()
        .to_owned();
    let (stored,): (String,) =
        sqlx::query_as("SELECT rolpassword FROM pg_authid WHERE rolname = 'billing'")
            .fetch_one(&mut admin)
            .await
            .unwrap();
    assert!(stored.starts_with("SCRAM-SHA-256$4096:"), "{stored}");
    // The role logs in with the password the server never saw.
    sqlx::PgConnection::connect(&url).await.unwrap();
    let log = pg.log();
    assert!(
        log.contains("PASSWORD 'SCRAM-SHA-256$"),
        "statements are logged: {log}"
    );
    assert!(
        !log.contains(&password),
        "the password reached the server's log"
    );
    // The verifier is salted: the same password twice, two verifiers.
    assert_ne!(
        crate::postgres::scram_verifier("same"),
        crate::postgres::scram_verifier("same")
    );
}

#[tokio::test]
async fn a_second_writer_of_one_database_is_refused() {
    let Some(store) = Store::postgres().await else {
        return;
    };
    let first = store.open().await;
    let err = Db::connect(&store.location(), "notes", &NOTES)
        .await
        .expect_err("one writer per database");
    assert!(
        format!("{err:#}").contains("another process is the writer"),
        "{err:#}"
    );
    first.close().await;
    // Once the first let go, a new writer may start.
    store.open().await;
}

#[tokio::test]
async fn a_successor_taking_over_waits_for_its_predecessor_s_writer_lock() {
    let Some(store) = Store::postgres().await else {
        return;
    };
    let first = store.open().await;
    let told = Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let take_over = crate::TakeOver {
        within: Duration::from_secs(20),
        waiting: Arc::new({
            let told = told.clone();
            move |name: &str| told.lock().unwrap().push(name.to_owned())
        }),
    };
    assert_eq!(
        format!("{take_over:?}"),
        "TakeOver { within: 20s, .. }",
        "its callback is not shown"
    );
    let location = store.location();
    let successor = tokio::spawn({
        let take_over = take_over.clone();
        async move { Db::connect_taking_over(&location, "notes", &NOTES, Some(&take_over)).await }
    });
    // It says once that it waits, and waits while the predecessor writes.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while told.lock().unwrap().is_empty() {
        assert!(std::time::Instant::now() < deadline, "never said it waits");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let mut tx = first.begin().await.unwrap();
    tx.publish(&envelope("last-of-the-first", "a"))
        .await
        .unwrap();
    tx.commit().await.unwrap();
    assert!(!successor.is_finished(), "the successor waits for the lock");
    first.close().await;
    let second = successor.await.unwrap().unwrap();
    assert_eq!(*told.lock().unwrap(), ["notes"]);
    let mut tx = second.begin().await.unwrap();
    tx.publish(&envelope("first-of-the-second", "a"))
        .await
        .unwrap();
    tx.commit().await.unwrap();
    let ids: Vec<String> = second
        .read_outbox(0, 10)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.id)
        .collect();
    assert_eq!(ids, ["last-of-the-first", "first-of-the-second"]);

    // A predecessor that does not let go in time is an error naming it.
    let short = crate::TakeOver {
        within: Duration::from_millis(200),
        ..take_over
    };
    let err = Db::connect_taking_over(&store.location(), "notes", &NOTES, Some(&short))
        .await
        .expect_err("the second still holds it");
    assert!(
        format!("{err:#}").contains("did not let go within 200 ms"),
        "{err:#}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_writer_reconnects_after_a_server_restart_and_loses_only_uncommitted_work() {
    let Some(Store::Postgres(mut pg, url)) = Store::postgres().await else {
        return;
    };
    let db = Db::connect(&Location::Postgres { url }, "notes", &NOTES)
        .await
        .unwrap();
    let mut tx = db.begin().await.unwrap();
    tx.publish(&envelope("before", "a")).await.unwrap();
    tx.commit().await.unwrap();

    // A transaction open across a crash of the server is lost, and says so.
    let mut open = db.begin().await.unwrap();
    open.publish(&envelope("in-flight", "a")).await.unwrap();
    tokio::task::block_in_place(|| pg.stop(Shutdown::Immediate));
    assert!(open.commit().await.is_err());
    // While the server is down, transactions fail rather than hang.
    assert!(db.begin().await.is_err());
    tokio::task::block_in_place(|| pg.resume()).unwrap();

    // The first transaction after the restart reconnects by itself.
    let mut tx = db.begin().await.unwrap();
    tx.publish(&envelope("after", "a")).await.unwrap();
    tx.commit().await.unwrap();
    let ids = outbox_ids(&db).await;
    assert_eq!(ids, ["before", "after"]);
}
