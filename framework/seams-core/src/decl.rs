//! Contract declarations: the five questions of the design brief, answered as
//! data by every command, query and event.
//!
//! Each declaration is a plain `static` whose struct has no optional answer,
//! so a declaration that forgets one does not compile. What cannot be checked
//! by the type system (retrying a non-idempotent command, a version the
//! declaration itself does not accept) is checked by [`Operation::check`] and
//! [`EventContract::check`], which the runtime calls before anything starts.

use std::fmt;
use std::time::Duration;

/// Backoff schedule for a bounded number of attempts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Total attempts including the first one; at least 1.
    pub max_attempts: u32,
    /// Delay before the second attempt; doubles after each further attempt.
    pub initial_backoff: Duration,
    /// Upper bound on one delay (before jitter).
    pub max_backoff: Duration,
}

impl RetryPolicy {
    /// Three attempts, 50 ms then 100 ms apart: for cheap idempotent queries.
    pub const STANDARD: RetryPolicy = RetryPolicy {
        max_attempts: 3,
        initial_backoff: Duration::from_millis(50),
        max_backoff: Duration::from_millis(500),
    };

    /// Eight attempts, from 100 ms doubling to at most 5 s apart (about
    /// 16 s in all): how a bus redelivers an event its consumer failed.
    pub const BUS: RetryPolicy = RetryPolicy {
        max_attempts: 8,
        initial_backoff: Duration::from_millis(100),
        max_backoff: Duration::from_secs(5),
    };

    /// Delay before attempt number `attempt` (1-based; the first has none).
    pub fn backoff(&self, attempt: u32) -> Duration {
        if attempt <= 1 {
            return Duration::ZERO;
        }
        let factor = 1u32.checked_shl(attempt - 2).unwrap_or(u32::MAX);
        self.initial_backoff
            .checked_mul(factor)
            .unwrap_or(self.max_backoff)
            .min(self.max_backoff)
    }

    /// The longest time all attempts can take, backoffs only (the retry horizon).
    pub fn horizon(&self) -> Duration {
        (1..=self.max_attempts).map(|a| self.backoff(a)).sum()
    }
}

/// Question 1: who owns retries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Retries {
    /// The caller retries with this policy; only allowed where the operation is idempotent.
    Caller(RetryPolicy),
    /// The event bus redelivers with this policy, then dead-letters.
    Bus(RetryPolicy),
    /// Nobody retries; a failure is reported to whoever asked.
    Nobody,
}

/// Question 2: what idempotency means for this interaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Idempotency {
    /// The caller sends an `Idempotency-Key`; the request is fingerprinted, a replay
    /// returns the first response, and the same key with another body is rejected.
    Keyed,
    /// A natural key makes a repeat a conflict rather than a second effect.
    NaturalKey {
        /// The field that is unique.
        field: &'static str,
    },
    /// The command sets state to a given value; a repeat finds it set and changes nothing.
    SetsState,
    /// Reads change nothing, so repeating them is harmless.
    ReadOnly,
    /// Consumers record handled event ids (the inbox) so redelivery has no second effect.
    InboxByEventId,
    /// Repeating it has a second effect.
    NotIdempotent {
        /// Why it cannot be made idempotent.
        reason: &'static str,
    },
}

/// Question 3: whether ordering matters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ordering {
    /// Messages with the same value of `field` are applied in publication order.
    PerKey {
        /// The field whose value is the ordering key (the envelope's `subject`).
        field: &'static str,
    },
    /// Any order is fine.
    Unordered,
}

/// Question 4: what happens when the other side is down.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WhenDown {
    /// The caller gets an error at once: a problem of this type (slug) with `Retry-After`.
    FailFast {
        /// The problem type slug the end user sees.
        problem: &'static str,
        /// What `Retry-After` says.
        retry_after: Duration,
    },
    /// The message waits (outbox, bus) and is delivered when the other side is back.
    QueueAndDeliverLater,
    /// A declared degraded answer.
    Fallback {
        /// What the fallback returns.
        description: &'static str,
    },
}

/// Question 5: how version drift is introduced safely.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Versioning {
    /// The version this side writes.
    pub current: u32,
    /// Versions this side reads; older ones are upcast by the contract's upcasters.
    pub accepts: &'static [u32],
}

impl Versioning {
    /// Version 1, accepting only itself: a contract never changed yet.
    pub const FIRST: Versioning = Versioning {
        current: 1,
        accepts: &[1],
    };
}

/// Produces the JSON Schema (2020-12) of a wire type: a plain function, so a
/// declaration stays a `static` and this crate needs no schema library. The
/// contract crates fill it with `seams_schema::schema_of::<T>`, derived from
/// the type's `utoipa::ToSchema`; `shop contracts snapshot` and
/// `shop contracts check` compare what it returns across versions.
pub type SchemaFn = fn() -> serde_json::Value;

/// The schema of an absent body (`{"type": "null"}`): the request of an
/// operation whose input is all in its path or query string.
pub fn no_body() -> serde_json::Value {
    serde_json::json!({ "type": "null" })
}

/// Whether an operation changes state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Changes state.
    Command,
    /// Reads state.
    Query,
}

/// A synchronous command or query a capability answers.
#[derive(Debug)]
pub struct Operation {
    /// Owning capability.
    pub capability: &'static str,
    /// Operation name, unique within the capability (kebab-case).
    pub name: &'static str,
    /// One line on what it does.
    pub summary: &'static str,
    /// Command or query.
    pub kind: Kind,
    /// How long one attempt may take.
    pub timeout: Duration,
    /// Question 1.
    pub retries: Retries,
    /// Question 2.
    pub idempotency: Idempotency,
    /// Question 3.
    pub ordering: Ordering,
    /// Question 4.
    pub when_down: WhenDown,
    /// Question 5.
    pub versioning: Versioning,
    /// The JSON Schema of the current version's request body.
    pub request: SchemaFn,
    /// The JSON Schema of the current version's successful answer.
    pub response: SchemaFn,
}

/// An event a capability publishes.
#[derive(Debug)]
pub struct EventContract {
    /// Producing capability.
    pub producer: &'static str,
    /// CloudEvents `type`, `<capability>.<event-name>`.
    pub event_type: &'static str,
    /// One line on what happened.
    pub summary: &'static str,
    /// Question 1: normally the bus, with the redelivery policy consumers get.
    pub retries: Retries,
    /// Question 2: normally the consumer's inbox.
    pub idempotency: Idempotency,
    /// Question 3.
    pub ordering: Ordering,
    /// Question 4: normally queued in the outbox.
    pub when_down: WhenDown,
    /// Question 5.
    pub versioning: Versioning,
    /// The JSON Schema of the current version's payload (the envelope's `data`).
    pub schema: SchemaFn,
    /// Writes the current version's payload as an older version, so that a
    /// producer can be told to publish that one (or both) while consumers
    /// are upgraded; `None` when only the current version can be written.
    pub downcast: Option<Downcast>,
}

/// Turns a payload of the current version into version `to` (older), or
/// `None` when it cannot be written in that version. The counterpart of an
/// event's upcaster ([`crate::Event::upcast`]).
pub type Downcast = fn(to: u32, data: serde_json::Value) -> Option<serde_json::Value>;

/// The answers of an operation: its kind, its timeout and the five
/// questions. What a capability's queries (or commands) share is named once
/// in its contract crate and given to each by [`Operation::new`]; one that
/// answers differently says so with struct update syntax
/// (`OperationAnswers { ordering: .., ..COMMANDS }`). Every field is
/// mandatory, and `shop contracts` prints each operation's answers in full.
#[derive(Debug, Clone, Copy)]
pub struct OperationAnswers {
    /// Command or query.
    pub kind: Kind,
    /// How long one attempt may take.
    pub timeout: Duration,
    /// Question 1.
    pub retries: Retries,
    /// Question 2.
    pub idempotency: Idempotency,
    /// Question 3.
    pub ordering: Ordering,
    /// Question 4.
    pub when_down: WhenDown,
    /// Question 5.
    pub versioning: Versioning,
}

impl OperationAnswers {
    /// A query's usual answers, named once: a 2 s timeout; read-only, so
    /// the caller retries it ([`RetryPolicy::STANDARD`]); unordered; when
    /// the capability is down the caller gets `problem` at once with
    /// `Retry-After: 2`; [`Versioning::FIRST`]. A query that answers
    /// differently changes a field with struct update syntax.
    ///
    /// ```
    /// use std::time::Duration;
    /// use seams_core::decl::*;
    ///
    /// const QUERIES: OperationAnswers = OperationAnswers::query("loyalty-unavailable");
    /// let slow = OperationAnswers { timeout: Duration::from_secs(5), ..QUERIES };
    /// assert_eq!(QUERIES.idempotency, Idempotency::ReadOnly);
    /// assert_eq!(slow.when_down, QUERIES.when_down);
    /// ```
    pub const fn query(problem: &'static str) -> OperationAnswers {
        OperationAnswers {
            kind: Kind::Query,
            timeout: Duration::from_secs(2),
            retries: Retries::Caller(RetryPolicy::STANDARD),
            idempotency: Idempotency::ReadOnly,
            ordering: Ordering::Unordered,
            when_down: WhenDown::FailFast {
                problem,
                retry_after: Duration::from_secs(2),
            },
            versioning: Versioning::FIRST,
        }
    }
}

/// The five answers of an event contract, and its producer: what a
/// capability's events share, named once in its contract crate and given
/// to each event by [`EventContract::new`]. Every field is mandatory, so
/// sharing them takes nothing out of sight: `shop contracts` prints each
/// event's answers in full.
#[derive(Debug, Clone, Copy)]
pub struct EventAnswers {
    /// Producing capability.
    pub producer: &'static str,
    /// Question 1.
    pub retries: Retries,
    /// Question 2.
    pub idempotency: Idempotency,
    /// Question 3.
    pub ordering: Ordering,
    /// Question 4.
    pub when_down: WhenDown,
    /// Question 5.
    pub versioning: Versioning,
}

impl EventAnswers {
    /// The usual answers of `producer`'s events about one thing, named
    /// once: redelivered by the bus ([`RetryPolicy::BUS`]), applied once
    /// per consumer by its inbox, in order per value of the payload's
    /// `field` (which must be a required string or integer), queued in the
    /// outbox while a consumer is down, [`Versioning::FIRST`].
    ///
    /// ```
    /// use seams_core::decl::*;
    ///
    /// const INVOICE_EVENTS: EventAnswers = EventAnswers::per_key("billing", "invoice_id");
    /// assert_eq!(INVOICE_EVENTS.ordering, Ordering::PerKey { field: "invoice_id" });
    /// assert_eq!(INVOICE_EVENTS.retries, Retries::Bus(RetryPolicy::BUS));
    /// ```
    pub const fn per_key(producer: &'static str, field: &'static str) -> EventAnswers {
        EventAnswers {
            producer,
            retries: Retries::Bus(RetryPolicy::BUS),
            idempotency: Idempotency::InboxByEventId,
            ordering: Ordering::PerKey { field },
            when_down: WhenDown::QueueAndDeliverLater,
            versioning: Versioning::FIRST,
        }
    }
}

/// A consistency promise a capability makes about its data.
#[derive(Debug)]
pub struct Invariant {
    /// The capability that keeps it.
    pub capability: &'static str,
    /// Short kebab-case name, unique within the capability.
    pub name: &'static str,
    /// What holds, in a sentence.
    pub description: &'static str,
    /// Immediate or eventual.
    pub kind: InvariantKind,
}

/// When an invariant holds.
#[derive(Debug, Clone, Copy)]
pub enum InvariantKind {
    /// Inside the owner's own transaction, always.
    Immediate {
        /// What enforces it (a constraint, a conditional update, a decision).
        enforced_by: &'static str,
    },
    /// Within `bound` at the given percentile of measured lags.
    Eventual {
        /// The promised lag.
        bound: std::time::Duration,
        /// The percentile the bound applies to (99.0 for p99).
        percentile: f64,
        /// What is measured.
        measure: Measure,
    },
}

/// What an eventual invariant's lag is.
#[derive(Debug, Clone, Copy)]
pub enum Measure {
    /// From the producer's commit of `event` to `consumer` having applied it (measured by the runtime).
    Hop {
        /// The event.
        event: &'static EventContract,
        /// The consuming capability.
        consumer: &'static str,
    },
    /// A lag the capability records itself under this name (for chains of several hops).
    Recorded(&'static str),
}

impl Invariant {
    /// `capability.name`.
    pub fn id(&self) -> String {
        format!("{}.{}", self.capability, self.name)
    }

    /// The key lags are recorded under.
    pub fn measure_key(&self) -> Option<String> {
        match self.kind {
            InvariantKind::Immediate { .. } => None,
            InvariantKind::Eventual {
                measure: Measure::Hop { event, consumer },
                ..
            } => Some(format!("{}->{consumer}", event.event_type)),
            InvariantKind::Eventual {
                measure: Measure::Recorded(name),
                ..
            } => Some(name.to_owned()),
        }
    }
}

/// A service level objective of a public command: the share of its requests
/// answered without a server error (not 5xx) over a rolling window. Alerts
/// are derived from it (`shop ops prometheus`): the error budget is what the
/// objective leaves, and how fast it burns is what pages.
#[derive(Debug)]
pub struct Objective {
    /// The operation it is about (a command of the capability's public API).
    pub operation: &'static Operation,
    /// The HTTP method of its route.
    pub method: &'static str,
    /// The route template as served and measured (`/billing/invoices`), the
    /// `route` label of `seams_http_requests_total`.
    pub route: &'static str,
    /// Percent of requests answered without a server error, such as 99.5.
    pub availability_percent: f64,
    /// The rolling window the percentage is over, such as 30 days.
    pub window: Duration,
}

impl Objective {
    /// The operation's id, `capability.name`.
    pub fn id(&self) -> String {
        self.operation.id()
    }

    /// The share of requests that may fail within the window (0.005 for 99.5 %).
    pub fn error_budget(&self) -> f64 {
        1.0 - self.availability_percent / 100.0
    }

    /// Checks what the type system cannot: a percentage that leaves a
    /// budget, a window, a command served under its own capability's prefix.
    pub fn check(&self) -> Result<(), DeclError> {
        let err = |problem: &str| DeclError {
            subject: format!("objective {}", self.id()),
            problem: problem.to_owned(),
        };
        if !(self.availability_percent > 0.0 && self.availability_percent < 100.0) {
            return Err(err(
                "availability must be above 0 % and below 100 % (100 % leaves no budget)",
            ));
        }
        if self.window.is_zero() {
            return Err(err("the window must be positive"));
        }
        if self.operation.kind != Kind::Command {
            return Err(err("objectives are declared for commands"));
        }
        let prefix = format!("/{}/", self.operation.capability);
        if !self.route.starts_with(&prefix) {
            return Err(err("the route must be under its capability's prefix"));
        }
        if !matches!(self.method, "POST" | "PUT" | "PATCH" | "DELETE") {
            return Err(err("a command's method is POST, PUT, PATCH or DELETE"));
        }
        Ok(())
    }
}

/// What one capability needs of the others: the operations it calls and
/// the events it consumes. These are the contracts' client lists: the
/// owner of an operation lets in only the capabilities that declare they
/// call it, and a producer lets only declared consumers read its feed.
#[derive(Debug)]
pub struct Dependencies {
    /// The capability that depends.
    pub capability: &'static str,
    /// Operations of other capabilities it calls.
    pub calls: &'static [&'static Operation],
    /// Events of other capabilities it consumes.
    pub consumes: &'static [&'static EventContract],
}

impl Dependencies {
    /// The producers whose feeds it reads, each once, in declaration order.
    pub fn producers(&self) -> Vec<&'static str> {
        let mut out: Vec<&'static str> = Vec::new();
        for e in self.consumes {
            if !out.contains(&e.producer) {
                out.push(e.producer);
            }
        }
        out
    }

    /// Its subscription to `producer`'s feed: `<capability><-<producer>`.
    pub fn subscription(&self, producer: &str) -> String {
        subscription_name(self.capability, producer)
    }
}

/// The durable name of `consumer`'s subscription to `producer`'s feed.
pub fn subscription_name(consumer: &str, producer: &str) -> String {
    format!("{consumer}<-{producer}")
}

/// Every capability's declared dependencies, read as who may use which
/// door: an operation is for the capabilities that declare they call it, a
/// feed for those that declare they consume its events. Nothing else gets in.
#[derive(Debug, Clone, Default)]
pub struct Clients {
    all: Vec<&'static Dependencies>,
}

impl Clients {
    /// The declarations of every capability of the system.
    pub fn new(all: impl IntoIterator<Item = &'static Dependencies>) -> Clients {
        Clients {
            all: all.into_iter().collect(),
        }
    }

    /// What `capability` declared, if it is part of the system.
    pub fn of(&self, capability: &str) -> Option<&'static Dependencies> {
        self.all
            .iter()
            .copied()
            .find(|d| d.capability == capability)
    }

    /// Whether `capability` declared that it calls `op`.
    pub fn may_call(&self, capability: &str, op: &Operation) -> bool {
        self.of(capability).is_some_and(|d| {
            d.calls
                .iter()
                .any(|c| c.capability == op.capability && c.name == op.name)
        })
    }

    /// Whether `capability` declared that it consumes events of `producer`.
    pub fn may_read(&self, capability: &str, producer: &str) -> bool {
        self.of(capability)
            .is_some_and(|d| d.consumes.iter().any(|e| e.producer == producer))
    }

    /// The capabilities that call `op`.
    pub fn callers_of(&self, op: &Operation) -> Vec<&'static str> {
        self.all
            .iter()
            .filter(|d| self.may_call(d.capability, op))
            .map(|d| d.capability)
            .collect()
    }

    /// The capabilities that declared they consume `event`, wherever they run.
    pub fn consumers_of(&self, event: &EventContract) -> Vec<&'static str> {
        self.all
            .iter()
            .filter(|d| d.consumes.iter().any(|e| e.event_type == event.event_type))
            .map(|d| d.capability)
            .collect()
    }

    /// The subscriptions to `producer`'s feed (`<consumer><-<producer>`):
    /// whose reading lets its outbox be pruned.
    pub fn subscriptions_to(&self, producer: &str) -> Vec<String> {
        self.all
            .iter()
            .filter(|d| self.may_read(d.capability, producer))
            .map(|d| d.subscription(producer))
            .collect()
    }
}

/// A declaration that answers a question in a way the runtime cannot honour.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{subject}: {problem}")]
pub struct DeclError {
    /// The operation or event at fault.
    pub subject: String,
    /// What is wrong with it.
    pub problem: String,
}

fn check_common(
    subject: &str,
    retries: &Retries,
    versioning: &Versioning,
) -> Result<(), DeclError> {
    let err = |problem: &str| DeclError {
        subject: subject.to_owned(),
        problem: problem.to_owned(),
    };
    if let Retries::Caller(p) | Retries::Bus(p) = retries {
        if p.max_attempts == 0 {
            return Err(err("a retry policy needs at least one attempt"));
        }
        if p.initial_backoff > p.max_backoff {
            return Err(err("initial backoff exceeds max backoff"));
        }
    }
    if versioning.current == 0 {
        return Err(err("versions start at 1"));
    }
    if !versioning.accepts.contains(&versioning.current) {
        return Err(err("must accept its own current version"));
    }
    Ok(())
}

impl Operation {
    /// Operation `name` of `capability`, taking `request` and answering
    /// `response`, with `answers` to the five questions.
    pub const fn new(
        capability: &'static str,
        name: &'static str,
        summary: &'static str,
        request: SchemaFn,
        response: SchemaFn,
        answers: OperationAnswers,
    ) -> Operation {
        Operation {
            capability,
            name,
            summary,
            kind: answers.kind,
            timeout: answers.timeout,
            retries: answers.retries,
            idempotency: answers.idempotency,
            ordering: answers.ordering,
            when_down: answers.when_down,
            versioning: answers.versioning,
            request,
            response,
        }
    }

    /// `capability.name`, the operation's unique id.
    pub fn id(&self) -> String {
        format!("{}.{}", self.capability, self.name)
    }

    /// Checks what the type system cannot: retries only where repeating is safe.
    pub fn check(&self) -> Result<(), DeclError> {
        let subject = self.id();
        check_common(&subject, &self.retries, &self.versioning)?;
        let err = |problem: &str| DeclError {
            subject: subject.clone(),
            problem: problem.to_owned(),
        };
        if self.timeout.is_zero() {
            return Err(err("timeout must be positive"));
        }
        match (&self.retries, &self.idempotency) {
            (Retries::Caller(p), Idempotency::NotIdempotent { .. }) if p.max_attempts > 1 => {
                return Err(err("caller retries a non-idempotent operation"));
            }
            (Retries::Bus(_), _) => return Err(err("a synchronous call has no bus to retry it")),
            _ => {}
        }
        match (self.kind, &self.idempotency) {
            (Kind::Query, Idempotency::ReadOnly) => {}
            (Kind::Query, _) => return Err(err("a query is read-only")),
            (Kind::Command, Idempotency::ReadOnly) => {
                return Err(err("a command changes state, so it is not read-only"));
            }
            (Kind::Command, Idempotency::InboxByEventId) => {
                return Err(err("inbox idempotency is for event consumers"));
            }
            (Kind::Command, _) => {}
        }
        if matches!(self.when_down, WhenDown::QueueAndDeliverLater) {
            return Err(err(
                "a synchronous call cannot be queued; declare an event instead",
            ));
        }
        Ok(())
    }
}

impl EventContract {
    /// The event `event_type` with payload `schema`, answering as `answers` does.
    pub const fn new(
        event_type: &'static str,
        summary: &'static str,
        schema: SchemaFn,
        answers: EventAnswers,
    ) -> EventContract {
        EventContract {
            producer: answers.producer,
            event_type,
            summary,
            retries: answers.retries,
            idempotency: answers.idempotency,
            ordering: answers.ordering,
            when_down: answers.when_down,
            versioning: answers.versioning,
            schema,
            downcast: None,
        }
    }

    /// This declaration, able to write older versions with `downcast`.
    ///
    /// ```
    /// use seams_core::decl::*;
    ///
    /// const ANSWERS: EventAnswers = EventAnswers {
    ///     versioning: Versioning { current: 2, accepts: &[1, 2] },
    ///     ..EventAnswers::per_key("clock", "clock")
    /// };
    /// /// v2 added `zone`; v1 is v2 without it.
    /// fn to_older(to: u32, mut data: serde_json::Value) -> Option<serde_json::Value> {
    ///     (to == 1).then(|| { data.as_object_mut()?.remove("zone"); Some(data) })?
    /// }
    /// static TICKED: EventContract =
    ///     EventContract::new("clock.ticked", "A tick.", no_body, ANSWERS).with_downcast(to_older);
    /// let v1 = (TICKED.downcast.unwrap())(1, serde_json::json!({"clock": "c", "zone": "UTC"}));
    /// assert_eq!(v1, Some(serde_json::json!({"clock": "c"})));
    /// ```
    pub const fn with_downcast(self, downcast: Downcast) -> EventContract {
        EventContract {
            downcast: Some(downcast),
            ..self
        }
    }

    /// Which versions a producer may be told to write: the current one, and
    /// the older ones it accepts when it has a downcast. Refuses any other,
    /// naming why.
    pub fn can_write(&self, version: u32) -> Result<(), String> {
        let v = self.versioning;
        if version == v.current {
            return Ok(());
        }
        if version > v.current || !v.accepts.contains(&version) {
            return Err(format!(
                "{} has no version {version} to write (current {}, accepts {:?})",
                self.event_type, v.current, v.accepts
            ));
        }
        match self.downcast {
            Some(_) => Ok(()),
            None => Err(format!(
                "{} cannot be written as v{version}: its contract declares no downcast from v{}",
                self.event_type, v.current
            )),
        }
    }

    /// Checks what the type system cannot: events are redelivered, so consumers must dedupe.
    pub fn check(&self) -> Result<(), DeclError> {
        check_common(self.event_type, &self.retries, &self.versioning)?;
        let err = |problem: &str| DeclError {
            subject: self.event_type.to_owned(),
            problem: problem.to_owned(),
        };
        if !self
            .event_type
            .strip_prefix(self.producer)
            .is_some_and(|rest| rest.starts_with('.'))
        {
            return Err(err("event type must start with `<producer>.`"));
        }
        if matches!(self.retries, Retries::Caller(_)) {
            return Err(err("events are retried by the bus, not by a caller"));
        }
        match self.idempotency {
            Idempotency::InboxByEventId
            | Idempotency::NaturalKey { .. }
            | Idempotency::SetsState => {}
            _ => {
                return Err(err(
                    "redelivered events need inbox or natural-key idempotency",
                ));
            }
        }
        if let Ordering::PerKey { field } = self.ordering
            && let Err(problem) = key_field_in(&(self.schema)(), field)
        {
            return Err(err(&problem));
        }
        Ok(())
    }
}

/// Whether `field` is a required string or integer property of `schema`
/// (an object schema, possibly a `$ref` into its own `$defs`): the ordering
/// key is read from it, so every payload must carry one that has a text form.
fn key_field_in(schema: &serde_json::Value, field: &str) -> Result<(), String> {
    let root = resolve(schema, schema);
    let required = root
        .get("required")
        .and_then(|r| r.as_array())
        .is_some_and(|r| r.iter().any(|f| f.as_str() == Some(field)));
    let Some(property) = root.get("properties").and_then(|p| p.get(field)) else {
        return Err(format!(
            "ordering key `{field}` is not a property of the payload's schema"
        ));
    };
    if !required {
        return Err(format!(
            "ordering key `{field}` is not a required property of the payload's schema"
        ));
    }
    let property = resolve(schema, property);
    let types: Vec<&str> = match property.get("type") {
        Some(serde_json::Value::String(t)) => vec![t.as_str()],
        Some(serde_json::Value::Array(ts)) => ts.iter().filter_map(|t| t.as_str()).collect(),
        _ => Vec::new(),
    };
    if types.is_empty() || !types.iter().all(|t| matches!(*t, "string" | "integer")) {
        return Err(format!(
            "ordering key `{field}` must be a string or an integer, not null or a structure"
        ));
    }
    Ok(())
}

/// Follows one local `$ref` (`#/$defs/Name`) of `root`, if `schema` is one.
fn resolve<'a>(
    root: &'a serde_json::Value,
    schema: &'a serde_json::Value,
) -> &'a serde_json::Value {
    schema
        .get("$ref")
        .and_then(|r| r.as_str())
        .and_then(|r| r.strip_prefix("#/$defs/"))
        .and_then(|name| root.get("$defs").and_then(|d| d.get(name)))
        .unwrap_or(schema)
}

impl fmt::Display for Retries {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Retries::Caller(p) => write!(
                f,
                "caller: {}x, backoff {:?}..{:?}",
                p.max_attempts, p.initial_backoff, p.max_backoff
            ),
            Retries::Bus(p) => write!(
                f,
                "bus: {}x, backoff {:?}..{:?}, then dead letter",
                p.max_attempts, p.initial_backoff, p.max_backoff
            ),
            Retries::Nobody => f.write_str("nobody"),
        }
    }
}

impl fmt::Display for Idempotency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Idempotency::Keyed => f.write_str("Idempotency-Key (fingerprinted)"),
            Idempotency::NaturalKey { field } => write!(f, "natural key `{field}`"),
            Idempotency::SetsState => f.write_str("sets state (a repeat changes nothing)"),
            Idempotency::ReadOnly => f.write_str("read-only"),
            Idempotency::InboxByEventId => f.write_str("inbox by event id"),
            Idempotency::NotIdempotent { reason } => write!(f, "not idempotent: {reason}"),
        }
    }
}

impl fmt::Display for Ordering {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Ordering::PerKey { field } => write!(f, "per key `{field}`"),
            Ordering::Unordered => f.write_str("none"),
        }
    }
}

impl fmt::Display for WhenDown {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WhenDown::FailFast {
                problem,
                retry_after,
            } => {
                write!(
                    f,
                    "fail fast: 503 {problem}, Retry-After {}s",
                    retry_after.as_secs().max(1)
                )
            }
            WhenDown::QueueAndDeliverLater => f.write_str("queue, deliver later"),
            WhenDown::Fallback { description } => write!(f, "fallback: {description}"),
        }
    }
}

impl fmt::Display for Versioning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let accepts: Vec<String> = self.accepts.iter().map(|v| format!("v{v}")).collect();
        write!(f, "v{} (accepts {})", self.current, accepts.join(", "))
    }
}

#[cfg(test)]
mod tests;
