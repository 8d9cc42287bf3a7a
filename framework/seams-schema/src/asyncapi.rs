//! The AsyncAPI 3.0 document of a system's events, from the same
//! declarations and schemas the contract check reads: one channel per
//! event type (its address the CloudEvents `type`), one message per
//! accepted version of which the current one carries the payload schema,
//! a `send` operation for the producer and a `receive` operation per
//! consumer.
//!
//! A payload schema's `$defs` move to `components.schemas`: AsyncAPI
//! resolves a `$ref` against the whole document, not the schema.

use std::collections::BTreeMap;

use seams_core::decl::{EventContract, Ordering};
use serde_json::{Map, Value, json};

/// One published event and the capabilities that consume it.
#[derive(Debug, Clone, Copy)]
pub struct Channel<'a> {
    /// The declaration.
    pub event: &'a EventContract,
    /// Its consumers.
    pub consumers: &'a [&'a str],
}

/// The AsyncAPI 3.0 document of `channels`, titled `title`.
///
/// ```
/// # use seams_core::decl::*;
/// # use std::time::Duration;
/// static PING: EventContract = EventContract {
///     producer: "clock", event_type: "clock.ping", summary: "A ping.",
///     retries: Retries::Bus(RetryPolicy::STANDARD), idempotency: Idempotency::InboxByEventId,
///     ordering: Ordering::Unordered, when_down: WhenDown::QueueAndDeliverLater,
///     versioning: Versioning { current: 1, accepts: &[1] },
///     schema: || serde_json::json!({"type": "object"}), downcast: None,
/// };
/// let doc = seams_schema::asyncapi::document("Clock", &[seams_schema::asyncapi::Channel {
///     event: &PING, consumers: &["alarm"] }]);
/// assert_eq!(doc["asyncapi"], "3.0.0");
/// assert_eq!(doc["channels"]["clock.ping"]["address"], "clock.ping");
/// assert_eq!(doc["operations"]["alarm.receive.clock.ping"]["action"], "receive");
/// ```
pub fn document(title: &str, channels: &[Channel<'_>]) -> Value {
    let mut chans = Map::new();
    let mut ops = Map::new();
    let mut shared: BTreeMap<String, Value> = BTreeMap::new();
    for c in channels {
        let e = c.event;
        let id = e.event_type;
        let mut payload = (e.schema)();
        hoist(&mut payload, &mut shared);
        let mut messages = Map::new();
        for v in e.versioning.accepts {
            let mut message = json!({
                "name": format!("{id}.v{v}"),
                "title": format!("{id} version {v}"),
                "contentType": "application/json",
                "summary": e.summary,
            });
            if *v == e.versioning.current {
                message["payload"] = payload.clone();
            } else {
                message["description"] = json!(format!(
                    "Still accepted; upcast to v{} by the contract's upcasters. \
                     Its schema is in the contract snapshot.",
                    e.versioning.current
                ));
            }
            messages.insert(format!("v{v}"), message);
        }
        let ordering = match e.ordering {
            Ordering::PerKey { field } => {
                format!("ordered per `{field}` (the envelope's subject)")
            }
            Ordering::Unordered => "unordered".to_owned(),
        };
        chans.insert(
            id.to_owned(),
            json!({
                "address": id,
                "title": id,
                "summary": e.summary,
                "description": format!(
                    "Published by {} as the `data` of a CloudEvents 1.0 envelope (`type` {id}, \
                     `dataschema` naming the version); {ordering}; retried {}; {}; \
                     version {}.",
                    e.producer, e.retries, e.idempotency, e.versioning
                ),
                "messages": messages,
            }),
        );
        let channel_ref = json!({ "$ref": format!("#/channels/{}", pointer(id)) });
        let current = json!([{ "$ref": format!(
            "#/channels/{}/messages/v{}", pointer(id), e.versioning.current
        ) }]);
        ops.insert(
            format!("{}.send.{id}", e.producer),
            json!({ "action": "send", "channel": channel_ref, "messages": current,
                    "summary": format!("{} publishes {id}", e.producer) }),
        );
        for consumer in c.consumers {
            ops.insert(
                format!("{consumer}.receive.{id}"),
                json!({ "action": "receive", "channel": channel_ref, "messages": current,
                        "summary": format!("{consumer} consumes {id}") }),
            );
        }
    }
    json!({
        "asyncapi": "3.0.0",
        "info": {
            "title": title,
            "version": "1",
            "description": "Every event channel, from the contracts' declarations and schemas.",
        },
        "defaultContentType": "application/json",
        "channels": chans,
        "operations": ops,
        "components": { "schemas": shared },
    })
}

/// Moves `schema`'s `$defs` into `shared` and points its references there.
fn hoist(schema: &mut Value, shared: &mut BTreeMap<String, Value>) {
    if let Value::Object(obj) = schema {
        obj.remove("$schema");
        if let Some(Value::Object(defs)) = obj.remove("$defs") {
            for (name, mut def) in defs {
                relink(&mut def);
                shared.entry(name).or_insert(def);
            }
        }
    }
    relink(schema);
}

fn relink(v: &mut Value) {
    match v {
        Value::Object(obj) => {
            for (k, child) in obj.iter_mut() {
                if k == "$ref"
                    && let Value::String(r) = child
                    && let Some(name) = r.strip_prefix("#/$defs/")
                {
                    *r = format!("#/components/schemas/{name}");
                } else {
                    relink(child);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(relink),
        _ => {}
    }
}

/// An id as one JSON pointer segment (RFC 6901).
fn pointer(id: &str) -> String {
    id.replace('~', "~0").replace('/', "~1")
}

#[cfg(test)]
mod tests;
