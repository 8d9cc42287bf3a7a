//! The Seams reference shop: the one binary that names every capability.
//!
//! This is the composition root ([`system`]): it is the only crate that knows
//! which capabilities exist and how they are wired in each mode. Capability
//! crates never learn the mode they run in.
//!
//! Layout: [`capabilities`] lists every capability once (everything else
//! that names them derives from it), [`cli`] parses commands (`up`,
//! `serve`, `demo`, `contracts`, `token`, `keys`), [`config`] is the typed configuration, [`system`]
//! builds the system from it, [`trust`] decides whose tokens a process
//! accepts and what it signs with, [`supervisor`] and [`gateway`] run the
//! split system, [`demo`] walks a customer journey against a running
//! system, [`ops`] derives Prometheus rules from the declarations, and
//! [`telemetry`] sets up logging.

pub mod capabilities;
pub mod cli;
pub mod config;
pub mod demo;
pub mod gateway;
pub mod ops;
pub mod supervisor;
pub mod system;
pub mod telemetry;
pub mod trust;
