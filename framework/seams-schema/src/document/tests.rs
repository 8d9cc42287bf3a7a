//! The check across versions: a break within a version fails, a new version
//! with the old still accepted passes, and contracts or versions that
//! disappear fail; each finding names who is affected.

use super::*;
use serde_json::json;

fn payload(fields: &[&str]) -> Value {
    let props: serde_json::Map<String, Value> = fields
        .iter()
        .map(|f| ((*f).to_owned(), json!({ "type": "string" })))
        .collect();
    json!({ "type": "object", "additionalProperties": false, "required": fields, "properties": props })
}

fn event(current: u32, accepts: &[u32], versions: &[(u32, Value)]) -> EventEntry {
    EventEntry {
        current,
        accepts: accepts.to_vec(),
        consumers: [("fulfillment".to_owned(), vec![1, 2])].into(),
        versions: versions.iter().cloned().collect(),
    }
}

fn op(current: u32, accepts: &[u32], request: Value) -> OpEntry {
    OpEntry {
        public: true,
        current,
        accepts: accepts.to_vec(),
        callers: vec!["billing".to_owned()],
        versions: [(
            current,
            OpSchemas {
                request,
                response: payload(&["id"]),
            },
        )]
        .into(),
    }
}

fn doc(events: Vec<(&str, EventEntry)>, ops: Vec<(&str, OpEntry)>) -> Document {
    Document {
        capability: "billing".to_owned(),
        operations: ops.into_iter().map(|(k, v)| (k.to_owned(), v)).collect(),
        events: events.into_iter().map(|(k, v)| (k.to_owned(), v)).collect(),
    }
}

fn snapshot() -> Document {
    doc(
        vec![(
            "billing.invoice-created",
            event(1, &[1], &[(1, payload(&["invoice_id", "total"]))]),
        )],
        vec![(
            "billing.create-invoice",
            op(1, &[1], payload(&["customer_id"])),
        )],
    )
}

#[test]
fn unchanged_contracts_pass_with_nothing_to_report() {
    let report = check(&[snapshot()], &[snapshot()]);
    assert_eq!(report.findings, []);
    assert!(!report.fails());
}

#[test]
fn a_break_within_a_version_fails_and_names_the_field_and_who_is_affected() {
    let mut now = snapshot();
    now.events
        .get_mut("billing.invoice-created")
        .unwrap()
        .versions = [(1, payload(&["invoice_id"]))].into();
    let report = check(&[snapshot()], &[now]);
    assert!(report.fails());
    let f = &report.findings[0];
    assert_eq!(
        (
            f.contract.as_str(),
            f.part,
            f.version.as_str(),
            f.pointer.as_str(),
            f.severity
        ),
        (
            "billing.invoice-created",
            "payload",
            "v1",
            "/total",
            Severity::Breaking
        )
    );
    assert_eq!(f.affected, ["billing (producer)", "fulfillment"]);
    assert!(report.to_string().contains("BREAKING"), "{report}");
}

#[test]
fn a_break_in_a_new_version_with_the_old_still_accepted_passes() {
    let mut now = snapshot();
    now.events.insert(
        "billing.invoice-created".to_owned(),
        event(2, &[1, 2], &[(2, payload(&["invoice_id", "amount"]))]),
    );
    let report = check(&[snapshot()], &[now.clone()]);
    assert!(!report.fails(), "{report}");
    assert!(
        report
            .findings
            .iter()
            .any(|f| f.severity == Severity::Breaking && f.version == "v1 -> v2")
    );
    assert!(
        report
            .findings
            .iter()
            .any(|f| f.what == "new version v2, v1 still accepted")
    );

    // Snapshotted, the old version keeps its recorded schema; checked again, nothing changed.
    let snap = now.clone().keeping(Some(&snapshot()));
    assert_eq!(snap.events["billing.invoice-created"].versions.len(), 2);
    assert!(
        check(std::slice::from_ref(&snap), &[now])
            .findings
            .is_empty()
    );

    // Dropping v1 later is its own break.
    let mut later = snap.clone();
    let e = later.events.get_mut("billing.invoice-created").unwrap();
    e.accepts = vec![2];
    e.versions.remove(&1);
    let report = check(&[snap], &[later]);
    assert!(report.fails());
    assert!(
        report.findings[0].what.contains("v1 no longer accepted"),
        "{report}"
    );
}

#[test]
fn a_new_version_that_no_longer_accepts_the_old_fails() {
    let mut now = snapshot();
    now.events.insert(
        "billing.invoice-created".to_owned(),
        event(2, &[2], &[(2, payload(&["invoice_id", "amount"]))]),
    );
    assert!(check(&[snapshot()], &[now]).fails());
}

#[test]
fn a_consumer_that_does_not_accept_the_written_version_fails() {
    let mut now = snapshot();
    let e = now.events.get_mut("billing.invoice-created").unwrap();
    e.consumers.insert("notification".to_owned(), vec![2]);
    let report = check(&[snapshot()], &[now]);
    assert!(report.fails());
    assert!(
        report.findings[0]
            .what
            .contains("consumer notification accepts v2"),
        "{report}"
    );
}

#[test]
fn removed_or_renamed_contracts_fail_and_new_ones_pass() {
    let mut now = snapshot();
    let e = now.events.remove("billing.invoice-created").unwrap();
    now.events.insert("billing.invoice-opened".to_owned(), e);
    let report = check(&[snapshot()], &[now]);
    assert!(report.fails());
    let gone = report
        .findings
        .iter()
        .find(|f| f.contract == "billing.invoice-created")
        .unwrap();
    assert!(gone.blocking && gone.what == "event removed or renamed");
    let new = report
        .findings
        .iter()
        .find(|f| f.contract == "billing.invoice-opened")
        .unwrap();
    assert_eq!((new.severity, new.blocking), (Severity::Compatible, false));

    let mut now = snapshot();
    now.operations.remove("billing.create-invoice");
    let report = check(&[snapshot()], &[now]);
    assert!(report.fails());
    assert_eq!(
        report.findings[0].affected,
        ["billing (owner)", "public clients", "billing"]
    );
}

#[test]
fn a_new_required_request_field_fails_and_a_new_optional_one_passes() {
    let mut now = snapshot();
    now.operations.insert(
        "billing.create-invoice".to_owned(),
        op(1, &[1], payload(&["customer_id", "po"])),
    );
    let report = check(&[snapshot()], &[now]);
    assert!(report.fails());
    assert_eq!(report.findings[0].pointer, "/po");
    assert_eq!(report.findings[0].part, "request");

    let mut optional = payload(&["customer_id"]);
    optional["properties"]["po"] = json!({ "type": "string" });
    let mut now = snapshot();
    now.operations
        .insert("billing.create-invoice".to_owned(), op(1, &[1], optional));
    let report = check(&[snapshot()], &[now]);
    assert!(!report.fails(), "{report}");
    assert_eq!(report.findings.len(), 1);
}

#[test]
fn a_document_reads_back_as_written() {
    let text = snapshot().to_pretty();
    let back: Document = serde_json::from_str(&text).unwrap();
    assert_eq!(back, snapshot());
    assert!(text.ends_with("}\n"));
}

#[test]
fn served_rows_read_back_as_documents() {
    let snap = snapshot();
    let rows = json!([
        { "kind": "event", "name": "billing.invoice-created", "owner": "billing",
          "schemas": serde_json::to_value(&snap.events["billing.invoice-created"]).unwrap() },
        { "kind": "command", "name": "billing.create-invoice", "owner": "billing",
          "schemas": serde_json::to_value(&snap.operations["billing.create-invoice"]).unwrap() },
    ]);
    assert_eq!(from_rows(&rows).unwrap(), [snap]);
    let old = json!([{ "kind": "event", "name": "billing.invoice-created", "owner": "billing" }]);
    assert!(
        matches!(from_rows(&old), Err(RowsError::NoSchemas(n)) if n == "billing.invoice-created")
    );
    assert!(matches!(from_rows(&json!({})), Err(RowsError::NotRows)));
}
