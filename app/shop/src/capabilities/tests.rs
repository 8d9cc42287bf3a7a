//! The table agrees with what it lists, and the supervisor's view of the
//! capabilities agrees with the composition root's: every service the
//! supervisor would start is accepted by `serve` and builds exactly its
//! capabilities.

use std::ffi::OsString;
use std::path::Path;

use clap::Parser;

use super::*;
use crate::cli::{Cli, Command};
use crate::supervisor::{default_groups, normalize_groups, plan, serve_args};
use crate::system::Placement;

#[test]
fn every_line_names_its_own_dependencies_and_objectives() {
    for cap in TABLE {
        assert_eq!(cap.dependencies.capability, cap.name);
        for o in cap.objectives.iter() {
            assert_eq!(o.operation.capability, cap.name, "{}", o.id());
        }
    }
    assert_eq!(NAMES.len(), TABLE.len());
    for (name, cap) in NAMES.iter().zip(TABLE) {
        assert_eq!(*name, cap.name);
        assert_eq!(find(name).map(|c| c.name), Some(cap.name));
    }
    assert!(find("shipping").is_none());
}

#[test]
fn a_capability_comes_after_every_capability_it_calls() {
    for (i, cap) in TABLE.iter().enumerate() {
        for op in cap.dependencies.calls {
            assert!(
                NAMES[..i].contains(&op.capability),
                "{} calls {}, which starts after it",
                cap.name,
                op.id()
            );
        }
    }
}

/// The `serve` command line the supervisor would run for the service at
/// `index` of the plan of `groups`, parsed by the real CLI.
fn served(
    groups: &[Vec<String>],
    index: usize,
    data: &Path,
) -> (Vec<String>, Vec<String>, crate::config::Config) {
    let groups = normalize_groups(groups).unwrap();
    let ports: Vec<u16> = (0..groups.len()).map(|i| 4001 + i as u16).collect();
    let specs = plan(groups, &ports).unwrap();
    let args = serve_args(&specs[index], &specs, data, &[]);
    let argv = std::iter::once(OsString::from("shop")).chain(args);
    match Cli::try_parse_from(argv).unwrap().command {
        Command::Serve {
            capabilities,
            config,
            peers,
        } => (capabilities, peers, config),
        other => panic!("not serve: {other:?}"),
    }
}

#[tokio::test]
async fn every_service_the_supervisor_plans_is_accepted_by_serve_and_builds_its_capabilities() {
    let dir = tempfile::tempdir().unwrap();
    let groups = default_groups();
    assert_eq!(groups.len(), TABLE.len(), "one service per capability");
    for (i, cap) in TABLE.iter().enumerate() {
        let data = dir.path().join(cap.name);
        let (local, peers, config) = served(&groups, i, &data);
        assert_eq!(local, [cap.name]);
        let placement = Placement::split(&local, &peers).unwrap();
        for other in NAMES {
            assert_eq!(placement.here(other), other == cap.name, "{other}");
        }
        let builder = crate::system::build(&config, &placement)
            .await
            .unwrap_or_else(|e| panic!("building {}: {e:#}", cap.name));
        let built: Vec<&str> = builder.components().iter().map(|c| c.name).collect();
        assert_eq!(built, [cap.name]);
        assert!(std::ptr::eq(
            builder.components()[0].depends,
            cap.dependencies
        ));
    }
}

#[test]
fn serve_refuses_a_name_not_in_the_table_and_its_help_lists_the_table() {
    let err = Cli::try_parse_from(["shop", "serve", "shipping"]).unwrap_err();
    let text = err.to_string();
    for name in NAMES {
        assert!(text.contains(name), "{name} missing from: {text}");
    }
    let help = Cli::try_parse_from(["shop", "serve", "--help"])
        .unwrap_err()
        .to_string();
    assert!(help.contains(&NAMES.join(", ")), "{help}");
}
