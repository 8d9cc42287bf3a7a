//! Tests for the dependency-graph checks: each invariant against the real workspace, and
//! each against a synthetic violation, so that no check can pass because it checks nothing.

use std::sync::OnceLock;

use super::*;
use crate::{report, workspace_root};

/// The real workspace, loaded once per test binary.
fn real() -> &'static Workspace {
    static WORKSPACE: OnceLock<Workspace> = OnceLock::new();
    WORKSPACE.get_or_init(|| Workspace::load(&workspace_root()).expect("loading cargo metadata"))
}

fn assert_clean(violations: Vec<Violation>) {
    assert!(violations.is_empty(), "{}", report(&violations));
}

/// Asserts that `violations` holds exactly `expected`, as `(rule, crate dir, message part)`.
fn assert_reports(violations: Vec<Violation>, expected: &[(&str, &str, &str)]) {
    let matches = |v: &Violation, &(rule, at, part): &(&str, &str, &str)| {
        v.rule == rule && v.at == at && v.message.contains(part)
    };
    let all_expected = expected
        .iter()
        .all(|e| violations.iter().any(|v| matches(v, e)));
    let all_known = violations
        .iter()
        .all(|v| expected.iter().any(|e| matches(v, e)));
    assert!(
        all_expected && all_known,
        "expected {expected:?}, got\n{}",
        report(&violations)
    );
}

/// A crate named after its folder; a dep spec is `name`, `dev:name` or `build:name`.
fn krate(dir: &str, deps: &[&str]) -> Crate {
    Crate {
        name: dir.rsplit('/').next().unwrap().to_owned(),
        dir: dir.to_owned(),
        version: "0.0.0".to_owned(),
        publish: false,
        deps: deps.iter().map(|spec| dep(spec)).collect(),
    }
}

fn dep(spec: &str) -> Dep {
    let (kind, name) = match spec.split_once(':') {
        Some(("dev", name)) => (DepKind::Dev, name),
        Some(("build", name)) => (DepKind::Build, name),
        _ => (DepKind::Normal, spec),
    };
    Dep {
        name: name.to_owned(),
        kind,
    }
}

/// A small workspace shaped like the real one that breaks no invariant.
fn fixture() -> Workspace {
    Workspace {
        crates: vec![
            krate("framework/seams-core", &["serde"]),
            krate("framework/seams-runtime", &["seams-core", "tokio"]),
            krate("framework/seams-testkit", &["seams-core", "tokio"]),
            krate(
                "capabilities/catalog-contract",
                &["seams-core", "serde", "dev:tokio"],
            ),
            krate(
                "capabilities/billing-contract",
                &["seams-core", "catalog-contract"],
            ),
            krate(
                "capabilities/catalog",
                &["seams-runtime", "catalog-contract", "sqlx"],
            ),
            krate(
                "capabilities/billing",
                &["billing-contract", "catalog-contract", "dev:seams-testkit"],
            ),
            krate("app/shop", &["catalog", "billing", "tokio"]),
            krate("tests/e2e", &["shop", "dev:catalog", "build:billing"]),
            krate(
                "bench/seams-bench",
                &[
                    "billing",
                    "catalog-contract",
                    "dev:catalog",
                    "build:billing",
                ],
            ),
            krate("xtask", &["cargo_metadata", "dev:tempfile"]),
        ],
    }
}

/// The fixture with one extra dependency (a spec as in [`krate`]) on the crate at `dir`.
fn with_dep(dir: &str, spec: &str) -> Workspace {
    let mut ws = fixture();
    let krate = ws
        .crates
        .iter_mut()
        .find(|k| k.dir == dir)
        .expect("crate in fixture");
    krate.deps.push(dep(spec));
    ws
}

#[test]
fn real_workspace_has_every_role() {
    let roles: Vec<Role> = real().crates.iter().map(Crate::role).collect();
    for role in [
        Role::Framework,
        Role::Contract,
        Role::Capability,
        Role::App,
        Role::Tests,
        Role::Xtask,
    ] {
        assert!(
            roles.contains(&role),
            "no {role:?} crate in {:#?}",
            real().crates
        );
    }
    let xtask = real().get("xtask").expect("xtask is a member");
    assert!(
        xtask.deps.iter().any(|d| d.name == "cargo_metadata"),
        "deps not loaded"
    );
}

#[test]
fn real_framework_is_independent() {
    assert_clean(framework_independent(real()));
}

#[test]
fn real_contracts_are_data() {
    assert_clean(contracts_are_data(real()));
}

#[test]
fn real_capabilities_use_contracts() {
    assert_clean(capabilities_use_contracts(real()));
}

#[test]
fn real_only_assemblers_use_capabilities() {
    assert_clean(only_assemblers_use_capabilities(real()));
}

#[test]
fn real_crate_manifests() {
    assert_clean(crate_manifests(real()));
}

#[test]
fn fixture_is_clean() {
    assert_clean(check(&fixture()));
}

#[test]
fn framework_depending_on_capability_or_app_is_reported() {
    let rule = "framework-independent";
    for (spec, part) in [
        ("billing", "`billing` (capabilities/billing)"),
        ("billing-contract", "`billing-contract`"),
        ("shop", "`shop` (app/shop)"),
        ("build:catalog", "build-dependency on `catalog`"),
    ] {
        let ws = with_dep("framework/seams-runtime", spec);
        assert_reports(
            framework_independent(&ws),
            &[(rule, "framework/seams-runtime", part)],
        );
    }
    // Dev-dependencies are outside this invariant (invariant 4 still sees capabilities).
    assert_clean(framework_independent(&with_dep(
        "framework/seams-runtime",
        "dev:shop",
    )));
}

#[test]
fn contract_depending_on_implementation_or_io_is_reported() {
    let rule = "contract-is-data";
    let at = "capabilities/billing-contract";
    for spec in ["catalog", "sqlx", "axum", "async-nats", "tokio", "reqwest"] {
        assert_reports(contracts_are_data(&with_dep(at, spec)), &[(rule, at, spec)]);
    }
    for spec in ["seams-store", "seams-http", "seams-runtime"] {
        assert_reports(contracts_are_data(&with_dep(at, spec)), &[(rule, at, spec)]);
    }
    assert_clean(contracts_are_data(&with_dep(at, "dev:tokio")));
}

#[test]
fn capability_depending_on_another_implementation_is_reported() {
    let rule = "capability-uses-contracts";
    let at = "capabilities/billing";
    for (spec, part) in [
        ("catalog", "depends on capability implementation `catalog`"),
        (
            "dev:catalog",
            "dev-dependency on capability implementation `catalog`",
        ),
    ] {
        let violations = capabilities_use_contracts(&with_dep(at, spec));
        assert_reports(violations, &[(rule, at, part)]);
    }
    let violations = capabilities_use_contracts(&with_dep(at, "catalog"));
    assert!(violations[0].message.contains("`catalog-contract` instead"));
}

#[test]
fn non_assembler_depending_on_implementation_is_reported() {
    let rule = "only-assemblers-use-capabilities";
    for (at, spec) in [
        ("xtask", "dev:billing"),
        ("framework/seams-testkit", "catalog"),
        ("capabilities/catalog-contract", "build:billing"),
        ("capabilities/billing", "catalog"),
    ] {
        let violations = only_assemblers_use_capabilities(&with_dep(at, spec));
        assert_reports(violations, &[(rule, at, spec.rsplit(':').next().unwrap())]);
    }
}

#[test]
fn bench_crates_are_assemblers_but_only_directly_under_bench() {
    for dir in ["app/shop", "tests/e2e", "bench/seams-bench", "bench/peers"] {
        assert!(is_assembler(dir), "{dir}");
    }
    for dir in [
        "bench",
        "bench/",
        "bench/seams-bench/nested",
        "benchmarks/x",
        "app/other",
        "tests/e2e-extra",
        "xtask",
    ] {
        assert!(!is_assembler(dir), "{dir}");
    }
    // A crate nested deeper under `bench/` is not an assembler, so the edge is reported.
    let mut ws = fixture();
    ws.crates
        .push(krate("bench/seams-bench/nested", &["billing"]));
    assert_reports(
        only_assemblers_use_capabilities(&ws),
        &[(
            "only-assemblers-use-capabilities",
            "bench/seams-bench/nested",
            "only app/shop, tests/e2e, bench/* may",
        )],
    );
}

#[test]
fn bad_manifests_are_reported() {
    let rule = "crate-manifest";
    let mut ws = fixture();
    let krate = ws
        .crates
        .iter_mut()
        .find(|k| k.dir == "capabilities/catalog")
        .unwrap();
    krate.name = "seams-catalog".to_owned();
    krate.version = "0.1.0".to_owned();
    krate.publish = true;
    assert_reports(
        crate_manifests(&ws),
        &[
            (
                rule,
                "capabilities/catalog",
                "named `seams-catalog` but its folder is `catalog`",
            ),
            (rule, "capabilities/catalog", "version is `0.1.0`"),
            (rule, "capabilities/catalog", "publish = false"),
        ],
    );
    assert_eq!(crate_manifests(&ws).len(), 3);
}

#[test]
fn check_runs_every_rule() {
    let mut ws = with_dep("framework/seams-core", "billing");
    ws.crates[0].version = "1.0.0".to_owned();
    let rules: Vec<&str> = check(&ws).iter().map(|v| v.rule).collect();
    assert_eq!(
        rules,
        [
            "framework-independent",
            "only-assemblers-use-capabilities",
            "crate-manifest"
        ]
    );
}

/// Writes `files` (path, contents) under a fresh temporary folder.
fn scratch(files: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for (path, text) in files {
        let path = dir.path().join(path);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }
    dir
}

#[test]
fn load_maps_cargo_metadata_into_the_model() {
    let dir = scratch(&[
        (
            "Cargo.toml",
            "[workspace]\nresolver = \"3\"\nmembers = [\"framework/*\", \"capabilities/*\"]\n",
        ),
        (
            "framework/seams-core/Cargo.toml",
            "[package]\nname = \"seams-kernel\"\nversion = \"0.1.0\"\nedition = \"2024\"\n\n\
             [dev-dependencies]\nbill = { package = \"billing\", path = \"../../capabilities/billing\" }\n",
        ),
        ("framework/seams-core/src/lib.rs", "//! Core.\n"),
        (
            "capabilities/billing/Cargo.toml",
            "[package]\nname = \"billing\"\nversion = \"0.0.0\"\nedition = \"2024\"\npublish = false\n",
        ),
        ("capabilities/billing/src/lib.rs", "//! Billing.\n"),
    ]);
    let ws = Workspace::load(dir.path()).unwrap();
    let core = ws.get("seams-kernel").unwrap();
    assert_eq!(core.dir, "framework/seams-core");
    assert_eq!(
        core.deps,
        [Dep {
            name: "billing".to_owned(),
            kind: DepKind::Dev
        }]
    );
    assert!(core.publish);
    assert!(!ws.get("billing").unwrap().publish);
    assert_reports(
        check(&ws),
        &[
            (
                "only-assemblers-use-capabilities",
                "framework/seams-core",
                "`billing`",
            ),
            (
                "crate-manifest",
                "framework/seams-core",
                "folder is `seams-core`",
            ),
            ("crate-manifest", "framework/seams-core", "`0.1.0`"),
            ("crate-manifest", "framework/seams-core", "publish = false"),
        ],
    );
}

#[test]
fn the_example_capability_keeps_the_capabilities_rules() {
    assert_eq!(krate("examples/loyalty", &[]).role(), Role::Capability);
    assert_eq!(
        krate("examples/loyalty-contract", &[]).role(),
        Role::Contract
    );
    let mut ws = with_dep("capabilities/billing", "catalog-contract");
    ws.crates
        .push(krate("examples/loyalty", &["billing", "loyalty-contract"]));
    ws.crates
        .push(krate("examples/loyalty-contract", &["build:loyalty"]));
    let at = "examples/loyalty";
    assert_reports(
        capabilities_use_contracts(&ws),
        &[("capability-uses-contracts", at, "`billing`")],
    );
    assert_reports(
        contracts_are_data(&ws),
        &[("contract-is-data", "examples/loyalty-contract", "`loyalty`")],
    );
}
