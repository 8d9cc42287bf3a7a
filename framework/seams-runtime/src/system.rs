//! The composition machinery: checks every declaration before anything
//! starts, starts components' parts in dependency order (databases, served
//! operations, HTTP, delivery, workers, pruning), and stops them in reverse,
//! draining in-flight work.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use seams_auth::{Credential, Verifier};
use seams_core::auth::Access;
use seams_core::decl::{Clients, Dependencies, EventContract, Operation};
use seams_core::{Clock, Ids, SystemClock, Transport, UuidV7Ids};
use seams_http::routes::Doors;
use seams_store::Db;
use serde_json::{Value, json};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::component::{Component, Env, Storage, Subscription};
use crate::consistency::Consistency;
use crate::governed::Governed;
use crate::inprocess::InProcess;
use crate::relay::{Relay, RelayOptions};
use crate::retention::Retention;

/// Where every subscription's feed comes from when a bus is configured
/// (for example NATS JetStream), instead of outboxes read in process or over HTTP.
pub trait FeedSource: Send + Sync + 'static {
    /// The feed of `producer`.
    fn feed(&self, producer: &str) -> crate::feed::SharedFeed;

    /// Who reads `producer`'s outbox with this bus: whose acknowledgements
    /// let it be pruned (its publisher).
    fn readers(&self, producer: &str) -> Vec<String>;
}

/// Options of the whole system.
#[derive(Clone)]
pub struct SystemOptions {
    /// Delivery loops.
    pub relay: RelayOptions,
    /// Retention of framework tables.
    pub retention: Retention,
    /// Where capabilities' databases live, and how durable SQLite commits are.
    pub storage: Storage,
    /// Base URLs of the services of capabilities not in this process (split
    /// mode): their operations are called and their feeds read over HTTP.
    pub peers: BTreeMap<String, String>,
    /// A bus every subscription reads from (all producers then publish to it
    /// through workers the composition root adds).
    pub feeds: Option<Arc<dyn FeedSource>>,
    /// Record metrics and serve them at `/metrics` (on by default; off only
    /// to measure what they cost).
    pub metrics: bool,
    /// How often the outbox, lag and dead-letter gauges are sampled from
    /// the databases (`seams_runtime::gauges`); only with `metrics`.
    pub gauges_every: Duration,
    /// Deliver events (on by default). Off, every subscription stands
    /// still as if its consumer were down: how a test sees backlog and lag
    /// grow; no command line reaches it.
    pub relays: bool,
    /// Send in-process calls through JSON, as the network would, so a
    /// contract type that does not round-trip fails here first. On in debug
    /// builds (every test) and, set by the composition root, in chaos mode;
    /// off, calls hand typed values across ([`InProcess`]).
    pub check_wire: bool,
    /// Verifies the tokens of people and services on every guarded route.
    /// The default trusts no issuer: every token is refused.
    pub verifier: Arc<Verifier>,
    /// This process's own service token, presented when it calls another
    /// service or reads its feed (split); `None` in one process.
    pub credential: Option<Arc<dyn Credential>>,
    /// This process is one service of a split system: other services call
    /// its operations and read its feeds, through doors only they may use
    /// (`/_seams/ops/*`, `/_seams/feed/*`). Off, those doors do not exist:
    /// in one process nothing calls in, and nothing reads a feed from outside.
    pub split: bool,
    /// What the capabilities of the system that do not run here declared
    /// they call and consume (those that run here declare it with their
    /// component): who may use this process's operations and feeds.
    pub clients: Vec<&'static Dependencies>,
    /// The public edge's limits: timeouts, connections, requests in flight,
    /// the drain at shutdown.
    pub edge: seams_http::server::Limits,
    /// Serve HTTPS with this configuration instead of plain HTTP.
    pub tls: Option<Arc<rustls::ServerConfig>>,
    /// The client every call to another service and every feed read goes
    /// out with (pooled; trusting the deployment's CA when it has one).
    pub http_client: reqwest::Client,
    /// Versions to write of event types other than their current one, for a
    /// rollout: an older one while its consumers are upgraded, or several at
    /// once (see `seams_store::Db::write_events_as`). Applied to the types
    /// published by capabilities of this process; the others are their own
    /// process's to apply.
    pub emit: BTreeMap<String, Vec<u32>>,
    /// Fewer versions than their code accepts for some consumers, keyed by
    /// (consuming capability, event type): each reads as a build that knows
    /// only those would ([`crate::Handles::narrowed`]), so a rollout from such a
    /// build can be rehearsed with one binary. Applied to the capabilities
    /// of this process.
    pub accept: BTreeMap<(String, String), Vec<u32>>,
    /// This process replaces another of the same service, which may still
    /// hold its databases' writer locks ([`seams_store::TakeOver`]).
    pub take_over: Option<seams_store::TakeOver>,
}

impl Default for SystemOptions {
    fn default() -> SystemOptions {
        SystemOptions {
            relay: RelayOptions::default(),
            retention: Retention::default(),
            storage: Storage::default(),
            peers: BTreeMap::new(),
            feeds: None,
            metrics: true,
            gauges_every: Duration::from_secs(5),
            relays: true,
            check_wire: cfg!(debug_assertions),
            verifier: Arc::new(Verifier::new(Vec::new())),
            credential: None,
            split: false,
            clients: Vec::new(),
            edge: seams_http::server::Limits::default(),
            tls: None,
            http_client: seams_http::remote::HttpTransport::default_client(),
            emit: BTreeMap::new(),
            accept: BTreeMap::new(),
            take_over: None,
        }
    }
}

impl std::fmt::Debug for SystemOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SystemOptions")
            .field("relay", &self.relay)
            .field("retention", &self.retention)
            .field("storage", &self.storage)
            .field("peers", &self.peers)
            .field("bus", &self.feeds.is_some())
            .field("metrics", &self.metrics)
            .field("gauges_every", &self.gauges_every)
            .field("relays", &self.relays)
            .field("check_wire", &self.check_wire)
            .field("verifier", &self.verifier)
            .field("credential", &self.credential.is_some())
            .field("split", &self.split)
            .field("edge", &self.edge)
            .field("tls", &self.tls.is_some())
            .field(
                "clients",
                &self
                    .clients
                    .iter()
                    .map(|d| d.capability)
                    .collect::<Vec<_>>(),
            )
            .finish()
    }
}

/// Shared parts every component is built with; create first, then build components with [`Runtime::env`].
pub struct Runtime {
    options: SystemOptions,
    inprocess: InProcess,
    transport: Arc<dyn Transport>,
    clock: Arc<dyn Clock>,
    ids: Arc<dyn Ids>,
    consistency: Consistency,
}

impl Runtime {
    /// A runtime whose calls between capabilities stay in this process.
    pub fn new(options: SystemOptions) -> Runtime {
        let inprocess = if options.check_wire {
            InProcess::checking_the_wire()
        } else {
            InProcess::new()
        };
        let client = options.http_client.clone();
        let remote: BTreeMap<String, Arc<dyn Transport>> = options
            .peers
            .iter()
            .map(|(cap, base)| {
                let mut http = seams_http::remote::HttpTransport::new(base.clone(), client.clone());
                if let Some(c) = &options.credential {
                    http = http.with_credential(c.clone());
                }
                let t: Arc<dyn Transport> = Arc::new(http);
                (cap.clone(), t)
            })
            .collect();
        let routed = crate::inprocess::Routed::new(inprocess.clone(), remote);
        let transport: Arc<dyn Transport> = Arc::new(Governed::new(Arc::new(routed)));
        Runtime {
            options,
            inprocess,
            transport,
            clock: Arc::new(SystemClock),
            ids: Arc::new(UuidV7Ids),
            consistency: Consistency::new(),
        }
    }

    /// What a capability is built with, keeping its files under `data_dir`.
    pub fn env(&self, data_dir: impl Into<PathBuf>) -> Env {
        Env {
            data_dir: data_dir.into(),
            transport: self.transport.clone(),
            clock: self.clock.clone(),
            ids: self.ids.clone(),
            storage: self.options.storage.clone(),
            consistency: self.consistency.clone(),
            take_over: self.options.take_over.clone(),
        }
    }

    /// Starts collecting components.
    pub fn builder(self) -> SystemBuilder {
        SystemBuilder {
            runtime: self,
            components: Vec::new(),
            workers: Vec::new(),
        }
    }
}

/// Components collected for one process.
pub struct SystemBuilder {
    runtime: Runtime,
    components: Vec<Component>,
    workers: Vec<crate::component::Worker>,
}

/// One row of the contract table (`shop contracts`, `/_seams/contracts`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContractRow {
    /// `command`, `query` or `event`.
    pub kind: &'static str,
    /// Operation id or event type.
    pub name: String,
    /// Who serves or publishes it.
    pub owner: &'static str,
    /// Who calls it (operations other capabilities call) or consumes it (events).
    pub consumers: Vec<&'static str>,
    /// For an event, the versions each of its consumers accepts, in
    /// [`ContractRow::consumers`] order.
    pub accepted: Vec<Vec<u32>>,
    /// Question 1.
    pub retries: String,
    /// Question 2.
    pub idempotency: String,
    /// Question 3.
    pub ordering: String,
    /// Question 4.
    pub when_down: String,
    /// Question 5.
    pub versioning: String,
    /// Timeout of one attempt (operations).
    pub timeout: Option<Duration>,
    /// One line on what it is.
    pub summary: &'static str,
}

impl SystemBuilder {
    /// Adds a component.
    pub fn add(&mut self, component: Component) -> &mut Self {
        self.components.push(component);
        self
    }

    /// Every declaration of every component, as table rows.
    pub fn contracts(&self) -> Vec<ContractRow> {
        let clients = Clients::new(self.components.iter().map(|c| c.depends));
        contract_rows(&self.components, &clients)
    }

    /// Every component's contracts with their schemas, one document per
    /// capability: what `shop contracts snapshot` commits and
    /// `shop contracts check` compares.
    pub fn documents(&self) -> Vec<seams_schema::Document> {
        let clients = Clients::new(self.components.iter().map(|c| c.depends));
        documents(&self.components, &clients)
    }

    /// Adds a background worker of the system itself (for example a bus publisher).
    pub fn add_worker(&mut self, worker: crate::component::Worker) -> &mut Self {
        self.workers.push(worker);
        self
    }

    /// The components added so far.
    pub fn components(&self) -> &[Component] {
        &self.components
    }

    /// Every invariant every component declares.
    pub fn invariants(&self) -> Vec<&'static seams_core::decl::Invariant> {
        self.components
            .iter()
            .flat_map(|c| c.invariants.iter().copied())
            .collect()
    }

    /// Checks everything that can be checked before starting; lists every problem.
    pub fn check(&self) -> anyhow::Result<()> {
        let mut problems = Vec::new();
        let mut names = HashMap::new();
        for c in &self.components {
            if names.insert(c.name, ()).is_some() {
                problems.push(format!("capability {} is added twice", c.name));
            }
            for op in c.public().into_iter().chain(c.serves.iter().map(|s| s.op)) {
                if op.capability != c.name {
                    problems.push(format!(
                        "{} serves {}, which belongs to {}",
                        c.name,
                        op.id(),
                        op.capability
                    ));
                }
                if let Err(e) = op.check() {
                    problems.push(e.to_string());
                }
            }
            for e in &c.publishes {
                if e.producer != c.name {
                    problems.push(format!(
                        "{} publishes {}, declared as produced by {}",
                        c.name, e.event_type, e.producer
                    ));
                }
                if let Err(err) = e.check() {
                    problems.push(err.to_string());
                }
            }
        }
        for c in &self.components {
            if c.depends.capability != c.name {
                problems.push(format!(
                    "{} hands over the dependencies of {}",
                    c.name, c.depends.capability
                ));
            }
            let handled: Vec<&str> = c
                .subscriptions
                .iter()
                .flat_map(|s| s.handles.iter().map(|h| h.event.event_type))
                .collect();
            for e in c.depends.consumes {
                if !handled.contains(&e.event_type) {
                    problems.push(format!(
                        "{} declares it consumes {} but handles no such event",
                        c.name, e.event_type
                    ));
                }
            }
            for sub in &c.subscriptions {
                if sub.consumer != c.name {
                    problems.push(format!("{} holds subscription {}", c.name, sub.name()));
                }
                for h in &sub.handles {
                    if h.event.producer != sub.producer {
                        problems.push(format!(
                            "{} handles {} in its subscription to {}",
                            sub.name(),
                            h.event.event_type,
                            sub.producer
                        ));
                    }
                    if !c
                        .depends
                        .consumes
                        .iter()
                        .any(|e| e.event_type == h.event.event_type)
                    {
                        problems.push(format!(
                            "{} handles {} without declaring that it consumes it",
                            c.name, h.event.event_type
                        ));
                    }
                }
                let producer = self.components.iter().find(|p| p.name == sub.producer);
                for h in &sub.handles {
                    if let Err(e) = h.event.check() {
                        problems.push(e.to_string());
                    }
                    if h.accepts.is_empty() {
                        problems.push(format!(
                            "{} accepts no version of {}",
                            sub.name(),
                            h.event.event_type
                        ));
                    }
                    match producer {
                        None if self.runtime.options.peers.contains_key(sub.producer)
                            || self.runtime.options.feeds.is_some() => {}
                        None => problems.push(format!(
                            "{} consumes {} but {} is not part of this system",
                            c.name, h.event.event_type, sub.producer
                        )),
                        Some(p)
                            if !p
                                .publishes
                                .iter()
                                .any(|e| e.event_type == h.event.event_type) =>
                        {
                            problems.push(format!(
                                "{} consumes {}, which {} does not publish",
                                c.name, h.event.event_type, p.name
                            ))
                        }
                        Some(_) => {}
                    }
                }
            }
        }
        for (event_type, versions) in &self.runtime.options.emit {
            for c in &self.components {
                for e in c.publishes.iter().filter(|e| e.event_type == event_type) {
                    for &v in versions {
                        if let Err(problem) = e.can_write(v) {
                            problems.push(problem);
                        }
                    }
                }
            }
        }
        problems.extend(self.narrowing_problems());
        let events = self
            .components
            .iter()
            .flat_map(|c| c.publishes.iter().copied());
        if let Err(e) = self.runtime.options.retention.check(events) {
            problems.push(e.to_string());
        }
        if !problems.is_empty() {
            bail!(
                "the system's declarations do not hold:\n  - {}",
                problems.join("\n  - ")
            );
        }
        Ok(())
    }

    /// What is wrong with [`SystemOptions::accept`]: a consumer that is no
    /// capability of the system, one here that does not handle the event,
    /// or versions its code does not accept. A consumer of another process
    /// is that process's to check.
    fn narrowing_problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        for ((consumer, event_type), versions) in &self.runtime.options.accept {
            let Some(c) = self.components.iter().find(|c| c.name == consumer) else {
                if !self.runtime.options.peers.contains_key(consumer.as_str()) {
                    problems.push(format!(
                        "--accept {consumer}:{event_type}: no capability {consumer:?}"
                    ));
                }
                continue;
            };
            let handles = c
                .subscriptions
                .iter()
                .flat_map(|s| &s.handles)
                .find(|h| h.event.event_type == event_type);
            match handles {
                None => problems.push(format!(
                    "--accept {consumer}:{event_type}: {consumer} does not consume {event_type}"
                )),
                Some(h) => {
                    if let Err(e) = h.clone().narrowed(versions) {
                        problems.push(format!("--accept {consumer}:{event_type}: {e}"));
                    }
                }
            }
        }
        problems
    }

    /// Narrows the consumers [`SystemOptions::accept`] names (checked).
    fn narrow(&mut self) -> anyhow::Result<()> {
        let accept = self.runtime.options.accept.clone();
        for c in &mut self.components {
            for s in &mut c.subscriptions {
                for h in &mut s.handles {
                    let key = (c.name.to_owned(), h.event.event_type.to_owned());
                    if let Some(versions) = accept.get(&key) {
                        *h = h.clone().narrowed(versions).map_err(anyhow::Error::msg)?;
                        tracing::warn!(
                            consumer = c.name,
                            event = h.event.event_type,
                            ?versions,
                            "reading only these versions (--accept)"
                        );
                    }
                }
            }
        }
        Ok(())
    }

    /// Checks, then starts serving on `listener` and delivering events.
    pub async fn start(mut self, listener: tokio::net::TcpListener) -> anyhow::Result<Running> {
        self.check()?;
        self.narrow()?;
        for c in &self.components {
            for e in &c.publishes {
                if let Some(versions) = self.runtime.options.emit.get(e.event_type) {
                    c.db.write_events_as(e, versions)
                        .map_err(anyhow::Error::msg)?;
                    tracing::info!(
                        event = e.event_type,
                        ?versions,
                        "writing events in these versions"
                    );
                }
            }
        }
        let addr = listener
            .local_addr()
            .context("reading the listener's address")?;
        let SystemBuilder {
            runtime,
            components,
            workers: system_workers,
        } = self;
        for c in &components {
            for s in &c.serves {
                runtime.inprocess.register(s);
            }
        }
        // Who may use this process's doors: every capability's declaration,
        // those running here with their components, the others from the
        // composition root.
        let mut declared: Vec<&'static Dependencies> =
            components.iter().map(|c| c.depends).collect();
        for d in &runtime.options.clients {
            if !declared.iter().any(|k| k.capability == d.capability) {
                declared.push(d);
            }
        }
        let clients = Clients::new(declared);
        let served: BTreeMap<String, &'static Operation> = components
            .iter()
            .flat_map(|c| c.serves.iter().map(|s| (s.op.id(), s.op)))
            .collect();
        // Whose acknowledgements let each outbox here be pruned: the
        // declared subscriptions to it, or the bus's publisher.
        let readers: Vec<(Db, Vec<String>)> = components
            .iter()
            .map(|c| {
                let readers = match &runtime.options.feeds {
                    Some(bus) => bus.readers(c.name),
                    None => clients.subscriptions_to(c.name),
                };
                (c.db.clone(), readers)
            })
            .collect();
        let sampled: Vec<crate::gauges::Sampled> = components
            .iter()
            .zip(&readers)
            .map(|(c, (db, readers))| crate::gauges::Sampled {
                db: db.clone(),
                readers: readers.clone(),
                readers_are_subscriptions: runtime.options.feeds.is_none(),
                subscriptions: c.subscriptions.iter().map(Subscription::name).collect(),
            })
            .collect();
        let contracts = contracts_json(
            &contract_rows(&components, &clients),
            &documents(&components, &clients),
        );
        let asyncapi = asyncapi(&components, &clients);
        let dbs: Vec<Db> = components.iter().map(|c| c.db.clone()).collect();
        let by_name: BTreeMap<&'static str, Db> =
            components.iter().map(|c| (c.name, c.db.clone())).collect();

        let background = CancellationToken::new();
        let mut tasks: Vec<(String, JoinHandle<()>)> = Vec::new();
        let mut subscriptions: Vec<(Subscription, Db)> = Vec::new();
        let mut parts = Vec::new();
        let mut openapi = utoipa::openapi::OpenApiBuilder::new()
            .info(
                utoipa::openapi::InfoBuilder::new()
                    .title("Seams shop")
                    .version(env!("CARGO_PKG_VERSION"))
                    .description(Some(
                        "The public API of every capability in this system, under one base URL.",
                    ))
                    .build(),
            )
            .build();
        let mut workers = Vec::new();
        let consistency = runtime.consistency.clone();
        for c in components {
            consistency.declare(c.invariants.iter().copied());
            tracing::info!(
                capability = c.name,
                serves = c.serves.len(),
                publishes = c.publishes.len(),
                consumes = c.subscriptions.len(),
                "capability ready"
            );
            let (routes, table) = c.routes.into_parts();
            let mut doc = c.openapi;
            if let Err(problems) = seams_http::routes::secure_openapi(&mut doc, &table) {
                bail!(
                    "{}'s routes and its OpenAPI document disagree:\n  - {}",
                    c.name,
                    problems.join("\n  - ")
                );
            }
            openapi = openapi.nest(format!("/{}", c.name), doc);
            parts.push((c.name, routes));
            for s in c.subscriptions {
                subscriptions.push((s, c.db.clone()));
            }
            workers.extend(c.workers);
        }
        let admin = Admin {
            ops: runtime.inprocess.clone(),
            clients,
            served,
            dbs: Arc::new(by_name.clone()),
            openapi: Arc::new(serde_json::to_value(&openapi).context("rendering OpenAPI")?),
            contracts: Arc::new(contracts),
            asyncapi: Arc::new(asyncapi),
            consistency: consistency.clone(),
            metrics: if runtime.options.metrics {
                crate::metrics::install()
            } else {
                None
            },
        };
        // Without a recorder the samples would go nowhere.
        let admin_metrics = admin.metrics.is_some();
        let split = runtime.options.split;
        let mut framework = Doors::new()
            .get("/healthz", Access::Open, || async {
                axum::Json(json!({ "status": "ok" }))
            })
            .get("/readyz", Access::Open, readyz)
            .get("/openapi.json", Access::Open, openapi_json)
            .get("/asyncapi.json", Access::Open, asyncapi_json)
            .get(
                "/metrics",
                Access::OPERATORS,
                |State(admin): State<Arc<Admin>>| async move {
                    crate::metrics::render(admin.metrics.as_ref())
                },
            )
            .get("/_seams/contracts", Access::OPERATORS, contracts_route)
            .get("/_seams/dead-letters", Access::OPERATORS, dead_letters)
            .post(
                "/_seams/dead-letters/{id}/replay",
                Access::OPERATORS,
                replay_dead_letter,
            )
            .get("/_seams/consistency", Access::OPERATORS, consistency_route);
        if split {
            framework = framework
                .post("/_seams/ops/{op}", Access::Services, serve_op)
                .get("/_seams/feed/{producer}", Access::Services, serve_feed);
        }
        let framework = framework.with_state(Arc::new(admin));
        let edge = runtime.options.edge;
        let tls = runtime.options.tls.clone();
        let app =
            seams_http::app::public_with(parts, framework, runtime.options.verifier.clone(), &edge);

        let http_stop = CancellationToken::new();
        let stop = http_stop.clone();
        let http = tokio::spawn(async move {
            if let Err(e) = seams_http::server::serve(listener, app, edge, tls, async move {
                stop.cancelled().await
            })
            .await
            {
                tracing::error!(error = %e, "HTTP server failed");
            }
        });

        if !runtime.options.relays {
            tracing::warn!(
                subscriptions = subscriptions.len(),
                "relays are switched off: events stay in the outboxes"
            );
            subscriptions.clear();
        }
        for (sub, consumer_db) in subscriptions {
            let feed: crate::feed::SharedFeed =
                match (&runtime.options.feeds, by_name.get(sub.producer)) {
                    (Some(bus), _) => bus.feed(sub.producer),
                    (None, Some(db)) => Arc::new(crate::feed::InProcessFeed::new(db.clone())),
                    (None, None) => {
                        let base = runtime
                            .options
                            .peers
                            .get(sub.producer)
                            .context("checked: a peer serves it")?;
                        let mut feed = crate::feed::HttpFeed::new(
                            base,
                            sub.producer,
                            runtime.options.http_client.clone(),
                        );
                        if let Some(c) = &runtime.options.credential {
                            feed = feed.with_credential(c.clone());
                        }
                        Arc::new(feed)
                    }
                };
            let name = sub.name();
            let relay = Arc::new(
                Relay::with_feed(sub, consumer_db, feed, runtime.options.relay)
                    .with_consistency(consistency.clone()),
            );
            tasks.push((name, tokio::spawn(relay.run(background.clone()))));
        }
        for w in workers.into_iter().chain(system_workers) {
            tasks.push((w.name, tokio::spawn((w.run)(background.clone()))));
        }
        if admin_metrics {
            let (every, stop) = (runtime.options.gauges_every, background.clone());
            tasks.push((
                "gauges".into(),
                tokio::spawn(crate::gauges::sample_loop(sampled, every, stop)),
            ));
        }
        let retention = runtime.options.retention;
        let prune_stop = background.clone();
        tasks.push((
            "pruner".into(),
            tokio::spawn(async move { prune_loop(readers, retention, prune_stop).await }),
        ));
        tracing::info!(%addr, "serving");
        Ok(Running {
            addr,
            http,
            http_stop,
            background,
            tasks,
            dbs,
        })
    }
}

/// A started system.
pub struct Running {
    addr: SocketAddr,
    http: JoinHandle<()>,
    http_stop: CancellationToken,
    background: CancellationToken,
    tasks: Vec<(String, JoinHandle<()>)>,
    dbs: Vec<Db>,
}

impl Running {
    /// Where the public API listens.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops in reverse order: stop accepting requests and let in-flight ones
    /// finish, then stop delivery and workers after their current item, then
    /// close the databases.
    pub async fn stop(self) -> anyhow::Result<()> {
        self.http_stop.cancel();
        self.http.await.context("HTTP server task")?;
        tracing::info!("HTTP drained");
        self.background.cancel();
        for (name, task) in self.tasks {
            match tokio::time::timeout(Duration::from_secs(30), task).await {
                Ok(Ok(())) => tracing::debug!(task = %name, "stopped"),
                Ok(Err(e)) => tracing::error!(task = %name, error = %e, "task failed"),
                Err(_) => tracing::error!(task = %name, "did not stop within 30 s"),
            }
        }
        for db in self.dbs.iter().rev() {
            db.close().await;
        }
        tracing::info!("stopped cleanly");
        Ok(())
    }
}

async fn prune_loop(dbs: Vec<(Db, Vec<String>)>, retention: Retention, stop: CancellationToken) {
    loop {
        tokio::select! {
            _ = tokio::time::sleep(retention.interval) => {}
            _ = stop.cancelled() => return,
        }
        let now = seams_store::now_ms();
        let ms = |d: Duration| now - d.as_millis() as i64;
        for (db, readers) in &dbs {
            match db
                .prune(
                    readers,
                    ms(retention.outbox),
                    ms(retention.inbox),
                    ms(retention.idempotency),
                )
                .await
            {
                Ok(report) if report != Default::default() => {
                    tracing::info!(capability = db.name(), ?report, "pruned");
                }
                Ok(_) => {}
                Err(e) => tracing::warn!(capability = db.name(), error = %e, "pruning failed"),
            }
        }
    }
}

/// The framework routes' state, behind one `Arc`: axum clones a route's
/// state for every request, even for routes that do not read it.
struct Admin {
    ops: InProcess,
    /// Who may call which operation and read which feed.
    clients: Clients,
    /// The operations served here, by id.
    served: BTreeMap<String, &'static Operation>,
    dbs: Arc<BTreeMap<&'static str, Db>>,
    openapi: Arc<Value>,
    contracts: Arc<Value>,
    asyncapi: Arc<Value>,
    consistency: Consistency,
    /// `None` when metrics are off (or another recorder came first).
    metrics: Option<metrics_exporter_prometheus::PrometheusHandle>,
}

/// `POST /_seams/dead-letters/{capability}.{n}/replay`: queue one dead letter
/// for redelivery; its relay delivers it (and what waited behind it) next.
async fn replay_dead_letter(
    State(admin): State<Arc<Admin>>,
    seams_http::Path(id): seams_http::Path<String>,
) -> Response {
    use seams_core::Problem;
    let not_found = || {
        seams_http::problem_response(
            Problem::new(404, "dead-letter-not-found", "No such dead letter")
                .with("id", id.clone()),
        )
    };
    let Some((db, n)) = id
        .split_once('.')
        .and_then(|(cap, n)| Some((admin.dbs.get(cap)?, n.parse::<i64>().ok()?)))
    else {
        return not_found();
    };
    let result = async {
        if db.request_replay(n).await? {
            return Ok::<_, sqlx::Error>(Some(true));
        }
        Ok(db.dead_letter(n).await?.map(|_| false))
    }
    .await;
    match result {
        Ok(Some(true)) => (
            StatusCode::ACCEPTED,
            axum::Json(json!({ "id": id, "status": "replay" })),
        )
            .into_response(),
        Ok(Some(false)) => seams_http::problem_response(
            Problem::new(409, "dead-letter-not-parked", "Dead letter is not parked")
                .detail("Only a parked dead letter can be replayed; this one is queued or already replayed.")
                .with("id", id.clone()),
        ),
        Ok(None) => not_found(),
        Err(e) => {
            tracing::error!(error = %e, "replaying a dead letter");
            seams_http::problem_response(seams_http::problem::internal())
        }
    }
}

/// Whether the service `caller` runs a capability that declared `allowed`.
fn declared_by(caller: &seams_core::auth::Principal, allowed: impl Fn(&str) -> bool) -> bool {
    match caller {
        seams_core::auth::Principal::Service { capabilities, .. } => {
            capabilities.iter().any(|c| allowed(c))
        }
        _ => false,
    }
}

/// `POST /_seams/ops/{op}`: another service calling an operation served
/// here; only a service running a capability that declares it calls the
/// operation gets an answer.
async fn serve_op(
    State(admin): State<Arc<Admin>>,
    seams_http::Caller(caller): seams_http::Caller,
    seams_http::Path(op): seams_http::Path<String>,
    headers: axum::http::HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    use seams_core::{CallError, CallReply};
    let (Some(handler), Some(decl)) = (admin.ops.handler(&op), admin.served.get(&op).copied())
    else {
        return seams_http::problem_response(
            seams_core::Problem::new(404, "operation-not-served", "Operation not served here")
                .with("op", op),
        );
    };
    if !declared_by(&caller, |c| admin.clients.may_call(c, decl)) {
        tracing::warn!(%op, ?caller, "a call from a service that does not declare it");
        return seams_http::auth::forbidden(format!(
            "{op} is for the capabilities that declare they call it: {}.",
            admin.clients.callers_of(decl).join(", ")
        ));
    }
    let ctx = seams_http::correlation::context_from_headers(&headers);
    let with_type = |status: StatusCode, content_type: &'static str, body: Vec<u8>| {
        (
            status,
            [(axum::http::header::CONTENT_TYPE, content_type)],
            body,
        )
            .into_response()
    };
    let result = handler(seams_core::Payload::Json(body.to_vec()), ctx)
        .await
        .and_then(|reply| {
            let json = |payload: seams_core::Payload| {
                payload.into_json().map_err(|e| CallError::Protocol {
                    op: op.clone(),
                    reason: e.to_string(),
                })
            };
            Ok(match reply {
                CallReply::Ok(answer) => (true, json(answer)?),
                CallReply::Rejected(error) => (false, json(error)?),
            })
        });
    match result {
        Ok((true, b)) => with_type(StatusCode::OK, "application/json", b),
        Ok((false, b)) => with_type(
            StatusCode::UNPROCESSABLE_ENTITY,
            seams_http::remote::REJECTED_CONTENT_TYPE,
            b,
        ),
        Err(e) => {
            let (status, slug) = match &e {
                CallError::Unavailable { .. } => (503, "unavailable"),
                CallError::Timeout { .. } => (504, "timeout"),
                CallError::Protocol { .. } => (400, "protocol-error"),
                CallError::Refused { .. } => (403, "forbidden"),
                CallError::Internal { .. } => (500, "internal"),
            };
            tracing::warn!(%op, error = %e, "served operation failed");
            seams_http::problem_response(seams_core::Problem::new(status, slug, e.to_string()))
        }
    }
}

/// `GET /_seams/feed/{producer}`: a subscriber in another service pulling
/// this producer's outbox (long-poll when there is nothing new). Only a
/// declared subscription may read, as itself only, and the position it
/// acknowledges cannot be past what was ever published.
async fn serve_feed(
    State(admin): State<Arc<Admin>>,
    seams_http::Caller(caller): seams_http::Caller,
    seams_http::Path(producer): seams_http::Path<String>,
    seams_http::Query(q): seams_http::Query<crate::feed::FeedQuery>,
) -> Response {
    let declared = q
        .subscriber
        .strip_suffix(&format!("<-{producer}"))
        .is_some_and(|consumer| {
            declared_by(&caller, |c| {
                c == consumer && admin.clients.may_read(consumer, &producer)
            })
        });
    if !declared {
        tracing::warn!(%producer, subscriber = %q.subscriber, ?caller, "a feed read by an undeclared subscriber");
        return seams_http::auth::forbidden(format!(
            "The feed of {producer} is read by its declared subscriptions, each as itself: {}.",
            admin.clients.subscriptions_to(&producer).join(", ")
        ));
    }
    let Some(db) = admin
        .dbs
        .iter()
        .find(|(name, _)| **name == producer)
        .map(|(_, db)| db.clone())
    else {
        return seams_http::problem_response(
            seams_core::Problem::new(404, "feed-not-found", "No such feed here")
                .with("producer", producer),
        );
    };
    match db.outbox_head().await {
        Ok(head) if q.after > head => {
            return seams_http::problem_response(
                seams_core::Problem::new(400, "cursor-ahead", "Position past the feed's head")
                    .detail("No event was ever published at or after this position; nothing is acknowledged.")
                    .with("after", q.after)
                    .with("head", head),
            );
        }
        Ok(_) => {}
        Err(e) => {
            tracing::error!(%producer, error = %e, "reading the feed's head");
            return seams_http::problem_response(seams_http::problem::internal());
        }
    }
    let limit = q.limit.clamp(1, 1000);
    let wait = Duration::from_millis(q.wait_ms.min(crate::feed::MAX_WAIT_MS));
    match crate::feed::read_outbox(&db, &q.subscriber, q.after, limit, wait).await {
        Ok(events) => axum::Json(crate::feed::FeedPage { events }).into_response(),
        Err(e) => {
            tracing::error!(%producer, error = format!("{e:#}"), "serving the feed");
            seams_http::problem_response(seams_http::problem::internal())
        }
    }
}

async fn consistency_route(State(admin): State<Arc<Admin>>) -> Response {
    axum::Json(admin.consistency.report()).into_response()
}

async fn readyz(State(admin): State<Arc<Admin>>) -> Response {
    let mut failing = Vec::new();
    for (name, db) in admin.dbs.iter() {
        let answered = match db.read().await {
            Ok(mut conn) => seams_store::query("SELECT 1")
                .execute(&mut conn)
                .await
                .is_ok(),
            Err(_) => false,
        };
        if !answered {
            failing.push(*name);
        }
    }
    if failing.is_empty() {
        axum::Json(json!({ "status": "ready" })).into_response()
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            axum::Json(json!({ "status": "not ready", "failing": failing })),
        )
            .into_response()
    }
}

async fn openapi_json(State(admin): State<Arc<Admin>>) -> Response {
    axum::Json(admin.openapi.as_ref().clone()).into_response()
}

async fn asyncapi_json(State(admin): State<Arc<Admin>>) -> Response {
    axum::Json(admin.asyncapi.as_ref().clone()).into_response()
}

async fn contracts_route(State(admin): State<Arc<Admin>>) -> Response {
    axum::Json(admin.contracts.as_ref().clone()).into_response()
}

/// Query of `GET /_seams/dead-letters`.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct DeadLetterPage {
    /// The `next` of the page before (a dead letter's id, `capability.n`).
    after: Option<String>,
    /// At most this many (1-500, default 100).
    limit: Option<u32>,
}

/// The longest page of dead letters.
const MAX_DEAD_LETTERS: u32 = 500;

/// `GET /_seams/dead-letters`: a page of dead letters, ordered by
/// capability (alphabetically) and then by age; `next` names the last one
/// when there may be more, and every service reads the same cursor the same
/// way, so the gateway merges pages of several services into one.
async fn dead_letters(
    State(admin): State<Arc<Admin>>,
    seams_http::Query(page): seams_http::Query<DeadLetterPage>,
) -> Response {
    use seams_core::Problem;
    let limit = match page.limit {
        None => 100,
        Some(l) if (1..=MAX_DEAD_LETTERS).contains(&l) => l,
        Some(_) => {
            return seams_http::problem_response(
                Problem::new(400, "invalid-query", "Invalid query string")
                    .detail(format!("limit: must be 1-{MAX_DEAD_LETTERS}"))
                    .with("field", "limit"),
            );
        }
    };
    let cursor = match &page.after {
        None => None,
        Some(after) => match after
            .split_once('.')
            .and_then(|(cap, n)| Some((cap.to_owned(), n.parse::<i64>().ok()?)))
        {
            Some(c) => Some(c),
            None => {
                return seams_http::problem_response(
                    Problem::new(400, "invalid-query", "Invalid query string")
                        .detail("after: must be the `next` of an earlier page (capability.n)")
                        .with("field", "after"),
                );
            }
        },
    };
    let mut out = Vec::new();
    let mut last = None;
    // `dbs` is ordered by capability name, which is the pages' order.
    for (name, db) in admin.dbs.iter() {
        let from = match &cursor {
            Some((cap, _)) if **name < **cap => continue,
            Some((cap, n)) if **name == **cap => *n,
            _ => 0,
        };
        let room = limit - out.len() as u32;
        if room == 0 {
            break;
        }
        match db.dead_letters_after(from, room).await {
            Ok(list) => out.extend(list.into_iter().map(|d| {
                last = Some(format!("{name}.{}", d.id));
                json!({
                    "capability": name,
                    "id": format!("{name}.{}", d.id),
                    "subscription": d.subscription,
                    "event_id": d.envelope.id,
                    "event_type": d.envelope.event_type,
                    "subject": d.envelope.subject,
                    "error": d.error,
                    "attempts": d.attempts,
                    "status": d.status,
                })
            })),
            Err(e) => {
                tracing::error!(capability = name, error = %e, "listing dead letters");
                return seams_http::problem_response(seams_http::problem::internal());
            }
        }
    }
    let next = if out.len() as u32 == limit {
        last
    } else {
        None
    };
    axum::Json(json!({ "dead_letters": out, "next": next })).into_response()
}

fn op_row(op: &'static Operation) -> ContractRow {
    ContractRow {
        kind: match op.kind {
            seams_core::decl::Kind::Command => "command",
            seams_core::decl::Kind::Query => "query",
        },
        name: op.id(),
        owner: op.capability,
        consumers: Vec::new(),
        accepted: Vec::new(),
        retries: op.retries.to_string(),
        idempotency: op.idempotency.to_string(),
        ordering: op.ordering.to_string(),
        when_down: op.when_down.to_string(),
        versioning: op.versioning.to_string(),
        timeout: Some(op.timeout),
        summary: op.summary,
    }
}

fn event_row(e: &'static EventContract, consumers: Vec<(&'static str, Vec<u32>)>) -> ContractRow {
    ContractRow {
        kind: "event",
        name: e.event_type.to_owned(),
        owner: e.producer,
        accepted: consumers.iter().map(|(_, a)| a.clone()).collect(),
        consumers: consumers.into_iter().map(|(c, _)| c).collect(),
        retries: e.retries.to_string(),
        idempotency: e.idempotency.to_string(),
        ordering: e.ordering.to_string(),
        when_down: e.when_down.to_string(),
        versioning: e.versioning.to_string(),
        timeout: None,
        summary: e.summary,
    }
}

fn contract_rows(components: &[Component], clients: &Clients) -> Vec<ContractRow> {
    let mut rows = Vec::new();
    for c in components {
        rows.extend(c.public().into_iter().map(op_row));
        rows.extend(c.serves.iter().map(|s| ContractRow {
            consumers: clients.callers_of(s.op),
            ..op_row(s.op)
        }));
    }
    for c in components {
        for e in &c.publishes {
            let consumers = components
                .iter()
                .filter_map(|k| {
                    k.subscriptions
                        .iter()
                        .flat_map(|s| &s.handles)
                        .find(|h| h.event.event_type == e.event_type)
                        .map(|h| (k.name, h.accepts.to_vec()))
                })
                .collect();
            rows.push(event_row(e, consumers));
        }
    }
    rows
}

/// The capabilities that consume `event`, each with the versions its handler accepts.
fn consumers_of(components: &[Component], event: &EventContract) -> BTreeMap<String, Vec<u32>> {
    let mut out = BTreeMap::new();
    for k in components {
        for s in &k.subscriptions {
            for h in s
                .handles
                .iter()
                .filter(|h| h.event.event_type == event.event_type)
            {
                out.insert(k.name.to_owned(), h.accepts.to_vec());
            }
        }
    }
    out
}

/// The AsyncAPI document of the events published here (`/asyncapi.json`).
/// The AsyncAPI document of the events published here, each channel with
/// every capability that declared it consumes the event, whether it runs
/// here or in another service (the gateway merges the services' documents).
fn asyncapi(components: &[Component], clients: &Clients) -> Value {
    let consumers: Vec<(&'static EventContract, Vec<&str>)> = components
        .iter()
        .flat_map(|c| c.publishes.iter().copied())
        .map(|e| (e, clients.consumers_of(e)))
        .collect();
    let channels: Vec<seams_schema::asyncapi::Channel<'_>> = consumers
        .iter()
        .map(|(event, consumers)| seams_schema::asyncapi::Channel { event, consumers })
        .collect();
    seams_schema::asyncapi::document("Seams shop events", &channels)
}

fn documents(components: &[Component], clients: &Clients) -> Vec<seams_schema::Document> {
    use seams_schema::{Document, EventEntry, OpEntry};
    components
        .iter()
        .map(|c| {
            let mut doc = Document::new(c.name);
            for op in c.public() {
                doc.operations
                    .insert(op.id(), OpEntry::of(op, true, Vec::new()));
            }
            for s in &c.serves {
                let callers = clients
                    .callers_of(s.op)
                    .iter()
                    .map(|c| (*c).to_owned())
                    .collect();
                let entry = doc
                    .operations
                    .entry(s.op.id())
                    .or_insert_with(|| OpEntry::of(s.op, false, Vec::new()));
                entry.callers = callers;
            }
            for e in c.publishes.iter().copied() {
                doc.events.insert(
                    e.event_type.to_owned(),
                    EventEntry::of(e, consumers_of(components, e)),
                );
            }
            doc
        })
        .collect()
}

/// The rows as JSON, each with its schemas and versions (`schemas`: the
/// entry of its capability's document), so `shop contracts check --against`
/// reads from a deployment what a snapshot holds.
fn contracts_json(rows: &[ContractRow], docs: &[seams_schema::Document]) -> Value {
    let entry = |r: &ContractRow| -> Value {
        docs.iter()
            .find(|d| d.capability == r.owner)
            .and_then(|d| match r.kind {
                "event" => d
                    .events
                    .get(&r.name)
                    .and_then(|e| serde_json::to_value(e).ok()),
                _ => d
                    .operations
                    .get(&r.name)
                    .and_then(|e| serde_json::to_value(e).ok()),
            })
            .unwrap_or(Value::Null)
    };
    Value::Array(
        rows.iter()
            .map(|r| {
                json!({
                    "kind": r.kind, "name": r.name, "owner": r.owner, "consumers": r.consumers,
                    "retries": r.retries, "idempotency": r.idempotency, "ordering": r.ordering,
                    "when_down": r.when_down, "versioning": r.versioning,
                    "timeout_ms": r.timeout.map(|t| t.as_millis() as u64), "summary": r.summary,
                    "schemas": entry(r),
                })
            })
            .collect(),
    )
}
