//! Tests for the file-level checks: each invariant against the real workspace, and each
//! against synthetic files that break it, so that no check can pass because it checks nothing.

use std::sync::OnceLock;

use super::*;
use crate::{report, workspace_root};

/// The real workspace's sources, read once per test binary.
fn real() -> &'static [SourceFile] {
    static FILES: OnceLock<Vec<SourceFile>> = OnceLock::new();
    FILES.get_or_init(|| collect(&workspace_root()).expect("reading workspace sources"))
}

fn assert_clean(violations: Vec<Violation>) {
    assert!(violations.is_empty(), "{}", report(&violations));
}

fn file(path: &str, text: &str) -> SourceFile {
    SourceFile {
        path: path.to_owned(),
        text: text.to_owned(),
    }
}

/// The `(at, message)` pairs a check reports, for compact assertions.
fn found(violations: &[Violation], rule: &str) -> Vec<(String, String)> {
    assert!(
        violations.iter().all(|v| v.rule == rule),
        "{}",
        report(violations)
    );
    violations
        .iter()
        .map(|v| (v.at.clone(), v.message.clone()))
        .collect()
}

#[test]
fn real_sources_are_collected() {
    let paths: Vec<&str> = real().iter().map(|f| f.path.as_str()).collect();
    assert!(paths.contains(&"xtask/src/tidy.rs"), "{paths:?}");
    assert!(paths.contains(&"xtask/src/tidy/tests.rs"), "{paths:?}");
    assert!(
        paths.iter().any(|p| p.starts_with("capabilities/")),
        "{paths:?}"
    );
    assert!(paths.contains(&"examples/loyalty/src/lib.rs"), "{paths:?}");
    assert!(!paths.iter().any(|p| p.contains("target/")), "{paths:?}");
}

#[test]
fn real_files_have_module_docs() {
    assert_clean(module_docs(real()));
}

#[test]
fn real_has_no_mod_rs() {
    assert_clean(no_mod_rs(real()));
}

#[test]
fn real_domains_are_pure() {
    assert_clean(domain_is_pure(real()));
}

#[test]
fn missing_module_doc_is_reported() {
    let files = [
        file("app/shop/src/lib.rs", "//! The shop.\n"),
        file(
            "app/shop/src/config.rs",
            "\n  \n//! Leading blank lines are fine.\nuse x;\n",
        ),
        file(
            "bench/src/main.rs",
            "// A plain comment is not a module doc.\n//! Late.\n",
        ),
        file(
            "tests/e2e/src/lib.rs",
            "#![allow(dead_code)]\n//! Docs come first.\n",
        ),
        file("xtask/src/empty.rs", ""),
        file(
            "framework/seams-core/src/id.rs",
            "/// An item doc.\npub struct Id;\n",
        ),
    ];
    let violations = module_docs(&files);
    let at: Vec<String> = found(&violations, "module-doc")
        .into_iter()
        .map(|(at, _)| at)
        .collect();
    assert_eq!(
        at,
        [
            "bench/src/main.rs",
            "tests/e2e/src/lib.rs",
            "xtask/src/empty.rs",
            "framework/seams-core/src/id.rs"
        ]
    );
    assert!(violations[0].message.contains("`//!`"));
}

#[test]
fn mod_rs_is_reported() {
    let files = [
        file("framework/seams-http/src/layer/mod.rs", "//! Layers.\n"),
        file("framework/seams-http/src/layer.rs", "//! Layers.\n"),
        file("xtask/src/mod_rs.rs", "//! Not a mod.rs.\n"),
        file(
            "capabilities/billing/src/amod.rs",
            "//! Not a mod.rs either.\n",
        ),
    ];
    let violations = no_mod_rs(&files);
    assert_eq!(
        found(&violations, "no-mod-rs"),
        [(
            "framework/seams-http/src/layer/mod.rs".to_owned(),
            "is a `mod.rs`; use `foo.rs` next to a `foo/` folder".to_owned()
        )]
    );
}

#[test]
fn domain_files_are_selected() {
    for (path, expected) in [
        ("capabilities/billing/src/domain.rs", true),
        ("capabilities/billing/src/domain/invoice.rs", true),
        ("capabilities/billing/src/domain/invoice/money.rs", true),
        ("capabilities/billing/src/domain/tests.rs", false),
        ("capabilities/billing/src/domain/invoice/tests.rs", false),
        ("capabilities/billing/src/service.rs", false),
        ("capabilities/billing/src/domains.rs", false),
        ("framework/seams-core/src/domain.rs", false),
        ("capabilities/billing/tests/it/domain.rs", false),
        ("examples/loyalty/src/domain.rs", true),
        ("examples/loyalty/tests/domain.rs", false),
    ] {
        assert_eq!(is_domain_file(path), expected, "{path}");
    }
}

/// Checks one domain file's text and returns `(line, what is named)` per violation.
fn check_domain(text: &str) -> Vec<(usize, String)> {
    let violations = domain_is_pure(&[file("capabilities/billing/src/domain.rs", text)]);
    found(&violations, "domain-is-pure")
        .into_iter()
        .map(|(at, message)| {
            let line = at.rsplit(':').next().unwrap().parse().unwrap();
            let named = message.split('`').nth(1).unwrap().to_owned();
            (line, named)
        })
        .collect()
}

#[test]
fn io_in_domain_is_reported() {
    for (text, expected) in [
        ("use sqlx::SqlitePool;", "sqlx"),
        ("pub(crate) use axum::{Router, routing::get};", "axum"),
        ("async fn f() { tokio::time::sleep(d).await }", "tokio"),
        ("#[tokio::test]\nasync fn t() {}", "tokio"),
        ("use ::async_nats::Client as Nats;", "async_nats"),
        ("extern crate reqwest;", "reqwest"),
        ("use lettre;", "lettre"),
        ("fn f(db: &seams_store::Db) {}", "seams_store"),
        ("use {seams_http::Problem, std::fmt};", "seams_http"),
        ("use seams_runtime::System;", "seams_runtime"),
        ("use std::fs::read_to_string;", "std::fs"),
        (
            "use std::{collections::HashMap, net::TcpStream};",
            "std::net",
        ),
        (
            "fn f() { let _ = ::std::fs::remove_file(\"x\"); }",
            "std::fs",
        ),
        ("#[derive(Debug, Serialize)]\nstruct Invoice;", "Serialize"),
        (
            "#[derive(Clone, serde::Deserialize)]\nstruct Invoice;",
            "Deserialize",
        ),
        (
            "#[cfg_attr(test, derive(Deserialize))]\nstruct Invoice;",
            "Deserialize",
        ),
    ] {
        let reported = check_domain(text);
        assert!(
            reported.iter().any(|(_, named)| named == expected),
            "{text:?} should report `{expected}`, got {reported:?}"
        );
    }
}

#[test]
fn pure_domain_is_not_reported() {
    let text = r##"//! Invoices: pure values and decisions.
// Comments may say tokio::spawn or use sqlx; they are not code.
/* Block comments /* nested */ too: std::fs::read */
use std::collections::BTreeMap;
use std::fmt::{self, Display};
use crate::tokio_compat::Sleep;
use seams_core::Clock;
use super::sqlx_free as tokio_free;

#[derive(Debug, Clone, PartialEq)]
pub struct Invoice<'a> { note: &'a str, ch: char, other: char }

impl<'a> Invoice<'a> {
    fn notes(&self) -> [&'static str; 4] {
        let _ = (self.ch == '"', self.other == '\'', b'x', '\u{1F600}');
        ["use sqlx::query;", r#"tokio::spawn("x")"#, "escaped \" std::net::TcpStream", br"axum::Router"]
    }
    fn later(&self) -> Sleep { compat::tokio::sleep() }
}
// Serialize and Deserialize are mentioned here but derived nowhere.
"##;
    assert_eq!(check_domain(text), []);
}

#[test]
fn domain_violations_name_the_line() {
    let text =
        "//! Doc.\nuse std::fmt;\n\n#[derive(Serialize)]\nstruct A;\nuse tokio::{spawn, time};\n";
    assert_eq!(
        check_domain(text),
        [(4, "Serialize".to_owned()), (6, "tokio".to_owned())]
    );
}

#[test]
fn domain_rule_skips_tests_and_other_files() {
    let text = "use tokio::spawn;\n#[derive(serde::Serialize)]\nstruct Dto;\n";
    let files = [
        file("capabilities/billing/src/domain/tests.rs", text),
        file("capabilities/billing/src/service.rs", text),
        file("capabilities/billing/src/domain/invoice.rs", text),
    ];
    let violations = domain_is_pure(&files);
    let at: Vec<String> = found(&violations, "domain-is-pure")
        .into_iter()
        .map(|(at, _)| at)
        .collect();
    assert_eq!(
        at,
        [
            "capabilities/billing/src/domain/invoice.rs:1",
            "capabilities/billing/src/domain/invoice.rs:2"
        ]
    );
}

#[test]
fn check_runs_every_rule() {
    let files = [file(
        "capabilities/billing/src/domain/mod.rs",
        "use sqlx::Row;\n",
    )];
    let rules: Vec<&str> = check(&files).iter().map(|v| v.rule).collect();
    assert_eq!(
        rules,
        [
            "domain-is-pure",
            "module-doc",
            "no-mod-rs",
            "sql-through-the-store"
        ]
    );
}

#[test]
fn collect_reads_role_folders_only() {
    let dir = tempfile::tempdir().unwrap();
    for path in [
        "app/shop/src/main.rs",
        "bench/src/lib.rs",
        "xtask/src/lib.rs",
        "app/shop/target/debug/build/out.rs",
        "app/shop/.hidden/x.rs",
        "docs/example.rs",
        "app/shop/README.md",
    ] {
        let path = dir.path().join(path);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, "//! Doc.\n").unwrap();
    }
    let paths: Vec<String> = collect(dir.path())
        .unwrap()
        .into_iter()
        .map(|f| f.path)
        .collect();
    assert_eq!(
        paths,
        [
            "app/shop/src/main.rs",
            "bench/src/lib.rs",
            "xtask/src/lib.rs"
        ]
    );
}

#[test]
fn real_capabilities_call_through_their_declarations() {
    assert_clean(calls_are_declared(real()));
}

#[test]
fn real_capabilities_send_sql_through_the_store() {
    assert_clean(sql_through_the_store(real()));
}

#[test]
fn the_driver_named_in_a_capability_is_reported() {
    let files = [
        file(
            "capabilities/billing/src/store.rs",
            "//! x\nuse sqlx::Row;\nfn f() { sqlx::query(\"SELECT 1\"); }",
        ),
        // Migrations are embedded with sqlx's macro; comments, strings,
        // tests, contracts and the framework may name it.
        file(
            "capabilities/billing/src/lib.rs",
            "//! x\n// sqlx::query\nstatic M: M = M { sqlite: sqlx::migrate!(\"./m\") };\nconst S: &str = \"sqlx::query\";",
        ),
        file(
            "capabilities/billing/tests/it/main.rs",
            "//! x\nuse sqlx::Row;",
        ),
        file(
            "capabilities/billing/src/store/tests.rs",
            "//! x\nuse sqlx::Row;",
        ),
        file("framework/seams-store/src/sql.rs", "//! x\nuse sqlx::Row;"),
        file(
            "examples/loyalty/src/lib.rs",
            "//! x\nfn f() { let _ = ::sqlx::query(\"SELECT 1\"); }",
        ),
    ];
    let rule = "names `sqlx`; send SQL through `seams_store::query` and read `seams_store::Row` (only `sqlx::migrate!` is left to capabilities)";
    assert_eq!(
        found(&sql_through_the_store(&files), "sql-through-the-store"),
        [
            (
                "capabilities/billing/src/store.rs:2".to_owned(),
                rule.to_owned()
            ),
            (
                "capabilities/billing/src/store.rs:3".to_owned(),
                rule.to_owned()
            ),
            ("examples/loyalty/src/lib.rs:2".to_owned(), rule.to_owned()),
        ]
    );
}

#[test]
fn the_raw_transport_in_a_capability_is_reported() {
    let files = [
        file(
            "capabilities/billing/src/lib.rs",
            "//! x\nfn f(env: &Env) { let t = env.transport.clone(); }",
        ),
        // Comments, contracts and tests may mention it.
        file(
            "capabilities/billing/src/http.rs",
            "//! x\n// env.transport is not for us\n",
        ),
        file(
            "capabilities/billing-contract/src/lib.rs",
            "//! x\nfn f() { env.transport; }",
        ),
        file(
            "capabilities/billing/tests/it/main.rs",
            "//! x\nfn f() { env.transport; }",
        ),
        file(
            "capabilities/billing/src/store/tests.rs",
            "//! x\nfn f() { env.transport; }",
        ),
        file(
            "framework/seams-runtime/src/system.rs",
            "//! x\nfn f() { env.transport; }",
        ),
        file(
            "examples/loyalty/src/lib.rs",
            "//! x\nfn f() { env.transport; }",
        ),
    ];
    let rule = "uses `env.transport`; call through `env.calls(&DEPENDENCIES)`, which holds the capability to what it declared";
    assert_eq!(
        found(&calls_are_declared(&files), "calls-are-declared"),
        [
            (
                "capabilities/billing/src/lib.rs:2".to_owned(),
                rule.to_owned()
            ),
            ("examples/loyalty/src/lib.rs:2".to_owned(), rule.to_owned()),
        ]
    );
}
