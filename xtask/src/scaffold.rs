//! `cargo xtask new-capability NAME`: writes a new capability's two crates
//! (its contract and its implementation, with migrations for both
//! backends and a test of its route), ready to build, test and list in an
//! app's capability table.
//!
//! The templates are files under `xtask/templates/capability/` (not `.rs`,
//! so no check reads them as code), filled by plain substitution: three
//! placeholders need no template engine.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};

/// Each file written, as (path under the target folder, template).
const TEMPLATES: &[(&str, &str)] = &[
    (
        "{{name}}-contract/Cargo.toml",
        include_str!("../templates/capability/contract/Cargo.toml.tmpl"),
    ),
    (
        "{{name}}-contract/src/lib.rs",
        include_str!("../templates/capability/contract/src/lib.rs.tmpl"),
    ),
    (
        "{{name}}/Cargo.toml",
        include_str!("../templates/capability/impl/Cargo.toml.tmpl"),
    ),
    (
        "{{name}}/src/lib.rs",
        include_str!("../templates/capability/impl/src/lib.rs.tmpl"),
    ),
    (
        "{{name}}/migrations/sqlite/0001_notes.sql",
        include_str!("../templates/capability/impl/migrations/sqlite/0001_notes.sql.tmpl"),
    ),
    (
        "{{name}}/migrations/postgres/0001_notes.sql",
        include_str!("../templates/capability/impl/migrations/postgres/0001_notes.sql.tmpl"),
    ),
    (
        "{{name}}/tests/{{name}}.rs",
        include_str!("../templates/capability/impl/tests/{{name}}.rs.tmpl"),
    ),
];

/// Refuses a name that cannot be a capability's: it is a crate name, a
/// URL prefix, a database file name and (with `_` for `-`) a Rust path, so
/// lowercase ASCII letters and digits in words joined by single hyphens,
/// starting with a letter, at most 32 characters.
pub fn validate(name: &str) -> Result<(), String> {
    let words_ok = name.split('-').all(|w| {
        !w.is_empty()
            && w.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
    });
    let starts_ok = name.bytes().next().is_some_and(|b| b.is_ascii_lowercase());
    if !words_ok || !starts_ok || name.len() > 32 {
        return Err(format!(
            "`{name}` is not a capability name: lowercase letters and digits, words joined by single hyphens, starting with a letter, at most 32 characters"
        ));
    }
    if name.ends_with("-contract") {
        return Err(format!(
            "`{name}` ends in -contract, the suffix of the contract crate written beside it"
        ));
    }
    Ok(())
}

/// The files of capability `name`, as (path under the target folder, text).
pub fn render(name: &str) -> Vec<(PathBuf, String)> {
    let fill = |s: &str| {
        s.replace("{{name}}", name)
            .replace("{{crate}}", &name.replace('-', "_"))
    };
    TEMPLATES
        .iter()
        .map(|(path, text)| (PathBuf::from(fill(path)), fill(text)))
        .collect()
}

/// Writes capability `name`'s crates under `dir`, refusing to touch either
/// if one exists already; returns the files written.
pub fn write(dir: &Path, name: &str) -> anyhow::Result<Vec<PathBuf>> {
    if let Err(e) = validate(name) {
        bail!(e);
    }
    for krate in [name.to_owned(), format!("{name}-contract")] {
        let at = dir.join(&krate);
        if at.exists() {
            bail!("{} exists already; nothing was written", at.display());
        }
    }
    let mut written = Vec::new();
    for (path, text) in render(name) {
        let path = dir.join(path);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("creating {}", parent.display()))?;
        }
        std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
        written.push(path);
    }
    Ok(written)
}

#[cfg(test)]
mod tests;
