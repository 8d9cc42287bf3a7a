//! A capability's contracts as one JSON document (every version's schemas,
//! who uses each contract), and the check of one set of documents against
//! another.
//!
//! The same document is committed as a snapshot beside the contract crate
//! (`contract-snapshot.json`), built from the declarations at run time, and
//! served per contract by `/_seams/contracts`; so the check runs the same
//! against the last commit and against a running deployment.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use seams_core::decl::{EventContract, Operation};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::compat::{Flow, Severity, compare};

/// One capability's operations and events, keyed by id and event type.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Document {
    /// The capability.
    pub capability: String,
    /// Its operations (`capability.name`), public and internal.
    #[serde(default)]
    pub operations: BTreeMap<String, OpEntry>,
    /// The events it publishes (`capability.event-name`).
    #[serde(default)]
    pub events: BTreeMap<String, EventEntry>,
}

/// One operation: its versions and their schemas.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OpEntry {
    /// Served on the public API (its clients are not declared anywhere).
    pub public: bool,
    /// The version it speaks.
    pub current: u32,
    /// The versions it accepts.
    pub accepts: Vec<u32>,
    /// The capabilities that declare they call it.
    #[serde(default)]
    pub callers: Vec<String>,
    /// Schemas by version: the current one from the code, older accepted
    /// ones as the snapshot recorded them.
    pub versions: BTreeMap<u32, OpSchemas>,
}

/// An operation's schemas in one version.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OpSchemas {
    /// The request body.
    pub request: Value,
    /// The successful answer.
    pub response: Value,
}

/// One event: its versions, their payload schemas and its consumers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EventEntry {
    /// The version the producer writes.
    pub current: u32,
    /// The versions the producer's upcasters read.
    pub accepts: Vec<u32>,
    /// Each consuming capability and the versions its handler accepts.
    #[serde(default)]
    pub consumers: BTreeMap<String, Vec<u32>>,
    /// Payload schemas by version.
    pub versions: BTreeMap<u32, Value>,
}

impl OpEntry {
    /// `op` as declared now.
    pub fn of(op: &Operation, public: bool, callers: Vec<String>) -> OpEntry {
        let schemas = OpSchemas {
            request: (op.request)(),
            response: (op.response)(),
        };
        OpEntry {
            public,
            current: op.versioning.current,
            accepts: op.versioning.accepts.to_vec(),
            callers,
            versions: [(op.versioning.current, schemas)].into(),
        }
    }
}

impl EventEntry {
    /// `event` as declared now, with its consumers and their accepted versions.
    pub fn of(event: &EventContract, consumers: BTreeMap<String, Vec<u32>>) -> EventEntry {
        EventEntry {
            current: event.versioning.current,
            accepts: event.versioning.accepts.to_vec(),
            consumers,
            versions: [(event.versioning.current, (event.schema)())].into(),
        }
    }
}

impl Document {
    /// An empty document for `capability`.
    pub fn new(capability: &str) -> Document {
        Document {
            capability: capability.to_owned(),
            operations: BTreeMap::new(),
            events: BTreeMap::new(),
        }
    }

    /// This document (built from the code, so holding only current versions)
    /// as the snapshot to commit: each older version still accepted keeps the
    /// schema `previous` recorded for it, since no code describes it any more.
    pub fn keeping(mut self, previous: Option<&Document>) -> Document {
        let Some(previous) = previous else {
            return self;
        };
        for (id, entry) in &mut self.operations {
            if let Some(old) = previous.operations.get(id) {
                for v in &entry.accepts {
                    if let (false, Some(s)) = (entry.versions.contains_key(v), old.versions.get(v))
                    {
                        entry.versions.insert(*v, s.clone());
                    }
                }
            }
        }
        for (id, entry) in &mut self.events {
            if let Some(old) = previous.events.get(id) {
                for v in &entry.accepts {
                    if let (false, Some(s)) = (entry.versions.contains_key(v), old.versions.get(v))
                    {
                        entry.versions.insert(*v, s.clone());
                    }
                }
            }
        }
        self
    }

    /// Pretty JSON with sorted keys and a final newline, so a diff reads well.
    pub fn to_pretty(&self) -> String {
        let mut text = serde_json::to_string_pretty(self).unwrap_or_default();
        text.push('\n');
        text
    }
}

/// Why a contract list served by a deployment cannot be read as documents.
#[derive(Debug, thiserror::Error)]
pub enum RowsError {
    /// Not a JSON array of rows.
    #[error("expected a JSON array of contract rows")]
    NotRows,
    /// A row lacks its name, owner, kind or schemas (a deployment older than schemas).
    #[error("contract row {0} has no schemas: is the deployment older than contract schemas?")]
    NoSchemas(String),
    /// A row's schemas do not read as an entry.
    #[error("contract row {name}: {source}")]
    Entry {
        /// The row.
        name: String,
        /// Why.
        source: serde_json::Error,
    },
}

/// The documents in the rows `/_seams/contracts` serves (each row carries
/// its entry under `schemas`), grouped by owner.
pub fn from_rows(rows: &Value) -> Result<Vec<Document>, RowsError> {
    let rows = rows.as_array().ok_or(RowsError::NotRows)?;
    let mut docs: BTreeMap<String, Document> = BTreeMap::new();
    for row in rows {
        let text = |k: &str| row.get(k).and_then(Value::as_str).map(str::to_owned);
        let name = text("name").unwrap_or_default();
        let (Some(owner), Some(kind), Some(schemas)) = (
            text("owner"),
            text("kind"),
            row.get("schemas").filter(|s| !s.is_null()),
        ) else {
            return Err(RowsError::NoSchemas(name));
        };
        let doc = docs
            .entry(owner.clone())
            .or_insert_with(|| Document::new(&owner));
        let entry_err = |source| RowsError::Entry {
            name: name.clone(),
            source,
        };
        if kind == "event" {
            let e = serde_json::from_value(schemas.clone()).map_err(entry_err)?;
            doc.events.insert(name.clone(), e);
        } else {
            let e = serde_json::from_value(schemas.clone()).map_err(entry_err)?;
            doc.operations.insert(name.clone(), e);
        }
    }
    Ok(docs.into_values().collect())
}

/// One difference the check found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// The operation id or event type.
    pub contract: String,
    /// `request`, `response` or `payload`; empty for the contract as a whole.
    pub part: &'static str,
    /// `v1`, or `v1 -> v2` across a new version.
    pub version: String,
    /// JSON pointer into the data; empty for the whole value.
    pub pointer: String,
    /// Breaking or compatible.
    pub severity: Severity,
    /// What changed.
    pub what: String,
    /// The capabilities concerned: the owner first, then callers or consumers.
    pub affected: Vec<String>,
    /// A breaking change that no new version (with the old one still
    /// accepted) covers: the check fails.
    pub blocking: bool,
}

/// Every finding of one check, contracts in order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Report {
    /// The findings.
    pub findings: Vec<Finding>,
}

impl Report {
    /// Whether some breaking change is not covered by a new version.
    pub fn fails(&self) -> bool {
        self.findings.iter().any(|f| f.blocking)
    }
}

/// Compares `after` (the code now, or a release) with `before` (the
/// snapshots, or what a deployment serves).
///
/// A breaking schema change within one version blocks: deployed code speaks
/// that version as it was. Across a new version it is reported but does not
/// block, as long as the old version is still accepted (an upcaster, or a
/// producer publishing both). A contract or a version that disappears blocks.
pub fn check(before: &[Document], after: &[Document]) -> Report {
    let mut out = Vec::new();
    let index = |docs: &[Document]| {
        let mut ops = BTreeMap::new();
        let mut events = BTreeMap::new();
        for d in docs {
            for (id, e) in &d.operations {
                ops.insert(id.clone(), (d.capability.clone(), e.clone()));
            }
            for (id, e) in &d.events {
                events.insert(id.clone(), (d.capability.clone(), e.clone()));
            }
        }
        (ops, events)
    };
    let (ops_before, events_before) = index(before);
    let (ops_after, events_after) = index(after);

    let ids: BTreeSet<&String> = ops_before.keys().chain(ops_after.keys()).collect();
    for id in ids {
        let (b, a) = (ops_before.get(id), ops_after.get(id));
        let affected = op_affected(b, a);
        let mut c = Contract {
            id,
            affected: &affected,
            kind: "operation",
            out: &mut out,
        };
        match (b, a) {
            (Some((_, b)), None) => c.gone(b.current),
            (None, Some((_, a))) => c.added(a.current),
            (Some((_, b)), Some((_, a))) => {
                c.versions(b.current, &b.accepts, a.current, &a.accepts);
                c.schemas(
                    &b.versions,
                    &a.versions,
                    b.current,
                    a.current,
                    &a.accepts,
                    |s| {
                        [
                            ("request", Flow::Request, &s.request),
                            ("response", Flow::Payload, &s.response),
                        ]
                        .into_iter()
                        .collect()
                    },
                );
            }
            (None, None) => {}
        }
    }

    let types: BTreeSet<&String> = events_before.keys().chain(events_after.keys()).collect();
    for id in types {
        let (b, a) = (events_before.get(id), events_after.get(id));
        let affected = event_affected(b, a);
        let mut c = Contract {
            id,
            affected: &affected,
            kind: "event",
            out: &mut out,
        };
        match (b, a) {
            (Some((_, b)), None) => c.gone(b.current),
            (None, Some((_, a))) => c.added(a.current),
            (Some((_, b)), Some((_, a))) => {
                c.versions(b.current, &b.accepts, a.current, &a.accepts);
                c.schemas(
                    &b.versions,
                    &a.versions,
                    b.current,
                    a.current,
                    &a.accepts,
                    |s| vec![("payload", Flow::Payload, s)],
                );
            }
            (None, None) => {}
        }
        if let Some((_, a)) = a {
            for (consumer, accepts) in &a.consumers {
                if !accepts.contains(&a.current) {
                    c.push(
                        "",
                        format!("v{}", a.current),
                        Severity::Breaking,
                        true,
                        format!(
                            "consumer {consumer} accepts {} but the producer writes v{}",
                            versions(accepts),
                            a.current
                        ),
                    );
                }
            }
        }
    }
    Report { findings: out }
}

fn op_affected(b: Option<&(String, OpEntry)>, a: Option<&(String, OpEntry)>) -> Vec<String> {
    let mut out = Vec::new();
    for (owner, e) in [b, a].into_iter().flatten() {
        add(&mut out, format!("{owner} (owner)"));
        if e.public {
            add(&mut out, "public clients".to_owned());
        }
        for c in &e.callers {
            add(&mut out, c.clone());
        }
    }
    out
}

fn event_affected(
    b: Option<&(String, EventEntry)>,
    a: Option<&(String, EventEntry)>,
) -> Vec<String> {
    let mut out = Vec::new();
    for (owner, e) in [b, a].into_iter().flatten() {
        add(&mut out, format!("{owner} (producer)"));
        for c in e.consumers.keys() {
            add(&mut out, c.clone());
        }
    }
    out
}

fn add(list: &mut Vec<String>, item: String) {
    if !list.contains(&item) {
        list.push(item);
    }
}

fn versions(vs: &[u32]) -> String {
    vs.iter()
        .map(|v| format!("v{v}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The findings of one contract being collected.
struct Contract<'a> {
    id: &'a str,
    affected: &'a [String],
    kind: &'static str,
    out: &'a mut Vec<Finding>,
}

impl Contract<'_> {
    fn push(
        &mut self,
        part: &'static str,
        version: String,
        severity: Severity,
        blocking: bool,
        what: String,
    ) {
        self.push_at(part, version, String::new(), severity, blocking, what);
    }

    fn push_at(
        &mut self,
        part: &'static str,
        version: String,
        pointer: String,
        severity: Severity,
        blocking: bool,
        what: String,
    ) {
        self.out.push(Finding {
            contract: self.id.to_owned(),
            part,
            version,
            pointer,
            severity,
            what,
            affected: self.affected.to_vec(),
            blocking,
        });
    }

    fn gone(&mut self, current: u32) {
        let what = format!("{} removed or renamed", self.kind);
        self.push("", format!("v{current}"), Severity::Breaking, true, what);
    }

    fn added(&mut self, current: u32) {
        let what = format!("new {}", self.kind);
        self.push("", format!("v{current}"), Severity::Compatible, false, what);
    }

    fn versions(&mut self, b_current: u32, b_accepts: &[u32], a_current: u32, a_accepts: &[u32]) {
        if a_current < b_current {
            self.push(
                "",
                format!("v{a_current}"),
                Severity::Breaking,
                true,
                format!("current version went back from v{b_current} to v{a_current}"),
            );
        }
        for v in b_accepts.iter().filter(|v| !a_accepts.contains(v)) {
            self.push(
                "",
                format!("v{v}"),
                Severity::Breaking,
                true,
                format!("version v{v} no longer accepted; whatever still speaks it is refused"),
            );
        }
        if a_current > b_current && b_accepts.contains(&b_current) && a_accepts.contains(&b_current)
        {
            self.push(
                "",
                format!("v{a_current}"),
                Severity::Compatible,
                false,
                format!("new version v{a_current}, v{b_current} still accepted"),
            );
        }
    }

    /// Each version both sides describe is compared as it stands (a change
    /// in place); a new current version is compared with the previous
    /// current one, and its breaks are covered while that one is still accepted.
    fn schemas<S>(
        &mut self,
        b: &BTreeMap<u32, S>,
        a: &BTreeMap<u32, S>,
        b_current: u32,
        a_current: u32,
        a_accepts: &[u32],
        parts: impl Fn(&S) -> Vec<(&'static str, Flow, &Value)>,
    ) {
        for (v, new) in a {
            let (old, version, covered) = match b.get(v) {
                Some(old) => (old, format!("v{v}"), false),
                None if *v == a_current => match b.get(&b_current) {
                    Some(old) if b_current < a_current => (
                        old,
                        format!("v{b_current} -> v{a_current}"),
                        a_accepts.contains(&b_current),
                    ),
                    _ => continue,
                },
                None => continue,
            };
            for ((part, flow, o), (_, _, n)) in parts(old).into_iter().zip(parts(new)) {
                for change in compare(o, n, flow) {
                    let blocking = change.severity == Severity::Breaking && !covered;
                    self.push_at(
                        part,
                        version.clone(),
                        change.pointer,
                        change.severity,
                        blocking,
                        change.what,
                    );
                }
            }
        }
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for x in &self.findings {
            let label = match (x.severity, x.blocking) {
                (Severity::Breaking, true) => "BREAKING",
                (Severity::Breaking, false) => "versioned",
                (Severity::Compatible, _) => "compatible",
            };
            let mut place = format!("{} {}", x.contract, x.version);
            if !x.part.is_empty() {
                place.push(' ');
                place.push_str(x.part);
            }
            if !x.pointer.is_empty() {
                place.push(' ');
                place.push_str(&x.pointer);
            }
            writeln!(f, "{label:<10} {place}: {}", x.what)?;
            writeln!(f, "{:<10} affects {}", "", x.affected.join(", "))?;
        }
        if self.findings.is_empty() {
            return writeln!(f, "no change.");
        }
        let blocking = self.findings.iter().filter(|x| x.blocking).count();
        let breaking = self
            .findings
            .iter()
            .filter(|x| x.severity == Severity::Breaking)
            .count();
        let compatible = self.findings.len() - breaking;
        let versioned = breaking - blocking;
        if blocking == 0 {
            return writeln!(
                f,
                "passed: {versioned} versioned (breaking, but in a new version while the old one \
                 is still accepted), {compatible} compatible."
            );
        }
        writeln!(
            f,
            "FAILED: {blocking} breaking change(s) not covered by a new version; \
             {versioned} versioned, {compatible} compatible."
        )?;
        writeln!(
            f,
            "To change a contract safely: declare a new version (current: N+1, accepts: [N, N+1])\n\
             with an upcaster from N (or publish both versions for a while), have every consumer\n\
             accept it before the producer writes it, or undo the change. If a break is intended\n\
             and nothing live still uses the old form, record it with `shop contracts snapshot`."
        )
    }
}

#[cfg(test)]
mod tests;
