//! Envelope round trips, version checks and upcasting.

use super::*;
use crate::decl::*;
use serde::{Deserialize, Serialize};

static PAID: EventContract = EventContract {
    producer: "billing",
    event_type: "billing.invoice-paid",
    summary: "",
    retries: Retries::Bus(RetryPolicy::STANDARD),
    idempotency: Idempotency::InboxByEventId,
    ordering: Ordering::PerKey {
        field: "invoice_id",
    },
    when_down: WhenDown::QueueAndDeliverLater,
    versioning: Versioning {
        current: 2,
        accepts: &[1, 2],
    },
    schema: || serde_json::json!({"type": "object", "required": ["invoice_id"], "properties": {"invoice_id": {"type": "string"}}}),
    downcast: None,
};

#[derive(Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct InvoicePaid {
    invoice_id: String,
    amount_minor: i64,
}

impl Event for InvoicePaid {
    const CONTRACT: &'static EventContract = &PAID;
    fn upcast(version: u32, mut data: Value) -> Result<Value, DecodeError> {
        if version == 1 {
            // v1 called the amount `amount`.
            let amount = data["amount"].take();
            return Ok(
                serde_json::json!({ "invoice_id": data["invoice_id"], "amount_minor": amount }),
            );
        }
        Ok(data)
    }
}

fn sample() -> Envelope {
    let ev = InvoicePaid {
        invoice_id: "inv-1".into(),
        amount_minor: 500,
    };
    Envelope::wrap(
        &ev,
        "evt-1".into(),
        "2026-11-26T00:00:00Z".into(),
        &CallContext::new_root(),
    )
    .unwrap()
}

#[test]
fn wraps_as_cloudevent_and_round_trips() {
    let env = sample();
    let json = serde_json::to_value(&env).unwrap();
    assert_eq!(json["specversion"], "1.0");
    assert_eq!(json["type"], "billing.invoice-paid");
    assert_eq!(json["source"], "/seams/billing");
    assert_eq!(json["subject"], "inv-1");
    assert_eq!(json["dataversion"], 2);
    assert!(json["traceparent"].as_str().unwrap().starts_with("00-"));
    let back: Envelope = serde_json::from_value(json).unwrap();
    assert_eq!(back, env);
    assert_eq!(
        back.decode::<InvoicePaid>(&[1, 2]).unwrap().amount_minor,
        500
    );
}

#[test]
fn old_versions_are_upcast_and_unaccepted_ones_refused() {
    let mut env = sample();
    env.dataversion = 1;
    env.data = serde_json::json!({ "invoice_id": "inv-1", "amount": 700 }).into();
    assert_eq!(
        env.decode::<InvoicePaid>(&[1, 2]).unwrap().amount_minor,
        700
    );
    let err = env.decode::<InvoicePaid>(&[2]).unwrap_err();
    assert!(
        matches!(err, DecodeError::VersionNotAccepted { version: 1, .. }),
        "{err}"
    );
}

#[test]
fn bad_payloads_and_types_are_errors_not_panics() {
    let mut env = sample();
    env.data = serde_json::json!({ "invoice_id": 3 }).into();
    assert!(matches!(
        env.decode::<InvoicePaid>(&[2]),
        Err(DecodeError::Payload { .. })
    ));
    env.event_type = "billing.other".into();
    assert!(matches!(
        env.decode::<InvoicePaid>(&[2]),
        Err(DecodeError::WrongType { .. })
    ));
    assert!(serde_json::from_str::<Envelope>(r#"{"id":"x"}"#).is_err());
}

#[test]
fn consumers_inherit_correlation_and_are_caused_by_the_event() {
    let env = sample();
    let ctx = env.consumer_context();
    assert_eq!(ctx.correlation_id, env.correlationid);
    assert_eq!(ctx.causation_id.as_deref(), Some("evt-1"));
    let parent = crate::TraceContext::parse(env.traceparent.as_deref().unwrap()).unwrap();
    // The span the envelope names: the relay's delivery span.
    assert_eq!(ctx.trace, parent);
    let mut bare = sample();
    bare.traceparent = None;
    assert_ne!(
        bare.consumer_context().trace.trace_id,
        env.consumer_context().trace.trace_id
    );
}

static TALLIED: EventContract = EventContract {
    producer: "stock",
    event_type: "stock.tallied",
    summary: "",
    retries: Retries::Bus(RetryPolicy::STANDARD),
    idempotency: Idempotency::InboxByEventId,
    ordering: Ordering::PerKey { field: "shelf" },
    when_down: WhenDown::QueueAndDeliverLater,
    versioning: Versioning {
        current: 1,
        accepts: &[1],
    },
    schema: || serde_json::json!({"type": "object", "required": ["shelf"], "properties": {"shelf": {"type": "string"}}}),
    downcast: None,
};

static UNORDERED: EventContract = EventContract {
    ordering: Ordering::Unordered,
    ..TALLIED
};

#[test]
fn the_subject_is_the_declared_field_never_a_hand_written_key() {
    let data = serde_json::json!({ "shelf": "A-7", "count": 3, "aisle": 12 });
    assert_eq!(ordering_key(&TALLIED, &data, "evt-1").unwrap(), "A-7");
    // An integer key is its decimal form; the other fields play no part.
    let numbered = serde_json::json!({ "shelf": 12, "count": 3 });
    assert_eq!(ordering_key(&TALLIED, &numbered, "evt-1").unwrap(), "12");
    for (shelf, key) in [
        (serde_json::json!(-3), "-3"),
        (serde_json::json!(u64::MAX), "18446744073709551615"),
    ] {
        let data = serde_json::json!({ "shelf": shelf });
        assert_eq!(ordering_key(&TALLIED, &data, "evt-1").unwrap(), key);
    }
    // An unordered event waits for no other: its key is its own id.
    assert_eq!(ordering_key(&UNORDERED, &data, "evt-9").unwrap(), "evt-9");
}

#[test]
fn an_event_without_its_declared_key_is_not_wrapped() {
    for data in [
        serde_json::json!({ "count": 3 }),
        serde_json::json!({ "shelf": null }),
        serde_json::json!({ "shelf": 1.5 }),
        serde_json::json!({ "shelf": true }),
        serde_json::json!({ "shelf": ["A-7"] }),
        serde_json::json!({ "shelf": { "id": "A-7" } }),
        serde_json::json!(["A-7"]),
    ] {
        let err = ordering_key(&TALLIED, &data, "evt-1").unwrap_err();
        assert!(
            matches!(
                err,
                WrapError::NoKey {
                    event_type: "stock.tallied",
                    field: "shelf"
                }
            ),
            "{data}: {err}"
        );
    }

    #[derive(Serialize)]
    struct Miscounted {
        count: u32,
    }
    impl<'de> Deserialize<'de> for Miscounted {
        fn deserialize<D: serde::Deserializer<'de>>(_: D) -> Result<Self, D::Error> {
            Err(serde::de::Error::custom("never decoded here"))
        }
    }
    impl Event for Miscounted {
        const CONTRACT: &'static EventContract = &TALLIED;
    }
    let err = Envelope::wrap(
        &Miscounted { count: 3 },
        "evt-1".into(),
        "2026-11-26T00:00:00Z".into(),
        &CallContext::new_root(),
    )
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        "stock.tallied is ordered per `shelf`, but its payload has no string or integer `shelf`"
    );
}

static TALLIED_V2: EventContract = EventContract {
    versioning: Versioning {
        current: 2,
        accepts: &[1, 2],
    },
    ..TALLIED
};

#[derive(Debug, PartialEq, Serialize, Deserialize)]
struct Tally {
    shelf: String,
}

impl Event for Tally {
    const CONTRACT: &'static EventContract = &TALLIED_V2;
}

#[test]
fn without_an_upcaster_only_the_current_version_decodes() {
    let mut env = Envelope::wrap(
        &Tally {
            shelf: "A-7".into(),
        },
        "evt-1".into(),
        "2026-11-26T00:00:00Z".into(),
        &CallContext::new_root(),
    )
    .unwrap();
    assert_eq!(env.dataversion, 2);
    assert_eq!(
        env.decode::<Tally>(&[1, 2]).unwrap(),
        Tally {
            shelf: "A-7".into()
        }
    );
    env.dataversion = 1;
    let err = env.decode::<Tally>(&[1, 2]).unwrap_err();
    assert!(
        matches!(
            err,
            DecodeError::NoUpcaster {
                event_type: "stock.tallied",
                version: 1
            }
        ),
        "{err}"
    );
}

/// An event whose upcaster refuses every version it is given.
#[derive(Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Counted {
    shelf: String,
}

impl Event for Counted {
    const CONTRACT: &'static EventContract = &TALLIED_V2;
    fn upcast(version: u32, _data: Value) -> Result<Value, DecodeError> {
        Err(DecodeError::NoUpcaster {
            event_type: "refused by the upcaster",
            version,
        })
    }
}

#[test]
fn the_current_version_is_read_as_it_is_and_only_older_ones_are_upcast() {
    let mut env = Envelope::wrap(
        &Counted {
            shelf: "A-7".into(),
        },
        "evt-1".into(),
        "2026-11-26T00:00:00Z".into(),
        &CallContext::new_root(),
    )
    .unwrap();
    assert_eq!(
        env.decode::<Counted>(&[1, 2]).unwrap(),
        Counted {
            shelf: "A-7".into()
        }
    );
    // A payload the current shape refuses is a payload error, read in place.
    env.data = serde_json::json!({ "shelf": 7 }).into();
    assert!(matches!(
        env.decode::<Counted>(&[2]),
        Err(DecodeError::Payload { .. })
    ));
    env.dataversion = 1;
    let err = env.decode::<Counted>(&[1, 2]).unwrap_err();
    assert!(
        matches!(
            err,
            DecodeError::NoUpcaster {
                event_type: "refused by the upcaster",
                version: 1
            }
        ),
        "{err}"
    );
}

/// [`PAID`] with a downcast to v1 (which called the amount `amount`); one
/// of 0 cannot be written in v1.
static PAID_DOWNCAST: EventContract = EventContract { ..PAID }.with_downcast(|to, data| {
    let amount = data["amount_minor"].as_i64().filter(|a| *a != 0)?;
    (to == 1).then(|| serde_json::json!({ "invoice_id": data["invoice_id"], "amount": amount }))
});

#[test]
fn a_producer_writes_an_older_version_or_both_and_each_reader_takes_the_newest_it_accepts() {
    let env = sample();
    let v1 = env.written_as(&PAID_DOWNCAST, &[1]).unwrap();
    assert_eq!(v1.dataversion, 1);
    assert_eq!(
        v1.data,
        serde_json::json!({ "invoice_id": "inv-1", "amount": 500 }).into()
    );
    assert!(v1.alternates.is_empty());
    assert_eq!((v1.id.as_str(), v1.subject.as_str()), ("evt-1", "inv-1"));
    assert_eq!(v1.decode::<InvoicePaid>(&[1, 2]).unwrap().amount_minor, 500);

    let both = env.written_as(&PAID_DOWNCAST, &[1, 2]).unwrap();
    assert_eq!((both.dataversion, &both.data), (2, &env.data));
    assert_eq!(both.alternates.keys().copied().collect::<Vec<_>>(), [1]);
    let json = serde_json::to_value(&both).unwrap();
    assert_eq!(json["alternates"]["1"]["amount"], 500);
    let back: Envelope = serde_json::from_value(json).unwrap();
    assert_eq!(back, both);
    // A reader that knows only v1 reads the alternate, untouched by its
    // upcaster's guess; one that knows both reads v2.
    let only_v1 = Envelope {
        data: serde_json::json!({"poison": true}).into(),
        ..both.clone()
    };
    assert!(
        only_v1.decode::<InvoicePaid>(&[2]).is_err(),
        "v2 is read from data"
    );
    assert_eq!(both.decode::<InvoicePaid>(&[1]).unwrap().amount_minor, 500);
    let mut only_alternate = both.clone();
    only_alternate.alternates.insert(
        1,
        serde_json::json!({ "invoice_id": "inv-1", "amount": 9 }).into(),
    );
    assert_eq!(
        only_alternate
            .decode::<InvoicePaid>(&[1])
            .unwrap()
            .amount_minor,
        9
    );
    assert_eq!(
        only_alternate
            .decode::<InvoicePaid>(&[1, 2])
            .unwrap()
            .amount_minor,
        500
    );
    let err = both.decode::<InvoicePaid>(&[3]).unwrap_err();
    assert!(
        matches!(err, DecodeError::VersionNotAccepted { version: 2, .. }),
        "{err}"
    );
    // Writing the current version alone is what wrap wrote.
    assert_eq!(env.written_as(&PAID_DOWNCAST, &[2]).unwrap(), env);
}

#[test]
fn a_version_the_contract_cannot_write_is_refused_by_name() {
    let env = sample();
    let no_downcast = env.written_as(&PAID, &[1]).unwrap_err();
    assert!(
        no_downcast.contains("declares no downcast"),
        "{no_downcast}"
    );
    for versions in [&[3][..], &[0], &[]] {
        assert!(
            env.written_as(&PAID_DOWNCAST, versions).is_err(),
            "{versions:?}"
        );
    }
    let zero = Envelope {
        data: serde_json::json!({ "invoice_id": "inv-1", "amount_minor": 0 }).into(),
        ..env.clone()
    };
    let err = zero.written_as(&PAID_DOWNCAST, &[1, 2]).unwrap_err();
    assert!(err.contains("cannot be written as v1"), "{err}");
    let mut old = env.clone();
    old.dataversion = 1;
    assert!(
        old.written_as(&PAID_DOWNCAST, &[1])
            .unwrap_err()
            .contains("not the current v2")
    );
    // A contract that already reads a newer version still writes only its
    // current one and older ones.
    static READS_AHEAD: EventContract = EventContract {
        versioning: Versioning {
            current: 1,
            accepts: &[1, 2],
        },
        ..PAID_DOWNCAST
    };
    assert!(
        READS_AHEAD
            .can_write(2)
            .unwrap_err()
            .contains("no version 2")
    );
    assert_eq!(READS_AHEAD.can_write(1), Ok(()));
    assert_eq!(PAID_DOWNCAST.can_write(2), Ok(()));
    assert_eq!(PAID_DOWNCAST.can_write(1), Ok(()));
    assert!(PAID_DOWNCAST.can_write(3).is_err());
    assert!(PAID.can_write(1).is_err());
}

#[test]
fn narrowed_to_fewer_versions_an_envelope_carries_only_those() {
    let both = sample().written_as(&PAID_DOWNCAST, &[1, 2]).unwrap();
    let v1 = both.only(&[1]).unwrap();
    assert_eq!((v1.dataversion, &v1.data), (1, &both.alternates[&1]));
    assert!(v1.alternates.is_empty());
    assert_eq!((v1.id.as_str(), v1.subject.as_str()), ("evt-1", "inv-1"));
    // A reader of v1 and v2 sees v2 first and v1 beside it, as written.
    assert_eq!(both.only(&[1, 2]).unwrap(), both);
    assert_eq!(both.only(&[2, 1, 7]).unwrap(), both);
    let v2 = both.only(&[2]).unwrap();
    assert_eq!((v2.dataversion, &v2.data), (2, &both.data));
    assert!(v2.alternates.is_empty());
    // Three carried, two kept: the older stays an alternate.
    let mut three = both.clone();
    three
        .alternates
        .insert(0, serde_json::json!({ "old": true }).into());
    let kept = three.only(&[0, 1]).unwrap();
    assert_eq!(kept.dataversion, 1);
    assert_eq!(kept.alternates.keys().copied().collect::<Vec<_>>(), [0]);
    let err = both.only(&[3]).unwrap_err();
    assert_eq!(
        err.to_string(),
        "billing.invoice-paid v2 is not accepted (accepts [3])"
    );
    assert!(sample().only(&[1]).is_err(), "a v2-only envelope has no v1");
}

#[test]
fn a_payload_is_passed_on_as_the_text_it_was_read_as() {
    let mut text = serde_json::to_string(&sample()).unwrap();
    let written = r#""data":{"amount_minor":500,"invoice_id":"inv-1"}"#;
    assert!(text.contains(written), "{text}");
    // Spacing, key order and a number no f64 holds: kept as they were.
    let odd = r#""data":{ "invoice_id":"inv-1", "amount_minor" : 500, "big": 1e400 }"#;
    text = text.replace(written, odd);
    let env: Envelope = serde_json::from_str(&text).unwrap();
    assert_eq!(
        env.data.get(),
        r#"{ "invoice_id":"inv-1", "amount_minor" : 500, "big": 1e400 }"#
    );
    assert_eq!(serde_json::to_string(&env).unwrap(), text);
    // Decoding is where such a payload is refused, as an error.
    assert!(env.data.to_value().is_err());
    assert!(matches!(
        env.decode::<InvoicePaid>(&[2]),
        Err(DecodeError::Payload { .. })
    ));
    // Equal payloads are equal texts.
    assert_eq!(
        EventData::from(serde_json::json!({ "a": 1 })),
        EventData::from(&serde_json::json!({ "a": 1 }))
    );
    assert_ne!(
        EventData::from(serde_json::json!({ "a": 1 })),
        EventData::from(serde_json::json!({ "a": 2 }))
    );
    // Not JSON is no envelope.
    let broken = text.replace("1e400 }", "1e400 ");
    assert!(serde_json::from_str::<Envelope>(&broken).is_err());
}
