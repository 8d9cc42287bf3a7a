//! What a capability hands the runtime.
//!
//! A capability crate exposes `component(&Env, Options) -> Component`: its
//! database, its public routes, the operations it serves to other
//! capabilities, the events it publishes and consumes, and any background
//! workers. It never learns which mode it runs in: `Env` gives it a transport
//! for its calls and the runtime decides where its events come from.
//!
//! What a capability calls and consumes it declares once, as
//! [`Dependencies`]: its calls go through a transport that refuses any
//! operation it did not declare ([`Env::calls`]), and the owners of those
//! operations and feeds let in exactly the capabilities that declared them.

use std::collections::BTreeMap;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::path::PathBuf;
use std::sync::Arc;

use futures::FutureExt;
use seams_core::decl::{Dependencies, EventContract, Operation};
use seams_core::{
    BoxFuture, CallContext, CallError, CallReply, Clock, Envelope, Event, Ids, Payload, Transport,
};
use seams_store::{Db, Durability, Location};
use serde::{Serialize, de::DeserializeOwned};
use tokio_util::sync::CancellationToken;

/// What every capability is built with.
#[derive(Clone)]
pub struct Env {
    /// Where the capability keeps its files (`<data>/<capability>.db`, ...).
    pub data_dir: PathBuf,
    /// How calls reach other capabilities' operations; a capability gets
    /// its own view of it from [`Env::calls`].
    pub transport: Arc<dyn Transport>,
    /// Time.
    pub clock: Arc<dyn Clock>,
    /// New ids.
    pub ids: Arc<dyn Ids>,
    /// Where capabilities' databases live.
    pub storage: Storage,
    /// Where lags are recorded and read models learn their freshness.
    pub consistency: crate::consistency::Consistency,
    /// This process replaces another of the same service (a rolling
    /// restart): opening a database, it waits for its predecessor's writer
    /// lock instead of refusing ([`seams_store::TakeOver`]).
    pub take_over: Option<seams_store::TakeOver>,
}

impl Env {
    /// The transport `deps.capability` makes its calls with: the system's,
    /// refusing any operation the capability did not declare it calls.
    pub fn calls(&self, deps: &'static Dependencies) -> Arc<dyn Transport> {
        Arc::new(Declared {
            inner: self.transport.clone(),
            deps,
        })
    }

    /// The SQLite file `capability` uses when storage is SQLite.
    pub fn db_path(&self, capability: &str) -> PathBuf {
        self.data_dir.join(format!("{capability}.db"))
    }

    /// Where `capability`'s database is; an error names what the
    /// configuration lacks.
    pub fn location(&self, capability: &str) -> anyhow::Result<Location> {
        match &self.storage {
            Storage::Sqlite { durability } => Ok(Location::Sqlite {
                path: self.db_path(capability),
                durability: *durability,
            }),
            Storage::Postgres { urls } => urls
                .get(capability)
                .map(|url| Location::Postgres { url: url.clone() })
                .ok_or_else(|| {
                    anyhow::anyhow!(
                        "storage is postgres but no database url is configured for {capability}"
                    )
                }),
        }
    }

    /// Opens `capability`'s database where the storage configuration says.
    pub async fn open_db(
        &self,
        capability: &str,
        migrations: &seams_store::Migrations,
    ) -> anyhow::Result<Db> {
        Db::connect_taking_over(
            &self.location(capability)?,
            capability,
            migrations,
            self.take_over.as_ref(),
        )
        .await
    }
}

/// A capability's calls: only the operations it declared.
struct Declared {
    inner: Arc<dyn Transport>,
    deps: &'static Dependencies,
}

impl Transport for Declared {
    fn call(&self, req: seams_core::CallRequest) -> BoxFuture<'_, Result<CallReply, CallError>> {
        let declared = self
            .deps
            .calls
            .iter()
            .any(|op| op.capability == req.op.capability && op.name == req.op.name);
        if declared {
            return self.inner.call(req);
        }
        let refused = CallError::Refused {
            op: req.op.id(),
            reason: format!(
                "{} does not declare that it calls {}",
                self.deps.capability,
                req.op.id()
            ),
        };
        tracing::error!(error = %refused, "an undeclared call");
        Box::pin(std::future::ready(Err(refused)))
    }
}

/// Where the capabilities of a process keep their state: one SQLite file
/// each (the default), or one PostgreSQL database each, reached with the
/// capability's own role.
#[derive(Clone, PartialEq, Eq)]
pub enum Storage {
    /// `<data_dir>/<capability>.db`.
    Sqlite {
        /// `synchronous` setting of every file.
        durability: Durability,
    },
    /// Capability name to connection URL.
    Postgres {
        /// One URL per capability in this process.
        urls: BTreeMap<String, String>,
    },
}

impl Default for Storage {
    fn default() -> Storage {
        Storage::Sqlite {
            durability: Durability::Full,
        }
    }
}

impl std::fmt::Debug for Storage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Storage::Sqlite { durability } => f
                .debug_struct("Sqlite")
                .field("durability", durability)
                .finish(),
            // URLs carry passwords.
            Storage::Postgres { urls } => f
                .debug_map()
                .entries(urls.iter().map(|(c, u)| (c, seams_store::redact(u))))
                .finish(),
        }
    }
}

/// The serving side of one operation.
pub type OpHandler = Arc<
    dyn Fn(Payload, CallContext) -> BoxFuture<'static, Result<CallReply, CallError>> + Send + Sync,
>;

/// An operation this capability serves, with its handler.
#[derive(Clone)]
pub struct Served {
    /// The declaration.
    pub op: &'static Operation,
    /// Decodes the request, runs the handler, encodes the answer.
    pub handler: OpHandler,
}

impl Served {
    /// Serves the operation `R` asks ([`seams_core::Ask`]) with a handler
    /// typed by the same declaration as its callers' requests.
    pub fn answering<R, F, Fut>(f: F) -> Served
    where
        R: seams_core::Ask,
        F: Fn(R, CallContext) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<R::Answer, R::Error>> + Send + 'static,
    {
        Served::new(R::OPERATION, f)
    }

    /// Serves `op` with a typed handler; a request that does not decode is a protocol error.
    pub fn new<Req, Resp, E, F, Fut>(op: &'static Operation, f: F) -> Served
    where
        Req: DeserializeOwned + Send + 'static,
        Resp: Serialize + Clone + Send + Sync + 'static,
        E: seams_core::ContractError,
        F: Fn(Req, CallContext) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Resp, E>> + Send + 'static,
    {
        let f = Arc::new(f);
        let handler: OpHandler = Arc::new(move |body: Payload, ctx: CallContext| {
            let f = f.clone();
            Box::pin(async move {
                let req: Req = body.decode().map_err(|e| CallError::Protocol {
                    op: op.id(),
                    reason: e.to_string(),
                })?;
                let result = AssertUnwindSafe(f(req, ctx))
                    .catch_unwind()
                    .await
                    .map_err(|_| CallError::Internal { op: op.id() })?;
                seams_core::transport::reply(result)
            }) as BoxFuture<'static, _>
        });
        Served { op, handler }
    }
}

/// Why a consumer did not apply an event.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HandlerError {
    /// Might work later (a dependency is down, a read model is behind): redeliver with backoff.
    #[error("transient: {0}")]
    Transient(String),
    /// Will never work as is (undecodable, unaccepted version): dead-letter now.
    #[error("permanent: {0}")]
    Permanent(String),
}

/// A commit that failed: as the database's error (a consumer records no
/// keyed response, so no key can conflict).
impl From<seams_store::SaveResponseError> for HandlerError {
    fn from(e: seams_store::SaveResponseError) -> Self {
        e.into_db().into()
    }
}

impl From<sqlx::Error> for HandlerError {
    fn from(e: sqlx::Error) -> Self {
        if breaks_a_constraint(&e) {
            HandlerError::Permanent(format!("database constraint: {e}"))
        } else {
            HandlerError::Transient(format!("database: {e}"))
        }
    }
}

impl From<anyhow::Error> for HandlerError {
    /// Transient, unless it is (or wraps) a database error that
    /// [`breaks_a_constraint`].
    fn from(e: anyhow::Error) -> Self {
        if e.downcast_ref::<sqlx::Error>()
            .is_some_and(breaks_a_constraint)
        {
            HandlerError::Permanent(format!("{e:#}"))
        } else {
            HandlerError::Transient(format!("{e:#}"))
        }
    }
}

impl From<seams_core::WrapError> for HandlerError {
    /// Permanent: an event the handler publishes in turn lacks its declared
    /// ordering key, and it will lack it on every redelivery.
    fn from(e: seams_core::WrapError) -> Self {
        HandlerError::Permanent(e.to_string())
    }
}

/// Whether `e` is a constraint the event's own effect breaks (a UNIQUE
/// key, NOT NULL, CHECK): it breaks it again on every redelivery (one
/// writer per database, so no concurrent transaction caused it), and
/// retrying through the whole schedule would only delay the dead letter.
/// A foreign key is not counted: the row it needs may come with an event
/// of another subscription still on its way. Everything else (the
/// connection, a busy writer, a failed group commit) may pass.
pub fn breaks_a_constraint(e: &sqlx::Error) -> bool {
    matches!(
        e,
        sqlx::Error::Database(db) if matches!(
            db.kind(),
            sqlx::error::ErrorKind::UniqueViolation
                | sqlx::error::ErrorKind::NotNullViolation
                | sqlx::error::ErrorKind::CheckViolation
        )
    )
}

/// The consuming side of one event type: applies the envelope through the
/// subscription's inbox.
pub type EventHandler = Arc<
    dyn Fn(Arc<Envelope>, crate::consumer::Inbox) -> BoxFuture<'static, Result<(), HandlerError>>
        + Send
        + Sync,
>;

/// One event type a subscription handles.
#[derive(Clone)]
pub struct Handles {
    /// The event's declaration (its retries and ordering apply).
    pub event: &'static EventContract,
    /// Versions this consumer accepts: those its code declares, or fewer
    /// when the deployment narrows them ([`Handles::narrowed`]).
    pub accepts: std::borrow::Cow<'static, [u32]>,
    /// The handler.
    pub handler: EventHandler,
}

impl Handles {
    /// Handles `E` by writing its effect into the transaction the
    /// framework opens ([`crate::consumer`]): the event's inbox row is in
    /// it, an event applied before never reaches `f`, `Ok` commits, an
    /// error rolls back. An envelope that does not decode, or of a version
    /// not in `accepts`, is a permanent failure (dead letter); a panic a
    /// transient one.
    ///
    /// `f` returns a boxed future because it borrows the transaction:
    /// `|ev, tx| Box::pin(service::on_x(deps.clone(), ev, tx))` with
    /// `async fn on_x(deps: Deps, ev: X, tx: &mut Applying) -> Result<(), HandlerError>`.
    pub fn new<E, F>(accepts: &'static [u32], f: F) -> Handles
    where
        E: Event + Send + 'static,
        F: for<'a> Fn(
                E,
                &'a mut crate::consumer::Applying,
            ) -> BoxFuture<'a, Result<(), HandlerError>>
            + Send
            + Sync
            + 'static,
    {
        let f = Arc::new(f);
        Handles::opening::<E, _, _>(accepts, move |event, env, inbox| {
            let f = f.clone();
            async move { inbox.apply(env, |tx| f(event, tx)).await }
        })
    }

    /// Handles `E` with a handler that opens its own transaction with
    /// [`Inbox::begin`](crate::consumer::Inbox::begin), for one that must
    /// do something before it; otherwise as [`Handles::new`].
    pub fn opening<E, F, Fut>(accepts: &'static [u32], f: F) -> Handles
    where
        E: Event + Send + 'static,
        F: Fn(E, Arc<Envelope>, crate::consumer::Inbox) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), HandlerError>> + Send + 'static,
    {
        let f = Arc::new(f);
        let handler: EventHandler = Arc::new(move |env: Arc<Envelope>, inbox| {
            let f = f.clone();
            Box::pin(async move {
                let event = env
                    .decode::<E>(accepts)
                    .map_err(|e| HandlerError::Permanent(e.to_string()))?;
                AssertUnwindSafe(f(event, env, inbox))
                    .catch_unwind()
                    .await
                    .map_err(|_| HandlerError::Transient("handler panicked".into()))?
            }) as BoxFuture<'static, _>
        });
        Handles {
            event: E::CONTRACT,
            accepts: accepts.into(),
            handler,
        }
    }

    /// This consumer as a build that knows only `versions` of its event
    /// would run: each envelope carries only those
    /// ([`Envelope::only`]) before the handler decodes it, and one that
    /// carries none is a permanent failure naming them. Refuses a version
    /// the code does not accept (narrowing never widens) and an empty list.
    pub fn narrowed(self, versions: &[u32]) -> Result<Handles, String> {
        let event_type = self.event.event_type;
        if versions.is_empty() {
            return Err(format!("{event_type}: no version to accept"));
        }
        if let Some(v) = versions.iter().find(|v| !self.accepts.contains(v)) {
            return Err(format!(
                "{event_type} v{v} is not among the versions the code accepts ({:?})",
                self.accepts
            ));
        }
        let mut kept = versions.to_vec();
        kept.sort_unstable();
        kept.dedup();
        let inner = self.handler;
        let only = kept.clone();
        let handler: EventHandler =
            Arc::new(move |env: Arc<Envelope>, inbox| match env.only(&only) {
                Ok(env) => inner(Arc::new(env), inbox),
                Err(e) => Box::pin(std::future::ready(Err(HandlerError::Permanent(
                    e.to_string(),
                )))),
            });
        Ok(Handles {
            event: self.event,
            accepts: kept.into(),
            handler,
        })
    }
}

/// A consumer's subscription to one producer's feed.
#[derive(Clone)]
pub struct Subscription {
    /// The consuming capability.
    pub consumer: &'static str,
    /// The producing capability.
    pub producer: &'static str,
    /// The event types handled; others in the feed are skipped.
    pub handles: Vec<Handles>,
}

impl Subscription {
    /// The subscription's durable name: `<consumer><-<producer>`, also
    /// the name of its inbox.
    pub fn name(&self) -> String {
        seams_core::decl::subscription_name(self.consumer, self.producer)
    }

    /// Its inbox in the consumer's database `consumer`.
    pub fn inbox(&self, consumer: &Db) -> crate::consumer::Inbox {
        crate::consumer::Inbox::new(consumer.clone(), &self.name())
    }

    /// Hands `env` to the handler of its type once, as a relay's first
    /// attempt would (no retries, no dead letter): for tests that drive a
    /// consumer without a feed. An event type the subscription does not
    /// handle is skipped, as a relay skips it.
    pub async fn deliver(&self, consumer: &Db, env: Envelope) -> Result<(), HandlerError> {
        match self
            .handles
            .iter()
            .find(|h| h.event.event_type == env.event_type)
        {
            Some(handles) => (handles.handler)(Arc::new(env), self.inbox(consumer)).await,
            None => Ok(()),
        }
    }
}

/// The loop of a worker with a one-step function: runs `step` again at once
/// while it finds work (its batch was capped), otherwise waits until `wake`
/// is notified or `poll` passes; after an error, pauses a second. Stops at
/// `shutdown`, never in the middle of a step.
pub async fn run_steps<F, Fut>(
    name: &str,
    wake: &tokio::sync::Notify,
    poll: std::time::Duration,
    shutdown: CancellationToken,
    mut step: F,
) where
    F: FnMut() -> Fut,
    Fut: Future<Output = anyhow::Result<usize>>,
{
    while !shutdown.is_cancelled() {
        match step().await {
            Ok(n) if n > 0 => continue,
            Ok(_) => {
                tokio::select! {
                    _ = wake.notified() => {}
                    _ = tokio::time::sleep(poll) => {}
                    _ = shutdown.cancelled() => {}
                }
            }
            Err(e) => {
                tracing::warn!(
                    worker = name,
                    error = format!("{e:#}"),
                    "worker step failed; retrying"
                );
                tokio::select! {
                    _ = tokio::time::sleep(std::time::Duration::from_secs(1)) => {}
                    _ = shutdown.cancelled() => {}
                }
            }
        }
    }
    tracing::debug!(worker = name, "stopped");
}

/// A background loop of a capability (for example sending notifications).
pub struct Worker {
    /// For logs.
    pub name: String,
    /// Runs until the token is cancelled, then finishes its current item and returns.
    pub run: Box<dyn FnOnce(CancellationToken) -> BoxFuture<'static, ()> + Send>,
}

/// Everything a capability hands the runtime.
pub struct Component {
    /// The capability's name, also its URL prefix.
    pub name: &'static str,
    /// What it calls and consumes, as declared (and checked against its
    /// subscriptions before anything starts).
    pub depends: &'static Dependencies,
    /// Its database.
    pub db: Db,
    /// Its public routes, nested at `/<name>`, each with its declared
    /// operation (whose timeout and "when down" answer apply to it) and
    /// who may use it.
    pub routes: seams_http::Routes,
    /// Operations it serves to other capabilities.
    pub serves: Vec<Served>,
    /// Events it publishes.
    pub publishes: Vec<&'static EventContract>,
    /// Feeds it consumes.
    pub subscriptions: Vec<Subscription>,
    /// Background loops.
    pub workers: Vec<Worker>,
    /// Invariants it keeps, immediate and eventual.
    pub invariants: Vec<&'static seams_core::decl::Invariant>,
    /// OpenAPI document of its routes.
    pub openapi: utoipa::openapi::OpenApi,
}

impl Component {
    /// Operations of its public HTTP API: those its routes are declared as
    /// (checked and listed like the others).
    pub fn public(&self) -> Vec<&'static Operation> {
        self.routes.operations()
    }
}

#[cfg(test)]
mod tests;
