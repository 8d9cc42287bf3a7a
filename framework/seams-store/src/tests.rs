//! The store against a real SQLite file and a real PostgreSQL server (each
//! test runs on both, [`on_both`]): the harness and helpers here, the tests
//! by concern in the modules below.

use seams_core::{CallContext, Envelope};
use seams_testkit::postgres::{PostgresServer, Shutdown};

use crate::pipeline::Turn;
use crate::*;

pub(crate) static NOTES: Migrations = Migrations {
    sqlite: sqlx::migrate!("./test-migrations/sqlite"),
    postgres: sqlx::migrate!("./test-migrations/postgres"),
};

/// Where one test's database lives; kept alive for the test's duration.
enum Store {
    Sqlite(tempfile::TempDir),
    Postgres(PostgresServer, String),
}

impl Store {
    fn sqlite() -> Store {
        Store::Sqlite(tempfile::tempdir().unwrap())
    }

    /// `None` when PostgreSQL is not installed (outside CI).
    async fn postgres() -> Option<Store> {
        let pg = PostgresServer::start_or_skip()?;
        let url = pg.provision("notes").await.unwrap();
        Some(Store::Postgres(pg, url))
    }

    fn location(&self) -> Location {
        match self {
            Store::Sqlite(dir) => Location::Sqlite {
                path: dir.path().join("notes.db"),
                durability: Durability::Full,
            },
            Store::Postgres(_, url) => Location::Postgres { url: url.clone() },
        }
    }

    async fn open(&self) -> Db {
        Db::connect(&self.location(), "notes", &NOTES)
            .await
            .unwrap()
    }
}

/// Runs each named test body once on SQLite and once on PostgreSQL.
macro_rules! on_both {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn sqlite() {
                super::$name(super::Store::sqlite()).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn postgres() {
                let Some(store) = super::Store::postgres().await else { return };
                super::$name(store).await
            }
        }
    )*};
}

fn envelope(id: &str, subject: &str) -> Envelope {
    Envelope {
        specversion: "1.0".into(),
        id: id.into(),
        source: "/seams/notes".into(),
        event_type: "notes.note-added".into(),
        subject: subject.into(),
        time: "2026-11-26T00:00:00Z".into(),
        datacontenttype: "application/json".into(),
        dataversion: 1,
        traceparent: None,
        correlationid: CallContext::new_root().correlation_id,
        causationid: None,
        sequence: None,
        data: serde_json::json!({ "id": subject }).into(),
        alternates: Default::default(),
    }
}

/// Adds a note in `tx`.
pub(crate) async fn add_note(tx: &mut Tx, body: &str) {
    query("INSERT INTO notes (body) VALUES ($1)")
        .bind(body.to_owned())
        .execute(tx)
        .await
        .unwrap();
}

/// The claim of a keyed `notes.add` with key `k1`.
fn add_note_claim() -> IdempotencyClaim {
    IdempotencyClaim {
        scope: "notes.add".into(),
        key: "k1".into(),
        fingerprint: "f1".into(),
    }
}

/// The ids of the first 100 events in the outbox, in order.
async fn outbox_ids(db: &Db) -> Vec<String> {
    db.read_outbox(0, 100)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.id)
        .collect()
}

/// The notes `conn` sees.
async fn count_notes(on: &mut impl On) -> i64 {
    query("SELECT COUNT(*) FROM notes")
        .fetch_one(on)
        .await
        .unwrap()
        .get(0)
        .unwrap()
}

/// The notes' bodies, sorted.
pub(crate) async fn note_bodies(db: &Db) -> Vec<String> {
    query("SELECT body FROM notes ORDER BY body")
        .fetch_all(&mut db.read().await.unwrap())
        .await
        .unwrap()
        .iter()
        .map(|row| row.get(0).unwrap())
        .collect()
}

mod batches;
mod group_commit;
mod postgres_only;
mod sql;
mod tables;
