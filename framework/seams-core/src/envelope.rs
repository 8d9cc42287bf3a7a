//! Events on the wire: CloudEvents 1.0 in JSON structured mode.
//!
//! The envelope is the same in every transport (in-process, HTTP feed, NATS),
//! so a consumer cannot tell how an event reached it. Extension attributes
//! carry what the design brief asks of every event: the payload's
//! `dataversion`, W3C `traceparent`, the `correlationid` of the request that
//! started the chain, the `causationid` of the message that directly caused
//! this one, and the producer's `sequence` in its outbox.
//!
//! While consumers are upgraded to a new version of an event, its producer
//! can be told to write an older version, or several ([`Envelope::written_as`]):
//! the envelope then carries the others in `alternates`, one event (one id,
//! one position, one inbox row per consumer) that each consumer reads in the
//! newest version it accepts ([`Envelope::decode`]).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize, de::DeserializeOwned};
use serde_json::Value;
use serde_json::value::RawValue;

use crate::context::CallContext;
use crate::decl::{EventContract, Ordering};

/// A CloudEvents 1.0 envelope (JSON structured mode).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Envelope {
    /// Always `"1.0"`.
    pub specversion: String,
    /// Unique event id (UUID v7); the inbox dedupes on it.
    pub id: String,
    /// `/seams/<producer>`.
    pub source: String,
    /// `<producer>.<event-name>`.
    #[serde(rename = "type")]
    pub event_type: String,
    /// The ordering key (for example the invoice id).
    pub subject: String,
    /// RFC 3339 time of the producing commit.
    pub time: String,
    /// Always `application/json`.
    pub datacontenttype: String,
    /// Version of `data`'s schema.
    pub dataversion: u32,
    /// W3C trace context of the producing span.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub traceparent: Option<String>,
    /// Correlation id of the chain this event belongs to.
    pub correlationid: String,
    /// Id of the request or event that caused this one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub causationid: Option<String>,
    /// Position in the producer's outbox, set when the event is read from a feed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sequence: Option<u64>,
    /// The event payload.
    pub data: EventData,
    /// The same event in other versions than `dataversion` (a producer
    /// writing two during a rollout), version to payload; empty otherwise.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub alternates: BTreeMap<u32, EventData>,
}

/// An event's payload, kept as the JSON text it was written as: a feed,
/// a relay and the outbox pass it on without building its tree, and the
/// consumer that decodes it reads its own type straight from the text
/// ([`Envelope::decode`]). Written back, it is the same text.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(transparent)]
pub struct EventData(Box<RawValue>);

impl EventData {
    /// The JSON text.
    pub fn get(&self) -> &str {
        self.0.get()
    }

    /// The payload as a JSON value. An error for text that is JSON but no
    /// value serde_json holds (a number beyond `f64`, say): a payload is
    /// checked to be JSON when it is read, not that it fits a tree.
    pub fn to_value(&self) -> Result<Value, serde_json::Error> {
        serde_json::from_str(self.get())
    }
}

impl From<&Value> for EventData {
    fn from(value: &Value) -> EventData {
        // A `Value`'s text is JSON (its maps have string keys, its numbers
        // are finite), so serde_json's check of it cannot fail.
        EventData(serde_json::value::to_raw_value(value).expect("a JSON value is valid JSON text"))
    }
}

impl From<Value> for EventData {
    fn from(value: Value) -> EventData {
        EventData::from(&value)
    }
}

/// The same text: what a payload read and written back keeps.
impl PartialEq for EventData {
    fn eq(&self, other: &EventData) -> bool {
        self.get() == other.get()
    }
}

/// A domain event declared in a contract crate.
///
/// Its ordering key is not written by hand: [`Envelope::wrap`] reads it
/// from the field its contract's [`Ordering::PerKey`] names, so the key the
/// relay orders by cannot disagree with the declaration.
pub trait Event: Serialize + DeserializeOwned {
    /// The event's declaration.
    const CONTRACT: &'static EventContract;

    /// Turns `data` written at an older `version` into the current shape.
    /// [`Envelope::decode`] calls it only for a version older than the
    /// current one: the current version is read as it is. The default
    /// knows only the current version.
    fn upcast(version: u32, data: Value) -> Result<Value, DecodeError> {
        if version == Self::CONTRACT.versioning.current {
            Ok(data)
        } else {
            Err(DecodeError::NoUpcaster {
                event_type: Self::CONTRACT.event_type,
                version,
            })
        }
    }
}

/// Why an event could not be put in an envelope.
#[derive(Debug, thiserror::Error)]
pub enum WrapError {
    /// The payload did not serialize to JSON.
    #[error("{event_type} does not serialize: {source}")]
    Serialize {
        /// The event type.
        event_type: &'static str,
        /// The serde error.
        #[source]
        source: serde_json::Error,
    },
    /// The declared ordering field is missing, or neither a string nor an integer.
    #[error(
        "{event_type} is ordered per `{field}`, but its payload has no string or integer `{field}`"
    )]
    NoKey {
        /// The event type.
        event_type: &'static str,
        /// The declared field.
        field: &'static str,
    },
}

/// The ordering key of an event of `contract` with payload `data`: the
/// value of the declared [`Ordering::PerKey`] field (a string as is, an
/// integer in decimal), or, for an unordered event, its own `id`, so that
/// no two unordered events wait for each other.
pub fn ordering_key(
    contract: &'static EventContract,
    data: &Value,
    id: &str,
) -> Result<String, WrapError> {
    match contract.ordering {
        Ordering::Unordered => Ok(id.to_owned()),
        Ordering::PerKey { field } => match data.get(field) {
            Some(Value::String(s)) => Ok(s.clone()),
            Some(Value::Number(n)) if n.is_i64() || n.is_u64() => Ok(n.to_string()),
            _ => Err(WrapError::NoKey {
                event_type: contract.event_type,
                field,
            }),
        },
    }
}

/// Why an envelope could not become a typed event.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    /// The envelope is of another event type.
    #[error("expected an event of type {expected}, got {actual}")]
    WrongType {
        /// The type asked for.
        expected: &'static str,
        /// The type in the envelope.
        actual: String,
    },
    /// The consumer does not accept this version.
    #[error("{event_type} v{version} is not accepted (accepts {accepts:?})")]
    VersionNotAccepted {
        /// The event type.
        event_type: String,
        /// The version in the envelope.
        version: u32,
        /// What the consumer accepts.
        accepts: Vec<u32>,
    },
    /// An accepted version has no upcaster.
    #[error("{event_type} has no upcaster from v{version}")]
    NoUpcaster {
        /// The event type.
        event_type: &'static str,
        /// The version in the envelope.
        version: u32,
    },
    /// The payload does not match the schema.
    #[error("payload of {event_type} does not match its schema: {source}")]
    Payload {
        /// The event type.
        event_type: String,
        /// The serde error.
        #[source]
        source: serde_json::Error,
    },
}

impl Envelope {
    /// Wraps `event` for publication; `id` and `time` come from the caller's
    /// id source and clock, the `subject` from the declared ordering field
    /// ([`ordering_key`]).
    pub fn wrap<E: Event>(
        event: &E,
        id: String,
        time: String,
        ctx: &CallContext,
    ) -> Result<Envelope, WrapError> {
        let contract = E::CONTRACT;
        let data = serde_json::to_value(event).map_err(|source| WrapError::Serialize {
            event_type: contract.event_type,
            source,
        })?;
        let subject = ordering_key(contract, &data, &id)?;
        let data = EventData::from(&data);
        Ok(Envelope {
            specversion: "1.0".into(),
            id,
            source: format!("/seams/{}", contract.producer),
            event_type: contract.event_type.into(),
            subject,
            time,
            datacontenttype: "application/json".into(),
            dataversion: contract.versioning.current,
            traceparent: Some(ctx.trace.to_traceparent()),
            correlationid: ctx.correlation_id.clone(),
            causationid: ctx.causation_id.clone(),
            sequence: None,
            data,
            alternates: BTreeMap::new(),
        })
    }

    /// Decodes the payload as `E` in the newest version `accepts` names among
    /// those the envelope carries (`dataversion` and the `alternates`),
    /// upcast to the current shape; refuses another type, or an event in no
    /// accepted version.
    pub fn decode<E: Event>(&self, accepts: &[u32]) -> Result<E, DecodeError> {
        if self.event_type != E::CONTRACT.event_type {
            return Err(DecodeError::WrongType {
                expected: E::CONTRACT.event_type,
                actual: self.event_type.clone(),
            });
        }
        let carried = std::iter::once((self.dataversion, &self.data)).chain(
            self.alternates
                .iter()
                .map(|(version, data)| (*version, data)),
        );
        let Some((version, data)) = carried
            .filter(|(version, _)| accepts.contains(version))
            .max_by_key(|(version, _)| *version)
        else {
            return Err(DecodeError::VersionNotAccepted {
                event_type: self.event_type.clone(),
                version: self.dataversion,
                accepts: accepts.to_vec(),
            });
        };
        let payload = |source| DecodeError::Payload {
            event_type: self.event_type.clone(),
            source,
        };
        if version == E::CONTRACT.versioning.current {
            // Read from the text: the payload is in the current shape.
            return serde_json::from_str(data.get()).map_err(payload);
        }
        let old = data.to_value().map_err(payload)?;
        serde_json::from_value(E::upcast(version, old)?).map_err(payload)
    }

    /// This envelope (of `contract`'s current version, as [`Envelope::wrap`]
    /// writes it) written in `versions` instead: the newest as `data` and
    /// `dataversion`, the others as `alternates`, each through the
    /// contract's downcast. Refuses an empty list or a version the contract
    /// cannot write ([`EventContract::can_write`]).
    pub fn written_as(
        &self,
        contract: &EventContract,
        versions: &[u32],
    ) -> Result<Envelope, String> {
        let Some(&newest) = versions.iter().max() else {
            return Err(format!("{}: no version to write", contract.event_type));
        };
        let current = contract.versioning.current;
        if self.dataversion != current {
            return Err(format!(
                "{} {} is v{}, not the current v{current}",
                contract.event_type, self.id, self.dataversion
            ));
        }
        let as_version = |version: u32| -> Result<EventData, String> {
            contract.can_write(version)?;
            if version == current {
                return Ok(self.data.clone());
            }
            let downcast = contract.downcast.ok_or("no downcast")?;
            let data = self.data.to_value().map_err(|e| e.to_string())?;
            downcast(version, data).map(EventData::from).ok_or_else(|| {
                format!(
                    "{} {} cannot be written as v{version}",
                    contract.event_type, self.id
                )
            })
        };
        let mut out = self.clone();
        out.dataversion = newest;
        out.data = as_version(newest)?;
        out.alternates = BTreeMap::new();
        for &version in versions.iter().filter(|v| **v != newest) {
            out.alternates.insert(version, as_version(version)?);
        }
        Ok(out)
    }

    /// This envelope carrying only the versions in `versions`: the newest of
    /// them it carries as `data`, the others as `alternates`. What a
    /// consumer narrowed by configuration to fewer versions than its code
    /// accepts sees (`shop --accept`, a rehearsal of an older build): it
    /// decodes as that build would. None of them carried is
    /// [`DecodeError::VersionNotAccepted`], as for that build.
    pub fn only(&self, versions: &[u32]) -> Result<Envelope, DecodeError> {
        let mut carried: Vec<(u32, &EventData)> = std::iter::once((self.dataversion, &self.data))
            .chain(self.alternates.iter().map(|(v, data)| (*v, data)))
            .filter(|(v, _)| versions.contains(v))
            .collect();
        carried.sort_by_key(|(v, _)| *v);
        let Some((newest, data)) = carried.pop() else {
            return Err(DecodeError::VersionNotAccepted {
                event_type: self.event_type.clone(),
                version: self.dataversion,
                accepts: versions.to_vec(),
            });
        };
        Ok(Envelope {
            dataversion: newest,
            data: data.clone(),
            alternates: carried.into_iter().map(|(v, d)| (v, d.clone())).collect(),
            ..self.clone()
        })
    }

    /// The context a consumer works in: same correlation, caused by this event.
    pub fn consumer_context(&self) -> CallContext {
        CallContext::caused_by_event(self)
    }
}

#[cfg(test)]
mod tests;
