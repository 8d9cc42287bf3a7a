//! The composition root: builds every capability from the configuration, in
//! dependency order, and hands them to the runtime.
//!
//! A [`Placement`] says which capabilities run in this process and where the
//! others are. In the monolith every contract client gets the in-process
//! transport and every subscription reads its producer's outbox directly;
//! split (`shop serve`), calls to a capability elsewhere go over HTTP and
//! its feed is pulled over HTTP. Either way the calls are governed by the
//! operations' declared timeouts and retries, and capability code is the same.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::Context;

use seams_runtime::relay::RelayOptions;
use seams_runtime::{Runtime, Storage, SystemBuilder, SystemOptions};

use crate::config::Config;

/// Every capability of the shop, in dependency order (the names of
/// [`crate::capabilities::TABLE`]).
pub use crate::capabilities::NAMES as CAPABILITIES;

/// What each capability of the shop calls and consumes, in the order of
/// [`CAPABILITIES`]: who may use which operation and feed, in every process,
/// whether the capability runs there or not.
pub fn declared() -> Vec<&'static seams_core::decl::Dependencies> {
    crate::capabilities::TABLE
        .iter()
        .map(|c| c.dependencies)
        .collect()
}

/// What a successor says on stdout when its predecessor still holds a
/// database's writer lock: the split supervisor stops the predecessor then.
pub const TAKING_OVER: &str = "taking over the database from the process this one replaces";

/// Every capability's declared service level objectives, checked: the
/// commands whose error budgets `shop ops prometheus` alerts on.
pub fn objectives() -> anyhow::Result<Vec<&'static seams_core::decl::Objective>> {
    let all: Vec<&'static seams_core::decl::Objective> = crate::capabilities::TABLE
        .iter()
        .flat_map(|c| c.objectives.iter())
        .collect();
    for o in &all {
        o.check()?;
    }
    Ok(all)
}

/// Which capabilities run in this process, and where the others are.
#[derive(Debug, Clone, Default)]
pub struct Placement {
    /// Capabilities built here; empty means all of them.
    pub local: Vec<String>,
    /// Base URL of every capability not built here.
    pub peers: BTreeMap<String, String>,
}

impl Placement {
    /// Everything in one process.
    pub fn monolith() -> Placement {
        Placement::default()
    }

    /// `local` here, the rest at `peers` (`CAP=URL` each); refuses unknown
    /// capabilities and capabilities that are neither here nor at a peer.
    pub fn split(local: &[String], peers: &[String]) -> anyhow::Result<Placement> {
        anyhow::ensure!(
            !local.is_empty(),
            "name at least one capability to serve ({})",
            CAPABILITIES.join(", ")
        );
        for cap in local {
            anyhow::ensure!(
                CAPABILITIES.contains(&cap.as_str()),
                "unknown capability `{cap}` (known: {})",
                CAPABILITIES.join(", ")
            );
        }
        let mut map = BTreeMap::new();
        for p in peers {
            let (cap, url) = p
                .split_once('=')
                .with_context(|| format!("--peer `{p}`: expected CAP=URL"))?;
            anyhow::ensure!(
                CAPABILITIES.contains(&cap),
                "--peer `{p}`: unknown capability `{cap}`"
            );
            anyhow::ensure!(
                !local.iter().any(|l| l == cap),
                "--peer `{p}`: {cap} is served here"
            );
            anyhow::ensure!(
                url.starts_with("http://") || url.starts_with("https://"),
                "--peer `{p}`: URL must start with http:// or https://"
            );
            map.insert(cap.to_owned(), url.trim_end_matches('/').to_owned());
        }
        for cap in CAPABILITIES {
            anyhow::ensure!(
                local.iter().any(|l| l == cap) || map.contains_key(cap),
                "{cap} is neither served here nor given with --peer {cap}=URL"
            );
        }
        Ok(Placement {
            local: local.to_vec(),
            peers: map,
        })
    }

    /// Whether `cap` runs in this process.
    pub fn here(&self, cap: &str) -> bool {
        self.local.is_empty() || self.local.iter().any(|l| l == cap)
    }

    /// This process's name in logs: `shop` for the whole system, else its
    /// capabilities in [`CAPABILITIES`] order (`billing,catalog`), as the
    /// split supervisor labels the service.
    pub fn service_name(&self) -> String {
        if self.local.is_empty() {
            return "shop".to_owned();
        }
        CAPABILITIES
            .into_iter()
            .filter(|c| self.here(c))
            .collect::<Vec<_>>()
            .join(",")
    }
}

/// The PostgreSQL URL of each of `capabilities` that has one: those given
/// with `--database`, and, with `--postgres-admin`, a role and database of
/// its own created now (with a new password) for every other one.
pub async fn database_urls(
    config: &Config,
    capabilities: &[&str],
) -> anyhow::Result<BTreeMap<String, String>> {
    let mut urls = config.database_urls()?;
    let Some(admin_url) = &config.postgres_admin else {
        return Ok(urls);
    };
    for cap in capabilities {
        if urls.contains_key(*cap) {
            continue;
        }
        let p = seams_store::postgres::provision(
            admin_url,
            cap,
            &seams_store::postgres::new_password(),
        )
        .await
        .with_context(|| {
            format!(
                "provisioning {cap}'s database through {}",
                seams_store::redact(admin_url)
            )
        })?;
        urls.insert(p.capability, p.url);
    }
    Ok(urls)
}

/// Where the capabilities placed here keep their state: SQLite files unless
/// PostgreSQL databases are configured (given, or provisioned now).
async fn storage(config: &Config, placement: &Placement) -> anyhow::Result<Storage> {
    let local: Vec<&str> = CAPABILITIES
        .into_iter()
        .filter(|c| placement.here(c))
        .collect();
    let mut urls = database_urls(config, &local).await?;
    if urls.is_empty() {
        return Ok(Storage::Sqlite {
            durability: config.durability(),
        });
    }
    for cap in &local {
        anyhow::ensure!(
            urls.contains_key(*cap),
            "PostgreSQL databases are configured, but none for {cap} (--database {cap}=postgres://… or --postgres-admin)"
        );
    }
    urls.retain(|cap, _| local.contains(&cap.as_str()));
    Ok(Storage::Postgres { urls })
}

/// Raises this process's soft limit on open files to its hard limit (a
/// server holds one per connection) and returns it.
pub fn raise_fd_limit() -> u64 {
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(limit) => limit,
        Err(e) => {
            tracing::warn!(error = %e, "cannot raise the open-file limit");
            rlimit::getrlimit(rlimit::Resource::NOFILE).map_or(1024, |(soft, _)| soft)
        }
    }
}

/// Builds the capabilities placed here, without starting them.
pub async fn build(config: &Config, placement: &Placement) -> anyhow::Result<SystemBuilder> {
    config.validate()?;
    let fd_limit = raise_fd_limit();
    let trust = crate::trust::build(config, placement)?;
    let options = SystemOptions {
        relay: RelayOptions {
            chaos: config.chaos(),
            ..RelayOptions::default()
        },
        storage: storage(config, placement).await?,
        retention: config.retention(),
        metrics: !config.no_metrics,
        peers: placement.peers.clone(),
        // Chaos mode is where the monolith is made to behave like the
        // network: its calls go through JSON too, whatever the build.
        check_wire: config.chaos || SystemOptions::default().check_wire,
        verifier: trust.verifier.clone(),
        credential: trust.credential.clone(),
        tls: config.server_tls()?,
        http_client: seams_http::remote::HttpTransport::client_trusting(&config.authorities()?),
        // `shop serve` runs one service of a split system; `shop up` all of them.
        split: !placement.local.is_empty(),
        clients: declared(),
        edge: config.edge(fd_limit),
        emit: config.emit_versions()?,
        accept: config.accept_versions()?,
        take_over: config.take_over.then(|| seams_store::TakeOver {
            within: std::time::Duration::from_secs(60),
            // The supervisor reads this line to stop the predecessor.
            waiting: std::sync::Arc::new(|name: &str| {
                println!("{name}: {TAKING_OVER}");
            }),
        }),
        ..SystemOptions::default()
    };
    let nats = match &config.nats {
        Some(url) => Some(seams_nats::Nats::connect_with(url, &config.nats_tls()).await?),
        None => None,
    };
    let options = SystemOptions {
        feeds: nats.clone().map(|n| {
            std::sync::Arc::new(seams_nats::NatsFeeds::new(n))
                as std::sync::Arc<dyn seams_runtime::FeedSource>
        }),
        ..options
    };
    let runtime = Runtime::new(options);
    let env = runtime.env(&config.data_dir);
    let parts = crate::capabilities::Parts {
        env: &env,
        config,
        trust: &trust,
    };
    let mut components = Vec::new();
    for cap in crate::capabilities::TABLE {
        if placement.here(cap.name) {
            components.push((cap.build)(parts).await?);
        }
    }
    let mut builder = runtime.builder();
    for c in components {
        // With a bus, every producer here publishes its committed outbox to it.
        if let Some(nats) = &nats
            && !c.publishes.is_empty()
        {
            builder.add_worker(seams_nats::publisher_worker(
                nats.clone(),
                c.db.clone(),
                c.name,
            ));
        }
        builder.add(c);
    }
    Ok(builder)
}

/// How long a clean stop may take before the process gives up waiting.
pub const STOP_TIMEOUT: Duration = Duration::from_secs(60);

#[cfg(test)]
mod tests;
