//! Whether a new JSON Schema of a contract can replace the old one: every
//! difference between two versions of one schema, classified as breaking or
//! compatible from the side that reads the data.
//!
//! Which side reads decides everything, so the comparison takes a [`Flow`]:
//! a request is written by clients built against the old schema and read by
//! the new code (the new schema must accept all the old one did), while a
//! response or an event is written by the new code and read by consumers
//! built against the old schema (the old schema must accept all the new one
//! produces). A new optional field is therefore compatible in a request and,
//! against a consumer that refuses unknown fields (`additionalProperties:
//! false`, from `#[serde(deny_unknown_fields)]`), breaking in an event.
//!
//! Written by hand: the JSON Schema crates validate instances against one
//! schema, none decides whether one schema accepts all another does. This
//! covers what the derives here produce (types, nullability, objects,
//! arrays, enums, bounds, patterns, formats and local `$ref`s); alternatives
//! (`oneOf`/`anyOf`) are compared position by position.

use std::collections::BTreeSet;

use serde_json::Value;

/// Who writes the data the schema describes, and who reads it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flow {
    /// Old clients write, the new code reads (an operation's request).
    Request,
    /// The new code writes, old readers read (a response or an event payload).
    Payload,
}

/// Whether a change can break the other side.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    /// Something the other side relies on changed.
    Breaking,
    /// Everything the other side sent or read still works.
    Compatible,
}

impl std::fmt::Display for Severity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Severity::Breaking => "breaking",
            Severity::Compatible => "compatible",
        })
    }
}

/// One difference between two schemas.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    /// JSON pointer into the data (`/lines/*/sku`: `*` is any array element;
    /// empty for the whole value).
    pub pointer: String,
    /// Breaking or compatible.
    pub severity: Severity,
    /// What changed, in words.
    pub what: String,
}

/// Every difference between `old` and `new`, classified for `flow`.
/// Identical schemas give none.
///
/// ```
/// use serde_json::json;
/// use seams_schema::{compare, Flow, Severity};
/// let old = json!({"type": "object", "required": ["id"], "properties": {"id": {"type": "string"}}});
/// let new = json!({"type": "object", "required": [], "properties": {"id": {"type": "string"}}});
/// let changes = compare(&old, &new, Flow::Payload);
/// assert_eq!(changes[0].pointer, "/id");
/// assert_eq!(changes[0].severity, Severity::Breaking);
/// ```
pub fn compare(old: &Value, new: &Value, flow: Flow) -> Vec<Change> {
    let mut walk = Walk {
        old_root: old,
        new_root: new,
        flow,
        out: Vec::new(),
    };
    walk.node(old, new, "", 0);
    walk.out
}

/// Nesting deeper than this is reported rather than followed (a recursive `$ref`).
const MAX_DEPTH: usize = 32;

struct Walk<'a> {
    old_root: &'a Value,
    new_root: &'a Value,
    flow: Flow,
    out: Vec<Change>,
}

/// Which way a change moved what is allowed.
#[derive(Clone, Copy)]
enum Shift {
    /// Less is allowed than before.
    Narrowed,
    /// More is allowed than before.
    Widened,
    /// Neither contains the other.
    Changed,
}

impl Walk<'_> {
    fn push(&mut self, pointer: &str, severity: Severity, what: String) {
        self.out.push(Change {
            pointer: pointer.to_owned(),
            severity,
            what,
        });
    }

    /// A narrowed schema rejects what old clients send (requests); a widened
    /// one produces what old readers reject (payloads).
    fn shift(&mut self, pointer: &str, shift: Shift, what: String) {
        let severity = match (shift, self.flow) {
            (Shift::Narrowed, Flow::Payload) | (Shift::Widened, Flow::Request) => {
                Severity::Compatible
            }
            _ => Severity::Breaking,
        };
        self.push(pointer, severity, what);
    }

    fn node(&mut self, old: &Value, new: &Value, at: &str, depth: usize) {
        if depth > MAX_DEPTH {
            if old != new {
                self.push(at, Severity::Breaking, "changed too deep to compare".into());
            }
            return;
        }
        let (old, old_null) = split_null(resolve(self.old_root, old));
        let (new, new_null) = split_null(resolve(self.new_root, new));
        // Equal text is equal meaning only without references: the same
        // `$ref` may name a definition that changed.
        if old == new && old_null == new_null && !has_ref(old) {
            return;
        }
        match (old_null, new_null) {
            (false, true) => self.shift(at, Shift::Widened, "may now be null".into()),
            (true, false) => self.shift(at, Shift::Narrowed, "may no longer be null".into()),
            _ => {}
        }
        match (is_any(old), is_any(new)) {
            (true, true) => return,
            (true, false) => return self.shift(at, Shift::Narrowed, "now constrained".into()),
            (false, true) => {
                return self.shift(at, Shift::Widened, "no longer constrained".into());
            }
            (false, false) => {}
        }
        if self.alternatives(old, new, at, depth) {
            return;
        }
        if !self.types(old, new, at) {
            // Nothing inside a value of another type is comparable.
            return;
        }
        self.format(old, new, at);
        self.enumeration(old, new, at);
        self.bounds(old, new, at);
        self.pattern(old, new, at);
        self.object(old, new, at, depth);
        if let (Some(o), Some(n)) = (old.get("items"), new.get("items")) {
            self.node(o, n, &format!("{at}/*"), depth + 1);
        }
    }

    /// `oneOf`/`anyOf` compared position by position; true when handled.
    fn alternatives(&mut self, old: &Value, new: &Value, at: &str, depth: usize) -> bool {
        for key in ["oneOf", "anyOf"] {
            match (old.get(key), new.get(key)) {
                (None, None) => {}
                (Some(Value::Array(o)), Some(Value::Array(n))) if o.len() == n.len() => {
                    for (i, (o, n)) in o.iter().zip(n).enumerate() {
                        let before = self.out.len();
                        self.node(o, n, at, depth + 1);
                        for c in &mut self.out[before..] {
                            c.what = format!("alternative {}: {}", i + 1, c.what);
                        }
                    }
                    return true;
                }
                _ => {
                    self.push(
                        at,
                        Severity::Breaking,
                        format!("its alternatives (`{key}`) changed"),
                    );
                    return true;
                }
            }
        }
        false
    }

    /// Compares the declared types; false when they share nothing.
    fn types(&mut self, old: &Value, new: &Value, at: &str) -> bool {
        let (Some(o), Some(n)) = (types(old), types(new)) else {
            return true;
        };
        if o == n {
            return true;
        }
        let accepts = |wide: &BTreeSet<String>, t: &String| {
            wide.contains(t) || (t == "integer" && wide.contains("number"))
        };
        let old_in_new = o.iter().all(|t| accepts(&n, t));
        let new_in_old = n.iter().all(|t| accepts(&o, t));
        let shift = match (old_in_new, new_in_old) {
            (true, _) => Shift::Widened,
            (false, true) => Shift::Narrowed,
            (false, false) => Shift::Changed,
        };
        self.shift(
            at,
            shift,
            format!("type changed from {} to {}", join(&o), join(&n)),
        );
        old_in_new || new_in_old
    }

    fn format(&mut self, old: &Value, new: &Value, at: &str) {
        let (o, n) = (old.get("format"), new.get("format"));
        if o == n {
            return;
        }
        const WIDTHS: [&[&str]; 3] = [
            &["int8", "int16", "int32", "int64"],
            &["uint8", "uint16", "uint32", "uint64"],
            &["float", "double"],
        ];
        let rank = |f: Option<&Value>| {
            let f = f?.as_str()?;
            WIDTHS
                .iter()
                .enumerate()
                .find_map(|(family, w)| w.iter().position(|x| *x == f).map(|r| (family, r)))
        };
        let shift = match (o, n) {
            (None, _) => Shift::Narrowed,
            (_, None) => Shift::Widened,
            _ => match (rank(o), rank(n)) {
                (Some((fo, ro)), Some((fn_, rn))) if fo == fn_ && rn > ro => Shift::Widened,
                (Some((fo, _)), Some((fn_, _))) if fo == fn_ => Shift::Narrowed,
                _ => Shift::Changed,
            },
        };
        let show = |f: Option<&Value>| f.and_then(Value::as_str).unwrap_or("none").to_owned();
        self.shift(
            at,
            shift,
            format!("format changed from {} to {}", show(o), show(n)),
        );
    }

    fn enumeration(&mut self, old: &Value, new: &Value, at: &str) {
        let values = |s: &Value| {
            s.get("enum")
                .and_then(Value::as_array)
                .map(|a| a.iter().map(Value::to_string).collect::<BTreeSet<String>>())
        };
        match (values(old), values(new)) {
            (None, None) => {}
            (None, Some(_)) => self.shift(at, Shift::Narrowed, "now limited to a list".into()),
            (Some(_), None) => self.shift(at, Shift::Widened, "no longer limited to a list".into()),
            (Some(o), Some(n)) => {
                let gone: Vec<&String> = o.difference(&n).collect();
                let added: Vec<&String> = n.difference(&o).collect();
                if !gone.is_empty() {
                    self.shift(at, Shift::Narrowed, format!("enum lost {}", list(&gone)));
                }
                if !added.is_empty() {
                    self.shift(at, Shift::Widened, format!("enum gained {}", list(&added)));
                }
            }
        }
    }

    fn bounds(&mut self, old: &Value, new: &Value, at: &str) {
        const LOWER: [&str; 5] = [
            "minimum",
            "exclusiveMinimum",
            "minLength",
            "minItems",
            "minProperties",
        ];
        const UPPER: [&str; 5] = [
            "maximum",
            "exclusiveMaximum",
            "maxLength",
            "maxItems",
            "maxProperties",
        ];
        for (keys, lower) in [(LOWER, true), (UPPER, false)] {
            for key in keys {
                let (o, n) = (
                    old.get(key).and_then(Value::as_f64),
                    new.get(key).and_then(Value::as_f64),
                );
                let tighter = match (o, n) {
                    (None, None) => continue,
                    (Some(o), Some(n)) if o == n => continue,
                    (None, Some(_)) => true,
                    (Some(_), None) => false,
                    (Some(o), Some(n)) => (n > o) == lower,
                };
                let show = |v: Option<f64>| v.map_or("none".to_owned(), |v| v.to_string());
                let what = format!("{key} changed from {} to {}", show(o), show(n));
                let shift = if tighter {
                    Shift::Narrowed
                } else {
                    Shift::Widened
                };
                self.shift(at, shift, what);
            }
        }
    }

    fn pattern(&mut self, old: &Value, new: &Value, at: &str) {
        match (old.get("pattern"), new.get("pattern")) {
            (o, n) if o == n => {}
            (None, Some(n)) => self.shift(at, Shift::Narrowed, format!("pattern {n} added")),
            (Some(o), None) => self.shift(at, Shift::Widened, format!("pattern {o} removed")),
            (o, n) => self.shift(
                at,
                Shift::Changed,
                format!(
                    "pattern changed from {} to {}",
                    o.map_or(String::new(), Value::to_string),
                    n.map_or(String::new(), Value::to_string)
                ),
            ),
        }
    }

    fn object(&mut self, old: &Value, new: &Value, at: &str, depth: usize) {
        let empty = serde_json::Map::new();
        let props = |s: &Value| s.get("properties").and_then(Value::as_object).cloned();
        let (op, np) = (props(old), props(new));
        if op.is_none() && np.is_none() {
            return;
        }
        let (op, np) = (op.unwrap_or_else(|| empty.clone()), np.unwrap_or(empty));
        let (or, nr) = (required(old), required(new));
        let (oc, nc) = (closed(old), closed(new));
        for (name, o) in &op {
            let here = format!("{at}/{}", escape(name));
            let Some(n) = np.get(name) else {
                let (severity, what) = match self.flow {
                    Flow::Request if nc => (
                        Severity::Breaking,
                        "removed: clients still sending it are refused".to_owned(),
                    ),
                    Flow::Request => (
                        Severity::Compatible,
                        "removed (ignored when sent)".to_owned(),
                    ),
                    Flow::Payload if or.contains(name) => (
                        Severity::Breaking,
                        "removed: no longer sent, and readers require it".to_owned(),
                    ),
                    Flow::Payload => (
                        Severity::Compatible,
                        "optional field no longer sent".to_owned(),
                    ),
                };
                self.push(&here, severity, what);
                continue;
            };
            match (or.contains(name), nr.contains(name)) {
                (false, true) => self.shift(&here, Shift::Narrowed, "now required".into()),
                (true, false) => self.shift(
                    &here,
                    Shift::Widened,
                    "made optional (may be missing)".into(),
                ),
                _ => {}
            }
            self.node(o, n, &here, depth + 1);
        }
        for name in np.keys().filter(|k| !op.contains_key(*k)) {
            let here = format!("{at}/{}", escape(name));
            let (severity, what) = match self.flow {
                Flow::Request if nr.contains(name) => (
                    Severity::Breaking,
                    "new required field: clients do not send it".to_owned(),
                ),
                Flow::Request => (Severity::Compatible, "new optional field".to_owned()),
                Flow::Payload if oc => (
                    Severity::Breaking,
                    "new field: readers refuse unknown fields (additionalProperties: false)"
                        .to_owned(),
                ),
                Flow::Payload => (Severity::Compatible, "new field".to_owned()),
            };
            self.push(&here, severity, what);
        }
        match (oc, nc) {
            (false, true) => self.shift(at, Shift::Narrowed, "now refuses unknown fields".into()),
            (true, false) => self.shift(at, Shift::Widened, "now allows unknown fields".into()),
            _ => {}
        }
    }
}

/// Follows local `$ref`s (`#/$defs/Name`) of `root`, a few levels at most.
fn resolve<'a>(root: &'a Value, mut schema: &'a Value) -> &'a Value {
    for _ in 0..8 {
        let Some(name) = schema
            .get("$ref")
            .and_then(Value::as_str)
            .and_then(|r| r.strip_prefix("#/$defs/"))
        else {
            break;
        };
        match root.get("$defs").and_then(|d| d.get(name)) {
            Some(target) => schema = target,
            None => break,
        }
    }
    schema
}

/// The schema without a nullable wrapper (`oneOf: [{type: null}, X]`, as
/// utoipa writes an `Option` of a named type), and whether it had one; a
/// `type` list naming `null` is kept as it is and compared as types.
fn split_null(schema: &Value) -> (&Value, bool) {
    for key in ["oneOf", "anyOf"] {
        let is_null = |v: &Value| v.get("type").and_then(Value::as_str) == Some("null");
        if let Some(Value::Array(alts)) = schema.get(key)
            && alts.len() == 2
            && alts.iter().any(is_null)
            && let Some(other) = alts.iter().find(|a| !is_null(a))
        {
            return (other, true);
        }
    }
    (schema, false)
}

fn has_ref(schema: &Value) -> bool {
    match schema {
        Value::Object(obj) => obj.iter().any(|(k, v)| k == "$ref" || has_ref(v)),
        Value::Array(items) => items.iter().any(has_ref),
        _ => false,
    }
}

/// A schema that allows anything (`{}` or `true`, or only annotations).
fn is_any(schema: &Value) -> bool {
    const ANNOTATIONS: [&str; 6] = [
        "description",
        "title",
        "examples",
        "example",
        "default",
        "$schema",
    ];
    match schema {
        Value::Bool(b) => *b,
        Value::Object(obj) => obj.keys().all(|k| ANNOTATIONS.contains(&k.as_str())),
        _ => false,
    }
}

fn types(schema: &Value) -> Option<BTreeSet<String>> {
    match schema.get("type")? {
        Value::String(t) => Some([t.clone()].into()),
        Value::Array(ts) => Some(
            ts.iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect(),
        ),
        _ => None,
    }
}

fn required(schema: &Value) -> BTreeSet<String> {
    schema
        .get("required")
        .and_then(Value::as_array)
        .map(|r| {
            r.iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default()
}

fn closed(schema: &Value) -> bool {
    schema.get("additionalProperties") == Some(&Value::Bool(false))
}

/// RFC 6901 escaping of one pointer segment.
fn escape(segment: &str) -> String {
    segment.replace('~', "~0").replace('/', "~1")
}

fn join(types: &BTreeSet<String>) -> String {
    types.iter().cloned().collect::<Vec<_>>().join(" or ")
}

fn list(values: &[&String]) -> String {
    values
        .iter()
        .map(|v| v.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests;
