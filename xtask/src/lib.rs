//! Workspace automation: the architecture and tidy checks that keep the tree honest,
//! and the [`scaffold`] of a new capability.
//!
//! The invariants in `ARCHITECTURE.md` are only worth something if breaking one fails
//! `cargo test --workspace`. The checks are pure functions over small models (packages
//! with dependency edges in [`arch`], file paths with contents in [`tidy`]), so each one
//! is also tested against a synthetic violation and can never pass vacuously.

use std::fmt;
use std::path::{Path, PathBuf};

pub mod arch;
pub mod scaffold;
pub mod tidy;

/// One broken invariant, found by a check in [`arch`] or [`tidy`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    /// Short stable name of the rule, such as `framework-independent`.
    pub rule: &'static str,
    /// The crate folder or file (with line) where the rule is broken.
    pub at: String,
    /// What is wrong, as a sentence a reviewer can act on.
    pub message: String,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "[{}] {}: {}", self.rule, self.at, self.message)
    }
}

/// Renders violations as a bulleted list, one per line, for test failures and the CLI.
pub fn report(violations: &[Violation]) -> String {
    let mut out = format!(
        "{} violation(s) of the architecture invariants:\n",
        violations.len()
    );
    for violation in violations {
        out.push_str(&format!("  - {violation}\n"));
    }
    out
}

/// The workspace root, which is the parent of this crate's folder.
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives one level below the workspace root")
        .to_path_buf()
}
