//! The composition root: builds every capability from the configuration, in
//! dependency order, and hands them to the runtime.
//!
//! In the monolith every contract client gets the in-process transport (still
//! governed by each operation's declared timeout and retries) and every
//! subscription reads its producer's outbox directly.

use std::time::Duration;

use seams_runtime::relay::RelayOptions;
use seams_runtime::{Runtime, SystemBuilder, SystemOptions};

use crate::config::Config;

/// Builds the whole system (all five capabilities, one process) without starting it.
pub async fn build(config: &Config) -> anyhow::Result<SystemBuilder> {
    let options = SystemOptions {
        relay: RelayOptions {
            chaos: config.chaos(),
            ..RelayOptions::default()
        },
        durability: config.durability(),
        ..SystemOptions::default()
    };
    let runtime = Runtime::new(options);
    let env = runtime.env(&config.data_dir);
    let identity = identity::component(&env).await?;
    let catalog = catalog::component(&env).await?;
    let billing = billing::component(&env).await?;
    let fulfillment = fulfillment::component(&env).await?;
    let notification = notification::component(
        &env,
        notification::Options {
            channel: config.channel(),
            ..notification::Options::default_for(&env)
        },
    )
    .await?;
    let mut builder = runtime.builder();
    builder
        .add(identity)
        .add(catalog)
        .add(billing)
        .add(fulfillment)
        .add(notification);
    Ok(builder)
}

/// How long a clean stop may take before the process gives up waiting.
pub const STOP_TIMEOUT: Duration = Duration::from_secs(60);
