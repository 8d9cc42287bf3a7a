//! The file layer fills only what flags and environment left unset.

use super::*;

fn parse(toml_text: &str) -> anyhow::Result<FileConfig> {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("shop.toml");
    std::fs::write(&path, toml_text)?;
    FileConfig::load(&path)
}

#[test]
fn file_values_fill_what_was_not_given() {
    let file = parse(
        r#"
        addr = "127.0.0.1:9000"
        data = "/srv/shop"
        durability = "normal"
        [smtp]
        host = "mail.internal"
        port = 2525
        [peers]
        identity = "http://identity:8080"
        "#,
    )
    .unwrap();
    let mut config = Config::new("127.0.0.1:8080".parse().unwrap(), "./data".into());
    // `--addr` was given on the command line; the rest came from defaults.
    file.apply(&mut config, &|id| id == "addr");
    assert_eq!(config.addr.to_string(), "127.0.0.1:8080");
    assert_eq!(config.data_dir, PathBuf::from("/srv/shop"));
    assert_eq!(config.durability, "normal");
    assert_eq!(config.smtp_host.as_deref(), Some("mail.internal"));
    assert_eq!(config.smtp_port, 2525);
    assert_eq!(file.peers["identity"], "http://identity:8080");
}

#[test]
fn bad_files_name_the_key() {
    let err = parse("adress = \"x\"").unwrap_err();
    assert!(format!("{err:#}").contains("adress"), "{err:#}");
    let err = parse("durability = \"sometimes\"").unwrap_err();
    assert!(format!("{err:#}").contains("durability"), "{err:#}");
    let err = parse("addr = 12").unwrap_err();
    assert!(format!("{err:#}").contains("addr"), "{err:#}");
}

#[test]
fn every_sample_under_deploy_parses() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy");
    let mut seen = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "toml") {
            FileConfig::load(&path).unwrap_or_else(|e| panic!("{}: {e:#}", path.display()));
            seen += 1;
        }
    }
    assert!(seen >= 5, "{seen} samples");
}

#[test]
fn database_urls_are_checked() {
    let mut config = Config::new("127.0.0.1:0".parse().unwrap(), "d".into());
    config.databases = vec!["billing=postgres://billing:pw@db/billing".into()];
    assert_eq!(config.database_urls().unwrap().len(), 1);
    config.databases = vec!["payroll=postgres://x@db/x".into()];
    assert!(format!("{:#}", config.database_urls().unwrap_err()).contains("unknown capability"));
    config.databases = vec!["billing=sqlite://x.db".into()];
    assert!(format!("{:#}", config.database_urls().unwrap_err()).contains("postgres://"));
    config.databases = vec!["billing".into()];
    assert!(format!("{:#}", config.database_urls().unwrap_err()).contains("CAP=URL"));
}

#[test]
fn debug_output_carries_no_password() {
    let mut config = Config::new("127.0.0.1:0".parse().unwrap(), "d".into());
    config.databases = vec!["billing=postgres://billing:s3cr3t@db/billing".into()];
    config.postgres_admin = Some("postgres://admin:hunter2@db/postgres".into());
    config.nats = Some("nats://user:natspw@bus:4222".into());
    let shown = format!("{config:?}");
    for secret in ["s3cr3t", "hunter2", "natspw"] {
        assert!(!shown.contains(secret), "{shown}");
    }
    assert!(
        shown.contains("postgres://admin:***@db/postgres"),
        "{shown}"
    );

    let file = parse(
        r#"
        postgres_admin = "postgres://admin:hunter2@db/postgres"
        nats = "nats://user:natspw@bus:4222"
        [databases]
        billing = "postgres://billing:s3cr3t@db/billing"
        "#,
    )
    .unwrap();
    let shown = format!("{file:?}");
    for secret in ["s3cr3t", "hunter2", "natspw"] {
        assert!(!shown.contains(secret), "{shown}");
    }
}

#[test]
fn tls_settings_come_from_the_file_and_reach_smtp_and_nats() {
    let file = parse(
        r#"
        nats = "tls://bus.internal:4222"
        tls_cert = "/etc/shop/cert.pem"
        tls_key = "/etc/shop/key.pem"
        ca_file = "/etc/shop/ca.pem"
        [smtp]
        host = "mail.internal"
        tls = "starttls"
        "#,
    )
    .unwrap();
    let mut config = Config::new("127.0.0.1:8080".parse().unwrap(), "./data".into());
    file.apply(&mut config, &|_| false);
    assert_eq!(config.tls_cert, Some(PathBuf::from("/etc/shop/cert.pem")));
    assert_eq!(config.tls_key, Some(PathBuf::from("/etc/shop/key.pem")));
    let ca = Some(PathBuf::from("/etc/shop/ca.pem"));
    assert_eq!(config.ca_file, ca);
    let notification::ChannelOptions::Smtp(smtp) = config.channel() else {
        panic!("not SMTP");
    };
    assert_eq!(smtp.tls, notification::channel::SmtpTls::StartTls);
    assert_eq!(smtp.ca_file, ca);
    assert_eq!(config.nats_tls().ca_file, ca);

    // A deployment CA for HTTPS asks no TLS of a plain bus or mail server.
    config.nats = Some("nats://bus.internal:4222".into());
    config.smtp_tls = "none".into();
    assert_eq!(config.nats_tls().ca_file, None);
    let notification::ChannelOptions::Smtp(smtp) = config.channel() else {
        panic!("not SMTP");
    };
    assert_eq!(smtp.tls, notification::channel::SmtpTls::None);
    assert_eq!(smtp.ca_file, None);
    config.smtp_tls = "implicit".into();
    assert_eq!(
        config.smtp_security(),
        notification::channel::SmtpTls::Implicit
    );

    let err = parse("[smtp]\nhost = \"m\"\ntls = \"sometimes\"").unwrap_err();
    assert!(format!("{err:#}").contains("smtp.tls"), "{err:#}");
}

/// The `up` configuration `args` parse to, and which ids they gave.
fn up(args: &[&str]) -> (Config, Vec<String>) {
    use clap::{CommandFactory, FromArgMatches};
    let argv = ["shop", "up"].iter().chain(args);
    let matches = crate::cli::Cli::command()
        .try_get_matches_from(argv)
        .unwrap();
    let sub = matches.subcommand_matches("up").unwrap().clone();
    let given = sub
        .ids()
        .filter(|id| sub.value_source(id.as_str()) == Some(clap::parser::ValueSource::CommandLine))
        .map(|id| id.to_string())
        .collect();
    match crate::cli::Cli::from_arg_matches(&matches).unwrap().command {
        crate::cli::Command::Up { config, .. } => (config, given),
        other => panic!("{other:?}"),
    }
}

#[test]
fn the_log_format_comes_from_the_flag_then_the_file_then_the_default() {
    use crate::telemetry::Format;
    let (config, _) = up(&[]);
    assert_eq!(config.log_format(), Format::Text, "text unless asked");
    let (config, _) = up(&["--log-format", "json"]);
    assert_eq!(config.log_format(), Format::Json);

    let file = parse("log_format = \"json\"").unwrap();
    let (mut config, given) = up(&[]);
    file.apply(&mut config, &|id| given.iter().any(|g| g == id));
    assert_eq!(config.log_format(), Format::Json, "the file fills it");

    let (mut config, given) = up(&["--log-format", "text"]);
    file.apply(&mut config, &|id| given.iter().any(|g| g == id));
    assert_eq!(config.log_format(), Format::Text, "the flag wins");
}

#[test]
fn a_bad_log_format_is_refused_naming_what_is_allowed() {
    use clap::CommandFactory;
    let err = crate::cli::Cli::command()
        .try_get_matches_from(["shop", "up", "--log-format", "yaml"])
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("--log-format") && err.contains("text") && err.contains("json"),
        "{err}"
    );
    let err = parse("log_format = \"yaml\"").unwrap_err();
    let err = format!("{err:#}");
    assert!(
        err.contains("log_format") && err.contains("\"text\" or \"json\""),
        "{err}"
    );
}

#[test]
fn peers_in_a_file_read_as_the_peer_flags_do() {
    let file = parse(
        "[peers]\nidentity = \"http://127.0.0.1:7001\"\nbilling = \"https://billing.internal:7443\"\n",
    )
    .unwrap();
    assert_eq!(
        file.peer_args(),
        [
            "billing=https://billing.internal:7443",
            "identity=http://127.0.0.1:7001"
        ]
    );
}

#[test]
fn versions_to_emit_are_parsed_and_checked() {
    let mut config = Config::new("127.0.0.1:0".parse().unwrap(), "d".into());
    assert!(config.emit_versions().unwrap().is_empty());
    config.emit = vec![
        "billing.invoice-created=1".into(),
        "billing.invoice-created=2".into(),
        "billing.invoice-created=1".into(),
        "billing.invoice-paid=1".into(),
    ];
    let versions = config.emit_versions().unwrap();
    assert_eq!(versions["billing.invoice-created"], [1, 2]);
    assert_eq!(versions["billing.invoice-paid"], [1]);
    for (bad, why) in [
        ("billing.invoice-created", "TYPE=VERSION"),
        ("billing.invoice-created=one", "not a number"),
        ("billing.invoice-created=-1", "not a number"),
        ("billing.invoice-creatd=1", "no capability consumes"),
    ] {
        config.emit = vec![bad.into()];
        let err = format!("{:#}", config.emit_versions().unwrap_err());
        assert!(err.contains(why), "{bad}: {err}");
        assert!(config.validate().is_err(), "{bad}");
    }
}

#[test]
fn versions_to_emit_come_from_the_file_unless_a_flag_gives_them() {
    let file: FileConfig =
        toml::from_str("[emit]\n\"billing.invoice-created\" = [1, 2]\n").unwrap();
    let mut config = Config::new("127.0.0.1:0".parse().unwrap(), "d".into());
    file.apply(&mut config, &|_| false);
    assert_eq!(
        config.emit,
        ["billing.invoice-created=1", "billing.invoice-created=2"]
    );
    let mut flagged = Config::new("127.0.0.1:0".parse().unwrap(), "d".into());
    flagged.emit = vec!["billing.invoice-created=1".into()];
    file.apply(&mut flagged, &|key| key == "emit");
    assert_eq!(flagged.emit, ["billing.invoice-created=1"]);
}

#[test]
fn versions_to_accept_are_parsed_and_checked() {
    let mut config = Config::new("127.0.0.1:0".parse().unwrap(), "d".into());
    assert!(config.accept_versions().unwrap().is_empty());
    config.accept = vec![
        "fulfillment:billing.invoice-created=1".into(),
        "fulfillment:billing.invoice-created=1".into(),
        "notification:billing.invoice-created=2".into(),
        "notification:billing.invoice-created=1".into(),
    ];
    let versions = config.accept_versions().unwrap();
    let key = |c: &str| (c.to_owned(), "billing.invoice-created".to_owned());
    assert_eq!(versions[&key("fulfillment")], [1]);
    assert_eq!(versions[&key("notification")], [2, 1]);
    assert_eq!(versions.len(), 2);
    for (bad, why) in [
        ("billing.invoice-created=1", "CONSUMER:TYPE=VERSION"),
        (
            "fulfillment:billing.invoice-created",
            "CONSUMER:TYPE=VERSION",
        ),
        ("fulfillment:billing.invoice-created=v1", "not a number"),
        (
            "shipping:billing.invoice-created=1",
            "no capability \"shipping\" consumes",
        ),
        (
            "billing:billing.invoice-created=1",
            "no capability \"billing\" consumes",
        ),
    ] {
        config.accept = vec![bad.into()];
        let err = format!("{:#}", config.accept_versions().unwrap_err());
        assert!(err.contains(why), "{bad}: {err}");
        assert!(config.validate().is_err(), "{bad}");
    }
}

#[test]
fn versions_to_accept_come_from_the_file_unless_a_flag_gives_them() {
    let file: FileConfig =
        toml::from_str("[accept]\n\"fulfillment:billing.invoice-created\" = [1]\n").unwrap();
    let mut config = Config::new("127.0.0.1:0".parse().unwrap(), "d".into());
    file.apply(&mut config, &|_| false);
    assert_eq!(config.accept, ["fulfillment:billing.invoice-created=1"]);
    let mut flagged = Config::new("127.0.0.1:0".parse().unwrap(), "d".into());
    flagged.accept = vec!["notification:billing.invoice-created=2".into()];
    file.apply(&mut flagged, &|key| key == "accept");
    assert_eq!(flagged.accept, ["notification:billing.invoice-created=2"]);
}

#[test]
fn a_lame_duck_is_bounded_and_zero_unless_asked() {
    let mut config = Config::new("127.0.0.1:0".parse().unwrap(), "d".into());
    assert_eq!(config.edge(1 << 20).lame_duck, Duration::ZERO);
    config.lame_duck_ms = Some(750);
    assert_eq!(config.edge(1 << 20).lame_duck, Duration::from_millis(750));
    assert!(config.validate().is_ok());
    config.lame_duck_ms = Some(60_000);
    assert!(config.validate().is_ok());
    config.lame_duck_ms = Some(60_001);
    let err = format!("{:#}", config.validate().unwrap_err());
    assert!(err.contains("--lame-duck-ms 60001"), "{err}");
}
