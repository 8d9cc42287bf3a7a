//! The AsyncAPI document: a channel per event, a message per accepted
//! version, references resolvable from the document's root.

use super::*;
use seams_core::decl::*;
use std::time::Duration;

#[derive(serde::Serialize, utoipa::ToSchema)]
struct Line {
    sku: String,
}

#[derive(serde::Serialize, utoipa::ToSchema)]
struct Paid {
    invoice_id: String,
    lines: Vec<Line>,
}

static PAID: EventContract = EventContract {
    producer: "billing",
    event_type: "billing.invoice-paid",
    summary: "Paid.",
    retries: Retries::Bus(RetryPolicy {
        max_attempts: 3,
        initial_backoff: Duration::from_millis(1),
        max_backoff: Duration::from_millis(2),
    }),
    idempotency: Idempotency::InboxByEventId,
    ordering: Ordering::PerKey {
        field: "invoice_id",
    },
    when_down: WhenDown::QueueAndDeliverLater,
    versioning: Versioning {
        current: 2,
        accepts: &[1, 2],
    },
    schema: crate::schema_of::<Paid>,
    downcast: None,
};

#[test]
fn each_event_is_a_channel_with_its_versions_and_who_sends_and_receives_it() {
    let doc = document(
        "Shop",
        &[Channel {
            event: &PAID,
            consumers: &["fulfillment", "notification"],
        }],
    );
    let channel = &doc["channels"]["billing.invoice-paid"];
    assert_eq!(channel["address"], "billing.invoice-paid");
    assert!(channel["messages"]["v1"].get("payload").is_none());
    let payload = &channel["messages"]["v2"]["payload"];
    assert_eq!(
        payload["properties"]["lines"]["items"]["$ref"],
        "#/components/schemas/Line"
    );
    assert!(payload.get("$defs").is_none() && payload.get("$schema").is_none());
    assert_eq!(
        doc["components"]["schemas"]["Line"]["properties"]["sku"]["type"],
        "string"
    );
    let ops = doc["operations"].as_object().unwrap();
    assert_eq!(
        ops.keys().collect::<Vec<_>>(),
        [
            "billing.send.billing.invoice-paid",
            "fulfillment.receive.billing.invoice-paid",
            "notification.receive.billing.invoice-paid"
        ]
    );
    assert_eq!(
        ops["fulfillment.receive.billing.invoice-paid"]["messages"][0]["$ref"],
        "#/channels/billing.invoice-paid/messages/v2"
    );
    assert!(!doc.to_string().contains("#/$defs/"));
}
