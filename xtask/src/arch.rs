//! Dependency-graph invariants: which crates may depend on which, and how crates are named.
//!
//! The tree is the architecture, so a crate's role comes from its folder (`framework/`,
//! `capabilities/`, `app/`, `tests/`, `xtask/`). The checks work on [`Workspace`], a
//! small model built from `cargo metadata`, so tests can also feed them hand-made graphs.
//! Numbers in the docs refer to the invariants in `ARCHITECTURE.md`.

use std::path::Path;

use anyhow::Context;
use cargo_metadata::{DependencyKind, MetadataCommand};

use crate::Violation;

#[cfg(test)]
mod tests;

/// Third-party and framework crates a contract must not pull in: contracts are data.
pub const CONTRACT_FORBIDDEN: &[&str] = &[
    "sqlx",
    "axum",
    "async-nats",
    "tokio",
    "reqwest",
    "seams-store",
    "seams-http",
    "seams-runtime",
];

/// The only crates that assemble capability implementations into a system: the
/// app, the end-to-end suite, and every crate directly under `bench/` (benchmarks
/// measure capabilities' decisions and stores in process, against baselines). A
/// trailing `/*` stands for any crate folder directly inside that role folder.
pub const ASSEMBLERS: &[&str] = &["app/shop", "tests/e2e", "bench/*"];

/// Whether the crate at `dir` is one of the [`ASSEMBLERS`].
pub fn is_assembler(dir: &str) -> bool {
    ASSEMBLERS
        .iter()
        .any(|pattern| match pattern.strip_suffix("/*") {
            Some(folder) => dir
                .strip_prefix(folder)
                .and_then(|rest| rest.strip_prefix('/'))
                .is_some_and(|name| !name.is_empty() && !name.contains('/')),
            None => *pattern == dir,
        })
}

/// The workspace members and their declared dependencies.
#[derive(Debug, Clone, Default)]
pub struct Workspace {
    pub crates: Vec<Crate>,
}

/// One workspace member.
#[derive(Debug, Clone)]
pub struct Crate {
    /// The package name from the manifest.
    pub name: String,
    /// The folder, relative to the workspace root and `/`-separated (`capabilities/billing`).
    pub dir: String,
    pub version: String,
    /// Whether the crate may be published; `publish = false` makes this `false`.
    pub publish: bool,
    pub deps: Vec<Dep>,
}

/// A declared dependency, named by package name (not by its `rename`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dep {
    pub name: String,
    pub kind: DepKind,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DepKind {
    Normal,
    Dev,
    Build,
}

/// What a crate is, as told by the folder it lives in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Framework,
    Contract,
    Capability,
    App,
    Tests,
    Xtask,
    Other,
}

impl Workspace {
    /// Reads the workspace at `root` with `cargo metadata --no-deps`; every edge we check
    /// is a path dependency, so the members' own manifests are enough.
    pub fn load(root: &Path) -> anyhow::Result<Workspace> {
        let metadata = MetadataCommand::new()
            .manifest_path(root.join("Cargo.toml"))
            .no_deps()
            .exec()
            .context("running `cargo metadata`")?;
        let mut crates = Vec::new();
        for package in metadata.workspace_packages() {
            let dir = package
                .manifest_path
                .parent()
                .and_then(|dir| dir.strip_prefix(&metadata.workspace_root).ok())
                .with_context(|| format!("{} is outside the workspace root", package.name))?;
            crates.push(Crate {
                name: package.name.to_string(),
                dir: dir
                    .components()
                    .map(|c| c.as_str())
                    .collect::<Vec<_>>()
                    .join("/"),
                version: package.version.to_string(),
                publish: package
                    .publish
                    .as_ref()
                    .is_none_or(|registries| !registries.is_empty()),
                deps: package
                    .dependencies
                    .iter()
                    .map(|dep| Dep {
                        name: dep.name.to_string(),
                        kind: match dep.kind {
                            DependencyKind::Development => DepKind::Dev,
                            DependencyKind::Build => DepKind::Build,
                            // Unknown kinds are treated as the strictest one.
                            _ => DepKind::Normal,
                        },
                    })
                    .collect(),
            });
        }
        crates.sort_by(|a, b| a.dir.cmp(&b.dir));
        Ok(Workspace { crates })
    }

    /// The member with this package name, if any.
    pub fn get(&self, name: &str) -> Option<&Crate> {
        self.crates.iter().find(|krate| krate.name == name)
    }
}

impl Crate {
    /// The last component of [`Crate::dir`].
    pub fn folder(&self) -> &str {
        self.dir.rsplit('/').next().unwrap_or_default()
    }

    pub fn role(&self) -> Role {
        match self.dir.split('/').next() {
            Some("framework") => Role::Framework,
            // The guide's example capability obeys the capabilities' rules.
            Some("capabilities" | "examples") if self.folder().ends_with("-contract") => {
                Role::Contract
            }
            Some("capabilities" | "examples") => Role::Capability,
            Some("app") => Role::App,
            Some("tests") => Role::Tests,
            Some("xtask") => Role::Xtask,
            _ => Role::Other,
        }
    }
}

impl DepKind {
    /// Normal and build dependencies end up in what ships; dev ones only in tests.
    fn ships(self) -> bool {
        self != DepKind::Dev
    }

    fn verb(self) -> &'static str {
        match self {
            DepKind::Normal => "depends on",
            DepKind::Dev => "has a dev-dependency on",
            DepKind::Build => "has a build-dependency on",
        }
    }
}

/// Runs every dependency-graph check.
pub fn check(ws: &Workspace) -> Vec<Violation> {
    let checks: [fn(&Workspace) -> Vec<Violation>; 5] = [
        framework_independent,
        contracts_are_data,
        capabilities_use_contracts,
        only_assemblers_use_capabilities,
        crate_manifests,
    ];
    checks.iter().flat_map(|check| check(ws)).collect()
}

/// Invariant 1: nothing in `framework/` depends on `capabilities/` or `app/`.
pub fn framework_independent(ws: &Workspace) -> Vec<Violation> {
    edges(ws, |from, dep, to| {
        let to = to?;
        let hit = from.role() == Role::Framework
            && dep.kind.ships()
            && matches!(to.role(), Role::Contract | Role::Capability | Role::App);
        hit.then(|| {
            format!(
                "{} `{}` ({}); the framework knows nothing about capabilities or the app",
                dep.kind.verb(),
                dep.name,
                to.dir
            )
        })
    })
    .into_iter()
    .map(|(at, message)| violation("framework-independent", at, message))
    .collect()
}

/// Invariant 2: a contract depends on no capability implementation and no I/O crate.
pub fn contracts_are_data(ws: &Workspace) -> Vec<Violation> {
    edges(ws, |from, dep, to| {
        if from.role() != Role::Contract || !dep.kind.ships() {
            return None;
        }
        if to.is_some_and(|to| to.role() == Role::Capability) {
            Some(format!(
                "{} capability implementation `{}`; contracts depend only on contracts and seams-core",
                dep.kind.verb(),
                dep.name
            ))
        } else if CONTRACT_FORBIDDEN.contains(&dep.name.as_str()) {
            Some(format!(
                "{} `{}`; contracts are data and must not pull in runtime or I/O crates",
                dep.kind.verb(),
                dep.name
            ))
        } else {
            None
        }
    })
    .into_iter()
    .map(|(at, message)| violation("contract-is-data", at, message))
    .collect()
}

/// Invariant 3: `capabilities/<a>` talks to `<b>` only through `<b>-contract`, in any
/// dependency kind (tests included).
pub fn capabilities_use_contracts(ws: &Workspace) -> Vec<Violation> {
    edges(ws, |from, dep, to| {
        let to = to?;
        let hit = from.role() == Role::Capability && to.role() == Role::Capability;
        hit.then(|| {
            format!(
                "{} capability implementation `{}`; depend on `{}-contract` instead",
                dep.kind.verb(),
                dep.name,
                to.folder()
            )
        })
    })
    .into_iter()
    .map(|(at, message)| violation("capability-uses-contracts", at, message))
    .collect()
}

/// Invariant 4: only `app/shop`, `tests/e2e` and the crates under `bench/` depend on
/// capability implementations, in any dependency kind.
pub fn only_assemblers_use_capabilities(ws: &Workspace) -> Vec<Violation> {
    edges(ws, |from, dep, to| {
        let to = to?;
        let hit = to.role() == Role::Capability && !is_assembler(&from.dir);
        hit.then(|| {
            format!(
                "{} capability implementation `{}`; only {} may",
                dep.kind.verb(),
                dep.name,
                ASSEMBLERS.join(", ")
            )
        })
    })
    .into_iter()
    .map(|(at, message)| violation("only-assemblers-use-capabilities", at, message))
    .collect()
}

/// Invariant 7: a crate is named after its folder, is `0.0.0` and is not publishable.
pub fn crate_manifests(ws: &Workspace) -> Vec<Violation> {
    let mut out = Vec::new();
    for krate in &ws.crates {
        let mut flag = |message: String| {
            out.push(violation("crate-manifest", krate.dir.clone(), message));
        };
        if krate.name != krate.folder() {
            flag(format!(
                "package is named `{}` but its folder is `{}`; they must match",
                krate.name,
                krate.folder()
            ));
        }
        if krate.version != "0.0.0" {
            flag(format!(
                "version is `{}`; internal crates use `0.0.0`",
                krate.version
            ));
        }
        if krate.publish {
            flag("is publishable; set `publish = false`".to_owned());
        }
    }
    out
}

/// Applies `rule` to every dependency edge (with its target if it is a workspace member)
/// and returns `(crate dir, message)` for each edge it objects to.
fn edges(
    ws: &Workspace,
    rule: impl Fn(&Crate, &Dep, Option<&Crate>) -> Option<String>,
) -> Vec<(String, String)> {
    ws.crates
        .iter()
        .flat_map(|from| from.deps.iter().map(move |dep| (from, dep)))
        .filter_map(|(from, dep)| Some((from.dir.clone(), rule(from, dep, ws.get(&dep.name))?)))
        .collect()
}

fn violation(rule: &'static str, at: String, message: String) -> Violation {
    Violation { rule, at, message }
}
