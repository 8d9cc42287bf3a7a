//! Each kind of break is caught from the side that reads, and each
//! compatible change passes: a snapshot-like schema is mutated one way at a time.

use super::*;
use serde_json::json;

/// An invoice-like payload as the derives write it: closed objects, a
/// nullable field, a nested `$ref`, bounds, a pattern and an enum.
fn base() -> Value {
    json!({
        "type": "object",
        "additionalProperties": false,
        "required": ["invoice_id", "lines", "status"],
        "properties": {
            "invoice_id": { "type": "string" },
            "note": { "type": ["string", "null"] },
            "status": { "type": "string", "enum": ["open", "paid"] },
            "lines": {
                "type": "array", "minItems": 1, "maxItems": 100,
                "items": { "$ref": "#/$defs/Line" }
            }
        },
        "$defs": {
            "Line": {
                "type": "object",
                "additionalProperties": false,
                "required": ["sku", "quantity"],
                "properties": {
                    "sku": { "type": "string", "minLength": 1, "maxLength": 64, "pattern": "^[A-Z]+$" },
                    "quantity": { "type": "integer", "format": "int32", "minimum": 1, "maximum": 1000 }
                }
            }
        }
    })
}

/// `base` changed by `f`.
fn with(f: impl FnOnce(&mut Value)) -> Value {
    let mut v = base();
    f(&mut v);
    v
}

/// The one change found, as (pointer, severity).
fn only(old: &Value, new: &Value, flow: Flow) -> (String, Severity) {
    let changes = compare(old, new, flow);
    assert_eq!(changes.len(), 1, "{changes:#?}");
    (changes[0].pointer.clone(), changes[0].severity)
}

fn breaking(at: &str) -> (String, Severity) {
    (at.to_owned(), Severity::Breaking)
}

fn compatible(at: &str) -> (String, Severity) {
    (at.to_owned(), Severity::Compatible)
}

#[test]
fn identical_schemas_differ_in_nothing() {
    assert!(compare(&base(), &base(), Flow::Payload).is_empty());
    assert!(compare(&base(), &base(), Flow::Request).is_empty());
}

#[test]
fn a_payload_field_the_producer_stops_sending_breaks_its_readers() {
    let removed = with(|v| {
        v["properties"]
            .as_object_mut()
            .unwrap()
            .remove("invoice_id");
        v["required"] = json!(["lines", "status"]);
    });
    assert_eq!(
        only(&base(), &removed, Flow::Payload),
        breaking("/invoice_id")
    );
    let renamed = with(|v| {
        let p = v["properties"].as_object_mut().unwrap();
        let f = p.remove("invoice_id").unwrap();
        p.insert("invoice".into(), f);
        v["required"] = json!(["invoice", "lines", "status"]);
    });
    let changes = compare(&base(), &renamed, Flow::Payload);
    assert!(
        changes.iter().all(|c| c.severity == Severity::Breaking),
        "{changes:#?}"
    );
    assert_eq!(
        changes.len(),
        2,
        "the old name gone and the new one unknown to readers"
    );
}

#[test]
fn a_payload_field_made_optional_breaks_its_readers() {
    let optional = with(|v| v["required"] = json!(["lines", "status"]));
    assert_eq!(
        only(&base(), &optional, Flow::Payload),
        breaking("/invoice_id")
    );
    // Made required instead: readers always got it; still fine.
    assert_eq!(
        only(&optional, &base(), Flow::Payload),
        compatible("/invoice_id")
    );
}

#[test]
fn a_payload_field_that_may_now_be_null_breaks_its_readers() {
    let nullable = with(|v| v["properties"]["invoice_id"]["type"] = json!(["string", "null"]));
    assert_eq!(
        only(&base(), &nullable, Flow::Payload),
        breaking("/invoice_id")
    );
    assert_eq!(
        only(&base(), &nullable, Flow::Request),
        compatible("/invoice_id")
    );
}

#[test]
fn a_new_required_request_field_breaks_clients_and_an_optional_one_does_not() {
    let required = with(|v| {
        v["properties"]["currency"] = json!({ "type": "string" });
        v["required"] = json!(["invoice_id", "lines", "status", "currency"]);
    });
    assert_eq!(
        only(&base(), &required, Flow::Request),
        breaking("/currency")
    );
    let optional = with(|v| v["properties"]["currency"] = json!({ "type": "string" }));
    assert_eq!(
        only(&base(), &optional, Flow::Request),
        compatible("/currency")
    );
}

#[test]
fn a_new_payload_field_breaks_readers_that_refuse_unknown_fields_only() {
    let added = with(|v| v["properties"]["currency"] = json!({ "type": "string" }));
    assert_eq!(only(&base(), &added, Flow::Payload), breaking("/currency"));
    let open = with(|v| {
        v.as_object_mut().unwrap().remove("additionalProperties");
    });
    let open_added = with(|v| {
        v.as_object_mut().unwrap().remove("additionalProperties");
        v["properties"]["currency"] = json!({ "type": "string" });
    });
    assert_eq!(
        only(&open, &open_added, Flow::Payload),
        compatible("/currency")
    );
}

#[test]
fn a_request_field_removed_breaks_clients_still_sending_it_when_unknown_fields_are_refused() {
    let removed = with(|v| {
        v["properties"].as_object_mut().unwrap().remove("note");
    });
    assert_eq!(only(&base(), &removed, Flow::Request), breaking("/note"));
    // An optional field no longer sent is nothing a reader relied on.
    assert_eq!(only(&base(), &removed, Flow::Payload), compatible("/note"));
}

#[test]
fn a_type_change_breaks_both_sides() {
    let changed =
        with(|v| v["$defs"]["Line"]["properties"]["quantity"] = json!({ "type": "string" }));
    let changes = compare(&base(), &changed, Flow::Request);
    assert_eq!(
        changes.len(),
        1,
        "the type, not every bound under it: {changes:#?}"
    );
    assert_eq!(
        (changes[0].pointer.as_str(), changes[0].severity),
        ("/lines/*/quantity", Severity::Breaking)
    );
    assert_eq!(
        only(&base(), &changed, Flow::Payload),
        breaking("/lines/*/quantity")
    );
}

#[test]
fn integer_to_number_widens() {
    let number = with(|v| {
        v["$defs"]["Line"]["properties"]["quantity"] =
            json!({ "type": "number", "minimum": 1, "maximum": 1000 })
    });
    let changes = compare(&base(), &number, Flow::Request);
    assert!(
        changes.iter().all(|c| c.severity == Severity::Compatible),
        "{changes:#?}"
    );
    let changes = compare(&base(), &number, Flow::Payload);
    assert!(
        changes.iter().any(|c| c.severity == Severity::Breaking),
        "{changes:#?}"
    );
}

#[test]
fn a_wider_integer_format_breaks_readers_only() {
    let wide = with(|v| v["$defs"]["Line"]["properties"]["quantity"]["format"] = json!("int64"));
    assert_eq!(
        only(&base(), &wide, Flow::Request),
        compatible("/lines/*/quantity")
    );
    assert_eq!(
        only(&base(), &wide, Flow::Payload),
        breaking("/lines/*/quantity")
    );
}

#[test]
fn a_narrowed_enum_breaks_requests_and_a_widened_one_breaks_readers() {
    let narrowed = with(|v| v["properties"]["status"]["enum"] = json!(["open"]));
    assert_eq!(only(&base(), &narrowed, Flow::Request), breaking("/status"));
    assert_eq!(
        only(&base(), &narrowed, Flow::Payload),
        compatible("/status")
    );
    let widened = with(|v| v["properties"]["status"]["enum"] = json!(["open", "paid", "voided"]));
    assert_eq!(
        only(&base(), &widened, Flow::Request),
        compatible("/status")
    );
    assert_eq!(only(&base(), &widened, Flow::Payload), breaking("/status"));
}

#[test]
fn each_narrowed_range_breaks_requests_and_each_widened_one_passes() {
    type Mutation = fn(&mut Value);
    let narrowings: [(&str, Mutation); 6] = [
        ("/lines/*/quantity", |v| {
            v["$defs"]["Line"]["properties"]["quantity"]["minimum"] = json!(2)
        }),
        ("/lines/*/quantity", |v| {
            v["$defs"]["Line"]["properties"]["quantity"]["maximum"] = json!(999)
        }),
        ("/lines/*/sku", |v| {
            v["$defs"]["Line"]["properties"]["sku"]["maxLength"] = json!(32)
        }),
        ("/lines/*/sku", |v| {
            v["$defs"]["Line"]["properties"]["sku"]["minLength"] = json!(3)
        }),
        ("/lines", |v| {
            v["properties"]["lines"]["maxItems"] = json!(10)
        }),
        ("/lines", |v| {
            v["properties"]["lines"]["minItems"] = json!(2)
        }),
    ];
    for (at, mutate) in narrowings {
        let narrowed = with(mutate);
        assert_eq!(
            only(&base(), &narrowed, Flow::Request),
            breaking(at),
            "{narrowed}"
        );
        // The same change read the other way round is a widening.
        assert_eq!(only(&narrowed, &base(), Flow::Request), compatible(at));
        assert_eq!(only(&narrowed, &base(), Flow::Payload), breaking(at));
    }
    let unbounded = with(|v| {
        v["properties"]["lines"]
            .as_object_mut()
            .unwrap()
            .remove("maxItems");
    });
    assert_eq!(
        only(&base(), &unbounded, Flow::Request),
        compatible("/lines")
    );
}

#[test]
fn a_pattern_added_or_changed_breaks_requests_and_one_removed_passes() {
    let changed = with(|v| v["$defs"]["Line"]["properties"]["sku"]["pattern"] = json!("^[a-z]+$"));
    assert_eq!(
        only(&base(), &changed, Flow::Request),
        breaking("/lines/*/sku")
    );
    assert_eq!(
        only(&base(), &changed, Flow::Payload),
        breaking("/lines/*/sku")
    );
    let removed = with(|v| {
        v["$defs"]["Line"]["properties"]["sku"]
            .as_object_mut()
            .unwrap()
            .remove("pattern");
    });
    assert_eq!(
        only(&base(), &removed, Flow::Request),
        compatible("/lines/*/sku")
    );
    assert_eq!(
        only(&removed, &base(), Flow::Request),
        breaking("/lines/*/sku")
    );
}

#[test]
fn a_nullable_reference_is_compared_through_its_wrapper() {
    let old = json!({ "properties": { "a": { "oneOf": [{ "type": "null" }, { "$ref": "#/$defs/A" }] } },
                      "$defs": { "A": { "type": "string" } } });
    let plain = json!({ "properties": { "a": { "$ref": "#/$defs/A" } },
                        "$defs": { "A": { "type": "string" } } });
    assert_eq!(only(&old, &plain, Flow::Payload), compatible("/a"));
    assert_eq!(only(&old, &plain, Flow::Request), breaking("/a"));
    assert!(compare(&old, &old, Flow::Payload).is_empty());
}

#[test]
fn a_recursive_reference_ends() {
    let looped = json!({ "$ref": "#/$defs/A", "$defs": { "A": { "type": "object", "properties": { "next": { "$ref": "#/$defs/A" } } } } });
    let other = json!({ "$ref": "#/$defs/A", "$defs": { "A": { "type": "object", "properties": { "next": { "$ref": "#/$defs/A" }, "x": { "type": "string" } } } } });
    let changes = compare(&looped, &other, Flow::Request);
    assert!(!changes.is_empty());
}

#[test]
fn pointers_escape_slashes_and_tildes() {
    let old = json!({ "properties": { "a/b~c": { "type": "string" } } });
    let new = json!({ "properties": { "a/b~c": { "type": "integer" } } });
    assert_eq!(only(&old, &new, Flow::Payload), breaking("/a~1b~0c"));
}
