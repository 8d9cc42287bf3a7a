//! Declaration checks: each rule the runtime enforces at start has a case.

use super::*;

fn op(kind: Kind, retries: Retries, idempotency: Idempotency) -> Operation {
    Operation {
        capability: "billing",
        name: "pay-invoice",
        summary: "",
        kind,
        timeout: Duration::from_secs(1),
        retries,
        idempotency,
        ordering: Ordering::Unordered,
        when_down: WhenDown::FailFast {
            problem: "down",
            retry_after: Duration::from_secs(1),
        },
        versioning: Versioning {
            current: 1,
            accepts: &[1],
        },
        request: no_body,
        response: no_body,
    }
}

#[test]
fn caller_may_not_retry_a_non_idempotent_command() {
    let bad = op(
        Kind::Command,
        Retries::Caller(RetryPolicy::STANDARD),
        Idempotency::NotIdempotent {
            reason: "sends money",
        },
    );
    assert_eq!(
        bad.check().unwrap_err().problem,
        "caller retries a non-idempotent operation"
    );
    let single = op(
        Kind::Command,
        Retries::Caller(RetryPolicy {
            max_attempts: 1,
            ..RetryPolicy::STANDARD
        }),
        Idempotency::NotIdempotent {
            reason: "sends money",
        },
    );
    assert!(single.check().is_ok());
    assert!(
        op(
            Kind::Command,
            Retries::Caller(RetryPolicy::STANDARD),
            Idempotency::Keyed
        )
        .check()
        .is_ok()
    );
}

#[test]
fn queries_are_read_only_and_commands_are_not() {
    assert!(
        op(Kind::Query, Retries::Nobody, Idempotency::Keyed)
            .check()
            .is_err()
    );
    assert!(
        op(Kind::Command, Retries::Nobody, Idempotency::ReadOnly)
            .check()
            .is_err()
    );
    assert!(
        op(Kind::Query, Retries::Nobody, Idempotency::ReadOnly)
            .check()
            .is_ok()
    );
}

#[test]
fn versions_must_accept_themselves() {
    let mut o = op(Kind::Query, Retries::Nobody, Idempotency::ReadOnly);
    o.versioning = Versioning {
        current: 2,
        accepts: &[1],
    };
    assert!(o.check().is_err());
}

#[test]
fn a_per_key_ordering_names_a_required_string_or_integer_of_the_payload() {
    let ev = |field: &'static str, schema: SchemaFn| EventContract {
        producer: "billing",
        event_type: "billing.invoice-paid",
        summary: "",
        retries: Retries::Bus(RetryPolicy::STANDARD),
        idempotency: Idempotency::InboxByEventId,
        ordering: Ordering::PerKey { field },
        when_down: WhenDown::QueueAndDeliverLater,
        versioning: Versioning {
            current: 1,
            accepts: &[1],
        },
        schema,
        downcast: None,
    };
    let problem = |field, schema| ev(field, schema).check().map_err(|e| e.problem);
    // As the derives write it: the root a `$ref` into its own `$defs`.
    let paid = || {
        serde_json::json!({
            "$ref": "#/$defs/Paid",
            "$defs": { "Paid": {
                "type": "object",
                "required": ["invoice_id", "seq", "amount"],
                "properties": {
                    "invoice_id": { "type": "string" },
                    "seq": { "type": "integer" },
                    "amount": { "$ref": "#/$defs/Amount" },
                    "note": { "type": "string" },
                    "maybe": { "type": ["string", "null"] }
                }
            }, "Amount": { "type": "object" } }
        })
    };
    assert_eq!(problem("invoice_id", paid), Ok(()));
    assert_eq!(problem("seq", paid), Ok(()));
    for (field, why) in [
        ("invoice", "is not a property"),
        ("note", "is not a required property"),
        ("amount", "must be a string or an integer"),
    ] {
        let got = problem(field, paid).unwrap_err();
        assert!(got.contains(why), "{field}: {got}");
    }
    assert!(problem("invoice_id", no_body).is_err());
    let nullable = || {
        serde_json::json!({ "type": "object", "required": ["k"],
                            "properties": { "k": { "type": ["string", "null"] } } })
    };
    assert!(
        problem("k", nullable)
            .unwrap_err()
            .contains("string or an integer")
    );
}

#[test]
fn events_need_bus_retries_and_dedupe() {
    let ev = |retries, idempotency| EventContract {
        producer: "billing",
        event_type: "billing.invoice-paid",
        summary: "",
        retries,
        idempotency,
        ordering: Ordering::PerKey {
            field: "invoice_id",
        },
        when_down: WhenDown::QueueAndDeliverLater,
        versioning: Versioning {
            current: 1,
            accepts: &[1],
        },
        schema: || serde_json::json!({"type": "object", "required": ["invoice_id"], "properties": {"invoice_id": {"type": "string"}}}),
        downcast: None,
    };
    assert!(
        ev(
            Retries::Bus(RetryPolicy::STANDARD),
            Idempotency::InboxByEventId
        )
        .check()
        .is_ok()
    );
    assert!(
        ev(
            Retries::Caller(RetryPolicy::STANDARD),
            Idempotency::InboxByEventId
        )
        .check()
        .is_err()
    );
    assert!(
        ev(
            Retries::Bus(RetryPolicy::STANDARD),
            Idempotency::NotIdempotent { reason: "" }
        )
        .check()
        .is_err()
    );
    let mut wrong_prefix = ev(Retries::Nobody, Idempotency::InboxByEventId);
    wrong_prefix.event_type = "billingx.invoice-paid";
    assert!(wrong_prefix.check().is_err());
}

#[test]
fn backoff_doubles_up_to_the_cap() {
    let p = RetryPolicy {
        max_attempts: 6,
        initial_backoff: Duration::from_millis(100),
        max_backoff: Duration::from_millis(500),
    };
    let delays: Vec<u64> = (1..=6).map(|a| p.backoff(a).as_millis() as u64).collect();
    assert_eq!(delays, [0, 100, 200, 400, 500, 500]);
    assert_eq!(p.horizon(), Duration::from_millis(1700));
    assert_eq!(p.backoff(200), Duration::from_millis(500));
}

static QUOTE: Operation = Operation {
    capability: "catalog",
    name: "quote-prices",
    summary: "",
    kind: Kind::Query,
    timeout: Duration::from_secs(1),
    retries: Retries::Nobody,
    idempotency: Idempotency::ReadOnly,
    ordering: Ordering::Unordered,
    when_down: WhenDown::Fallback { description: "" },
    versioning: Versioning {
        current: 1,
        accepts: &[1],
    },
    request: no_body,
    response: no_body,
};

static GET_CUSTOMER: Operation = Operation {
    capability: "identity",
    name: "get-customer",
    ..QUOTE
};

static REGISTERED: EventContract = EventContract {
    producer: "identity",
    event_type: "identity.customer-registered",
    summary: "",
    retries: Retries::Nobody,
    idempotency: Idempotency::InboxByEventId,
    ordering: Ordering::Unordered,
    when_down: WhenDown::QueueAndDeliverLater,
    versioning: Versioning {
        current: 1,
        accepts: &[1],
    },
    schema: no_body,
    downcast: None,
};

static EMAIL_CHANGED: EventContract = EventContract {
    event_type: "identity.customer-email-changed",
    ..REGISTERED
};

static BILLING: Dependencies = Dependencies {
    capability: "billing",
    calls: &[&QUOTE, &GET_CUSTOMER],
    consumes: &[],
};

static NOTIFICATION: Dependencies = Dependencies {
    capability: "notification",
    calls: &[],
    consumes: &[&REGISTERED, &EMAIL_CHANGED],
};

#[test]
fn only_declared_clients_may_call_or_read() {
    let clients = Clients::new([&BILLING, &NOTIFICATION]);
    assert!(clients.may_call("billing", &QUOTE));
    assert!(clients.may_call("billing", &GET_CUSTOMER));
    assert!(!clients.may_call("notification", &QUOTE));
    // An operation is its capability and its name together: declaring
    // catalog's quote-prices opens neither catalog's other operations nor
    // another capability's operation of the same name.
    static OTHER_OF_CATALOG: Operation = Operation {
        name: "delete-everything",
        ..QUOTE
    };
    static QUOTE_ELSEWHERE: Operation = Operation {
        capability: "pricing",
        ..QUOTE
    };
    assert!(!clients.may_call("billing", &OTHER_OF_CATALOG));
    assert!(!clients.may_call("billing", &QUOTE_ELSEWHERE));
    assert!(
        !clients.may_call("payroll", &QUOTE),
        "not part of the system"
    );
    assert!(clients.may_read("notification", "identity"));
    assert!(!clients.may_read("billing", "identity"));
    assert!(!clients.may_read("notification", "billing"));
    assert_eq!(clients.callers_of(&QUOTE), ["billing"]);
    assert_eq!(
        clients.subscriptions_to("identity"),
        ["notification<-identity"]
    );
    assert!(clients.subscriptions_to("billing").is_empty());
    assert_eq!(clients.consumers_of(&EMAIL_CHANGED), ["notification"]);
    static NOBODY_READS: EventContract = EventContract {
        event_type: "identity.customer-left",
        ..REGISTERED
    };
    assert!(clients.consumers_of(&NOBODY_READS).is_empty());
    assert_eq!(NOTIFICATION.producers(), ["identity"], "each producer once");
    assert_eq!(
        NOTIFICATION.subscription("identity"),
        "notification<-identity"
    );
    assert_eq!(clients.of("billing").map(|d| d.capability), Some("billing"));
    assert!(clients.of("payroll").is_none());
}

#[test]
fn a_synchronous_call_has_no_bus_to_retry_it() {
    let bad = op(
        Kind::Command,
        Retries::Bus(RetryPolicy::STANDARD),
        Idempotency::Keyed,
    );
    assert_eq!(
        bad.check().unwrap_err().problem,
        "a synchronous call has no bus to retry it"
    );
}

/// `shop contracts` and `/_seams/contracts` print these: the five answers
/// in words an operator reads.
#[test]
fn declarations_read_as_the_contracts_table_prints_them() {
    let policy = RetryPolicy {
        max_attempts: 3,
        initial_backoff: Duration::from_millis(100),
        max_backoff: Duration::from_secs(1),
    };
    assert_eq!(
        Retries::Caller(policy).to_string(),
        "caller: 3x, backoff 100ms..1s"
    );
    assert_eq!(
        Retries::Bus(policy).to_string(),
        "bus: 3x, backoff 100ms..1s, then dead letter"
    );
    assert_eq!(Retries::Nobody.to_string(), "nobody");
    assert_eq!(
        Ordering::PerKey {
            field: "invoice_id"
        }
        .to_string(),
        "per key `invoice_id`"
    );
    assert_eq!(Ordering::Unordered.to_string(), "none");
    assert_eq!(
        WhenDown::FailFast {
            problem: "catalog-unavailable",
            retry_after: Duration::from_millis(200),
        }
        .to_string(),
        "fail fast: 503 catalog-unavailable, Retry-After 1s"
    );
    assert_eq!(
        WhenDown::QueueAndDeliverLater.to_string(),
        "queue, deliver later"
    );
    assert_eq!(
        WhenDown::Fallback {
            description: "list prices"
        }
        .to_string(),
        "fallback: list prices"
    );
    assert_eq!(
        Versioning {
            current: 2,
            accepts: &[1, 2],
        }
        .to_string(),
        "v2 (accepts v1, v2)"
    );
}

static CREATE: Operation = Operation {
    capability: "billing",
    name: "create-invoice",
    summary: "",
    kind: Kind::Command,
    timeout: Duration::from_secs(1),
    retries: Retries::Nobody,
    idempotency: Idempotency::Keyed,
    ordering: Ordering::Unordered,
    when_down: WhenDown::FailFast {
        problem: "down",
        retry_after: Duration::from_secs(1),
    },
    versioning: Versioning {
        current: 1,
        accepts: &[1],
    },
    request: no_body,
    response: no_body,
};

fn objective(method: &'static str, route: &'static str, percent: f64) -> Objective {
    Objective {
        operation: &CREATE,
        method,
        route,
        availability_percent: percent,
        window: Duration::from_secs(30 * 24 * 3600),
    }
}

#[test]
fn an_objective_leaves_a_budget_on_its_own_command_route() {
    let good = objective("POST", "/billing/invoices", 99.5);
    assert_eq!(good.check(), Ok(()));
    assert!((good.error_budget() - 0.005).abs() < 1e-9);
    for bad in [
        objective("POST", "/billing/invoices", 100.0),
        objective("POST", "/billing/invoices", 0.0),
        objective("POST", "/catalog/products", 99.0),
        objective("GET", "/billing/invoices", 99.0),
    ] {
        assert!(bad.check().is_err(), "{bad:?}");
    }
}
