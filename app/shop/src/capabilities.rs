//! The shop's capabilities, listed once: one line per capability naming its
//! crate and how its component is built from the configuration.
//!
//! Everything else that needs the list derives it from [`TABLE`]: the names
//! `serve` accepts and its help, the supervisor's services and their start
//! order, the dependency declarations every process checks callers
//! against, the objectives `shop ops prometheus` alerts on, and the build
//! order of [`crate::system::build`]. Adding a capability is its two crates
//! and one line here.

use anyhow::Context;
use futures::future::BoxFuture;
use seams_core::decl::{Dependencies, Objective};
use seams_runtime::{Component, Env};

use crate::config::Config;
use crate::trust::Trust;

/// What building a capability may use: its environment (database, clock,
/// contract clients), the configuration, and this process's trust.
#[derive(Clone, Copy)]
pub struct Parts<'a> {
    /// The runtime's environment.
    pub env: &'a Env,
    /// The configuration.
    pub config: &'a Config,
    /// Whose tokens this process accepts and what it signs with.
    pub trust: &'a Trust,
}

/// Builds one capability's component.
pub type Build = for<'a> fn(Parts<'a>) -> BoxFuture<'a, anyhow::Result<Component>>;

/// One capability of the shop.
pub struct Capability {
    /// Its name and URL prefix.
    pub name: &'static str,
    /// What it calls and consumes.
    pub dependencies: &'static Dependencies,
    /// Its declared service level objectives.
    pub objectives: &'static &'static [Objective],
    /// How its component is built.
    pub build: Build,
}

/// A table line: the capability's crate, and how to build it when its
/// `component` takes more than the environment.
macro_rules! capability {
    ($krate:ident) => {
        capability!($krate, |p| Box::pin($krate::component(p.env)))
    };
    ($krate:ident, $build:expr) => {
        Capability {
            name: $krate::NAME,
            dependencies: &$krate::DEPENDENCIES,
            objectives: &$krate::OBJECTIVES,
            build: $build,
        }
    };
}

/// Every capability of the shop, in dependency order: the order they are
/// built and started in, and the order of everything listed from here.
pub const TABLE: &[Capability] = &[
    capability!(identity, identity_component),
    capability!(catalog),
    capability!(billing),
    capability!(fulfillment),
    capability!(notification, notification_component),
];

/// The names of [`TABLE`], in its order.
pub const NAMES: [&str; TABLE.len()] = names();

const fn names<const N: usize>() -> [&'static str; N] {
    let mut out = [""; N];
    let mut i = 0;
    while i < N {
        out[i] = TABLE[i].name;
        i += 1;
    }
    out
}

/// The capability called `name`, if there is one.
pub fn find(name: &str) -> Option<&'static Capability> {
    TABLE.iter().find(|c| c.name == name)
}

/// Identity signs tokens with the deployment's keys, which only the process
/// running it opens.
fn identity_component(p: Parts<'_>) -> BoxFuture<'_, anyhow::Result<Component>> {
    Box::pin(async move {
        let minter = p
            .trust
            .minter
            .clone()
            .context("identity runs here, so its keys were opened")?;
        let opts = identity::Options {
            token_ttl: std::time::Duration::from_secs(p.config.token_ttl_secs),
            limits: p.config.sign_in_limits(),
            ..identity::Options::new(minter)
        };
        identity::component(p.env, opts).await
    })
}

/// Notification sends through the configured channel.
fn notification_component(p: Parts<'_>) -> BoxFuture<'_, anyhow::Result<Component>> {
    Box::pin(async move {
        let opts = notification::Options {
            channel: p.config.channel(),
            ..notification::Options::default_for(p.env)
        };
        notification::component(p.env, opts).await
    })
}

#[cfg(test)]
mod tests;
