//! File-level invariants: module docs, no `mod.rs`, I/O-free capability
//! domains, and capabilities calling others only through their declared
//! dependencies.
//!
//! The checks are pure functions over [`SourceFile`]s (a workspace-relative path and its
//! text); only [`collect`] touches the disk. Domain purity is checked on tokens rather than
//! lines, so comments and string literals that merely mention `tokio` are not flagged.
//! Numbers in the docs refer to the invariants in `ARCHITECTURE.md`.

use std::collections::BTreeSet;
use std::fs;
use std::path::Path;

use anyhow::Context;

use crate::Violation;

#[cfg(test)]
mod tests;

/// The role folders whose `.rs` files are checked.
pub const ROLE_DIRS: &[&str] = &[
    "framework",
    "capabilities",
    "examples",
    "app",
    "tests",
    "xtask",
    "bench",
];

/// Crates a domain module must not name: they do I/O or tie it to a runtime.
pub const DOMAIN_FORBIDDEN_CRATES: &[&str] = &[
    "sqlx",
    "axum",
    "tokio",
    "async_nats",
    "reqwest",
    "lettre",
    "seams_store",
    "seams_http",
    "seams_runtime",
];

/// Modules of `std` a domain module must not name.
pub const DOMAIN_FORBIDDEN_STD: &[&str] = &["fs", "net"];

/// A Rust source file.
#[derive(Debug, Clone)]
pub struct SourceFile {
    /// Relative to the workspace root, `/`-separated.
    pub path: String,
    pub text: String,
}

/// Reads every `.rs` file under the [`ROLE_DIRS`] of `root`, skipping `target/` and
/// hidden folders, sorted by path.
pub fn collect(root: &Path) -> anyhow::Result<Vec<SourceFile>> {
    let mut files = Vec::new();
    for dir in ROLE_DIRS {
        let dir = root.join(dir);
        if dir.is_dir() {
            walk(root, &dir, &mut files)?;
        }
    }
    files.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(files)
}

fn walk(root: &Path, dir: &Path, files: &mut Vec<SourceFile>) -> anyhow::Result<()> {
    for entry in fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))? {
        let path = entry?.path();
        let name = path.file_name().unwrap_or_default().to_string_lossy();
        if path.is_dir() {
            if name != "target" && !name.starts_with('.') {
                walk(root, &path, files)?;
            }
        } else if name.ends_with(".rs") {
            let text =
                fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
            let relative = path.strip_prefix(root).unwrap_or(&path);
            let parts: Vec<_> = relative.iter().map(|c| c.to_string_lossy()).collect();
            files.push(SourceFile {
                path: parts.join("/"),
                text,
            });
        }
    }
    Ok(())
}

/// Runs every file-level check.
pub fn check(files: &[SourceFile]) -> Vec<Violation> {
    let mut out = domain_is_pure(files);
    out.extend(module_docs(files));
    out.extend(no_mod_rs(files));
    out.extend(calls_are_declared(files));
    out.extend(sql_through_the_store(files));
    out
}

/// Invariant 6: the first non-empty line of every file is a `//!` module doc.
pub fn module_docs(files: &[SourceFile]) -> Vec<Violation> {
    files
        .iter()
        .filter(|file| {
            let first = file
                .text
                .trim_start_matches('\u{feff}')
                .lines()
                .find(|l| !l.trim().is_empty());
            !first.is_some_and(|line| line.trim_start().starts_with("//!"))
        })
        .map(|file| Violation {
            rule: "module-doc",
            at: file.path.clone(),
            message: "does not start with a `//!` doc saying what the module owns and why"
                .to_owned(),
        })
        .collect()
}

/// Invariant 8: modules with children are `foo.rs` next to `foo/`, never `foo/mod.rs`.
pub fn no_mod_rs(files: &[SourceFile]) -> Vec<Violation> {
    files
        .iter()
        .filter(|file| file.path == "mod.rs" || file.path.ends_with("/mod.rs"))
        .map(|file| Violation {
            rule: "no-mod-rs",
            at: file.path.clone(),
            message: "is a `mod.rs`; use `foo.rs` next to a `foo/` folder".to_owned(),
        })
        .collect()
}

/// Whether this file is a capability implementation's code (not a
/// contract crate, not its tests).
fn is_capability_source(path: &str) -> bool {
    let parts: Vec<&str> = path.split('/').collect();
    matches!(parts.as_slice(), ["capabilities" | "examples", krate, "src", ..] if !krate.ends_with("-contract"))
        && !path.ends_with("/tests.rs")
}

/// A capability makes its calls with `env.calls(&DEPENDENCIES)`, which refuses
/// what it did not declare, never with the system's raw `env.transport`:
/// the declaration is what lets the callee admit it.
pub fn calls_are_declared(files: &[SourceFile]) -> Vec<Violation> {
    let mut out = Vec::new();
    for file in files.iter().filter(|f| is_capability_source(&f.path)) {
        let tokens = lex(&file.text);
        for w in tokens.windows(3) {
            if w[1].text == "." && w[2].text == "transport" && w[0].text == "env" {
                out.push(Violation {
                    rule: "calls-are-declared",
                    at: format!("{}:{}", file.path, w[0].line),
                    message: "uses `env.transport`; call through `env.calls(&DEPENDENCIES)`, which holds the capability to what it declared".to_owned(),
                });
            }
        }
    }
    out
}

/// A capability sends its SQL through the store's own surface
/// (`seams_store::query`, `Row`, `DbError`), never through the driver
/// under it, so that the store can change its driver without a
/// capability noticing. `sqlx::migrate!`, which embeds the migrations at
/// compile time, is the one use left.
pub fn sql_through_the_store(files: &[SourceFile]) -> Vec<Violation> {
    let mut out = Vec::new();
    for file in files.iter().filter(|f| is_capability_source(&f.path)) {
        let tokens = lex(&file.text);
        for (idx, token) in tokens.iter().enumerate() {
            if token.text != "sqlx" || !starts_path(&tokens, idx) {
                continue;
            }
            let next: Vec<&str> = tokens[idx + 1..].iter().take(3).map(|t| t.text).collect();
            if next != ["::", "migrate", "!"] {
                out.push(Violation {
                    rule: "sql-through-the-store",
                    at: format!("{}:{}", file.path, token.line),
                    message: "names `sqlx`; send SQL through `seams_store::query` and read `seams_store::Row` (only `sqlx::migrate!` is left to capabilities)".to_owned(),
                });
            }
        }
    }
    out
}

/// Whether invariant 5 covers this file: `capabilities/*/src/domain.rs` and everything
/// under `domain/`, except the `tests.rs` files that test it.
pub fn is_domain_file(path: &str) -> bool {
    let parts: Vec<&str> = path.split('/').collect();
    match parts.as_slice() {
        ["capabilities" | "examples", _, "src", "domain.rs"] => true,
        ["capabilities" | "examples", _, "src", "domain", .., last] => *last != "tests.rs",
        _ => false,
    }
}

/// Invariant 5: domain modules name no I/O crate and derive no serde trait.
pub fn domain_is_pure(files: &[SourceFile]) -> Vec<Violation> {
    let mut out = Vec::new();
    for file in files.iter().filter(|file| is_domain_file(&file.path)) {
        let findings: BTreeSet<(usize, String)> =
            domain_findings(&lex(&file.text)).into_iter().collect();
        out.extend(findings.into_iter().map(|(line, message)| Violation {
            rule: "domain-is-pure",
            at: format!("{}:{line}", file.path),
            message,
        }));
    }
    out
}

/// `(line, message)` for each forbidden path or serde derive in a token stream.
fn domain_findings(tokens: &[Token<'_>]) -> Vec<(usize, String)> {
    let mut paths = Vec::new();
    let mut out = Vec::new();
    let mut idx = 0;
    while idx < tokens.len() {
        let line = tokens[idx].line;
        match (tokens[idx].text, tokens.get(idx + 1).map(|t| t.text)) {
            ("use", _) => {
                idx += 1;
                use_tree(tokens, &mut idx, &mut Vec::new(), &mut |path| {
                    paths.push((line, path))
                });
                continue;
            }
            ("extern", Some("crate")) => {
                if let Some(name) = tokens.get(idx + 2) {
                    paths.push((line, vec![name.text]));
                }
                idx += 3;
                continue;
            }
            ("derive", Some("(")) => {
                let mut depth = 0;
                for token in &tokens[idx + 1..] {
                    match token.text {
                        "(" => depth += 1,
                        ")" if depth == 1 => break,
                        ")" => depth -= 1,
                        "Serialize" | "Deserialize" => out.push((
                            token.line,
                            format!(
                                "derives `{}`; domain types are not wire types, convert at the edge",
                                token.text
                            ),
                        )),
                        _ => {}
                    }
                }
            }
            (first, Some("::")) if is_ident(first) && starts_path(tokens, idx) => {
                let second = tokens.get(idx + 2).map_or("", |t| t.text);
                paths.push((line, vec![first, second]));
            }
            _ => {}
        }
        idx += 1;
    }
    for (line, path) in paths {
        let forbidden = match path.as_slice() {
            [krate, ..] if DOMAIN_FORBIDDEN_CRATES.contains(krate) => Some(krate.to_string()),
            ["std", module, ..] if DOMAIN_FORBIDDEN_STD.contains(module) => {
                Some(format!("std::{module}"))
            }
            _ => None,
        };
        if let Some(name) = forbidden {
            out.push((
                line,
                format!("uses `{name}`; domain code does no I/O, move this to the shell"),
            ));
        }
    }
    out
}

/// Whether the identifier at `idx` is the first segment of a path (possibly after a
/// leading `::`), not a later segment such as the `tokio` in `compat::tokio::spawn`.
fn starts_path(tokens: &[Token<'_>], idx: usize) -> bool {
    let before = |n: usize| idx.checked_sub(n).map(|i| tokens[i].text);
    match before(1) {
        Some("::") => !before(2).is_some_and(|t| is_ident(t) || t == ">"),
        _ => true,
    }
}

/// Walks one `use` tree starting at `idx`, calling `emit` with each full path it names
/// (`use std::{fs, io::Read}` names `std::fs` and `std::io::Read`).
fn use_tree<'a>(
    tokens: &[Token<'a>],
    idx: &mut usize,
    prefix: &mut Vec<&'a str>,
    emit: &mut impl FnMut(Vec<&'a str>),
) {
    let depth = prefix.len();
    let mut group = false;
    while let Some(token) = tokens.get(*idx) {
        match token.text {
            "as" => *idx += 2,
            "::" | "*" => *idx += 1,
            "{" => {
                group = true;
                *idx += 1;
                while let Some(token) = tokens.get(*idx) {
                    match token.text {
                        "}" => {
                            *idx += 1;
                            break;
                        }
                        "," => *idx += 1,
                        _ => {
                            let start = *idx;
                            use_tree(tokens, idx, prefix, emit);
                            if *idx == start {
                                break;
                            }
                        }
                    }
                }
                break;
            }
            text if is_ident(text) => {
                prefix.push(text);
                *idx += 1;
            }
            _ => break,
        }
    }
    if !group && prefix.len() > depth {
        emit(prefix.clone());
    }
    prefix.truncate(depth);
}

/// A token of Rust source: an identifier, `::`, or one punctuation character.
/// Comments, literals and whitespace produce no tokens.
#[derive(Debug, Clone, Copy)]
struct Token<'a> {
    text: &'a str,
    line: usize,
}

fn is_ident(text: &str) -> bool {
    text.starts_with(|c: char| c == '_' || c.is_alphabetic())
}

/// Just enough of a Rust lexer to tell code from comments and literals.
fn lex(src: &str) -> Vec<Token<'_>> {
    let bytes = src.as_bytes();
    let mut tokens = Vec::new();
    let mut line = 1;
    let mut idx = 0;
    // Advances past `src[from..to]`, counting the newlines in it.
    let skip = |from: usize, to: usize, line: &mut usize| {
        *line += src[from..to.min(src.len())].matches('\n').count();
        to.min(src.len())
    };
    while idx < bytes.len() {
        let rest = &src[idx..];
        let c = rest.chars().next().unwrap_or_default();
        if rest.starts_with("//") {
            idx += rest.find('\n').unwrap_or(rest.len());
        } else if rest.starts_with("/*") {
            let mut depth = 0;
            let mut end = idx;
            while end < bytes.len() {
                if bytes[end..].starts_with(b"/*") {
                    depth += 1;
                    end += 2;
                } else if bytes[end..].starts_with(b"*/") {
                    depth -= 1;
                    end += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    end += 1;
                }
            }
            idx = skip(idx, end, &mut line);
        } else if let Some(len) = raw_string_len(rest) {
            idx = skip(idx, idx + len, &mut line);
        } else if c == '"' || ((c == 'b' || c == 'c') && rest[1..].starts_with('"')) {
            let open = rest.find('"').unwrap_or_default() + 1;
            let mut end = idx + open;
            while end < bytes.len() && bytes[end] != b'"' {
                end += if bytes[end] == b'\\' { 2 } else { 1 };
            }
            idx = skip(idx, end + 1, &mut line);
        } else if c == '\'' || (c == 'b' && rest[1..].starts_with('\'')) {
            let quote = rest.find('\'').unwrap_or_default();
            let body = &rest[quote + 1..];
            match body.chars().next() {
                // An escaped char literal: skip to its closing quote.
                Some('\\') => {
                    let close = body
                        .get(2..)
                        .and_then(|b| b.find('\''))
                        .map_or(body.len(), |i| i + 2);
                    idx += quote + 1 + close + 1;
                }
                // A plain char literal such as `'"'`.
                Some(ch) if body[ch.len_utf8()..].starts_with('\'') => {
                    idx += quote + 1 + ch.len_utf8() + 1;
                }
                // A lifetime or label: drop the quote, lex the name as an identifier.
                _ => idx += quote + 1,
            }
        } else if c == '\n' {
            line += 1;
            idx += 1;
        } else if c.is_whitespace() {
            idx += c.len_utf8();
        } else if c.is_ascii_digit() {
            let len = rest
                .find(|c: char| !(c.is_alphanumeric() || c == '_'))
                .unwrap_or(rest.len());
            idx += len;
        } else if c == '_' || c.is_alphabetic() {
            let len = rest
                .find(|c: char| !(c.is_alphanumeric() || c == '_'))
                .unwrap_or(rest.len());
            let text = &rest[..len];
            // A raw identifier `r#type` stands for `type`.
            if text == "r"
                && rest[1..].starts_with('#')
                && rest[2..].starts_with(|c: char| c == '_' || c.is_alphabetic())
            {
                idx += 2;
                continue;
            }
            tokens.push(Token { text, line });
            idx += len;
        } else if rest.starts_with("::") {
            tokens.push(Token {
                text: &rest[..2],
                line,
            });
            idx += 2;
        } else {
            tokens.push(Token {
                text: &rest[..c.len_utf8()],
                line,
            });
            idx += c.len_utf8();
        }
    }
    tokens
}

/// The byte length of a raw string literal (`r"…"`, `br#"…"#`, `cr##"…"##`) at the start
/// of `src`, if there is one.
fn raw_string_len(src: &str) -> Option<usize> {
    let after_prefix = src
        .strip_prefix('r')
        .or_else(|| src.strip_prefix("br"))
        .or_else(|| src.strip_prefix("cr"))?;
    let hashes = after_prefix.len() - after_prefix.trim_start_matches('#').len();
    let body = after_prefix[hashes..].strip_prefix('"')?;
    let close = format!("\"{}", "#".repeat(hashes));
    let end = body.find(&close).map_or(body.len(), |i| i + close.len());
    Some(src.len() - body.len() + end)
}
