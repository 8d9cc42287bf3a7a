//! The inbox must outlive redelivery.

use std::time::Duration;

use seams_core::decl::*;

use super::*;

static SLOW_RETRIES: EventContract = EventContract {
    producer: "billing",
    event_type: "billing.invoice-paid",
    summary: "",
    retries: Retries::Bus(RetryPolicy {
        max_attempts: 4,
        initial_backoff: Duration::from_secs(60),
        max_backoff: Duration::from_secs(600),
    }),
    idempotency: Idempotency::InboxByEventId,
    ordering: Ordering::Unordered,
    when_down: WhenDown::QueueAndDeliverLater,
    versioning: Versioning {
        current: 1,
        accepts: &[1],
    },
    schema: seams_core::decl::no_body,
    downcast: None,
};

#[test]
fn the_default_is_consistent_with_a_long_horizon() {
    assert_eq!(
        Retention::longest_horizon([&SLOW_RETRIES]).0,
        Duration::from_secs(60 + 120 + 240)
    );
    assert!(Retention::default().check([&SLOW_RETRIES]).is_ok());
}

#[test]
fn an_inbox_shorter_than_redelivery_is_refused() {
    let r = Retention {
        inbox: Duration::from_secs(3600),
        ..Retention::default()
    };
    let err = r.check([&SLOW_RETRIES]).unwrap_err();
    assert_eq!(err.horizon, Duration::from_secs(420));
    assert_eq!(err.event, "billing.invoice-paid");
}
