//! The harness delivers through a real relay: applied once, redelivered
//! as a no-op, a permanent failure dead-lettered, what the consumer
//! published readable.

use seams_core::decl::*;
use seams_runtime::Handles;
use serde::{Deserialize, Serialize};

use super::*;

static TICKED: EventContract = EventContract {
    producer: "clock",
    event_type: "clock.ticked",
    summary: "",
    retries: Retries::Bus(RetryPolicy::STANDARD),
    idempotency: Idempotency::InboxByEventId,
    ordering: Ordering::PerKey { field: "key" },
    when_down: WhenDown::QueueAndDeliverLater,
    versioning: Versioning {
        current: 1,
        accepts: &[1],
    },
    schema: || serde_json::json!({"type": "object", "required": ["key"], "properties": {"key": {"type": "string"}}}),
    downcast: None,
};

#[derive(Debug, Serialize, Deserialize)]
struct Ticked {
    key: String,
    n: i64,
}

impl Event for Ticked {
    const CONTRACT: &'static EventContract = &TICKED;
}

/// Echoes every tick with `n + 100` into its own outbox; refuses n = 13.
fn echo() -> Subscription {
    Subscription {
        consumer: "echo",
        producer: "clock",
        handles: vec![Handles::new::<Ticked, _>(&[1], |ev, tx| {
            Box::pin(async move {
                if ev.n == 13 {
                    return Err(HandlerError::Permanent("13 is never echoed".into()));
                }
                let echoed = Ticked {
                    key: ev.key,
                    n: ev.n + 100,
                };
                tx.publish(
                    &echoed,
                    uuid::Uuid::now_v7().to_string(),
                    "2026-12-04T00:00:00Z".into(),
                )?;
                Ok(())
            })
        })],
    }
}

#[tokio::test]
async fn delivers_redelivers_and_reads_what_the_consumer_published() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(&dir.path().join("echo.db"), "echo", &NO_MIGRATIONS)
        .await
        .unwrap();
    let h = Harness::new(echo(), db).await.unwrap();
    let one = h
        .publish(&Ticked {
            key: "a".into(),
            n: 1,
        })
        .await
        .unwrap();
    let unlucky = h
        .publish(&Ticked {
            key: "b".into(),
            n: 13,
        })
        .await
        .unwrap();
    assert_eq!(one.subject, "a");
    assert_eq!((one.sequence, unlucky.sequence), (Some(1), Some(2)));

    assert_eq!(h.deliver().await.unwrap(), 2);
    assert_eq!(h.deliver().await.unwrap(), 0, "the cursor moved past both");
    assert!(h.applied(&one).await.unwrap());
    assert!(!h.applied(&unlucky).await.unwrap());
    let dead = h.dead_letters().await.unwrap();
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].envelope.id, unlucky.id);

    h.redeliver(&one).await.unwrap();
    let published = h.published().await.unwrap();
    assert_eq!(published.len(), 1, "applied once, whatever the redelivery");
    assert_eq!(published[0].data.to_value().unwrap()["n"], 101);
    assert_eq!(published[0].causationid.as_deref(), Some(one.id.as_str()));
    assert_eq!(
        h.redeliver(&unlucky).await,
        Err(HandlerError::Permanent("13 is never echoed".into()))
    );
}
